"""Benchmarks: the grid runner (serial or Ray executor), results files, reports, the paper's experiments.

Layer: may import every layer below (core, instances, viz, env, search, learn).
"""

from __future__ import annotations

from mcm_gym.bench.report import format_table, plot_traces, summarize
from mcm_gym.bench.results import (
    FIELDS,
    ResultsFileError,
    decode_row,
    merge_rows,
    read_records,
    read_rows,
    result_row,
    row_key,
    validate_record,
    write_rows,
)
from mcm_gym.bench.runner import BenchRows, Cell, run_bench, run_bench_ray

__all__ = ["FIELDS", "BenchRows", "Cell", "ResultsFileError", "decode_row", "format_table", "merge_rows",
           "plot_traces", "read_records", "read_rows", "result_row", "row_key", "run_bench", "run_bench_ray",
           "summarize", "validate_record", "write_rows"]
