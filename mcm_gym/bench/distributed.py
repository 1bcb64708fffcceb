"""The Ray executor of the benchmark grid (optional extra: ``pip install 'mcm-gym[ray]'``).

:func:`run_cells_ray` runs cells (graph, hardware, method, seed) at one budget as Ray tasks
(``num_cpus=1`` each) and hands every finished row back to its caller
(:func:`mcm_gym.bench.run_bench` with ``executor="ray"``, which merges it into the results file under
the file's lock). Searchers are deterministic, so the rows equal the serial ones except for
``wall_time`` and ``trace_time`` (seconds). Problems and Z3 solvers are built inside each worker
(Z3 objects are not picklable); only ids, method names (or picklable
:class:`~mcm_gym.search.Searcher` objects) and result rows travel.

Fault tolerance: a worker process that dies (segfault, OOM kill, ``os._exit``) is retried by Ray up
to ``max_retries`` times; a cell that still fails (or raises) is reported in ``rows.failures`` and
with a warning, and the other cells go on. Ray is imported lazily.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from mcm_gym.bench.results import result_row
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import Searcher, get_searcher

__all__ = ["run_cells_ray", "require_ray", "init_ray"]

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


def run_cell(graph: str, hardware: str, method: str | Searcher, seed: int, budget: int) -> dict[str, Any]:
    """One cell, inside a Ray worker: build the problem here (Z3 is not picklable), search, return
    the results row."""
    searcher = get_searcher(method) if isinstance(method, str) else method
    problem = Problem(load_graph(graph), get_hardware(hardware))
    return result_row(searcher.search(problem, budget=budget, seed=seed), budget, problem)


def run_cells_ray(cells: Sequence[tuple[str, str, str | Searcher, int]], budget: int,
                  on_row: Callable[[int, dict[str, Any]], None], *, address: str | None = None,
                  max_retries: int = 2, num_cpus: int | None = None,
                  on_failure: Callable[[int, str], None] | None = None) -> list[tuple[int, str]]:
    """Run ``cells`` (graph, hardware, method, seed) as Ray tasks; ``on_row(index, row)`` as each
    finishes (completion order). Returns ``(index, message)`` for the cells that failed for good
    (each also passed to ``on_failure`` and warned about); the others go on.

    ``address``: a Ray cluster to connect to (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
    every node needs mcm-gym (same version) installed. Ray 2.60's ``ray start --head`` enables token
    authentication: use ``"auto"`` on a cluster node, or set ``RAY_AUTH_MODE=token`` (token in
    ``~/.ray/auth_token``) before connecting to an explicit ``host:port``. None or ``"local"``
    starts a new local cluster with ``num_cpus`` CPUs (default all cores) and shuts it down
    afterwards; a session already initialised in this process is reused and left running.
    ``max_retries``: Ray retries of a cell whose worker process died (segfault, OOM kill); exceptions
    raised by a searcher are not retried (searchers are deterministic). Ctrl-C cancels the pending
    tasks and propagates."""
    ray = require_ray()
    from ray.exceptions import RayError

    failures: list[tuple[int, str]] = []
    if not cells:
        return failures
    started = init_ray(address, num_cpus)
    pending: dict[Any, int] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(run_cell)
        for j, (g, h, m, seed) in enumerate(cells):
            pending[task.remote(g, h, m, seed, budget)] = j
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                j = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except RayError as exc:  # RayTaskError, WorkerCrashedError, OOM, node died, ...
                    text = str(exc).strip()
                    msg = f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"
                    failures.append((j, msg))
                    g, h, m, seed = cells[j]
                    name = m if isinstance(m, str) else m.name
                    warnings.warn(f"cell {name} {g} {h} seed {seed} failed after {max_retries} retries: {msg}",
                                  RuntimeWarning, stacklevel=2)
                    if on_failure:
                        on_failure(j, msg)
                else:
                    on_row(j, row)
    except KeyboardInterrupt:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return failures
