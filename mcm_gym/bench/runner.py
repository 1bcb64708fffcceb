"""The benchmark harness: every method on every graph x hardware x seed at an equal budget.

Results are replayable: each row records graph id, hardware id, method, seed, budget and the best
partition (as JSON), and ``mcm-gym validate results.csv`` re-scores every row. The CSV is rewritten
atomically after each finished cell, so an interrupted run (Ctrl-C) keeps the rows already done.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym._io import atomic_write_text, file_lock
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import Searcher, SearchResult, get_searcher

__all__ = ["Cell", "run_bench", "summarize", "format_table", "plot_traces", "read_rows", "merge_rows",
           "decode_row", "FIELDS"]

FIELDS = ["graph_id", "hardware_id", "method", "seed", "budget", "score", "throughput", "bottleneck",
          "lower_bound", "evaluations", "wall_time", "partition", "trace", "trace_time"]


@dataclass(frozen=True)
class Cell:
    graph: str
    hardware: str
    method: str
    seed: int


def _row(res: SearchResult, budget: int) -> dict[str, Any]:
    return {"graph_id": res.graph_id, "hardware_id": res.hardware_id, "method": res.method,
            "seed": res.seed, "budget": budget, "score": res.score, "throughput": res.throughput,
            "bottleneck": res.bottleneck, "lower_bound": res.lower_bound,
            "evaluations": res.evaluations, "wall_time": res.wall_time,
            "partition": json.dumps(None if res.partition is None else res.partition.tolist()),
            "trace": json.dumps([round(x, 6) for x in res.trace]),
            "trace_time": json.dumps([round(x, 3) for x in res.trace_time])}


def write_rows(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def merge_rows(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """Add (or replace, by graph, hardware, method, seed and budget) ``rows`` in the CSV at ``path``:
    re-read under a file lock and rewritten atomically, so that several processes can fill one
    results file without losing each other's rows."""
    path = Path(path)
    with file_lock(path):
        table = {_key(r): r for r in read_rows(path)} if path.exists() else {}
        for r in rows:
            table[_key(r)] = r
        write_rows(path, [_encoded(r) for r in table.values()])


def _encoded(r: dict[str, Any]) -> dict[str, Any]:
    """A row as :func:`write_rows` expects it (partition and traces as JSON text)."""
    return {k: (json.dumps(v) if k in ("partition", "trace", "trace_time") and not isinstance(v, str) else v)
            for k, v in r.items()}


def decode_row(r: dict[str, Any]) -> dict[str, Any]:
    """A copy of a results row with ``partition``, ``trace`` and ``trace_time`` decoded from JSON text
    (rows fresh from :func:`run_bench` hold text, rows from :func:`read_rows` lists);
    ``trace_time`` is ``[]`` where the row has none (files written before it existed)."""
    r = dict(r)
    for k in ("partition", "trace", "trace_time"):
        if isinstance(r.get(k), str):
            r[k] = json.loads(r[k] or "null")
    r["trace_time"] = r.get("trace_time") or []
    return r


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a results CSV with numbers, partition and trace decoded."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            rec: dict[str, Any] = dict(r)
            for k in ("score", "throughput", "bottleneck", "lower_bound", "wall_time"):
                rec[k] = float(rec[k])
            for k in ("seed", "budget", "evaluations"):
                rec[k] = int(rec[k])
            out.append(decode_row(rec))
    return out


def run_bench(graphs: Sequence[str], hardwares: Sequence[str], methods: Sequence[str | Searcher],
              seeds: Sequence[int], budget: int, out_csv: str | os.PathLike[str] | None = None,
              progress: Callable[[int, int, Cell], None] | None = None,
              resume: bool = True) -> list[dict[str, Any]]:
    """Run the grid; return its rows. With ``out_csv``, the file keeps every row it already had, each
    finished cell is merged into it at once (:func:`merge_rows`: atomic, safe with other processes
    writing the same file), and (``resume``) cells already in it with the same budget are not run
    again."""
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    if out_csv and Path(out_csv).exists():
        table = {_key(r): r for r in read_rows(out_csv)}
    searchers = [get_searcher(m) if isinstance(m, str) else m for m in methods]
    cells = [(g, h, s, seed) for g in graphs for h in hardwares for s in searchers for seed in seeds]
    rows: list[dict[str, Any]] = []
    problems: dict[tuple[str, str], Problem] = {}
    for i, (g, h, searcher, seed) in enumerate(cells):
        if (g, h) not in problems:
            problems[(g, h)] = Problem(load_graph(g), get_hardware(h))
        pr = problems[(g, h)]
        key = (pr.graph.id or pr.graph.name, pr.hardware.id or pr.hardware.name, searcher.name, seed, budget)
        if resume and key not in table and out_csv and Path(out_csv).exists():
            table.update({_key(r): r for r in read_rows(out_csv)})  # another process may have run it
        if not (resume and key in table):
            table[key] = _row(searcher.search(pr, budget=budget, seed=seed), budget)
            if out_csv:
                merge_rows(out_csv, [table[key]])
        rows.append(table[key])
        if progress:
            progress(i + 1, len(cells), Cell(g, h, searcher.name, seed))
    return rows


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["graph_id"], r["hardware_id"], r["method"], int(r["seed"]), int(r["budget"]))


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


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """Markdown table: score = lower bound / bottleneck, so "% of bound" is the score in percent."""
    lines = ["| graph | hardware | method | score (mean ± std) | throughput (samples/s) | % of lower bound "
             "| evaluations | wall time (s) |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for s in sorted(summary, key=lambda x: (x["graph_id"], x["hardware_id"], -x["score_mean"])):
        lines.append(f"| {s['graph_id']} | {s['hardware_id']} | {s['method']} | {s['score_mean']:.4f} ± "
                     f"{s['score_std']:.4f} | {s['throughput_mean']:,.0f} | {100 * s['score_mean']:.1f}% | "
                     f"{s['evaluations_mean']:.0f} | {s['wall_time_mean']:.1f} |")
    return "\n".join(lines)


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
