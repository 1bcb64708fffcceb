"""Several methods at one budget of evaluations on every instance of a suite, as a share of each
instance's best known score (the leaderboard): the median over seeds per instance, then the mean and
the minimum over instances, and the wall time per run.

    python benchmarks/bench_equal_budget.py --suite suite://hard-v1 --budget 200 --seeds 0 1 2 \
        --methods oneshot:head=stages,adapt_orders=0 oneshot:head=stages dp \
        --out benchmarks/results/oneshot/equal_budget_hard.json

``--min-chips`` / ``--max-chips`` keep the instances with that many chips (default: all; a checkpoint
trained on fewer chips than an instance has runs widened, ``widen_policy``). Written atomically after
every instance, so an interrupted run keeps what it did.
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
from mcm_gym.bench.leaderboard import gaps
from mcm_gym.bench.suites import get_suite
from mcm_gym.search import get_searcher


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suite://hard-v1")
    ap.add_argument("--methods", nargs="+", required=True)
    ap.add_argument("--budget", type=int, default=200, help="evaluations per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--min-chips", type=int, default=0)
    ap.add_argument("--max-chips", type=int, default=0, help="0: no limit")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.budget < 1:
        ap.error("--budget must be >= 1")
    for m in args.methods:  # a bad method name or option stops here, before any run
        try:
            get_searcher(m)
        except ValueError as exc:
            ap.error(str(exc))
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, float]] = {}
    for inst in get_suite(args.suite).instances:
        pr = inst.problem()
        if pr.num_chips < args.min_chips or (args.max_chips and pr.num_chips > args.max_chips):
            print(f"{inst.key}: left out, {pr.num_chips} chips outside --min-chips / --max-chips", flush=True)
            continue
        best = (gaps(pr, 0.0) or {}).get("best_score")
        if not best:
            print(f"{inst.key}: left out, the leaderboard has no best known score for it", flush=True)
            continue
        row: dict[str, Any] = {"instance": inst.key, "best_known": best}
        for m in args.methods:
            scores, secs = [], []
            for s in args.seeds:
                t0 = time.perf_counter()
                res = get_searcher(m).search(pr, args.budget, seed=s)
                secs.append(time.perf_counter() - t0)
                scores.append(res.score / best)
            row[m] = {"share": float(np.median(scores)), "shares": scores, "seconds": float(np.median(secs))}
        rows.append(row)
        print(inst.key, " ".join(f"{row[m]['share']:.3f} ({row[m]['seconds']:.1f} s)" for m in args.methods),
              flush=True)
        summary = {m: {"mean": float(np.mean([r[m]["share"] for r in rows])),
                       "min": float(np.min([r[m]["share"] for r in rows])),
                       "median_seconds": float(np.median([r[m]["seconds"] for r in rows]))} for m in args.methods}
        atomic_write_text(args.out, json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                                "summary": summary, "rows": rows}, indent=1))
    if not rows:
        print("no instance was run")
        return 1
    print(f"\n{len(rows)} instances, budget {args.budget}, median of seeds {args.seeds}; share of the best known")
    for m in args.methods:
        sm = summary[m]
        print(f"{m}: mean {sm['mean']:.4f}, min {sm['min']:.3f}, median {sm['median_seconds']:.2f} s per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
