"""Minimal-change repair of a candidate partition with Z3, and a deterministic greedy fallback.

Given a candidate ``c`` (a chip per node, possibly invalid), :func:`repair` returns the valid
partition ``p`` that changes the fewest nodes (``p[v] != c[v]``), with a status:

* ``optimal``: Z3 proved that no valid partition changes fewer nodes;
* ``feasible``: ``p`` is valid but not proven minimal (solver budget hit; greedy fallback);
* ``infeasible``: proven that no valid partition exists (``p`` is None);
* ``unknown``: no valid partition found and none proven impossible (``p`` is None).

Encoding (pseudo-Boolean, no integers): an order encoding ``y[v][c] = (p[v] <= c)`` per node from which
the one-hot ``x[v][c] = y[v][c] and not y[v][c-1]`` is derived. Precedence constraints become binary
clauses over ``y``, memory is one ``PbLe`` per chip over ``x``, minimality is MaxSAT over soft
``x[v][c[v]]``. Preprocessing bounds every node to ``[lo[v], hi[v]]``: under ``dataflow``, all ancestors
of ``v`` share chips ``0..p[v]`` with it, so their weights must fit there (and symmetrically for
descendants). Variables outside the bounds do not exist. Byte weights are divided by their GCD and, if
still above 2^20 units, rounded (weights up, capacities down) so Z3 keeps to its fast PB solver;
``RepairResult.exact_memory`` says when that rounding happened (then ``optimal`` is with respect to the
rounded sizes).

The solver budget is a Z3 resource limit (``rlimit``, deterministic: the same inputs give the same
result on any machine) plus a wall-clock ``timeout`` as a safety net. Z3 objects are not picklable:
each call builds its own solver, so call this inside worker processes, not across them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["RepairConfig", "RepairResult", "repair", "greedy_repair", "node_bounds", "Encoding"]

STATUSES = ("optimal", "feasible", "infeasible", "unknown")


@dataclass(frozen=True)
class RepairConfig:
    """Solver budget. ``rlimit``: Z3 resource units (deterministic); ``timeout``: seconds (safety)."""

    rlimit: int = 20_000_000
    timeout: float = 10.0
    pb_units: int = 1 << 20
    use_solver: bool = True


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


# ------------------------------------------------------------------------------ bounds
def node_bounds(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Earliest and latest feasible chip per node, shape ``(n,)`` each (``lo > hi`` means infeasible).

    Under ``dataflow`` and ``memory``: the ancestors of ``v`` (and ``v``) sit on chips ``0..p[v]``, so
    their memory must fit in those chips' SRAM; its descendants sit on ``p[v]..K-1``. Under
    ``neighbor_only`` with ``dataflow``, ``p[v] <= p[u] + dist(u, v)`` gives nothing without a fixed
    source, so it adds no bound here.
    """
    g, hw = problem.graph, problem.hardware
    k = hw.num_chips
    lo = np.zeros(g.n, dtype=np.int64)
    hi = np.full(g.n, k - 1, dtype=np.int64)
    cons = hw.constraints
    too_big = problem.mem_demand > hw.sram_bytes.max() if cons.memory else np.zeros(g.n, bool)
    if cons.memory and cons.dataflow:
        reach = g.reach.astype(np.float64)
        anc = reach.T @ problem.mem_demand  # memory of ancestors incl. self
        desc = reach @ problem.mem_demand
        pre = np.cumsum(hw.sram_bytes)  # chips 0..c
        suf = np.cumsum(hw.sram_bytes[::-1])[::-1]  # chips c..K-1
        tol = 1e-9 * max(1.0, float(pre[-1]))
        lo = np.searchsorted(pre, anc - tol, side="left").astype(np.int64)
        hi = (np.searchsorted(-suf, -desc + tol, side="right") - 1).astype(np.int64)
    hi = np.minimum(hi, k - 1)
    lo[too_big] = k  # no chip can hold it
    return lo, hi


# ------------------------------------------------------------------------------ encoding
class Encoding:
    """Z3 order encoding of a partition, restricted to per-node chip bounds."""

    def __init__(self, problem: Problem, lo: np.ndarray, hi: np.ndarray, pb_units: int,
                 relaxed: bool = False) -> None:
        import z3

        self.z3 = z3
        self.problem = problem
        self.graph = problem.graph
        self.k = problem.hardware.num_chips
        self.lo, self.hi = lo.tolist(), hi.tolist()
        self.pb_units = pb_units
        self.relaxed = relaxed
        self.clauses: list[Any] = []
        n = self.graph.n
        # y[v][c] for lo <= c < hi  ("p[v] <= c"); constants outside.
        self.y: list[dict[int, Any]] = []
        for v in range(n):
            self.y.append({c: z3.Bool(f"y{v}_{c}") for c in range(self.lo[v], self.hi[v])})
        self.exact_memory = True
        for v in range(n):
            yv = self.y[v]
            for c in range(self.lo[v] + 1, self.hi[v]):
                self.clauses.append(z3.Or(z3.Not(yv[c - 1]), yv[c]))

    def Y(self, v: int, c: int) -> Any:  # noqa: N802 - math notation
        """The literal ``p[v] <= c`` (a constant outside ``v``'s bounds)."""
        if c < self.lo[v]:
            return False
        if c >= self.hi[v]:
            return True
        return self.y[v][c]

    def X(self, v: int, c: int) -> Any:  # noqa: N802
        """The literal ``p[v] == c``."""
        z3 = self.z3
        if c < self.lo[v] or c > self.hi[v]:
            return False
        a, b = self.Y(v, c), self.Y(v, c - 1)
        if b is False:
            return a
        if a is True:
            return z3.Not(b)
        return z3.And(a, z3.Not(b))

    def _clause(self, lits: list[Any]) -> None:
        if any(lit is True for lit in lits):
            return
        lits = [lit for lit in lits if lit is not False]
        self.clauses.append(self.z3.Or(lits) if lits else self.z3.BoolVal(False))

    def _neg(self, lit: Any) -> Any:
        if lit is True or lit is False:
            return not lit
        return self.z3.Not(lit)

    def add_leq(self, u: int, v: int, d: int) -> None:
        """``p[u] <= p[v] + d``: for every c, ``p[v] <= c`` implies ``p[u] <= c + d``."""
        for c in range(self.lo[v], self.hi[u] - d):  # elsewhere the clause is trivially true
            self._clause([self._neg(self.Y(v, c)), self.Y(u, c + d)])

    def add_not_increasing(self, u: int, v: int, w: int) -> None:
        """not ``p[u] < p[v] < p[w]``: ``p[v] == j`` implies ``p[u] >= j`` or ``p[w] <= j``."""
        for j in range(self.lo[v], self.hi[v] + 1):
            self._clause([self._neg(self.X(v, j)), self._neg(self.Y(u, j - 1)), self.Y(w, j)])

    def add_memory(self) -> None:
        z3 = self.z3
        hw = self.problem.hardware
        dem = self.problem.mem_demand
        cap = hw.sram_bytes
        weights, caps, exact = _scale(dem, cap, self.pb_units, relaxed=self.relaxed)
        self.exact_memory = exact
        for c in range(self.k):
            terms = [(self.X(v, c), weights[v]) for v in range(self.graph.n)
                     if weights[v] > 0 and self.lo[v] <= c <= self.hi[v]]
            if not terms or sum(w for _, w in terms) <= caps[c]:
                continue
            self.clauses.append(z3.PbLe(terms, caps[c]))

    def add_contiguous(self) -> None:
        z3 = self.z3
        used = [z3.Bool(f"used{c}") for c in range(self.k)]
        for c in range(self.k):
            on_c = [self.X(v, c) for v in range(self.graph.n) if self.lo[v] <= c <= self.hi[v]]
            for lit in on_c:
                self._clause([self._neg(lit), used[c]])
            self._clause([z3.Not(used[c])] + on_c)
            if c + 1 < self.k:
                self._clause([z3.Not(used[c + 1]), used[c]])

    def decode(self, model: Any) -> np.ndarray:
        p = np.empty(self.graph.n, dtype=np.int64)
        for v in range(self.graph.n):
            c = self.lo[v]
            while c < self.hi[v] and not model.eval(self.y[v][c], model_completion=True):
                c += 1
            p[v] = c
        return p


def _scale(dem: np.ndarray, cap: np.ndarray, units: int, relaxed: bool) -> tuple[list[int], list[int], bool]:
    """Integer PB weights/capacities; exact when bytes are integers with a small enough GCD range."""
    vals = np.concatenate([dem[dem > 0], cap])
    if np.all(np.equal(np.mod(vals, 1), 0)):
        g = reduce(math.gcd, (int(x) for x in vals), 0) or 1
        if cap.max() / g <= units:
            return [int(x) // g for x in dem], [int(x) // g for x in cap], True
    unit = float(cap.max()) / units
    if relaxed:  # an over-approximation of the feasible set: proves infeasibility soundly
        return [math.floor(x / unit) for x in dem], [math.ceil(x / unit) for x in cap], False
    return [math.ceil(x / unit) for x in dem], [math.floor(x / unit) for x in cap], False


# ------------------------------------------------------------------------------ greedy
def greedy_repair(problem: Problem, candidate: np.ndarray) -> np.ndarray | None:
    """Deterministic fallback: order nodes topologically, preferring lower candidate chips, then fill
    chips in pipeline order, moving to the next chip when the candidate moves on or memory is full.

    Valid under ``dataflow``, ``contiguous`` and ``memory`` whenever it returns; ``neighbor_only`` and
    ``triangle`` are checked afterwards. Returns None when it cannot produce a valid partition.
    """
    import heapq

    g, hw = problem.graph, problem.hardware
    k = hw.num_chips
    cand = np.clip(np.asarray(candidate, dtype=np.int64), 0, k - 1)
    indeg = np.array([len(p) for p in g.preds])
    heap = [(int(cand[v]), v) for v in range(g.n) if indeg[v] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, v = heapq.heappop(heap)
        order.append(v)
        for w in g.succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, (int(cand[w]), w))
    p = np.empty(g.n, dtype=np.int64)
    chip, used, count = 0, 0.0, 0
    dem = problem.mem_demand if hw.constraints.memory else np.zeros(g.n)
    # Remaining memory after each position, to avoid running out of chips at the end.
    suffix = np.cumsum(dem[order][::-1])[::-1]
    for i, v in enumerate(order):
        want = int(cand[v])
        room_left = float(hw.sram_bytes[chip + 1:].sum()) if chip + 1 < k else 0.0
        must_stay = suffix[i] - dem[v] > room_left  # leaving now would not leave room for the rest
        if want > chip and chip + 1 < k and count > 0 and not must_stay:
            chip, used, count = chip + 1, 0.0, 0
        while used + dem[v] > hw.sram_bytes[chip]:
            if chip + 1 >= k:
                return None
            chip, used, count = chip + 1, 0.0, 0
        p[v] = chip
        used += dem[v]
        count += 1
    return p if problem.is_valid(p) else None


# ------------------------------------------------------------------------------ repair
def repair(problem: Problem, candidate: np.ndarray, config: RepairConfig | None = None) -> RepairResult:
    """Return the valid partition closest to ``candidate`` (fewest changed nodes); see module doc."""
    cfg = config or RepairConfig()
    t0 = time.perf_counter()
    g, hw = problem.graph, problem.hardware
    cand = np.asarray(candidate)
    if cand.shape != (g.n,):
        raise ValueError(f"candidate must have shape ({g.n},), got {cand.shape}")
    cand = cand.astype(np.int64)
    in_range = (cand >= 0) & (cand < hw.num_chips)
    if in_range.all() and problem.is_valid(cand):
        return RepairResult(cand.copy(), "optimal", 0, time.perf_counter() - t0, "none")

    lo, hi = node_bounds(problem)
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


def _solve(problem: Problem, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray, cfg: RepairConfig,
           t0: float) -> RepairResult:
    import z3

    enc = Encoding(problem, lo, hi, cfg.pb_units)
    for c in problem.constraints:
        c.encode(enc)
    opt = z3.Optimize()
    opt.set("timeout", max(1, int(cfg.timeout * 1000)))
    opt.set("rlimit", int(cfg.rlimit))
    opt.add(enc.clauses)
    forced = 0
    for v in range(problem.graph.n):
        c = int(cand[v])
        if lo[v] <= c <= hi[v]:
            opt.add_soft(enc.X(v, c), 1)
        else:
            forced += 1
    r = opt.check()
    info: dict[str, Any] = {"forced_changes": forced, "z3": str(r)}
    if r == z3.sat:
        p = enc.decode(opt.model())
        if not problem.is_valid(p):  # defensive: the encoding must agree with the checker
            raise AssertionError("Z3 repair produced an invalid partition; please report this bug")
        return RepairResult(p, "optimal", int((p != cand).sum()), time.perf_counter() - t0, "z3",
                            enc.exact_memory, info)
    if r == z3.unsat:
        if enc.exact_memory:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", True, info)
        # Rounded memory sizes: only an over-approximation can prove infeasibility.
        relaxed = Encoding(problem, lo, hi, cfg.pb_units, relaxed=True)
        for c in problem.constraints:
            c.encode(relaxed)
        s = z3.Solver()
        s.set("timeout", max(1, int(cfg.timeout * 1000)))
        s.set("rlimit", int(cfg.rlimit))
        s.add(relaxed.clauses)
        if s.check() == z3.unsat:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", False, info)
    info["reason"] = opt.reason_unknown() if r == z3.unknown else "rounded memory sizes"
    return RepairResult(None, "unknown", None, time.perf_counter() - t0, "z3", enc.exact_memory, info)
