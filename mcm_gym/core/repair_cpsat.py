"""Minimal-change repair with OR-Tools CP-SAT (optional: ``pip install 'mcm-gym[cpsat]'``).

The question :func:`mcm_gym.core.repair.repair` answers with Z3: the valid partition ``p`` closest
to a candidate ``c``, minimising ``sum_v [p[v] != c[v]]``, as one CP-SAT model (variables inside the
chip bounds, memory with shared tensors, Ctrl-C handling as in :mod:`mcm_gym.search.cpsat`):

* per node ``v`` and chip ``c`` inside its bounds ``[lo[v], hi[v]]``
  (:func:`mcm_gym.core.encoding.node_bounds`): the order literal ``y[v][c] = (p[v] <= c)`` and the
  one-hot ``eq[v][c] = y[v][c] and not y[v][c-1]`` (exactly one per node);
* every enabled constraint as :meth:`Problem.is_valid` checks it, as clauses over ``y`` (as in the
  Z3 encoding): ``dataflow`` (``p[u] <= p[v]`` per edge: ``y[v][c]`` implies ``y[u][c]``),
  ``neighbor_only`` (``p[v] <= p[u] + 1``), ``triangle`` (``eq[v][j]`` implies ``p[u] >= j`` or
  ``p[w] <= j``); ``memory`` per chip over ``eq``, bytes of the nodes plus each shared tensor once
  (``held[s][c]``, implied by every user of ``s`` on ``c``); ``contiguous`` (``used[c]`` exactly
  when a node is on ``c``, ``used[c + 1]`` implies ``used[c]``);
* the objective: the nodes whose candidate chip is outside their bounds (they must move) plus the
  literals ``eq[v][c[v]]`` that are false.

Memory is in exact integer bytes (divided by their GCD) when every size is an integer; otherwise
it is rounded as the Z3 encoding rounds it (:func:`mcm_gym.core.encoding.memory_units`: weights
up, capacities down, in units of ``max(SRAM) / 2**40`` bytes), ``RepairResult.exact_memory`` is
False and ``infeasible`` is only claimed once the over-approximation (weights down, capacities up)
is infeasible too.

Search, within ``time_limit`` seconds in all: CP-SAT's core-based search (``optimize_with_core``,
one worker, no presolve) for ``CORE_SHARE`` of it: it raises a lower bound by unsatisfiable cores
until a solution meets it (uniformly random BERT-base candidates: proven in 0.2-0.5 s on ring-8,
2-5 s on mesh-4x4 and mesh-6x6, where the default search is still 5-10% above after 30 s). If
that does not decide, CP-SAT's interleaved search (LNS; deterministic for a seed) from its
incumbent, above its bound, for the rest. Not proven: the best of that, the greedy repair and a
valid ``hint`` answers (``feasible``, as in :func:`repair`). The candidate (or ``hint``) is the
solution hint, every variable hinted.

Deterministic for a seed whenever the search ends before the time limit (a wall-clock limit can
stop it at different points). A ``KeyboardInterrupt`` stops CP-SAT and propagates (CP-SAT's own
SIGINT handler is off): it is never taken for an exhausted time limit.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from mcm_gym.core.encoding import memory_units, run_interruptible
from mcm_gym.core.repair import RepairResult, RepairTarget, as_candidate, greedy_repair, settled_without_solver

__all__ = ["available", "repair_cpsat"]

#: Units per chip (of the largest SRAM) when memory sizes are not integers and must be rounded.
ROUND_UNITS = 1 << 40
#: Share of the time limit for the core-based search (the rest: the interleaved search from its result).
CORE_SHARE = 0.5


def available() -> bool:
    """Whether OR-Tools (CP-SAT) is installed."""
    try:
        import ortools.sat.python.cp_model  # noqa: F401
    except ImportError:
        return False
    return True


def _memory_ints(problem: RepairTarget, relaxed: bool) -> tuple[list[int], list[int], bool]:
    """Integer weights (nodes, then shared tensors) and capacities per chip, and whether they are
    exact: bytes over their GCD when every size is an integer, else rounded (see the module doc)."""
    g, hw = problem.graph, problem.hardware
    dem = np.concatenate([np.asarray(problem.mem_demand, dtype=np.float64), g.shared_bytes])
    cap = np.asarray(hw.sram_bytes, dtype=np.float64)
    vals = np.concatenate([dem, cap])
    if np.all(np.equal(np.mod(vals, 1), 0)):
        gcd = math.gcd(*(int(x) for x in vals)) or 1
        return [int(x) // gcd for x in dem], [int(x) // gcd for x in cap], True
    return memory_units(dem, cap, ROUND_UNITS, relaxed=relaxed)


class _Model:
    """The CP-SAT model of the repair of ``cand`` (bounds ``lo``/``hi``) and its variables: the order
    literals ``y[v][c] = (p[v] <= c)`` for ``lo[v] <= c < hi[v]`` and the one-hot ``eq[v][c]``."""

    def __init__(self, problem: RepairTarget, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 relaxed: bool = False) -> None:
        from ortools.sat.python import cp_model

        g, hw = problem.graph, problem.hardware
        cons = hw.constraints
        n, k = g.n, hw.num_chips
        self.n = n
        self.lo, self.hi = [int(a) for a in lo], [int(b) for b in hi]
        m = self.model = cp_model.CpModel()
        self.y: list[dict[int, Any]] = [{c: m.new_bool_var(f"y{v}_{c}") for c in range(self.lo[v], self.hi[v])}
                                        for v in range(n)]
        self.eq: list[dict[int, Any]] = [{c: m.new_bool_var(f"eq{v}_{c}") for c in range(self.lo[v], self.hi[v] + 1)}
                                         for v in range(n)]
        eq, y_of = self.eq, self.Y
        for v in range(n):
            m.add_exactly_one(eq[v].values())
            for c in range(self.lo[v], self.hi[v]):
                if c + 1 < self.hi[v]:
                    m.add_implication(self.y[v][c], self.y[v][c + 1])
            for c, b in eq[v].items():  # eq[v][c] = y[v][c] and not y[v][c - 1]
                self.clause([~b, y_of(v, c)])
                self.clause([~b, self.neg(y_of(v, c - 1))])
                self.clause([b, self.neg(y_of(v, c)), y_of(v, c - 1)])
        edges = list(zip(g.edge_src.tolist(), g.edge_dst.tolist(), strict=True))
        if cons.dataflow:  # p[u] <= p[v]: p[v] <= c implies p[u] <= c
            for u, v in edges:
                for c in range(min(self.lo[u], self.lo[v]), self.hi[u]):
                    self.clause([self.neg(y_of(v, c)), y_of(u, c)])
        if cons.neighbor_only:  # p[v] <= p[u] + 1: p[u] <= c implies p[v] <= c + 1
            for u, v in edges:
                for c in range(min(self.lo[u], self.lo[v] - 1), self.hi[v] - 1):
                    self.clause([self.neg(y_of(u, c)), y_of(v, c + 1)])
        if cons.triangle and g.triangles.size:  # p[v] == j implies p[u] >= j or p[w] <= j
            for u, v, w in g.triangles.tolist():
                for j, b in eq[v].items():
                    self.clause([~b, self.neg(y_of(u, j - 1)), y_of(w, j)])
        self.exact_memory = True
        self.held: list[tuple[tuple[int, ...], int, Any]] = []  # (users, chip, held[s][c])
        if cons.memory:
            dem, cap, self.exact_memory = _memory_ints(problem, relaxed)
            for c in range(k):
                terms = [(dem[v], eq[v][c]) for v in range(n) if c in eq[v] and dem[v] > 0]
                for s, users in enumerate(g.shared_users):  # held once on c if one of its users is there
                    on_c = [v for v in users if c in eq[v]]
                    if not on_c or dem[n + s] <= 0:
                        continue
                    held = m.new_bool_var(f"held{s}_{c}")
                    for v in on_c:
                        m.add_implication(eq[v][c], held)
                    terms.append((dem[n + s], held))
                    self.held.append((tuple(on_c), c, held))
                if terms and sum(d for d, _ in terms) > cap[c]:
                    m.add(sum(d * b for d, b in terms) <= cap[c])
        self.used: list[Any] = []
        if cons.contiguous:  # used[c] exactly when a node is on c; used[c + 1] implies used[c]
            self.used = [m.new_bool_var(f"used{c}") for c in range(k)]
            for c in range(k):
                on_c = [eq[v][c] for v in range(n) if c in eq[v]]
                for b in on_c:
                    m.add_implication(b, self.used[c])
                self.clause([~self.used[c], *on_c])
                if c + 1 < k:
                    m.add_implication(self.used[c + 1], self.used[c])
        self.cand = cand
        inside = (lo <= cand) & (cand <= hi)
        self.forced = int(n - inside.sum())
        self.kept = [eq[v][int(cand[v])] for v in np.flatnonzero(inside).tolist()]
        m.minimize(self.forced + len(self.kept) - cp_model.LinearExpr.sum(self.kept))

    def Y(self, v: int, c: int) -> Any:  # noqa: N802 - math notation
        """The literal ``p[v] <= c`` (True / False outside ``v``'s bounds)."""
        if c < self.lo[v]:
            return False
        if c >= self.hi[v]:
            return True
        return self.y[v][c]

    @staticmethod
    def neg(lit: Any) -> Any:
        return (not lit) if isinstance(lit, bool) else ~lit

    def clause(self, lits: list[Any]) -> None:
        """At least one of ``lits`` (literals or Python bools) holds."""
        if any(lit is True for lit in lits):
            return
        self.model.add_bool_or([lit for lit in lits if lit is not False])

    def add_hint(self, h: np.ndarray) -> None:
        """Hint the partition ``h`` (clipped to the bounds) and the auxiliary variables it implies."""
        m = self.model
        for v in range(self.n):
            for c, b in self.eq[v].items():
                m.add_hint(b, int(h[v]) == c)
            for c, b in self.y[v].items():
                m.add_hint(b, int(h[v]) <= c)
        for users, c, held in self.held:
            m.add_hint(held, bool(np.any(h[list(users)] == c)))
        on = set(h.tolist())
        for c, b in enumerate(self.used):
            m.add_hint(b, c in on)

    def decode(self, solver: Any) -> np.ndarray:
        """The partition of CP-SAT's solution; its changes must equal the objective."""
        p = np.array([next(c for c, b in self.eq[v].items() if solver.boolean_value(b)) for v in range(self.n)],
                     dtype=np.int64)
        changes = int((p != self.cand).sum())
        if changes != int(round(solver.objective_value)):
            raise RuntimeError(f"CP-SAT repair cost mismatch ({changes} changes, objective "
                               f"{solver.objective_value}); this is a bug in the CP-SAT model, please report")
        return p


def _solve(mdl: _Model, deadline: float, seed: int, workers: int, core: bool, t0: float,
           trace: list[tuple[float, int]]) -> tuple[Any, Any]:
    """Run CP-SAT on ``mdl`` until ``deadline`` (``perf_counter`` s; Ctrl-C propagates): the
    core-based search on one worker (``core``), else CP-SAT's interleaved search on ``workers``.
    ``trace`` collects ``(seconds since t0, changes)`` per improving solution. Returns CP-SAT's
    status and the solver."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = max(deadline - time.perf_counter(), 0.05)
    p.random_seed = int(seed)
    p.num_workers = 1 if core else max(int(workers), 1)
    p.catch_sigint_signal = False  # Ctrl-C is ours: it must propagate, not end the search
    if core:
        p.optimize_with_core = True
        p.cp_model_presolve = False  # BERT on meshes: proven in 2-5 s without it, 3-9 s with it
    else:
        p.interleave_search = True  # deterministic for a seed, whatever the number of workers

    class Trace(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            trace.append((time.perf_counter() - t0, int(round(self.objective_value))))

    cb = Trace()
    status = run_interruptible(lambda: solver.solve(mdl.model, cb), solver.stop_search)
    if status == cp_model.MODEL_INVALID:
        raise AssertionError(f"CP-SAT rejected the repair model: {mdl.model.validate()}; please report")
    return status, solver


def repair_cpsat(problem: RepairTarget, candidate: np.ndarray, *, time_limit: float = 60.0, seed: int = 0,
                 workers: int = 1, hint: np.ndarray | None = None) -> RepairResult:
    """The valid partition that changes the fewest nodes of ``candidate``, by CP-SAT (see module doc).

    ``time_limit``: seconds of wall clock for the whole call (model building included); ``seed``:
    CP-SAT's ``random_seed``; ``workers``: CP-SAT workers of the second phase (the core-based first
    phase runs on one); ``hint``: a partition to give CP-SAT as its solution hint instead of the
    candidate (e.g. a valid one).

    Status ``optimal`` (proven), ``feasible`` (the time limit stopped CP-SAT: ``info["reason"]`` is
    ``"time"``, ``info["lower_bound"]`` CP-SAT's proven bound on the changes), ``infeasible`` (no
    valid partition exists) or ``unknown`` (none found in time). Method ``"cpsat"``, or as in
    :func:`repair`: ``"none"`` (the candidate is valid), ``"bounds"`` (empty chip bounds),
    ``"greedy"`` (not proven, and the greedy repair changes fewer nodes than CP-SAT's best), or
    ``"hint"`` (likewise, the valid ``hint``). ``info``: ``engine`` (``"cpsat"``),
    ``cpsat_status`` (per phase), ``forced_changes`` (nodes outside their bounds), ``lower_bound``,
    ``build_s`` (model building), ``wall_s`` (CP-SAT's wall clock), ``first_solution_s``,
    ``solutions`` (``(s since the call began, changes)`` per improving CP-SAT solution); all times
    in seconds. Raises ``KeyboardInterrupt`` when interrupted (CP-SAT is stopped first),
    ``ValueError`` for a badly shaped or non-integer candidate, ``RuntimeError`` should a partition
    fail :meth:`Problem.is_valid` (a bug: never returned).
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    g, hw = problem.graph, problem.hardware
    cand = as_candidate(problem, candidate)
    settled, lo, hi = settled_without_solver(problem, cand, t0)
    if settled is not None:
        return settled
    deadline = t0 + time_limit
    mdl = _Model(problem, cand, lo, hi)
    start = np.clip(cand if hint is None else as_candidate(problem, hint), lo, hi)
    mdl.add_hint(start)
    info: dict[str, Any] = {"engine": "cpsat", "forced_changes": mdl.forced, "build_s": time.perf_counter() - t0}
    trace: list[tuple[float, int]] = []
    exact = mdl.exact_memory

    def done(part: np.ndarray | None, st: str, changes: int | None, method: str = "cpsat") -> RepairResult:
        info["solutions"] = trace
        if trace:
            info["first_solution_s"] = trace[0][0]
        return RepairResult(part, st, changes, time.perf_counter() - t0, method, exact, info)

    # Phase 1: the core-based search (proves random BERT candidates on ring-8 and meshes in 0.2-5 s).
    t_core = time.perf_counter() + CORE_SHARE * (deadline - time.perf_counter())
    status, solver = _solve(mdl, t_core, seed, workers, True, t0, trace)
    info["cpsat_status"], info["wall_s"] = solver.status_name(status), float(solver.wall_time)
    ok = (cp_model.OPTIMAL, cp_model.FEASIBLE)
    best = mdl.decode(solver) if status in ok else None
    undecided = status == cp_model.UNKNOWN or status == cp_model.FEASIBLE
    # Milliseconds: the fallback, and phase 2's start without an incumbent.
    greedy = greedy_repair(problem, cand) if undecided else None
    lower = _bound(solver, mdl.forced) if status != cp_model.INFEASIBLE else mdl.forced
    if undecided:
        # Phase 2: CP-SAT's interleaved search (LNS) from the incumbent, above the proven bound.
        mdl.model.clear_hints()
        valid_hint = hint is not None and bool(problem.is_valid(start))
        mdl.add_hint(best if best is not None else start if valid_hint or greedy is None else greedy)
        mdl.model.add(cp_model.LinearExpr.sum(mdl.kept) <= len(mdl.kept) - (lower - mdl.forced))
        status2, solver2 = _solve(mdl, deadline, seed, workers, False, t0, trace)
        info["cpsat_status"] += f", then {solver2.status_name(status2)}"
        info["wall_s"] += float(solver2.wall_time)
        if status2 in ok:
            p2 = mdl.decode(solver2)
            if best is None or int((p2 != cand).sum()) < int((best != cand).sum()):
                best = p2
        if status2 == cp_model.INFEASIBLE:  # nothing above the proven bound: nothing at all
            status = cp_model.INFEASIBLE if best is None else cp_model.FEASIBLE
        elif status2 == cp_model.OPTIMAL:
            status = cp_model.OPTIMAL
        else:
            status = cp_model.FEASIBLE if best is not None else cp_model.UNKNOWN
            lower = max(lower, _bound(solver2, mdl.forced))

    method = "cpsat"
    if status != cp_model.OPTIMAL and status != cp_model.INFEASIBLE:
        # Not proven: the greedy repair (or a valid hint) answers if it changes fewer nodes, as in repair().
        for name, q in (("greedy", greedy), ("hint", None if hint is None else start)):
            if q is not None and (best is None or int((q != cand).sum()) < int((best != cand).sum())) \
                    and problem.is_valid(q):
                best, method = q, name
    if best is not None:
        p = np.asarray(best, dtype=np.int64)
        changes = int((p != cand).sum())
        if not problem.is_valid(p):
            raise RuntimeError(f"CP-SAT repair produced a partition that fails the checker "
                               f"({hw.name}, {g.name}); this is a bug in the CP-SAT model, please report")
        info["lower_bound"] = changes if status == cp_model.OPTIMAL else min(lower, changes)
        if status == cp_model.OPTIMAL:
            return done(p, "optimal", changes)
        info["reason"] = "time"
        info["message"] = (f"CP-SAT's time limit ({time_limit:g} s) ran out; the best solution found is "
                           f"not proven minimal (at least {info['lower_bound']} changes)")
        return done(p, "feasible", changes, method)
    if status == cp_model.INFEASIBLE:
        if exact:
            return done(None, "infeasible", None)
        relaxed = _Model(problem, cand, lo, hi, relaxed=True)  # rounded sizes: only this proves it
        r_status, _ = _solve(relaxed, deadline, seed, workers, True, t0, [])
        if r_status == cp_model.INFEASIBLE:
            return done(None, "infeasible", None)
        if r_status == cp_model.UNKNOWN:
            info["reason"] = "time"
            info["message"] = f"CP-SAT's time limit ({time_limit:g} s) ran out while proving infeasibility"
        else:
            info["reason"] = "unsatisfiable only with memory sizes rounded"
            info["message"] = "infeasible with memory sizes rounded up, feasible with them rounded down"
        return done(None, "unknown", None)
    info["lower_bound"] = lower
    info["reason"] = "time"
    info["message"] = f"CP-SAT's time limit ({time_limit:g} s) ran out before it found a valid partition"
    return done(None, "unknown", None)


def _bound(solver: Any, forced: int) -> int:
    """CP-SAT's proven lower bound on the changes (at least the forced ones)."""
    raw = float(solver.best_objective_bound)
    return max(forced, math.ceil(raw - 1e-6)) if math.isfinite(raw) else forced
