"""Figures of a partition (matplotlib, imported lazily; install ``mcm-gym[viz]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["render_partition_rgb", "partition_figure"]


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure on its own Agg canvas: no pyplot, so no global backend is touched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("rendering needs matplotlib: pip install 'mcm-gym[viz]'") from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def partition_figure(problem: Problem, partition: np.ndarray, *, title: str = "") -> Any:
    """A figure with per-chip compute time (us) and SRAM use (% of capacity) for a partition whose
    unplaced nodes are ``-1``."""
    import matplotlib

    hw = problem.hardware
    k = hw.num_chips
    p = np.asarray(partition)
    placed = (p >= 0) & (p < k)
    t = np.zeros(k)
    mem = np.zeros(k)
    np.add.at(t, p[placed], problem.cost.node_time[np.flatnonzero(placed), p[placed]])
    np.add.at(mem, p[placed], problem.mem_demand[placed])
    fig = _figure(figsize=(8, 3), dpi=80)
    axes = fig.subplots(1, 2)
    colors = matplotlib.colormaps["tab20"](np.arange(k) % 20)
    axes[0].bar(np.arange(k), t * 1e6, color=colors)
    axes[0].axhline(problem.lower_bound * 1e6, color="k", ls="--", lw=1, label="lower bound")
    axes[0].set_xlabel("chip")
    axes[0].set_ylabel("compute time (us)")
    axes[0].legend(loc="upper right", fontsize=7)
    axes[1].bar(np.arange(k), 100 * mem / hw.sram_bytes, color=colors)
    axes[1].axhline(100, color="r", ls="--", lw=1)
    axes[1].set_xlabel("chip")
    axes[1].set_ylabel("SRAM used (%)")
    fig.suptitle(title or f"{problem.graph.name} on {hw.name}")
    fig.tight_layout()
    return fig


def render_partition_rgb(problem: Problem, partition: np.ndarray, *, title: str = "") -> np.ndarray:
    """The figure of :func:`partition_figure` as an ``(H, W, 3)`` uint8 array."""
    fig = partition_figure(problem, partition, title=title)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
