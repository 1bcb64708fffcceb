"""Zero-shot of one-shot policies on the pre-training validation set, as a ratio to the stage DP.

    python benchmarks/bench_validation.py --policies priors-v1 priors pretrained-v8 pretrained \
        --out benchmarks/results/oneshot/validation_orders.json

The validation set of the shipped recipe (``agents/pretrain_oneshot.py --val-zoo zoo://distilbert-v1
zoo://mobilenet-v2-v1`` on its seven hardware profiles): layered-DAG seeds 950-961 and the two zoo
graphs, wherever they fit, 98 instances of the train split that no shipped policy trained on. Per
policy and split (``head``: its own stage ends; ``dp``: its order split by the stage DP), the mean and
minimum of greedy candidate + repair over ``dp`` at 100 evaluations (seed 0). A policy is a shipped
name or a ``.pt`` path, optionally ``@N`` to run it with ``N`` extra (jittered) orders instead of its
own number; the number of orders is not part of the weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcm_gym._io import atomic_write_text
from mcm_gym.learn.checkpoints import resolve_checkpoint
from mcm_gym.learn.oneshot_pretrain import PretrainConfig, _fits, _reference
from mcm_gym.learn.oneshot_search import load_oneshot
from mcm_gym.learn.oneshot_train import SPLITS, greedy_scores

HARDWARE = ["ring-4", "ring-8", "mesh-2x2", "hring-4", "hring-8", "ring-4?activation_memory=on",
            "ring-4?neighbor_only=on&triangle=on"]
VAL_ZOO = ["zoo://distilbert-v1", "zoo://mobilenet-v2-v1"]


def instances() -> list[tuple[str, str]]:
    cfg = PretrainConfig(hardware=HARDWARE, val_zoo=VAL_ZOO)
    gen = [f"generator://layered-dag-v0/{s}" for s in cfg.val_seeds]
    return [(g, h) for g in gen + VAL_ZOO for h in HARDWARE if _fits(g, h)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", nargs="+", required=True, help="shipped names or .pt paths, optionally @N")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    val = instances()
    t0 = time.perf_counter()
    ref = np.array(_reference(val))
    print(f"{len(val)} instances; dp@100 in {time.perf_counter() - t0:.0f} s", flush=True)
    out: dict[str, Any] = {"instances": [list(x) for x in val], "dp": ref.tolist(), "policies": {}}
    for spec in args.policies:
        name, _, extra = spec.partition("@")
        try:
            policy = load_oneshot(resolve_checkpoint(name))
        except (FileNotFoundError, ValueError) as e:
            ap.error(f"--policies {spec}: {e}")
        if extra:
            policy.extra_orders = int(extra)
        for split in SPLITS:
            t0 = time.perf_counter()
            ratio = np.array(greedy_scores(policy, val, split=split)) / ref
            row = {"mean": float(ratio.mean()), "min": float(ratio.min()), "orders": list(policy.orders),
                   "extra_orders": int(policy.extra_orders), "seconds": time.perf_counter() - t0,
                   "ratios": ratio.tolist()}
            out["policies"][f"{spec}:split={split}"] = row
            print(f"{spec} split={split}: mean {row['mean']:.4f}, min {row['min']:.3f} "
                  f"({len(policy.orders)} named + {policy.extra_orders} jittered orders, {row['seconds']:.0f} s)",
                  flush=True)
        atomic_write_text(args.out, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
