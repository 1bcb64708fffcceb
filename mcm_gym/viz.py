"""Figures of a partition (matplotlib, imported lazily; install ``mcm-gym[viz]``).

:func:`partition_figure` draws six panels: the graph laid out in topological order and coloured by
chip (nodes the repair moved are ringed in red when a candidate is given), per-chip compute time
against the lower bound, per-chip SRAM use against capacity, per-link time, a pipeline timeline of a
few samples whose period is the bottleneck, and a summary. No pyplot: figures live on their own Agg
canvas, so nothing global (the backend of a notebook, say) is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mcm_gym._io import atomic_write

if TYPE_CHECKING:
    from mcm_gym.core.problem import Problem

__all__ = ["render_partition_rgb", "partition_figure", "graph_layout", "save_figure", "new_figure", "FIGSIZE", "DPI"]

FIGSIZE = (12.0, 6.0)  # inches
DPI = 80  # the rgb_array image is FIGSIZE * DPI = 960 x 480 pixels


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib Figure on its own Agg canvas: no pyplot, so no global backend is touched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("rendering needs matplotlib: pip install 'mcm-gym[viz]'") from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` atomically (see :mod:`mcm_gym._io`); the format follows the suffix."""
    return atomic_write(path, fig.savefig)


def graph_layout(problem: Problem, partition: np.ndarray | None = None) -> np.ndarray:
    """Node positions ``(n, 2)``: x = position in the topological order; y = the node's chip (one row
    per chip, ``-1`` for a node not placed yet; without a partition, 0), offset by up to 0.3 by its
    rank among the nodes of its depth, so that parallel branches sit apart."""
    g = problem.graph
    pos = np.zeros((g.n, 2))
    pos[:, 0] = np.arange(g.n)
    rank = np.zeros(g.n)
    for d in np.unique(g.depth):
        idx = np.flatnonzero(g.depth == d)
        rank[idx] = np.arange(idx.size)
    offset = 0.3 * ((rank % 3) - 1)  # -0.3, 0, +0.3
    chip = np.zeros(g.n) if partition is None else np.where(np.asarray(partition) >= 0, partition, -1)
    pos[:, 1] = chip + offset
    return pos


def _chip_colors(k: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if k > 10 else "tab10"]
    return cmap(np.arange(k) % cmap.N)


def partition_figure(problem: Problem, partition: np.ndarray, *, candidate: np.ndarray | None = None,
                     title: str = "", samples: int = 4) -> Any:
    """The six-panel figure of ``partition`` (chip per node; ``-1`` = not placed yet). Times in
    microseconds; the bottleneck (a chip or a link) is outlined in red."""
    hw, g = problem.hardware, problem.graph
    k = hw.num_chips
    p = np.asarray(partition, dtype=np.int64)
    placed = (p >= 0) & (p < k)
    colors = _chip_colors(k)
    # Figures of the placed part (a partial partition during an episode).
    t = np.zeros(k)
    idx = np.flatnonzero(placed)
    np.add.at(t, p[idx], problem.cost.node_time[idx, p[idx]])
    mem = problem.cost.placed_memory(p)
    link_t = np.zeros(hw.num_links)
    if placed.all():
        row = problem.evaluate(p).row()
        link_t = np.array(row["link_time"])
    bottleneck = max(t.max(initial=0.0), link_t.max(initial=0.0))
    chip_is_bottleneck = bottleneck > 0 and t.max(initial=0.0) >= link_t.max(initial=0.0)
    small = 8  # pt

    fig = new_figure(figsize=FIGSIZE, dpi=DPI)
    gs = fig.add_gridspec(2, 3)
    ax_g = fig.add_subplot(gs[0, :2])
    pos = graph_layout(problem, np.where(placed, p, -1))
    for s, d in zip(g.edge_src, g.edge_dst, strict=True):
        ax_g.plot(pos[[s, d], 0], pos[[s, d], 1], color="0.8", lw=0.5, zorder=1)
    node_col = np.where(placed[:, None], colors[np.clip(p, 0, k - 1)], np.array([[0.6, 0.6, 0.6, 1.0]]))
    ax_g.scatter(pos[:, 0], pos[:, 1], c=node_col, s=max(6.0, 600.0 / max(g.n, 1) ** 0.7), zorder=2,
                 edgecolors="none")
    if candidate is not None:
        moved = placed & (np.asarray(candidate) != p)
        ax_g.scatter(pos[moved, 0], pos[moved, 1], s=60, facecolors="none", edgecolors="red", lw=1.2,
                     zorder=3, label=f"moved by the repair ({int(moved.sum())} nodes)")
        ax_g.legend(loc="lower left", fontsize=small, framealpha=0.9)
    rows = list(range(k)) if placed.all() else [-1, *range(k)]
    ax_g.set_yticks(rows, ["not placed" if r < 0 else f"chip {r}" for r in rows], fontsize=small)
    ax_g.set_ylim(max(rows) + 0.6, min(rows) - 0.6)  # chip 0 on top, as the pipeline starts there
    ax_g.set_xlabel("node, in topological order", fontsize=small)
    ax_g.tick_params(axis="x", labelsize=small)
    ax_g.set_title(f"the graph: {g.n} nodes, each on its chip's row (edges grey)", fontsize=9)

    ax_t = fig.add_subplot(gs[0, 2])
    bar = ax_t.bar(np.arange(k), t * 1e6, color=colors)
    if chip_is_bottleneck:
        bar[int(np.argmax(t))].set_edgecolor("red")
        bar[int(np.argmax(t))].set_linewidth(2)
    ax_t.axhline(problem.lower_bound * 1e6, color="k", ls="--", lw=1)
    ax_t.set_title(f"compute per chip (us)\ndashed: lower bound {problem.lower_bound * 1e6:.1f} us"
                   + ("; red: bottleneck" if chip_is_bottleneck else ""), fontsize=9)
    ax_t.set_xlabel("chip", fontsize=small)
    ax_t.set_xticks(np.arange(k))
    ax_t.tick_params(labelsize=small)

    ax_m = fig.add_subplot(gs[1, 0])
    ax_m.bar(np.arange(k), 100 * mem / hw.sram_bytes, color=colors)
    ax_m.axhline(100, color="r", ls="--", lw=1)
    ax_m.set_title(f"SRAM used per chip (% of {hw.sram_bytes.max() / 1e6:.1f} MB)", fontsize=9)
    ax_m.set_xlabel("chip", fontsize=small)
    ax_m.set_xticks(np.arange(k))
    ax_m.tick_params(labelsize=small)

    ax_l = fig.add_subplot(gs[1, 1])
    if hw.num_links:
        lbar = ax_l.bar(np.arange(hw.num_links), link_t * 1e6, color=colors[hw.link_driver])
        if bottleneck > 0 and not chip_is_bottleneck:
            lbar[int(np.argmax(link_t))].set_edgecolor("red")
            lbar[int(np.argmax(link_t))].set_linewidth(2)
    ax_l.set_title("time per link (us), coloured by sending chip"
                   + ("\nred: bottleneck" if bottleneck > 0 and not chip_is_bottleneck else ""), fontsize=9)
    ax_l.set_xlabel("link", fontsize=small)
    ax_l.xaxis.get_major_locator().set_params(integer=True)
    ax_l.tick_params(labelsize=small)

    ax_p = fig.add_subplot(gs[1, 2])
    period = bottleneck if bottleneck > 0 else 1.0
    for s in range(samples):  # sample s enters stage c at (s + c) * period
        for c in range(k):
            if t[c] > 0:
                ax_p.broken_barh([((s + c) * period * 1e6, t[c] * 1e6)], (c - 0.4, 0.8),
                                 facecolors=colors[c], alpha=1.0 if s % 2 == 0 else 0.6)
    ax_p.set_title(f"{samples} samples through the pipeline\none starts every {bottleneck * 1e6:.1f} us "
                   f"(the bottleneck)", fontsize=9)
    ax_p.set_xlabel("time (us)", fontsize=small)
    ax_p.set_ylabel("chip", fontsize=small)
    ax_p.tick_params(labelsize=small)
    ax_p.invert_yaxis()

    score = problem.lower_bound / bottleneck if bottleneck > 0 and placed.all() else float("nan")
    head = title or f"{g.name} on {hw.name}"
    status = (f"score {score:.3f} (lower bound / bottleneck; 1 = physical limit), "
              f"{1 / bottleneck:,.0f} samples/s" if np.isfinite(score) else f"{int(placed.sum())}/{g.n} nodes placed")
    fig.suptitle(f"{head}: {status}", fontsize=10)
    fig.tight_layout()
    return fig


def render_partition_rgb(problem: Problem, partition: np.ndarray, *, candidate: np.ndarray | None = None,
                         title: str = "") -> np.ndarray:
    """The figure of :func:`partition_figure` as an ``(H, W, 3)`` uint8 array (H, W from FIGSIZE, DPI)."""
    fig = partition_figure(problem, partition, candidate=candidate, title=title)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
