"""Untrained stages-head priors on the zoo's train-split graphs (every one, on ring-4, ring-8 and
mesh-2x2 where it fits): graphs that no choice of a prior looked at (the held-out suite chose them,
the validation set could not tell them apart), as a share of the stage DP's score (the
pre-training validation reference), with simulated annealing at 50 evaluations (median of seeds 0-2).

    python benchmarks/bench_priors_trainsplit.py --out benchmarks/results/oneshot/priors_trainsplit.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mcm_gym._io import atomic_write_text
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.learn.oneshot import oneshot_policy_kwargs
from mcm_gym.learn.oneshot_pretrain import PretrainConfig, _reference, training_instances
from mcm_gym.learn.oneshot_train import greedy_scores, oneshot_envs, policy_for_envs
from mcm_gym.search import get_searcher

#: name -> stages-head keyword arguments of an untrained policy (torch seed 0)
VARIANTS = {"time balance, 28 orders (default)": {}, "SRAM-or-time balance, 28 orders": {"prior": "pipeline"},
            "time balance, 4 orders": {"extra_orders": 0},
            "SRAM-or-time balance, 4 orders": {"prior": "pipeline", "extra_orders": 0}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    zoo, _ = training_instances(PretrainConfig(generator_seeds=[0], max_nodes=10**9))
    ref_all = _reference(zoo)  # the stage DP's score
    inst = [z for z, r in zip(zoo, ref_all, strict=True) if r > 0]
    ref = np.asarray([r for r in ref_all if r > 0])
    rows: list[dict[str, object]] = [{"graph": g, "hardware": h, "dp": float(r)}
                                     for (g, h), r in zip(inst, ref, strict=True)]
    summary = {}
    sa = np.asarray([np.median([get_searcher("sa").search(Problem(load_graph(g), get_hardware(h)), 50, seed=s).score
                                for s in range(3)]) for g, h in inst]) / ref
    for name, kw in VARIANTS.items():
        torch.manual_seed(0)
        k_max = max(get_hardware(h).num_chips for _, h in inst)
        envs = oneshot_envs(inst[:1], common_padding=False, k_max=k_max)
        pol = policy_for_envs(envs, oneshot_policy_kwargs(head="stages", **kw))
        r = np.asarray(greedy_scores(pol, inst)) / ref
        for row, v in zip(rows, r, strict=True):
            row[name] = float(v)
        summary[name] = {"mean": float(r.mean()), "min": float(r.min()), "below_sa": int((r < sa - 1e-9).sum())}
        print(f"{name}: mean {r.mean():.4f}, min {r.min():.3f}, below sa@50 on {summary[name]['below_sa']} "
              f"of {len(r)}", flush=True)
    for row, v in zip(rows, sa, strict=True):
        row["sa"] = float(v)
    summary["sa"] = {"mean": float(sa.mean()), "min": float(sa.min()), "budget": 50}
    print(f"sa@50: mean {sa.mean():.4f}, min {sa.min():.3f}")
    atomic_write_text(args.out, json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
