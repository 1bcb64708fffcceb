"""Benchmarks: the grid runner (serial or Ray), results files, reports and the paper's experiments.

Layer: may import every layer below (core, instances, viz, env, search, learn).
"""

from __future__ import annotations

from mcm_gym.bench.runner import (
    Cell,
    decode_row,
    format_table,
    merge_rows,
    plot_traces,
    read_rows,
    run_bench,
    summarize,
)

__all__ = ["Cell", "decode_row", "format_table", "merge_rows", "plot_traces", "read_rows", "run_bench", "summarize"]
