"""Zero-shot (greedy candidate + repair, one evaluation) of several one-shot policies on a suite, as a
share of each instance's best known score (the leaderboard).

    python benchmarks/bench_zeroshot_policies.py --policies pretrained-v4 runs/pre_v5a/best.pt \
        untrained untrained:cut_prior=0:max_log_sharpness=6 --out benchmarks/results/oneshot/zeroshot_policies.json

A policy is a checkpoint (a shipped name or a ``.pt`` path), optionally with ``:key=value`` overrides of
its priors (``pretrained-v4:speed_prior=20``; keys in ``OVERRIDES``) and ``:split=dp`` (its greedy order split
by the stage DP, ``greedy_candidates``), or ``untrained[:key=value...]``: a
fresh stages-head policy (torch seed 0; its last layers are zero, so it is its prior) with those
``oneshot_policy_kwargs`` (numbers, or words such as ``balance=global``). Prints one line per instance
and the mean / min per policy, and writes them as JSON (atomically); an instance with more chips than
a checkpoint's ``K_max`` runs it widened (``widen_policy``; the row names it), ``--min-chips N`` keeps
the instances with at least N chips. ``--sa-budget N`` adds simulated
annealing with N evaluations (the median of seeds 0-2) and counts the instances where each policy is
below it; ``--ceiling`` adds the stage DP's best split of the graph's own order and of the best of
the stages head's four named orders, and of the best of all its orders (with the default
``extra_orders``): what a contiguous split of those orders can reach. ``--polish N`` adds, per policy,
its zero-shot partition polished with up to N more evaluations (``<policy>+polish``,
:mod:`mcm_gym.search.polish`), and the non-learned methods at the same 1 + N evaluations: ``dp``,
``greedy``, ``dp@1+polish`` and ``balanced@1+polish`` (the stage DP's first split or the equal-work split,
polished); with ``--sa-budget`` equal to
1 + N, simulated annealing is at the same budget too.
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
from mcm_gym.cli import evaluation_count
from mcm_gym.learn.checkpoints import resolve_checkpoint
from mcm_gym.learn.oneshot import STAGE_EXTRA_ORDERS, STAGE_ORDERS, OneShotPolicy, oneshot_policy_kwargs
from mcm_gym.learn.oneshot_search import load_oneshot
from mcm_gym.learn.oneshot_train import greedy_partitions, oneshot_envs, policy_for_envs, stage_orders
from mcm_gym.search import get_searcher
from mcm_gym.search.dp import StageSplitter
from mcm_gym.search.polish import polish, polish_result

CEILINGS = ("ceiling graph order", "ceiling four orders", "ceiling all orders")
#: Prior settings a ``checkpoint:key=value`` spec may override on a loaded stages-head policy.
OVERRIDES = ("count_prior", "cut_prior", "speed_prior", "max_log_sharpness", "balance", "extra_orders", "prior")


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # e.g. balance=global


def _split(spec: str) -> str:
    """The ``split=head|dp`` item of a policy spec (greedy_candidates); ``head`` when absent."""
    items = dict(item.split("=", 1) for item in spec.split(":")[1:])
    return items.get("split", "head")


def _policy(spec: str, graph: Any, hardware: Any, cache: dict[str, OneShotPolicy]) -> OneShotPolicy:
    name, *items = spec.split(":")
    kw: dict[str, Any] = {k: _value(v) for k, v in (item.split("=", 1) for item in items) if k != "split"}
    if name != "untrained":
        if spec not in cache:
            pol = load_oneshot(resolve_checkpoint(name))
            for key, value in kw.items():
                if key not in OVERRIDES:
                    raise SystemExit(f"{spec}: only {', '.join(OVERRIDES)} can be overridden on a checkpoint")
                if key == "extra_orders":  # the policy's own (the heads share logits over any number)
                    pol.extra_orders = int(value)
                    continue
                setattr(pol, key, value)
                setattr(pol.mlp_extractor, key, value)
            cache[spec] = pol
        return cache[spec]
    env = oneshot_envs([(graph, hardware)], common_padding=False)[0]
    torch.manual_seed(0)
    return policy_for_envs([env], oneshot_policy_kwargs(head="stages", **kw))


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Mean and min of column ``key`` over the rows that have it (shares of best known)."""
    vals = [r[key] for r in rows if r[key] is not None]
    return {"mean": float(np.mean(vals)), "min": float(np.min(vals)), "instances": len(vals)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", nargs="+", required=True)
    ap.add_argument("--suite", default="suite://heldout-v1")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sa-budget", type=int, default=0,
                    help="also run simulated annealing with this many evaluations (seeds 0-2; its median score "
                         "is the baseline each policy is compared with); 0: none")
    ap.add_argument("--ceiling", action="store_true",
                    help="also report the ceiling of a four-order stages head (priors-v1, pretrained-v8 and "
                         "before): the stage DP's best split of the graph's own order, of the best of the four "
                         "named orders and of all 28 (share of best known)")
    ap.add_argument("--polish", type=evaluation_count, default=0,
                    help="also polish each zero-shot partition with up to N evaluations, and run dp, greedy, "
                         "dp@1+polish and balanced@1+polish at 1 + N evaluations; 0: none")
    ap.add_argument("--min-chips", type=int, default=0, help="only the instances with at least this many chips")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    polished = [f"{spec}+polish" for spec in args.policies] if args.polish else []
    baselines = ["dp", "greedy", "dp@1+polish", "balanced@1+polish"] if args.polish else []
    cache: dict[str, OneShotPolicy] = {}
    rows = []
    for inst in get_suite(args.suite).instances:
        pr = inst.problem()
        if pr.num_chips < args.min_chips:
            continue
        policies = {spec: _policy(spec, pr.graph, pr.hardware, cache) for spec in args.policies}
        row: dict[str, Any] = {"graph": inst.graph, "hardware": inst.hardware, "chips": pr.num_chips}
        wide = [spec for spec, pol in policies.items() if pol.k_max < pr.num_chips]
        if wide:  # greedy_partitions widens them (widen_policy)
            row["widened"] = wide
        board = gaps(pr, 0.0) or {}
        best = board.get("best_score")
        row["best_known"], row["bound"] = best, board.get("bound_score")
        for spec in args.policies:
            [(prob, part)] = greedy_partitions(policies[spec], [(pr.graph, pr.hardware)], split=_split(spec))
            score = float(prob.evaluate(part).score[0]) if part is not None else 0.0
            row[spec] = score / best if best else None
            row[f"{spec} score"] = score
            if args.polish and part is not None:
                t0 = time.perf_counter()
                res = polish(prob, part, args.polish)
                row[f"{spec}+polish"] = res.score / best if best else None
                row[f"{spec}+polish score"] = res.score
                row[f"{spec}+polish info"] = {"evaluations": res.evaluations, "moves": res.moves, "stop": res.stop,
                                              "seconds": time.perf_counter() - t0}
            elif args.polish:  # nothing valid to polish
                row[f"{spec}+polish"] = 0.0 if best else None
                row[f"{spec}+polish score"] = 0.0
        if args.polish:
            for name in ("dp", "greedy"):
                got = get_searcher(name).search(pr, 1 + args.polish, seed=0).score
                row[name] = got / best if best else None
            for name in ("dp", "balanced"):
                got = polish_result(pr, get_searcher(name).search(pr, 1, seed=0), args.polish).score
                row[f"{name}@1+polish"] = got / best if best else None
        if args.ceiling:
            split = StageSplitter(pr)
            dp = []
            four = stage_orders(pr, cost=False, extra_orders=STAGE_EXTRA_ORDERS, named=STAGE_ORDERS)
            for order in four.orders.numpy():
                part, _ = split.split(order)
                ok = part is not None and bool(pr.is_valid(part[None])[0])
                dp.append(float(pr.evaluate(part[None]).score[0]) if part is not None and ok else 0.0)
            row["ceiling graph order"] = dp[0] / best if best else None
            row["ceiling four orders"] = max(dp[:4]) / best if best else None
            row["ceiling all orders"] = max(dp) / best if best else None
        if args.sa_budget:
            sa = [get_searcher("sa").search(pr, args.sa_budget, seed=s).score for s in range(3)]
            row["sa"] = float(np.median(sa)) / best if best else None
        rows.append(row)
        print(f"{inst.graph} / {inst.hardware}: " + ", ".join(
            f"{s} {row[s]:.3f}" if row[s] is not None else f"{s} -"
            for s in args.policies + polished + baselines + (["sa"] if args.sa_budget else [])
            + (list(CEILINGS) if args.ceiling else [])), flush=True)
    summary = {}
    for spec in args.policies + polished + baselines:
        summary[spec] = _summary(rows, spec)
        line = f"{spec}: mean {summary[spec]['mean']:.4f}, min {summary[spec]['min']:.4f} over " \
            f"{summary[spec]['instances']}"
        if args.sa_budget:
            pairs = [(r[spec], r["sa"]) for r in rows if r[spec] is not None and r["sa"] is not None]
            below = sum(z < b - 1e-9 for z, b in pairs)
            summary[spec]["below_sa"] = below
            line += f"; below sa@{args.sa_budget} (median of 3 seeds) on {below} of {len(pairs)}"
        print(line)
    if args.sa_budget:
        summary["sa"] = {**_summary(rows, "sa"), "budget": args.sa_budget}
        print(f"sa@{args.sa_budget}: mean {summary['sa']['mean']:.4f}, min {summary['sa']['min']:.4f}")
    for key in CEILINGS if args.ceiling else ():
        summary[key] = _summary(rows, key)
        print(f"{key}: mean {summary[key]['mean']:.4f}, min {summary[key]['min']:.4f}")
    atomic_write_text(args.out, json.dumps({"suite": args.suite, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
