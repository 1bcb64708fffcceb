"""Zero-shot (greedy candidate + repair, one evaluation) of several one-shot policies on a suite, as a
share of each instance's best known score (the leaderboard).

    python benchmarks/bench_zeroshot_policies.py --policies pretrained-v4 runs/pre_v5a/best.pt \
        untrained untrained:cut_prior=0:max_log_sharpness=6 --out benchmarks/results/oneshot/zeroshot_policies.json

A policy is a checkpoint (a shipped name or a ``.pt`` path) or ``untrained[:key=value...]``: a fresh
stages-head policy (torch seed 0; its last layers are zero, so it is its prior) with those
``oneshot_policy_kwargs`` (numbers). Prints one line per instance and the mean / min per policy, and
writes them as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcm_gym._io import atomic_write_text
from mcm_gym.bench.leaderboard import gaps
from mcm_gym.bench.suites import get_suite
from mcm_gym.learn.checkpoints import resolve_checkpoint
from mcm_gym.learn.oneshot import OneShotPolicy, oneshot_policy_kwargs
from mcm_gym.learn.oneshot_search import load_oneshot
from mcm_gym.learn.oneshot_train import greedy_scores, oneshot_envs, policy_for_envs


def _policy(spec: str, graph: Any, hardware: Any, cache: dict[str, OneShotPolicy]) -> OneShotPolicy:
    if not spec.startswith("untrained"):
        if spec not in cache:
            cache[spec] = load_oneshot(resolve_checkpoint(spec))
        return cache[spec]
    kw = {k: float(v) for k, v in (item.split("=", 1) for item in spec.split(":")[1:])}
    env = oneshot_envs([(graph, hardware)], common_padding=False)[0]
    torch.manual_seed(0)
    return policy_for_envs([env], oneshot_policy_kwargs(head="stages", **kw))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", nargs="+", required=True)
    ap.add_argument("--suite", default="suite://heldout-v1")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cache: dict[str, OneShotPolicy] = {}
    rows = []
    for inst in get_suite(args.suite).instances:
        pr = inst.problem()
        row: dict[str, Any] = {"graph": inst.graph, "hardware": inst.hardware}
        best = (gaps(pr, 0.0) or {}).get("best_score")
        for spec in args.policies:
            score = greedy_scores(_policy(spec, pr.graph, pr.hardware, cache), [(pr.graph, pr.hardware)])[0]
            row[spec] = score / best if best else None
        rows.append(row)
        print(f"{inst.graph} / {inst.hardware}: " + ", ".join(
            f"{s} {row[s]:.3f}" if row[s] is not None else f"{s} -" for s in args.policies), flush=True)
    summary = {}
    for spec in args.policies:
        vals = [r[spec] for r in rows if r[spec] is not None]
        summary[spec] = {"mean": float(np.mean(vals)), "min": float(np.min(vals)), "instances": len(vals)}
        print(f"{spec}: mean {summary[spec]['mean']:.4f}, min {summary[spec]['min']:.4f} over {len(vals)}")
    atomic_write_text(args.out, json.dumps({"suite": args.suite, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
