"""Reports of benchmark rows: mean and spread over seeds, a Markdown table, best-score curves."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mcm_gym.bench.leaderboard import gaps
from mcm_gym.bench.results import record_problem
from mcm_gym.core.graph import GraphError
from mcm_gym.core.hardware import HardwareError
from mcm_gym.core.problem import Problem

__all__ = ["summarize", "format_table", "plot_traces"]


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds per (graph, hardware, method)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["graph_id"], r["hardware_id"], r["method"]), []).append(r)
    out = []
    for (g, h, m), rs in groups.items():
        sc = np.array([float(r["score"]) for r in rs])
        out.append({"graph_id": g, "hardware_id": h, "method": m, "seeds": len(rs),
                    "score_mean": float(sc.mean()), "score_std": float(sc.std(ddof=1)) if len(rs) > 1 else 0.0,
                    "throughput_mean": float(np.mean([float(r["throughput"]) for r in rs])),
                    "evaluations_mean": float(np.mean([int(r["evaluations"]) for r in rs])),
                    "wall_time_mean": float(np.mean([float(r["wall_time"]) for r in rs]))})
    return out


def format_table(summary: Sequence[dict[str, Any]], leaderboard: str | os.PathLike[str] | None = None) -> str:
    """Markdown table: score = lower bound / bottleneck, so "% of bound" is the score in percent; "gap
    to best" and "gap to bound" compare the mean score with the leaderboard's best known score and
    proven bound (``-`` where the leaderboard does not hold the instance)."""
    lines = ["| graph | hardware | method | score (mean ± std) | gap to best | gap to bound | throughput (samples/s) "
             "| % of lower bound | evaluations | wall time (s) |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    known: dict[tuple[str, str], Any] = {}
    for s in sorted(summary, key=lambda x: (x["graph_id"], x["hardware_id"], -x["score_mean"])):
        pair = (s["graph_id"], s["hardware_id"])
        if pair not in known:
            known[pair] = _problem(*pair)
        g = gaps(known[pair], s["score_mean"], leaderboard) if known[pair] is not None else None
        to_best = f"{100 * g['gap_to_best']:.2f}%" if g else "-"
        to_bound = f"{100 * g['gap_to_bound']:.2f}%" if g else "-"
        lines.append(f"| {s['graph_id']} | {s['hardware_id']} | {s['method']} | {s['score_mean']:.4f} ± "
                     f"{s['score_std']:.4f} | {to_best} | {to_bound} | {s['throughput_mean']:,.0f} | "
                     f"{100 * s['score_mean']:.1f}% | {s['evaluations_mean']:.0f} | {s['wall_time_mean']:.1f} |")
    return "\n".join(lines)


def _problem(graph_id: str, hardware_id: str) -> Problem | None:
    """The problem of a row, or None when its graph or hardware cannot be found again by id."""
    try:
        return record_problem({"graph_id": graph_id, "hardware_id": hardware_id})
    except (GraphError, HardwareError, ValueError):
        return None


def plot_traces(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """PNG: best score against evaluations, mean over seeds, one panel per (graph, hardware)."""
    from mcm_gym.viz import new_figure, save_figure

    panels = sorted({(r["graph_id"], r["hardware_id"]) for r in rows})
    cols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / cols)
    fig = new_figure(figsize=(6 * cols, 3.5 * nrows), dpi=90)
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    for ax, (g, h) in zip(axes, panels, strict=False):
        here = [r for r in rows if (r["graph_id"], r["hardware_id"]) == (g, h)]
        n = max(max((len(_trace(r)) for r in here), default=0), 1)
        for m in sorted({r["method"] for r in here}):
            # a method that stopped early keeps its best score up to the largest budget used
            traces = [t for t in (_trace(r) for r in here if r["method"] == m) if t]
            if not traces:
                continue
            padded = np.array([t + [t[-1]] * (n - len(t)) for t in traces])
            mean = padded.mean(axis=0)
            x = np.arange(1, n + 1)
            ax.plot(x, mean, label=m, drawstyle="steps-post")
            if len(traces) > 1:
                ax.fill_between(x, padded.min(axis=0), padded.max(axis=0), alpha=0.15, step="post")
        ax.set_xscale("log")
        ax.set_xlabel("evaluated partitions")
        ax.set_ylabel("best score")
        ax.set_title(f"{g} on {h}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    save_figure(fig, path)


def _trace(r: dict[str, Any]) -> list[float]:
    t = r["trace"]
    return json.loads(t) if isinstance(t, str) else list(t)
