"""Find the hard instances: where the stage DP falls more than 5% short of the best known (the exact
search's), or the exact search cannot prove optimality within its time limit.

Run: ``python benchmarks/find_hard.py [--seeds 5000:5060] [--time-limit 60] [--out FILE.json]``.
Candidates: random layered DAGs (generator seeds apart from the train and held-out splits) on hardware
where the DP's assumptions bend: chips of different speeds (hring-4, hring-8), a 2x2 mesh, and ring-4
with the triangle and neighbour-only constraints, or with activation memory. Prints one Markdown row
per hard instance (DP score, best known, proven bound, DP gap, exact time); the JSON keeps every row.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import mcm_gym  # noqa: E402
from mcm_gym._io import atomic_write_text  # noqa: E402
from mcm_gym.core.problem import InfeasibleError  # noqa: E402
from mcm_gym.search import get_searcher  # noqa: E402
from mcm_gym.search.exact import ExactSearch  # noqa: E402

HARDWARE = ["hring-4", "hring-8", "mesh-2x2", "ring-4?neighbor_only=on&triangle=on", "ring-4?activation_memory=on"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="5000:5060", help="generator seeds A:B (B excluded)")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per exact solve")
    ap.add_argument("--out", help="JSON file for every row")
    args = ap.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split(":"))
    rows = []
    print("| instance | `dp` score | best known | proven bound (score) | DP gap to best | exact time (s) | stop |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for seed in range(a, b):
        gid = f"generator://layered-dag-v0/{seed}"
        for hid in HARDWARE:
            try:
                problem = mcm_gym.Problem(mcm_gym.load_graph(gid), mcm_gym.get_hardware(hid))
            except InfeasibleError:
                continue
            dp = get_searcher("dp").search(problem, budget=32, seed=0)
            t0 = time.perf_counter()
            ex = ExactSearch(backend="cpsat", time_limit=args.time_limit).search(problem, budget=64, seed=0)
            wall = time.perf_counter() - t0
            best = max(dp.score, ex.score)
            lb = ex.extra["proven_lower_bound"]
            bound = problem.lower_bound / lb if lb > 0 else 1.0
            gap = 1 - dp.score / best if best > 0 else 0.0
            row = {"graph": gid, "hardware": hid, "dp_score": dp.score, "best_score": best, "bound_score": bound,
                   "dp_gap": gap, "exact_time": wall, "stop": ex.extra["stop"],
                   "proven_optimal": ex.extra["proven_optimal"]}
            rows.append(row)
            if gap > 0.05 or not ex.extra["proven_optimal"]:
                print(f"| {gid} / {hid} | {dp.score:.4f} | {best:.4f} | {bound:.4f} | {100 * gap:.1f}% | {wall:.1f} "
                      f"| {'optimal' if ex.extra['proven_optimal'] else ex.extra['stop']} |", flush=True)
            if args.out:
                atomic_write_text(args.out, json.dumps({"time_limit": args.time_limit, "rows": rows}, indent=1) + "\n")
    hard = [r for r in rows if r["dp_gap"] > 0.05 or not r["proven_optimal"]]
    print(f"\n{len(hard)} hard of {len(rows)} instances")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
