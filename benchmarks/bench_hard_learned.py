"""The learned one-shot partitioner against dp, simulated annealing and the exact solver's anytime
result at equal wall time, on every instance of a suite (default ``suite://hard-v1``).

    python benchmarks/bench_hard_learned.py --budget 200 --out benchmarks/results/hard_learned.json

Per instance: ``oneshot:checkpoint=pretrained`` (zero-shot first, then fine-tuning) with ``--budget``
repaired candidates takes ``W`` seconds; the one-shot learner from scratch (the checkpoint's head) gets the same budget;
``sa`` gets as many evaluations as it runs in ``W`` (its rate measured on a 20-evaluation probe);
``exact`` gets ``time_limit = W`` and reports its best partition (anytime) and its bound; ``dp``
runs at its own budget of 100. Gaps are to the leaderboard's best known and proven bound. A policy
trained on fewer chips than an instance has runs widened (``widen_policy``). ``--polish N``: the pre-trained
learner polishes its zero-shot partition with up to N of its evaluations before fine-tuning
(``oneshot:checkpoint=...,polish=N``); ``--split dp``: its zero-shot candidate is its greedy order
split by the stage DP (``split=dp``). ``--adapt-orders N``: both learners train with N orders
adapted around their best partition so far (``adapt_orders=N``, always named in the method; see
:class:`~mcm_gym.learn.oneshot_train.OneShotTrainConfig`; default 0: the fixed orders, as the rows
measured before adapted orders existed), and with N > 0 ``dp`` also runs at the learner's
budget (``dp@budget``) and at as many evaluations as it runs in ``W`` (``dp@W``, its rate measured
on a 20-evaluation probe), so the table has it at equal evaluations and at equal wall time.
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
from mcm_gym.bench import leaderboard
from mcm_gym.bench.suites import get_suite
from mcm_gym.cli import evaluation_count, whole_count
from mcm_gym.learn.checkpoints import resolve_checkpoint
from mcm_gym.learn.oneshot_search import load_oneshot
from mcm_gym.learn.oneshot_train import SPLITS
from mcm_gym.search import get_searcher


def _run(method: str, problem: Any, budget: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = get_searcher(method).search(problem, budget=budget, seed=seed)
    return {"method": method, "score": float(res.score), "seconds": time.perf_counter() - t0,
            "evaluations": len(res.trace), **(res.extra or {})}


def _run_for(method: str, problem: Any, wall: float, seed: int) -> dict[str, Any]:
    """``method`` at as many evaluations (at least 20) as it runs in ``wall`` s, its rate measured on
    a 20-evaluation probe."""
    probe = _run(method, problem, 20, seed)
    rate = probe["evaluations"] / max(probe["seconds"], 1e-9)
    return _run(method, problem, max(20, int(rate * wall)), seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suite://hard-v1")
    ap.add_argument("--budget", type=int, default=200, help="repaired candidates of the learner")
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--polish", type=evaluation_count, default=0,
                    help="polish the zero-shot partition first (evaluations)")
    ap.add_argument("--adapt-orders", type=whole_count("orders"), default=0,
                    help="orders adapted around the best partition so far, for both learners (0: fixed orders)")
    ap.add_argument("--split", choices=SPLITS, default="head",
                    help="the pre-trained learner's zero-shot candidate: the head's ends or its order split by "
                         "the stage DP (oneshot:...,split=dp)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    policy = load_oneshot(resolve_checkpoint(args.checkpoint))
    scratch = "oneshot:head=stages" if policy.head == "stages" else "oneshot"  # the checkpoint's own head
    adapt = f",adapt_orders={args.adapt_orders}"  # always named: the learner's default is not 0
    scratch += adapt
    rows = []
    for inst in get_suite(args.suite).instances:
        pr = inst.problem()
        learner = (f"oneshot:checkpoint={args.checkpoint}" + (f",polish={args.polish}" if args.polish else "")
                   + (f",split={args.split}" if args.split != "head" else "") + adapt)
        cells: list[dict[str, Any]] = [_run(learner, pr, args.budget, args.seed)]
        cells.append(_run(scratch, pr, args.budget, args.seed))
        wall = cells[0]["seconds"]
        cells.append(_run_for("sa", pr, wall, args.seed))
        cells.append(_run(f"exact:time_limit={max(wall, 1.0):.3g}", pr, 1000, args.seed))
        cells.append(_run("dp", pr, 100, args.seed))
        if args.adapt_orders:
            cells.append(_run("dp", pr, args.budget, args.seed) | {"method": f"dp@{args.budget}"})
            cells.append(_run_for("dp", pr, wall, args.seed) | {"method": "dp@W"})
        for c in cells:
            gap = leaderboard.gaps(pr, c["score"])
            if gap is not None:
                c.update(gap_to_best=gap["gap_to_best"], gap_to_bound=gap["gap_to_bound"])
            c.pop("partition", None)
        rows.append({"instance": inst.key, "nodes": pr.graph.n, "chips": pr.num_chips, "wall": wall, "cells": cells})
        print(inst.key, " ".join(f"{c['method'].split(':')[0]}={c['score']:.4f}/{c['seconds']:.1f}s" for c in cells),
              flush=True)
        atomic_write_text(args.out, json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows},
                                               indent=1, default=str))
    fam = ["pretrained", "scratch", "sa", "exact", "dp"] + ([f"dp@{args.budget}", "dp@W"] if args.adapt_orders else [])
    lines = ["| instance | chips | W (s) | " + " | ".join(f"{f}: score (gap to best)" for f in fam) + " |",
             "|---|---:|---:|" + "---|" * len(fam)]
    for r in rows:
        by = {("pretrained" if "checkpoint" in c["method"] else "scratch" if c["method"] == scratch
               else c["method"].split(":")[0]): c for c in r["cells"]}
        lines.append(f"| {r['instance'].replace(' | ', ' / ')} | {r['chips']} | {r['wall']:.1f} | " + " | ".join(
            f"{by[f]['score']:.4f} ({100 * by[f].get('gap_to_best', float('nan')):.1f}%)" for f in fam) + " |")
    for f in fam:
        gaps = [c.get("gap_to_best") for r in rows for c in r["cells"]
                if ("pretrained" if "checkpoint" in c["method"] else "scratch" if c["method"] == scratch
                    else c["method"].split(":")[0]) == f and c.get("gap_to_best") is not None]
        if gaps:
            lines.append(f"\n{f}: mean gap to best {100 * np.mean(gaps):.2f}%, max {100 * np.max(gaps):.2f}% "
                         f"({len(gaps)} instances)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
