"""Summarise runs of agents/train_oneshot.py against the references, measured now on the same instance.

    python agents/oneshot_report.py benchmarks/results/oneshot/bert_ring8_scratch.json [more.json ...] \
        --plot benchmarks/results/oneshot/bert_ring8.png

References (recomputed every time, since the cost model may have changed since the runs): the proven
optimum (``exact``, CP-SAT), simulated annealing and random search at 50 evaluations (5 seeds, mean).
Prints one markdown row per file: the first update's samples (the untrained policy: mean and best
score), the last update's mean sample score, best score after 2,000 samples and at the end (mean
and standard deviation over seeds), the final greedy candidate, samples and seconds until the best reaches the
simulated-annealing mean and 0.97 of the optimum (median over seeds; "-" when a seed never does).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym import Problem, get_hardware, load_graph
from mcm_gym.search import get_searcher


def _first(curve: list[dict[str, Any]], level: float, key: str) -> float | None:
    for row in curve:
        if row["best_score"] >= level - 1e-12:
            return float(row[key])
    return None


def _median(values: list[float | None]) -> str:
    if any(v is None for v in values):
        return f"- ({sum(v is None for v in values)} of {len(values)} never)"
    return f"{np.median([v for v in values if v is not None]):,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args(argv)
    data = [json.loads(f.read_text()) for f in args.files]
    graph, hw = data[0]["settings"]["graph"], data[0]["settings"]["hardware"]
    problem = Problem(load_graph(graph), get_hardware(hw))
    exact = get_searcher("exact").search(problem, budget=8, seed=0)
    sa = [get_searcher("sa").search(problem, budget=50, seed=s).score for s in range(5)]
    rnd = [get_searcher("random").search(problem, budget=50, seed=s).score for s in range(5)]
    opt, sa50 = exact.score, float(np.mean(sa))
    print(f"{graph} on {hw}: optimum {opt:.4f} (proven: {exact.extra.get('proven_optimal')}), "
          f"sa@50 {sa50:.4f} +- {np.std(sa):.4f}, random@50 {np.mean(rnd):.4f} +- {np.std(rnd):.4f}")
    print("| run | seeds | first batch: mean / best | last batch mean | best @2,000 (mean +- std) | / optimum | "
          "best at end | final greedy | samples to sa@50 | samples to 0.97 opt | seconds to 0.97 opt |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f, d in zip(args.files, data, strict=True):
        runs = d["runs"]
        at2k = np.array([max([r["best_score"] for r in run["curve"] if r["samples"] <= 2000] or [0.0])
                         for run in runs])
        end = np.array([run["best_score"] for run in runs])
        greedy = np.array([run["curve"][-1]["greedy_score"] for run in runs])
        first_mean = np.mean([run["curve"][0]["mean_score"] for run in runs])
        first_best = np.mean([run["curve"][0]["best_score"] for run in runs])
        last_mean = np.mean([run["curve"][-1]["mean_score"] for run in runs])
        print(f"| {f.stem} | {len(runs)} | {first_mean:.4f} / {first_best:.4f} | {last_mean:.4f} | "
              f"{at2k.mean():.4f} +- {at2k.std():.4f} | {at2k.mean() / opt:.3f} | "
              f"{end.mean():.4f} | {greedy.mean():.4f} | "
              f"{_median([_first(r['curve'], sa50, 'samples') for r in runs])} | "
              f"{_median([_first(r['curve'], 0.97 * opt, 'samples') for r in runs])} | "
              f"{_median([_first(r['curve'], 0.97 * opt, 'wall_time') for r in runs])} |")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for f, d in zip(args.files, data, strict=True):
            for i, run in enumerate(d["runs"]):
                for ax, key in zip(axes, ("samples", "wall_time"), strict=True):
                    ax.plot([r[key] for r in run["curve"]], [r["best_score"] for r in run["curve"]],
                            color=f"C{args.files.index(f)}", alpha=0.7, label=f.stem if i == 0 else None)
        for ax, label in zip(axes, ("repaired samples", "wall time (s)"), strict=True):
            ax.axhline(opt, color="k", ls="--", lw=1, label="optimum")
            ax.axhline(0.97 * opt, color="k", ls=":", lw=1, label="0.97 optimum")
            ax.axhline(sa50, color="C3", ls="-.", lw=1, label="sa @ 50 (mean)")
            ax.set_xlabel(label)
            ax.set_ylabel("best score")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"one-shot policy from scratch, {graph} on {hw}")
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
