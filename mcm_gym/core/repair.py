"""Minimal-change repair of a candidate partition with Z3, and a deterministic greedy fallback.

Given a candidate ``c`` (a chip per node, possibly invalid), :func:`repair` returns the valid
partition ``p`` that changes the fewest nodes (``p[v] != c[v]``), with a status:

* ``optimal``: Z3 proved that no valid partition changes fewer nodes;
* ``feasible``: ``p`` is valid but not proven minimal (solver budget hit; greedy fallback);
* ``infeasible``: proven that no valid partition exists (``p`` is None);
* ``unknown``: no valid partition found and none proven impossible (``p`` is None).

Encoding (pseudo-Boolean, no integers): an order encoding ``y[v][c] = (p[v] <= c)`` per node from
which the one-hot ``x[v][c] = y[v][c] and not y[v][c-1]`` is derived. Precedence constraints become
binary clauses over ``y``, memory is one ``PbLe`` per chip over ``x``, minimality is MaxSAT over soft
``x[v][c[v]]``, solved by core-guided search (MSU3) on Z3's incremental SAT solver (``QF_FD``); Z3's
own ``Optimize`` (MaxRes) takes over when many nodes must change. Preprocessing bounds every node to
``[lo[v], hi[v]]``: under ``dataflow``, all ancestors of ``v`` share chips ``0..p[v]`` with it, so
their weights must fit there (and symmetrically for descendants). Variables outside the bounds do
not exist. Byte weights are divided by their GCD and, if still above 2^20 units, rounded (weights
up, capacities down) so Z3 keeps to its fast PB solver; ``RepairResult.exact_memory`` says when
that rounding happened (then ``optimal`` is with respect to the rounded sizes).

The solver budget is a Z3 resource limit (``rlimit``, deterministic: the same inputs give the same
result on any machine) plus a wall-clock ``timeout`` as a safety net. Z3 objects are not picklable:
each call builds its own solver, so call this inside worker processes, not across them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mcm_gym.core.constraints import Constraint
from mcm_gym.core.encoding import Encoding, node_bounds
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware

__all__ = ["RepairConfig", "RepairResult", "RepairTarget", "repair", "greedy_repair", "explain_infeasible"]

STATUSES = ("optimal", "feasible", "infeasible", "unknown")


class RepairTarget(Protocol):
    """What the repair needs of a problem (:class:`mcm_gym.Problem` is one): the instance, the memory
    demand per node (bytes), the enabled constraints and a validity check."""

    @property
    def graph(self) -> Graph: ...
    @property
    def hardware(self) -> Hardware: ...
    @property
    def mem_demand(self) -> np.ndarray: ...
    @property
    def constraints(self) -> Sequence[Constraint]: ...
    def is_valid(self, partitions: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class RepairConfig:
    """Solver budget. ``rlimit``: Z3 resource units (deterministic); ``timeout``: seconds (safety)."""

    rlimit: int = 20_000_000
    timeout: float = 10.0
    pb_units: int = 1 << 20
    use_solver: bool = True
    #: MSU3 (fast when few nodes must change) gives way to Z3's MaxRes after this many SAT calls,
    #: or at once when more nodes than this must change anyway (their chip is out of bounds).
    msu3_max_calls: int = 40
    #: Z3's memory cap in MB (Z3's global ``memory_max_size``): past it the solver gives up and the
    #: greedy fallback answers, instead of exhausting the machine on a huge instance.
    max_memory_mb: int = 2048


@dataclass
class RepairResult:
    partition: np.ndarray | None
    status: str
    changes: int | None
    solve_time: float  # s
    method: str  # "none" (candidate valid), "z3", "greedy", "bounds" (proven by preprocessing)
    exact_memory: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.partition is not None


# ------------------------------------------------------------------------------ greedy
def greedy_repair(problem: RepairTarget, candidate: np.ndarray) -> np.ndarray | None:
    """Deterministic fallback: order nodes topologically, preferring lower candidate chips, then fill
    chips in pipeline order, moving to the next chip when the candidate moves on (if the rest still
    fits behind, allowing one largest node of slack per chip) or when memory is full. If that fails,
    fill chips by memory alone.

    Valid under ``dataflow``, ``contiguous`` and ``memory`` whenever it returns; ``neighbor_only`` and
    ``triangle`` are checked afterwards. Returns None when it cannot produce a valid partition.
    """
    g, hw = problem.graph, problem.hardware
    k = hw.num_chips
    cand = np.clip(np.asarray(candidate, dtype=np.int64), 0, k - 1)
    order = g.priority_order(cand)
    dem = problem.mem_demand[order] if hw.constraints.memory else np.zeros(g.n)
    rest = np.cumsum(dem[::-1])[::-1]  # memory of order[i:]
    rest_max = np.maximum.accumulate(dem[::-1])[::-1]  # largest node in order[i:]
    room_after = np.r_[np.cumsum(hw.sram_bytes[::-1])[::-1][1:], 0.0]  # SRAM of chips c+1..K-1
    for follow_candidate in (True, False):
        p = np.empty(g.n, dtype=np.int64)
        chip, used, count, ok = 0, 0.0, 0, True
        for i, v in enumerate(order):
            if (follow_candidate and cand[v] > chip and chip + 1 < k and count > 0
                    and rest[i] + (k - chip - 1) * rest_max[i] <= room_after[chip]):
                chip, used, count = chip + 1, 0.0, 0
            while used + dem[i] > hw.sram_bytes[chip]:
                if chip + 1 >= k:
                    ok = False
                    break
                chip, used, count = chip + 1, 0.0, 0
            if not ok:
                break
            p[v] = chip
            used += dem[i]
            count += 1
        if ok and problem.is_valid(p):
            return p
    return None


def explain_infeasible(problem: RepairTarget) -> str:
    """Why no valid partition may exist, in words: a node whose chip bounds are empty (the memory of
    its ancestors or descendants, bytes), or where a packing of the nodes in topological order runs out
    of SRAM. A hint, not a proof, unless it names empty bounds."""
    g, hw = problem.graph, problem.hardware
    dem = problem.mem_demand
    lo, hi = node_bounds(g, hw, dem)
    if np.any(lo > hi):
        v = int(np.flatnonzero(lo > hi)[0])
        if dem[v] > hw.sram_bytes.max():
            return f"node {g.names[v]!r} needs {dem[v]:.6g} bytes, more than any chip's SRAM"
        reach = g.reach.astype(np.float64)
        anc, desc = float(reach[:, v] @ dem), float(reach[v] @ dem)
        return (f"node {g.names[v]!r} has no feasible chip: with its ancestors it needs {anc:.6g} bytes on chips "
                f"0..c and with its descendants {desc:.6g} bytes on chips c..{hw.num_chips - 1}, and no chip c "
                f"leaves room for both (SRAM per chip: {', '.join(f'{x:.3g}' for x in hw.sram_bytes)} bytes)")
    if hw.constraints.memory:
        chip, used = 0, 0.0
        for v in range(g.n):  # nodes are in topological order
            while used + dem[v] > hw.sram_bytes[chip] and chip + 1 < hw.num_chips:
                chip, used = chip + 1, 0.0
            if used + dem[v] > hw.sram_bytes[chip]:
                return (f"the weights fit the total SRAM ({dem.sum():.6g} of {hw.total_sram_bytes:.6g} bytes) but "
                        f"packing the nodes in topological order runs out at node {g.names[v]!r} "
                        f"({dem[v]:.6g} bytes; {hw.sram_bytes[chip] - used:.6g} bytes free on the last chip): "
                        f"the pipeline order strands SRAM on earlier chips")
            used += dem[v]
    return ("no reason found by the bounds or a greedy packing; the constraints may conflict, or the "
            "solver's budget ran out")


# ------------------------------------------------------------------------------ repair
def repair(problem: RepairTarget, candidate: np.ndarray, config: RepairConfig | None = None) -> RepairResult:
    """Return the valid partition closest to ``candidate`` (fewest changed nodes); see module doc."""
    cfg = config or RepairConfig()
    t0 = time.perf_counter()
    g, hw = problem.graph, problem.hardware
    cand = np.asarray(candidate)
    if cand.shape != (g.n,):
        raise ValueError(f"candidate must have shape ({g.n},), got {cand.shape}")
    if cand.size and not np.issubdtype(cand.dtype, np.integer):
        if not np.issubdtype(cand.dtype, np.number) or not np.all(np.equal(np.mod(cand, 1), 0)):
            raise ValueError("candidate must hold integer chip indices")
    cand = cand.astype(np.int64)
    in_range = (cand >= 0) & (cand < hw.num_chips)
    if in_range.all() and problem.is_valid(cand):
        return RepairResult(cand.copy(), "optimal", 0, time.perf_counter() - t0, "none")

    lo, hi = node_bounds(g, hw, problem.mem_demand)
    if np.any(lo > hi):
        v = int(np.flatnonzero(lo > hi)[0])
        return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "bounds",
                            info={"reason": f"node {g.names[v]!r} has no feasible chip "
                                            f"(memory of its ancestors/descendants)"})
    res: RepairResult | None = None
    if cfg.use_solver:
        res = _solve(problem, cand, lo, hi, cfg, t0)
        if res.status in ("optimal", "infeasible"):
            return res
    p = greedy_repair(problem, cand)
    elapsed = time.perf_counter() - t0
    info = dict(res.info) if res else {}
    if p is None:
        return RepairResult(None, "unknown", None, elapsed, "greedy",
                            res.exact_memory if res else True, info)
    return RepairResult(p, "feasible", int((p != cand).sum()), elapsed, "greedy",
                        res.exact_memory if res else True, info)


def _check(solver: Any, assumptions: list[Any]) -> int:
    """``solver.check(*assumptions)`` as 1 (sat), -1 (unsat), 0 (unknown), through the C API: the
    Python wrapper re-casts every assumption on every call."""
    from z3 import z3core

    arr = (z3core.Ast * len(assumptions))()
    for i, a in enumerate(assumptions):
        arr[i] = a.as_ast()
    return int(z3core.Z3_solver_check_assumptions(solver.ctx.ref(), solver.solver, len(assumptions), arr))


def _msu3(hard: str, soft: list[str], cfg: RepairConfig, t0: float) -> tuple[str, Any, int, int]:
    """Unweighted partial MaxSAT by core-guided linear search from below (MSU3).

    Keep every soft literal as an assumption; each unsat core moves its soft literals to the relaxed
    set R and raises the lower bound ``lam`` by one; a cardinality constraint "at most ``lam`` of R
    false" (behind a fresh guard literal) is assumed. The first satisfiable call is optimal with cost
    ``lam``. Returns (status, model, cost, solver calls); status is ``sat``, ``infeasible``,
    ``unknown`` (budget exhausted) or ``gave_up`` (more than ``cfg.msu3_max_calls`` calls).
    """
    import z3

    # A fresh context per call: in Z3's shared main context, AST ids (and so the SAT solver's variable
    # order) depend on earlier calls, and equal-cost optima would differ between identical calls.
    ctx = z3.Context()
    s = z3.SolverFor("QF_FD", ctx=ctx)
    s.set("rlimit", int(cfg.rlimit))
    s.set("timeout", max(1, int(cfg.timeout * 1000)))
    s.from_string(hard)
    lits = [z3.Bool(name, ctx) for name in soft]
    index = {lit.get_id(): i for i, lit in enumerate(lits)}
    active = [True] * len(lits)
    relaxed: list[int] = []
    lam, calls = 0, 0
    guard: Any = None
    while True:
        if time.perf_counter() - t0 > cfg.timeout:
            return "unknown", None, lam, calls
        if calls >= cfg.msu3_max_calls:
            return "gave_up", None, lam, calls
        assumptions = [lit for lit, a in zip(lits, active, strict=True) if a]
        if guard is not None:
            assumptions.append(guard)
        calls += 1
        r = _check(s, assumptions)
        if r == 1:
            return "sat", s.model(), lam, calls
        if r == 0:
            return "unknown", None, lam, calls
        core = [index.get(x.get_id()) for x in s.unsat_core()]
        newly = sorted(i for i in core if i is not None and active[i])
        if not newly and lam >= len(relaxed):
            return "infeasible", None, lam, calls  # the hard clauses alone are unsatisfiable
        for i in newly:
            active[i] = False
        relaxed += newly
        lam += 1
        guard = z3.Bool(f"__card_{calls}", ctx)
        if lam < len(relaxed):
            s.add(z3.Implies(guard, z3.AtLeast(*[lits[i] for i in relaxed], len(relaxed) - lam)))


def _maxres(hard: str, soft: list[str], cfg: RepairConfig, t0: float) -> tuple[str, Any, int]:
    """Z3 ``Optimize`` (core-guided MaxRes): slower per call than MSU3 but far fewer calls when many
    nodes must change. Returns (status, model, cost) like :func:`_msu3`."""
    import z3

    ctx = z3.Context()
    opt = z3.Optimize(ctx=ctx)
    opt.set("rlimit", int(cfg.rlimit))
    opt.set("timeout", max(1, int((cfg.timeout - (time.perf_counter() - t0)) * 1000)))
    opt.from_string(hard + "\n" + "\n".join(f"(assert-soft {x} :weight 1)" for x in soft))
    r = opt.check()
    if r == z3.sat:
        m = opt.model()
        cost = sum(1 for x in soft if not z3.is_true(m.eval(z3.Bool(x, ctx), model_completion=True)))
        return "sat", m, cost
    return ("infeasible" if r == z3.unsat else "unknown"), None, 0


def _solve(problem: RepairTarget, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray, cfg: RepairConfig,
           t0: float) -> RepairResult:
    import z3

    enc = Encoding(problem.graph, problem.hardware, problem.mem_demand, lo, hi, cfg.pb_units)
    for c in problem.constraints:
        c.encode(enc)
    soft = [f"x{v}_{c}" for v, c in enumerate(cand.tolist()) if lo[v] <= c <= hi[v]]
    forced = problem.graph.n - len(soft)
    hard = enc.text()
    z3.set_param("memory_max_size", int(cfg.max_memory_mb))
    # Candidates far from valid (many forced moves or broken edges) need many MSU3 calls: go to MaxRes.
    broken = forced
    if problem.hardware.constraints.dataflow:
        broken += int((cand[problem.graph.edge_src] > cand[problem.graph.edge_dst]).sum())
    status, model, cost, calls = ("gave_up", None, 0, 0) if broken > cfg.msu3_max_calls else \
        _msu3(hard, soft, cfg, t0)
    info: dict[str, Any] = {"forced_changes": forced, "solver_calls": calls, "engine": "msu3"}
    if status == "gave_up":
        info["engine"] = "maxres"
        status, model, cost = _maxres(hard, soft, cfg, t0)
    if status == "sat":
        p = enc.decode(model)
        if not problem.is_valid(p):  # defensive: the encoding must agree with the checker
            raise AssertionError("Z3 repair produced an invalid partition; please report this bug")
        changes = int((p != cand).sum())
        if changes != cost + forced:  # MSU3's bound and the decoded solution must agree
            raise AssertionError(f"repair cost mismatch ({changes} != {cost + forced}); please report")
        return RepairResult(p, "optimal", changes, time.perf_counter() - t0, "z3", enc.exact_memory, info)
    if status == "infeasible":
        if enc.exact_memory:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", True, info)
        # Rounded memory sizes: only an over-approximation can prove infeasibility.
        relaxed = Encoding(problem.graph, problem.hardware, problem.mem_demand, lo, hi, cfg.pb_units,
                           relaxed=True)
        for c in problem.constraints:
            c.encode(relaxed)
        s = z3.SolverFor("QF_FD", ctx=z3.Context())
        s.set("rlimit", int(cfg.rlimit))
        s.set("timeout", max(1, int(cfg.timeout * 1000)))
        s.from_string(relaxed.text())
        if s.check() == z3.unsat:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", False, info)
        info["reason"] = "unsatisfiable only with memory sizes rounded"
    else:
        info["reason"] = "solver budget exhausted (rlimit, time or memory)"
    return RepairResult(None, "unknown", None, time.perf_counter() - t0, "z3", enc.exact_memory, info)
