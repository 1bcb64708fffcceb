"""Scale the benchmark grid out with Ray (optional extra: ``pip install 'mcm-gym[ray]'``).

:func:`run_bench_ray` runs the same grid as :func:`mcm_gym.bench.run_bench` (graphs x hardware x
methods x seeds at one budget), one Ray task per cell (``num_cpus=1``), and returns the same rows and
writes the same replayable CSV (rewritten atomically after every finished cell; a rerun skips the
cells already in it). Searchers are deterministic, so its rows equal the serial ones except for
``wall_time`` and ``trace_time`` (seconds). Problems and Z3 solvers are built inside each worker
(Z3 objects are not picklable);
only ids, method names (or picklable :class:`~mcm_gym.search.Searcher` objects) and result rows
travel.

Fault tolerance: a worker process that dies (segfault, OOM kill, ``os._exit``) is retried by Ray up
to ``max_retries`` times; a cell that still fails (or raises) is reported in ``rows.failures`` and
with a warning, and the other cells go on. Ray is imported lazily.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcm_gym.bench.runner import Cell, _key, _row, read_rows, write_rows
from mcm_gym.core.hardware import get_hardware
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import Searcher, get_searcher

__all__ = ["BenchRows", "run_bench_ray", "require_ray", "init_ray"]

_INSTALL_HINT = "Ray is not installed; install the extra: pip install 'mcm-gym[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address``, or start a local one with ``num_cpus`` CPUs (default:
    all cores); reuse a session that is already up. True when this call started the session (the
    caller then shuts it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"log_to_driver": False, "ignore_reinit_error": True}
    if address and address != "local":
        ray.init(address=address, **kw)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **kw)
    return True


class BenchRows(list):  # type: ignore[type-arg]
    """The rows of a sweep (as :func:`mcm_gym.bench.run_bench` returns them), plus ``failures``:
    ``(Cell, error message)`` for every cell that failed after its retries (no row for those)."""

    failures: list[tuple[Cell, str]]

    def __init__(self, rows: Sequence[dict[str, Any]] = (), failures: Sequence[tuple[Cell, str]] = ()) -> None:
        super().__init__(rows)
        self.failures = list(failures)


def _run_cell(graph: str, hardware: str, method: str | Searcher, seed: int, budget: int) -> dict[str, Any]:
    """One cell, inside a Ray worker: build the problem here (Z3 is not picklable), search, return
    the CSV row."""
    from mcm_gym.core.problem import Problem

    searcher = get_searcher(method) if isinstance(method, str) else method
    problem = Problem(load_graph(graph), get_hardware(hardware))
    return _row(searcher.search(problem, budget=budget, seed=seed), budget)


def run_bench_ray(graphs: Sequence[str], hardwares: Sequence[str], methods: Sequence[str | Searcher],
                  seeds: Sequence[int], budget: int, out_csv: str | os.PathLike[str] | None = None,
                  address: str | None = None, max_retries: int = 2,
                  progress: Callable[[int, int, Cell], None] | None = None, *, resume: bool = True,
                  num_cpus: int | None = None) -> BenchRows:
    """The :func:`~mcm_gym.bench.run_bench` grid with one Ray task per cell.

    ``address``: a Ray cluster to connect to (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
    every node needs mcm-gym (same version) installed. Ray 2.60's ``ray start --head`` enables token
    authentication: use ``"auto"`` on a cluster node, or set ``RAY_AUTH_MODE=token`` (token in
    ``~/.ray/auth_token``) before connecting to an explicit ``host:port``. None or ``"local"``
    starts a new local cluster with ``num_cpus`` CPUs (default all cores) and shuts it down
    afterwards; a session already initialised in this process is reused and left running.
    ``max_retries``: Ray retries of a cell whose worker process died (exceptions raised by a
    searcher are not retried: searchers are deterministic). ``progress(done, total, cell)`` is
    called as cells finish (in completion order; cells resumed from the CSV first). Returns the
    rows in grid order (as ``run_bench``); cells that failed for good have no row and are listed in
    ``rows.failures``."""
    ray = require_ray()
    from ray.exceptions import RayError

    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    if out_csv and Path(out_csv).exists():
        table = {_key(r): r for r in read_rows(out_csv)}
    old_keys = list(table)
    old = set(old_keys)
    searchers = [get_searcher(m) if isinstance(m, str) else m for m in methods]
    gid = {g: (lambda x: x.id or x.name)(load_graph(g)) for g in graphs}
    hid = {h: (lambda x: x.id or x.name)(get_hardware(h)) for h in hardwares}
    cells = [(g, h, m, s, seed) for g in graphs for h in hardwares for m, s in zip(methods, searchers, strict=True)
             for seed in seeds]
    keys = [(gid[g], hid[h], s.name, seed, budget) for g, h, _, s, seed in cells]
    todo = [i for i, k in enumerate(keys) if not (resume and k in table)]
    done = len(cells) - len(todo)
    failures: list[tuple[Cell, str]] = []
    if progress:  # cells already in the CSV count as done, as in run_bench
        todo_set = set(todo)
        for n, i in enumerate(i for i in range(len(cells)) if i not in todo_set):
            g, h, _, s, seed = cells[i]
            progress(n + 1, len(cells), Cell(g, h, s.name, seed))
    started = init_ray(address, num_cpus) if todo else False
    pending: dict[Any, int] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_run_cell)
        for i in todo:
            g, h, m, _, seed = cells[i]
            pending[task.remote(g, h, m, seed, budget)] = i
        finished = done
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                g, h, _, s, seed = cells[i]
                cell = Cell(g, h, s.name, seed)
                try:
                    row = ray.get(ref)
                except RayError as exc:  # RayTaskError, WorkerCrashedError, OOM, node died, ...
                    msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
                    failures.append((cell, msg))
                    warnings.warn(f"cell {cell} failed after {max_retries} retries: {msg}", RuntimeWarning,
                                  stacklevel=2)
                else:
                    table[keys[i]] = row
                    if out_csv:  # the rows it had, then the grid's finished rows in grid order (as run_bench)
                        write_rows(out_csv, [table[k] for k in old_keys]
                                   + [table[k] for k in dict.fromkeys(keys) if k in table and k not in old])
                finished += 1
                if progress:
                    progress(finished, len(cells), cell)
    except KeyboardInterrupt:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return BenchRows([table[k] for k in keys if k in table], failures)
