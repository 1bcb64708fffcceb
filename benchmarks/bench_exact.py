"""Exact solving at full size: the stage DP against the exact search on the standard instances.

Run: ``python benchmarks/bench_exact.py [--backend cpsat|z3] [--time-limit 600] [--out benchmarks/results/exact.json]``.
Prints a Markdown table for BENCHMARKS.md: per instance the DP's score, the exact search's score,
the proven bound (as a score: no valid partition scores above it), the gap, the stop reason and the
wall time (s), all measured in one run. Single-threaded CP-SAT (one worker: deterministic for a seed);
Z3 with its deterministic resource limit per call.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

import mcm_gym  # noqa: E402
from mcm_gym._io import atomic_write_text  # noqa: E402
from mcm_gym.search import get_searcher  # noqa: E402
from mcm_gym.search.exact import ExactSearch  # noqa: E402


def hetero_ring8() -> mcm_gym.Hardware:
    """ring-8 whose chips run at 16, 20.6, ..., 48 TFLOP/s (evenly spaced), all else as the preset."""
    base = mcm_gym.get_hardware("ring-8")
    chips = tuple(replace(c, peak_flops=float(f)) for c, f in zip(base.chips, np.linspace(16e12, 48e12, 8),
                                                                  strict=True))
    return replace(base, chips=chips, name="ring-8-hetero-16-48", id="bench://ring-8-hetero-16-48-v1")


INSTANCES = [("zoo://bert-base-v1", "ring-8"), ("zoo://bert-base-v1", "mesh-4x4"), ("zoo://resnet-50-v1", "ring-8"),
             ("zoo://mobilenet-v2-v1", "ring-8"), ("zoo://bert-base-v1", "hetero")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per exact solve")
    ap.add_argument("--backend", choices=["cpsat", "z3"], default="cpsat")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    rows = []
    lines = ["| instance | `dp` score | `exact` score | proven bound (score) | gap | stop | exact time (s) |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for gid, hid in INSTANCES:
        hw = hetero_ring8() if hid == "hetero" else mcm_gym.get_hardware(hid)
        problem = mcm_gym.Problem(mcm_gym.load_graph(gid), hw)
        dp = get_searcher("dp").search(problem, budget=32, seed=0)
        t0 = time.perf_counter()
        ex = ExactSearch(backend=args.backend, time_limit=args.time_limit).search(problem, budget=64, seed=0)
        wall = time.perf_counter() - t0
        bound = ex.extra["proven_lower_bound"]
        bound_score = problem.lower_bound / bound if bound > 0 else 1.0
        row = {"graph": gid, "hardware": hw.id or hw.name, "dp_score": dp.score, "dp_time": dp.wall_time,
               "exact_score": ex.score, "bound_score": bound_score, "gap": ex.extra["gap"],
               "stop": ex.extra["stop"], "proven_optimal": ex.extra["proven_optimal"], "exact_time": wall,
               "partition": None if ex.partition is None else ex.partition.tolist()}
        rows.append(row)
        verdict = "optimal" if ex.extra["proven_optimal"] else ex.extra["stop"]
        lines.append(f"| {gid.split('://')[1]} / {hw.name} | {dp.score:.4f} | {ex.score:.4f} | {bound_score:.4f} "
                     f"| {100 * ex.extra['gap']:.4f}% | {verdict} | {wall:.1f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.out:
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                "machine": platform.machine(), "cpus": os.cpu_count(), "time_limit": args.time_limit,
                "backend": args.backend}
        atomic_write_text(args.out, json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
