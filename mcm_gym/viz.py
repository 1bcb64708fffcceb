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


def graph_layout(problem: Problem) -> np.ndarray:
    """Node positions ``(n, 2)``: x = depth (longest path from a source), y = rank within that depth,
    centred."""
    depth = problem.graph.depth
    pos = np.zeros((problem.n, 2))
    for d in np.unique(depth):
        idx = np.flatnonzero(depth == d)
        pos[idx, 0] = d
        pos[idx, 1] = np.arange(idx.size) - (idx.size - 1) / 2
    return pos


def _chip_colors(k: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if k > 10 else "tab10"]
    return cmap(np.arange(k) % cmap.N)


def partition_figure(problem: Problem, partition: np.ndarray, *, candidate: np.ndarray | None = None,
                     title: str = "", samples: int = 4) -> Any:
    """The six-panel figure of ``partition`` (chip per node; ``-1`` = not placed yet)."""
    hw, g = problem.hardware, problem.graph
    k = hw.num_chips
    p = np.asarray(partition, dtype=np.int64)
    placed = (p >= 0) & (p < k)
    colors = _chip_colors(k)
    # Figures of the placed part (a partial partition during an episode).
    t = np.zeros(k)
    mem = np.zeros(k)
    idx = np.flatnonzero(placed)
    np.add.at(t, p[idx], problem.cost.node_time[idx, p[idx]])
    np.add.at(mem, p[idx], problem.mem_demand[idx])
    link_t = np.zeros(hw.num_links)
    if placed.all():
        row = problem.evaluate(p).row()
        link_t = np.array(row["link_time"])
    bottleneck = max(t.max(initial=0.0), link_t.max(initial=0.0))

    fig = new_figure(figsize=FIGSIZE, dpi=DPI)
    gs = fig.add_gridspec(2, 3)
    ax_g = fig.add_subplot(gs[0, :2])
    pos = graph_layout(problem)
    for s, d in zip(g.edge_src, g.edge_dst, strict=True):
        ax_g.plot(pos[[s, d], 0], pos[[s, d], 1], color="0.8", lw=0.5, zorder=1)
    node_col = np.where(placed[:, None], colors[np.clip(p, 0, k - 1)], np.array([[0.85, 0.85, 0.85, 1.0]]))
    ax_g.scatter(pos[:, 0], pos[:, 1], c=node_col, s=max(4.0, 600.0 / max(g.n, 1) ** 0.7), zorder=2,
                 edgecolors="none")
    if candidate is not None:
        moved = placed & (np.asarray(candidate) != p)
        ax_g.scatter(pos[moved, 0], pos[moved, 1], s=60, facecolors="none", edgecolors="red", lw=1.2,
                     zorder=3, label=f"moved by repair ({int(moved.sum())})")
        ax_g.legend(loc="upper right", fontsize=7)
    ax_g.set_title("graph (x: depth), coloured by chip", fontsize=9)
    ax_g.set_xticks([])
    ax_g.set_yticks([])

    ax_t = fig.add_subplot(gs[0, 2])
    bar = ax_t.bar(np.arange(k), t * 1e6, color=colors)
    if bottleneck > 0 and t.max() == bottleneck:
        bar[int(np.argmax(t))].set_edgecolor("red")
        bar[int(np.argmax(t))].set_linewidth(2)
    ax_t.axhline(problem.lower_bound * 1e6, color="k", ls="--", lw=1, label="lower bound")
    ax_t.set_title("compute time per chip (us)", fontsize=9)
    ax_t.legend(fontsize=7)

    ax_m = fig.add_subplot(gs[1, 0])
    ax_m.bar(np.arange(k), 100 * mem / hw.sram_bytes, color=colors)
    ax_m.axhline(100, color="r", ls="--", lw=1)
    ax_m.set_title("SRAM used per chip (% of capacity)", fontsize=9)
    ax_m.set_xlabel("chip")

    ax_l = fig.add_subplot(gs[1, 1])
    if hw.num_links:
        ax_l.bar(np.arange(hw.num_links), link_t * 1e6, color=colors[hw.link_driver])
    ax_l.set_title("time per link (us), coloured by sender", fontsize=9)
    ax_l.set_xlabel("link")

    ax_p = fig.add_subplot(gs[1, 2])
    period = bottleneck if bottleneck > 0 else 1.0
    for s in range(samples):  # sample s enters stage c at (s + c) * period
        for c in range(k):
            if t[c] > 0:
                ax_p.broken_barh([((s + c) * period * 1e6, t[c] * 1e6)], (c - 0.4, 0.8),
                                 facecolors=colors[c], alpha=1.0 if s % 2 == 0 else 0.6)
    ax_p.set_title(f"pipeline timeline, period = bottleneck {bottleneck * 1e6:.1f} us", fontsize=9)
    ax_p.set_xlabel("time (us)")
    ax_p.set_ylabel("chip")
    ax_p.invert_yaxis()

    score = problem.lower_bound / bottleneck if bottleneck > 0 and placed.all() else float("nan")
    fig.suptitle(title or f"{g.name} on {hw.name}: {int(placed.sum())}/{g.n} placed"
                 + (f", score {score:.3f}" if np.isfinite(score) else ""), fontsize=10)
    fig.tight_layout()
    return fig


def render_partition_rgb(problem: Problem, partition: np.ndarray, *, candidate: np.ndarray | None = None,
                         title: str = "") -> np.ndarray:
    """The figure of :func:`partition_figure` as an ``(H, W, 3)`` uint8 array (H, W from FIGSIZE, DPI)."""
    fig = partition_figure(problem, partition, candidate=candidate, title=title)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
