#!/usr/bin/env python
"""Large graphs (issue 13): layered DAGs of 1,000 / 3,000 / 10,000 nodes, weights scaled to fill 60% of
the SRAM (``bench_repair.scaled_dag``), on ring-64 and mesh-8x8. Per case, in a fresh process (peak
memory is per process): Problem build (s), stage DP with one order (s) and its score, batch
evaluations with validity (partitions/s, batch 256), a random masked env episode (steps/s, at most
20 s), peak resident memory (MB); then growth exponents from 1,000 to 10,000 nodes (log-log slope).

Run: ``python benchmarks/bench_large.py --out benchmarks/results/large.json`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = (1000, 3000, 10_000)
HARDWARE = ("ring-64", "mesh-8x8")


def case(n: int, hw_name: str) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_repair import scaled_dag

    import mcm_gym
    from mcm_gym.core import kernels
    from mcm_gym.env.partition_env import MCMPartitionEnv
    from mcm_gym.search.dp import DPSearch

    g = scaled_dag(n)
    hw = mcm_gym.get_hardware(hw_name)
    t = time.perf_counter()
    problem = mcm_gym.Problem(g, hw)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    res = DPSearch().search(problem, budget=1, seed=0)
    dp_s = time.perf_counter() - t
    base = res.partition if res.partition is not None else np.zeros(n, dtype=np.int64)
    batch = np.repeat(base[None], 256, 0)
    problem.scores(batch[:2])  # compile / warm up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        problem.scores(batch)
        times.append(time.perf_counter() - t)
    env = MCMPartitionEnv(graph=g, hardware=hw, use_repair=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, done, t = 0, False, time.perf_counter()
    while not done and time.perf_counter() - t < 20:
        mask = env.action_masks()
        _, _, done, _, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
        steps += 1
    steps_s = steps / (time.perf_counter() - t)
    return {"nodes": n, "hardware": hw_name, "problem_build_s": build_s, "dp_one_order_s": dp_s,
            "dp_score": res.score, "evals_per_s": 256 / float(np.median(times)), "env_steps_per_s": steps_s,
            "env_steps": steps, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "numba": kernels.enabled()}


def slope(rows: list[dict[str, Any]], key: str) -> float:
    a, b = rows[0], rows[-1]
    return math.log(b[key] / a[key]) / math.log(b["nodes"] / a["nodes"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--case", nargs=2, metavar=("NODES", "HARDWARE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(case(int(args.case[0]), args.case[1])))
        return 0
    rows = []
    for hw in HARDWARE:
        for n in SIZES:
            out = subprocess.run([sys.executable, __file__, "--case", str(n), hw], capture_output=True, text=True,
                                 check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{hw} {n:>6}: build {row['problem_build_s']:.2f} s, dp {row['dp_one_order_s']:.2f} s "
                  f"(score {row['dp_score']:.4f}), {row['evals_per_s']:,.0f} evals/s, "
                  f"{row['env_steps_per_s']:,.0f} steps/s, peak {row['peak_mb']:.0f} MB", flush=True)
    growth = {}
    for hw in HARDWARE:
        sub = [r for r in rows if r["hardware"] == hw]
        growth[hw] = {k: slope(sub, k) for k in ("problem_build_s", "dp_one_order_s", "peak_mb")}
        growth[hw]["time_per_eval"] = -slope(sub, "evals_per_s")
        growth[hw]["time_per_env_step"] = -slope(sub, "env_steps_per_s")
        print(hw, "growth exponents 1k -> 10k:", {k: round(v, 2) for k, v in growth[hw].items()})
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "growth": growth}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
