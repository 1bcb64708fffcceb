"""The leaderboard as Markdown tables for BENCHMARKS.md: per suite and instance, the stage DP's score
beside the best known and the proven bound.

Run: ``python benchmarks/leaderboard_report.py [--leaderboard mcm_gym/bench/leaderboard.json]``
(after ``mcm-gym leaderboard``). The DP is re-run here (32 evaluations, seed 0, deterministic).
"""

from __future__ import annotations

import argparse

from mcm_gym.bench import leaderboard as lb
from mcm_gym.bench.suites import get_suite
from mcm_gym.search import get_searcher


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leaderboard", default=None, help="leaderboard file (default: the shipped one)")
    ap.add_argument("--suites", nargs="+", default=["suite://paper-v1", "suite://zoo-v2", "suite://heldout-v1",
                                                   "suite://unseen-v1", "suite://hard-v1"])
    args = ap.parse_args(argv)
    entries = lb.load(args.leaderboard)
    for sid in args.suites:
        rows, optimal, dp_short = [], 0, 0
        for inst in get_suite(sid).instances:
            problem = inst.problem()
            name = inst.key.replace(" | ", " / ")  # one table cell: graph / hardware [/ switches]
            e = entries.get(lb.instance_key(problem))
            if e is None:
                rows.append(f"| {name} | - | - | - | - | not on the leaderboard |")
                continue
            dp = get_searcher("dp").search(problem, budget=32, seed=0).score
            best, bound = e["best"]["score"], e["bound"]["score"]
            proven = best >= bound * (1 - 1e-6)
            optimal += proven
            dp_short += dp < best * (1 - 1e-6)
            secs = f"{e['bound']['seconds']:.0f} s of {e['bound'].get('time_limit', 0):.0f}"
            status = (f"optimal ({secs})" if proven
                      else f"open, gap {100 * (1 - best / bound):.2f}% ({e['bound']['stop']}, {secs})")
            rows.append(f"| {name} | {dp:.4f} | {best:.4f} ({e['best']['method']}) | {bound:.4f} | "
                        f"{100 * (1 - dp / best):.2f}% | {status} |")
        print(f"\n### {sid} ({len(rows)} instances: {optimal} proven optimal, DP below the best known on {dp_short})\n")
        print("| instance | `dp` score | best known (by) | proven bound (score) | DP gap to best | "
              "status (bound's time) |")
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
