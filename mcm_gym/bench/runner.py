"""The benchmark grid: every method on every graph x hardware x seed at one budget, run by a serial
executor (this process) or a Ray one (:mod:`mcm_gym.bench.distributed`).

Results are replayable: each row records graph id, hardware id, method, seed, budget and the best
partition, and ``mcm-gym validate results.csv`` re-scores every row. With ``out_csv`` every finished
cell is merged into the file at once, under its lock (:func:`mcm_gym.bench.results.merge_rows`), so
an interrupted run keeps the rows already done and several runs, serial or Ray, can fill one file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcm_gym.bench.results import ResultsFileError, merge_rows, read_rows, result_row, row_key
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import Searcher, get_searcher

__all__ = ["Cell", "BenchRows", "EXECUTORS", "run_bench", "run_bench_ray"]

EXECUTORS = ("serial", "ray")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: graph and hardware as given, the method's name, the seed."""

    graph: str
    hardware: str
    method: str
    seed: int


class BenchRows(list[dict[str, Any]]):
    """The rows of a sweep in grid order, plus ``failures``: ``(Cell, error message)`` for every cell
    that failed for good (Ray executor: after its retries); those have no row."""

    failures: list[tuple[Cell, str]]

    def __init__(self, rows: Sequence[dict[str, Any]] = (), failures: Sequence[tuple[Cell, str]] = ()) -> None:
        super().__init__(rows)
        self.failures = list(failures)


def run_bench(graphs: Sequence[str], hardwares: Sequence[str], methods: Sequence[str | Searcher],
              seeds: Sequence[int], budget: int, out_csv: str | os.PathLike[str] | None = None,
              progress: Callable[[int, int, Cell], None] | None = None, resume: bool = True, *,
              executor: str = "serial", address: str | None = None, max_retries: int = 2,
              num_cpus: int | None = None) -> BenchRows:
    """Run the grid; return its rows (grid order).

    With ``out_csv`` the file keeps every row it already had and each finished cell is merged into it
    at once; with ``resume``, cells already in it (same graph, hardware, method, seed and budget) are
    not run again. ``progress(done, total, cell)`` is called for the cells found in the file first,
    then as cells finish. ``executor="ray"`` runs one Ray task per cell (see
    :func:`mcm_gym.bench.distributed.run_cells_ray` for ``address``, ``max_retries``, ``num_cpus``);
    the serial executor lets a searcher's exception propagate."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    # rows of `checkpoint=pretrained` are those of the version it names now
    methods = [_versioned_method(m) if isinstance(m, str) else m for m in methods]
    searchers = [get_searcher(m) if isinstance(m, str) else m for m in methods]
    graph_ids = {g: _gid(g) for g in graphs}
    hw_ids = {h: _hid(h) for h in hardwares}
    cells = [(g, h, m, s, seed) for g in graphs for h in hardwares
             for m, s in zip(methods, searchers, strict=True) for seed in seeds]
    keys = [(graph_ids[g], hw_ids[h], s.name, seed, budget) for g, h, _, s, seed in cells]
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    if out_csv and Path(out_csv).exists():
        try:
            table = {row_key(r): r for r in read_rows(out_csv)}
        except ResultsFileError as exc:
            if resume:
                raise ResultsFileError(f"{exc}: fix or delete that line, or run without resuming (the file "
                                       f"is then moved aside)") from None
            aside = _move_aside(Path(out_csv))
            warnings.warn(f"{exc}; moved the file to {aside} and started a new one", RuntimeWarning, stacklevel=2)
    todo = [i for i, k in enumerate(keys) if not (resume and k in table)]
    done = 0

    def cell(i: int) -> Cell:
        g, h, _, s, seed = cells[i]
        return Cell(g, h, s.name, seed)

    def finished(i: int, row: dict[str, Any] | None) -> None:
        nonlocal done
        if row is not None:
            table[keys[i]] = row
            if out_csv:
                merge_rows(out_csv, [row])
        done += 1
        if progress:
            progress(done, len(cells), cell(i))

    todo_set = set(todo)
    for i in range(len(cells)):
        if i not in todo_set:
            finished(i, None)
    failures: list[tuple[Cell, str]] = []
    if executor == "serial":
        problems: dict[tuple[str, str], Problem] = {}
        for i in todo:
            if resume and out_csv and Path(out_csv).exists():  # another process may have run it meanwhile
                for r in read_rows(out_csv):
                    table.setdefault(row_key(r), r)
                if keys[i] in table:
                    finished(i, None)
                    continue
            g, h, _, searcher, seed = cells[i]
            if (g, h) not in problems:
                problems[(g, h)] = Problem(load_graph(g), get_hardware(h))
            pr = problems[(g, h)]
            finished(i, result_row(searcher.search(pr, budget=budget, seed=seed), budget, pr))
    elif todo:
        from mcm_gym.bench.distributed import run_cells_ray

        jobs = [(cells[i][0], cells[i][1], cells[i][2], cells[i][4]) for i in todo]
        failed = run_cells_ray(jobs, budget, lambda j, row: finished(todo[j], row), address=address,
                               max_retries=max_retries, num_cpus=num_cpus,
                               on_failure=lambda j, msg: finished(todo[j], None))
        failures = [(cell(todo[j]), msg) for j, msg in failed]
    return BenchRows([table[k] for k in keys if k in table], failures)


def run_bench_ray(graphs: Sequence[str], hardwares: Sequence[str], methods: Sequence[str | Searcher],
                  seeds: Sequence[int], budget: int, out_csv: str | os.PathLike[str] | None = None,
                  address: str | None = None, max_retries: int = 2,
                  progress: Callable[[int, int, Cell], None] | None = None, *, resume: bool = True,
                  num_cpus: int | None = None) -> BenchRows:
    """:func:`run_bench` with the Ray executor (``pip install 'mcm-gym[ray]'``)."""
    return run_bench(graphs, hardwares, methods, seeds, budget, out_csv, progress, resume, executor="ray",
                     address=address, max_retries=max_retries, num_cpus=num_cpus)


def _move_aside(path: Path) -> Path:
    """Rename an unreadable results file to ``<name>.unreadable[.N]`` (never over another file)."""
    aside = path.with_name(path.name + ".unreadable")
    n = 1
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.unreadable.{n}"), n + 1
    path.rename(aside)
    return aside


def _gid(spec: str) -> str:
    g = load_graph(spec)
    return g.id or g.name


def _hid(spec: str) -> str:
    h = get_hardware(spec)
    return h.id or h.name


def _versioned_method(spec: str) -> str:
    """``spec`` with ``checkpoint=<moving shipped alias>`` replaced by the versioned name
    (:func:`mcm_gym.learn.checkpoints.versioned_name`); anything else unchanged."""
    if "checkpoint=" not in spec:
        return spec
    from mcm_gym.learn.checkpoints import versioned_name

    base, _, opts = spec.partition(":")
    items = [f"checkpoint={versioned_name(o.split('=', 1)[1].strip())}" if o.strip().startswith("checkpoint=")
             else o for o in opts.split(",")]
    return f"{base}:{','.join(items)}"
