#!/usr/bin/env python
"""Batch repair throughput (issue 13): 64 stage-jitter candidates on BERT-base / ring-8.

Candidates: the stage DP's split of the graph's order with every stage boundary moved by a random
-5..5 positions (seeded). Each is repaired with the default ``RepairConfig`` (certified local search,
then Z3) and with ``local_search_max=0`` (Z3 only); reported: candidates/s over the batch, statuses,
which engine answered, and whether both give the same change counts.

Run: ``python benchmarks/bench_batch_repair.py [--out benchmarks/results/batch_repair.json]`` (under a
minute).
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

import mcm_gym
from mcm_gym import Problem, RepairConfig
from mcm_gym.search.dp import DPSearch


def candidates(problem: Problem, count: int = 64, seed: int = 0) -> list[np.ndarray]:
    base = DPSearch().search(problem, budget=4, seed=0).partition
    ends = np.flatnonzero(np.diff(base)) + 1  # the DP's first order is the graph's own
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        cand = np.zeros(problem.n, dtype=np.int64)
        for j, x in enumerate(np.sort(np.clip(ends + rng.integers(-5, 6, ends.size), 1, problem.n - 1))):
            cand[x:] = j + 1
        out.append(cand)
    return out


def run(problem: Problem, cands: list[np.ndarray], cfg: RepairConfig | None) -> dict[str, object]:
    problem.repair(cands[0], cfg)  # warm up (imports, kernels)
    t = time.perf_counter()
    res = [problem.repair(c, cfg) for c in cands]
    dt = time.perf_counter() - t
    return {"candidates_per_s": len(cands) / dt, "statuses": dict(collections.Counter(r.status for r in res)),
            "methods": dict(collections.Counter(r.method for r in res)), "changes": [r.changes for r in res]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    problem = Problem(mcm_gym.load_graph("bert-base"), mcm_gym.get_hardware("ring-8"))
    cands = candidates(problem)
    default = run(problem, cands, None)
    z3_only = run(problem, cands, RepairConfig(local_search_max=0))
    same = default["changes"] == z3_only["changes"]
    for name, r in (("default (local search, then Z3)", default), ("Z3 only", z3_only)):
        print(f"{name}: {r['candidates_per_s']:.0f} candidates/s, {r['statuses']}, {r['methods']}")
    print(f"same change counts: {same}")
    if args.out:
        args.out.write_text(json.dumps({"default": default, "z3_only": z3_only, "same_changes": same}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
