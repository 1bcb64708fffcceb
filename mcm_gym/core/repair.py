"""Minimal-change repair of a candidate partition with Z3, and a deterministic greedy fallback.

Given a candidate ``c`` (a chip per node, possibly invalid), :func:`repair` returns the valid
partition ``p`` that changes the fewest nodes (``p[v] != c[v]``), with a status:

* ``optimal``: Z3 proved that no valid partition changes fewer nodes;
* ``feasible``: ``p`` is valid but not proven minimal: a budget ran out (or the formula was too
  large to try), and ``p`` is Z3's best solution so far or the greedy repair's, whichever changes
  fewer nodes; ``info["reason"]`` names the budget;
* ``infeasible``: proven that no valid partition exists (``p`` is None);
* ``unknown``: no valid partition found and none proven impossible (``p`` is None).

Encoding (pseudo-Boolean, no integers): an order encoding ``y[v][c] = (p[v] <= c)`` per node from
which the one-hot ``x[v][c] = y[v][c] and not y[v][c-1]`` is derived. Precedence constraints become
binary clauses over ``y``, memory is one ``PbLe`` per chip over ``x``, minimality is MaxSAT over soft
``x[v][c[v]]``. Preprocessing bounds every node to ``[lo[v], hi[v]]``: under ``dataflow``, all
ancestors of ``v`` share chips ``0..p[v]`` with it, so their weights must fit there (and
symmetrically for descendants). Variables outside the bounds do not exist. Byte weights are divided
by their GCD and, if still above 2^20 units, rounded (weights up, capacities down) so Z3 keeps to
its fast PB solver; ``RepairResult.exact_memory`` says when that rounding happened (then
``optimal`` is with respect to the rounded sizes).

Engines, in turn, until one proves an answer (``info["engine"]`` names the one that did):

0. Without Z3 (``local``): the lower bound of step 1 counts groups of nodes of which one must move
   (and nodes outside their bounds, which all must). A partition that changes exactly one node of
   each group and is valid is optimal; every combination is tried when there are at most
   ``RepairConfig.local_search_max``, else one group at a time, keeping the option that leaves the
   partition least far from valid. About 1 ms on BERT / ring-8 when it answers (stage-jitter
   candidates: all of them), otherwise a few ms lost.
1. A lower bound read off the candidate: disjoint sets of nodes of which one must move (a pair
   ``u ->* w`` with ``c[u] > c[w]``, an overfull chip, ...). The formula restricted to chips within
   ``restrict_radius`` of each candidate chip is solved at that bound: a solution there is optimal
   for the whole problem (``restricted``; on BERT the bound is tight for candidates with 10-25% of
   the nodes moved, and the small formula is what makes meshes fast).
2. Near the candidate, MSU3 (core-guided search from below) on Z3's incremental SAT solver
   (``QF_FD``), started at that bound (``msu3``); far from it, Z3's MaxRes (``Optimize``) under its
   own memory cap (``maxres``).
   On large formulas (``restrict_min_literals``) the restriction is first in nodes as well: only the
   nodes of the lower-bound groups may move, then those within 2, 4, 8 edges of them; the others are
   pinned to their candidate chip (constants in the formula).
   Far from the candidate, first the order DP (``order``, :mod:`mcm_gym.core.order_repair`, no Z3):
   the best partition that is non-decreasing along one of several topological orders. On formulas
   too large for MaxRes it answers (``feasible``, reason ``far_rlimit``) unless ``far_rlimit`` gives
   the search of step 3 a budget.
3. Otherwise the best of the incumbents (order DP, a first SAT solution, the greedy repair), improved
   while the budget lasts by asking for fewer changes, an eighth of the gap to the lower bound at a
   time (``bisection``; optimal if the bounds meet).

Budgets, for the whole repair (all its solver calls together): a Z3 resource limit (``rlimit``,
deterministic: the same inputs give the same result on any machine), a wall-clock ``timeout``
(s) as a safety net, Z3's memory cap (``max_memory_mb``), and a size guard that refuses a formula
whose estimated Z3 memory would not fit under the cap (Z3 cannot recover from running out of memory
while parsing). When one runs out, ``info["reason"]`` is ``"time"``, ``"rlimit"``, ``"memory"`` or
``"formula too large"``. A ``KeyboardInterrupt`` during a solver call stops Z3 and propagates: it
is never taken for an exhausted budget.

Z3 objects are not picklable: each call builds its own solvers (fresh contexts, so the answer does
not depend on earlier calls), so call this inside worker processes, not across them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mcm_gym.core.constraints import Constraint
from mcm_gym.core.encoding import Encoding, formula_size, interruptible, memory_units, node_bounds
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.order_repair import order_repair

__all__ = ["RepairConfig", "RepairResult", "RepairTarget", "repair", "greedy_repair", "explain_infeasible",
           "BUDGET_REASONS"]

STATUSES = ("optimal", "feasible", "infeasible", "unknown")
#: Values of ``RepairResult.info["reason"]`` when a budget stopped the solver (then the best valid
#: partition found answers: Z3's, the order DP's or the greedy repair's): total wall-clock time, Z3's
#: resource limit, Z3's memory cap, the size guard, the solver budget for candidates far from valid
#: (``RepairConfig.far_rlimit``).
BUDGET_REASONS = ("time", "rlimit", "memory", "formula too large", "far_rlimit")
#: Z3 memory per literal occurrence of the formula (MB), parsed and loaded into the SAT solver,
#: measured on BERT and 1,000-3,000-node layered DAGs (about 0.46 KB), plus a fixed base.
_MB_PER_LITERAL = 0.5e-3
_BASE_MB = 40.0
#: The order DP's restarts are capped so that restarts x nodes x chips stays below this (BERT on 36
#: chips: all 64; 10,000 nodes on 64 chips: 3).
_ORDER_WORK = 2_000_000
#: Seconds to parse and load a formula per literal occurrence (about 1.5-3 us measured): a formula
#: that could not be loaded before the deadline is not started (parsing cannot be interrupted).
_LOAD_S_PER_LITERAL = 3e-6


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
    """Solver budget and engine choice. Every budget is for the whole repair, all solver calls
    together; when one runs out, Z3's best solution so far or the greedy repair answers
    (``info["reason"]`` names the budget)."""

    #: ``"z3"`` (the default, this module) or ``"cpsat"``: OR-Tools CP-SAT
    #: (:func:`mcm_gym.core.repair_cpsat.repair_cpsat`, extra ``cpsat``) with ``timeout`` as its time
    #: limit; the other fields (Z3's budgets, ``use_solver``, the engines) do not apply to it.
    #: :meth:`mcm_gym.Problem.repair` (and so the env and the searches) dispatches on it.
    backend: str = "z3"
    #: Z3 resource units (deterministic), summed over all solver calls.
    rlimit: int = 20_000_000
    #: Seconds of wall clock for the whole repair (a safety net beside ``rlimit``).
    timeout: float = 10.0
    #: Before Z3: try every way of changing one node of each group the lower bound counts (nodes
    #: outside their bounds, disjoint cores), if there are at most this many; a valid one is optimal
    #: (engine ``local``). 0 turns it off.
    local_search_max: int = 512
    #: Memory sizes are integers of at most this many units per chip (see the module doc).
    pb_units: int = 1 << 20
    #: False: the greedy repair only.
    use_solver: bool = True
    #: SAT calls of MSU3 (per formula) before MaxRes takes over (0: MaxRes at once). MSU3 needs about
    #: one call per change beyond the lower bound it starts from.
    msu3_max_calls: int = 100
    #: A candidate is near a valid partition when the lower bound on its changes is at most this
    #: fraction of the nodes (BERT: 10-25% moved); far ones (uniformly random: 50-75%) start with
    #: MaxRes, since MSU3 would need a call per change.
    near_fraction: float = 0.3
    #: Near the candidate, first solve the formula with every node within this many chips of its
    #: candidate chip (then twice, four times ... as many, while it is at least 40% smaller than the
    #: whole formula): an optimum there at the lower bound is optimal for the whole problem, any
    #: other is a valid incumbent. Small formulas: fast on meshes and large graphs. 0: off.
    restrict_radius: int = 2
    #: Z3's memory cap in MB (Z3's global ``memory_max_size``): past it the solver gives up and the
    #: greedy fallback answers, instead of exhausting the machine on a huge instance.
    max_memory_mb: int = 2048
    #: Z3's memory cap for MaxRes, MB: on meshes it grows past any cap within a second, so it is
    #: stopped early and the bisection gets the time (about 40 MB suffice for BERT on ring-8).
    maxres_memory_mb: int = 512
    #: MaxRes only for formulas of at most this many literal occurrences (BERT: 19,000 on ring-8,
    #: where it proves uniformly random candidates in 0.2 s; 56,000 on mesh-4x4 and 145,000 on
    #: mesh-6x6, where it outgrows 512 MB within half a second).
    maxres_max_literals: int = 40_000
    #: Near the candidate, on formulas of more than ``restrict_min_literals`` literal occurrences
    #: (10,000-node graphs), first let only the nodes within this many edges of a lower-bound group
    #: move (within ``restrict_radius`` chips; then twice, four times as many edges); the others keep
    #: their candidate chip. An optimum there at the lower bound is optimal. 0: off.
    restrict_hops: int = 2
    restrict_min_literals: int = 200_000
    #: Far from valid (see ``near_fraction``), first the order DP (:mod:`mcm_gym.core.order_repair`, no
    #: solver): a topological order preferring lower candidate chips, then this many more drawn around
    #: the best result (about 2-4 ms each on BERT). Its partition is the incumbent the solver must
    #: beat, and the answer when the formula is too large. -1: off.
    order_restarts: int = 64
    #: Far from valid, on formulas too large for MaxRes, the search from above (from the order DP's
    #: incumbent) gets at most this many of the ``rlimit`` units. It gained 0-2 changes in 1-2 s on
    #: BERT / mesh-4x4 and none on mesh-6x6, so by default the order DP answers (``feasible``,
    #: reason ``far_rlimit``) without building the formula.
    far_rlimit: int = 0
    #: Formulas with more literal occurrences than this (estimated before they are built) are not
    #: given to Z3 (reason ``"formula too large"``). None: as many as fit in 60% of
    #: ``max_memory_mb`` at about 0.5 KB of Z3 memory per literal (about 2.4 million at 2048 MB).
    max_literals: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("z3", "cpsat"):
            raise ValueError(f"RepairConfig.backend must be 'z3' or 'cpsat', got {self.backend!r}")

    def literal_limit(self) -> int:
        """The size guard in literal occurrences (see :attr:`max_literals`)."""
        if self.max_literals is not None:
            return self.max_literals
        return max(0, int((0.6 * self.max_memory_mb - _BASE_MB) / _MB_PER_LITERAL))


@dataclass
class RepairResult:
    """``partition``: chip per node, shape ``(n,)`` (None unless ``status`` is optimal or
    feasible); ``changes``: nodes whose chip differs from the candidate; ``solve_time``: seconds;
    ``method``: ``"none"`` (candidate valid), ``"z3"``, ``"local"`` (a change per lower-bound group,
    proven optimal by the bound), ``"order"`` (the order DP's partition), ``"greedy"``, ``"bounds"``
    (proven by preprocessing). ``info`` (when
    the solver ran): ``forced_changes`` (nodes whose candidate chip is outside their bounds),
    ``lower_bound`` (changes, from the candidate), ``formula_literals``,
    ``solver_calls``, ``engine`` (``local``, ``order``, ``restricted``, ``msu3``, ``maxres``, ``bisection``;
    ``none`` if none answered), ``order_dp`` (orders tried, seconds, changes), ``restricted_hops``,
    ``restricted_radius``, ``restricted_reason`` and ``maxres_reason`` (the budget that
    stopped those attempts), ``first_solution_s`` (s); when a budget stopped the solver,
    ``reason`` (one of :data:`BUDGET_REASONS`, or a sentence) and ``message``."""

    partition: np.ndarray | None
    status: str
    changes: int | None
    solve_time: float  # s
    method: str  # "none" (candidate valid), "z3", "local", "order", "greedy", "bounds" (proven by preprocessing)
    exact_memory: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.partition is not None


# ------------------------------------------------------------------------------ greedy
def _bytes_to_add(g: Graph, own: float, shared: Sequence[int], held: set[int]) -> float:
    """Bytes a node brings to a chip that already holds the shared tensors ``held``: its ``own``
    demand plus each tensor of ``shared`` (indices) not held yet."""
    return own + sum(float(g.shared_bytes[t]) for t in shared if t not in held)


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
    use_shared = hw.constraints.memory and bool(g.shared)
    for follow_candidate in (True, False):
        p = np.empty(g.n, dtype=np.int64)
        chip, used, count, ok = 0, 0.0, 0, True
        held: set[int] = set()  # shared tensors already on the current chip
        for i, v in enumerate(order):
            if (follow_candidate and cand[v] > chip and chip + 1 < k and count > 0
                    and rest[i] + (k - chip - 1) * rest_max[i] <= room_after[chip]):
                chip, used, count = chip + 1, 0.0, 0
                held = set()
            shared_v = g.node_shared[v] if use_shared else ()
            need = _bytes_to_add(g, float(dem[i]), shared_v, held)
            while used + need > hw.sram_bytes[chip]:
                if chip + 1 >= k:
                    ok = False
                    break
                chip, used, count = chip + 1, 0.0, 0
                held = set()
                need = _bytes_to_add(g, float(dem[i]), shared_v, held)
            if not ok:
                break
            p[v] = chip
            used += need
            held.update(shared_v)
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
        alone = float(dem[v] + g.shared_read_bytes[v])  # with the shared tensors it reads
        if alone > hw.sram_bytes.max():
            return f"node {g.names[v]!r} needs {alone:.6g} bytes, more than any chip's SRAM"
        anc_all, desc_all = g.reach_sums(dem)
        anc, desc = float(anc_all[v]), float(desc_all[v])
        return (f"node {g.names[v]!r} has no feasible chip: with its ancestors it needs {anc:.6g} bytes on chips "
                f"0..c and with its descendants {desc:.6g} bytes on chips c..{hw.num_chips - 1}, and no chip c "
                f"leaves room for both (SRAM per chip: {', '.join(f'{x:.3g}' for x in hw.sram_bytes)} bytes)")
    if hw.constraints.memory:
        chip, used = 0, 0.0
        held: set[int] = set()  # shared tensors on the current chip
        total = float(dem.sum() + g.shared_bytes.sum())
        for v in range(g.n):  # nodes are in topological order
            need = _bytes_to_add(g, float(dem[v]), g.node_shared[v], held)
            while used + need > hw.sram_bytes[chip] and chip + 1 < hw.num_chips:
                chip, used, held = chip + 1, 0.0, set()
                need = _bytes_to_add(g, float(dem[v]), g.node_shared[v], held)
            if used + need > hw.sram_bytes[chip]:
                return (f"the weights fit the total SRAM ({total:.6g} of {hw.total_sram_bytes:.6g} bytes) but "
                        f"packing the nodes in topological order runs out at node {g.names[v]!r} "
                        f"({need:.6g} bytes; {hw.sram_bytes[chip] - used:.6g} bytes free on the last chip): "
                        f"the pipeline order strands SRAM on earlier chips")
            used += need
            held.update(g.node_shared[v])
    return ("no reason found by the bounds or a greedy packing; the constraints may conflict, or the "
            "solver's budget ran out")


# ------------------------------------------------------------------------------ repair
def as_candidate(problem: RepairTarget, candidate: np.ndarray) -> np.ndarray:
    """``candidate`` as int64 chips of shape ``(n,)``; ``ValueError`` for another shape or non-integer chips
    (chips outside ``0..K-1`` are allowed: the repair moves them)."""
    cand = np.asarray(candidate)
    n = problem.graph.n
    if cand.shape != (n,):
        raise ValueError(f"candidate must have shape ({n},), got {cand.shape}")
    if cand.size and not np.issubdtype(cand.dtype, np.integer):
        if not np.issubdtype(cand.dtype, np.number) or not np.all(np.equal(np.mod(cand, 1), 0)):
            raise ValueError("candidate must hold integer chip indices")
    return cand.astype(np.int64)


def settled_without_solver(problem: RepairTarget, cand: np.ndarray, t0: float
                           ) -> tuple[RepairResult | None, np.ndarray, np.ndarray]:
    """What every repair backend checks first: a valid candidate (``optimal``, no change) or a node whose
    chip bounds are empty (``infeasible``), as a result (else None), and the chip bounds ``lo``, ``hi``
    (empty arrays, not computed, when the candidate is valid)."""
    hw = problem.hardware
    if ((cand >= 0) & (cand < hw.num_chips)).all() and problem.is_valid(cand):
        empty = np.zeros(0, dtype=np.int64)
        return RepairResult(cand.copy(), "optimal", 0, time.perf_counter() - t0, "none"), empty, empty
    lo, hi = node_bounds(problem.graph, hw, problem.mem_demand)
    if np.any(lo > hi):
        v = int(np.flatnonzero(lo > hi)[0])
        return (RepairResult(None, "infeasible", None, time.perf_counter() - t0, "bounds",
                             info={"reason": f"node {problem.graph.names[v]!r} has no feasible chip "
                                             f"(memory of its ancestors/descendants)"}), lo, hi)
    return None, lo, hi


def repair(problem: RepairTarget, candidate: np.ndarray, config: RepairConfig | None = None) -> RepairResult:
    """Return the valid partition closest to ``candidate`` (fewest changed nodes); see module doc.

    Raises ``KeyboardInterrupt`` when interrupted (Z3 is stopped first), ``ValueError`` for a
    candidate of the wrong shape or with non-integer chips."""
    cfg = config or RepairConfig()
    if cfg.backend != "z3":
        raise ValueError(f"repair() is the Z3 backend; for backend={cfg.backend!r} call Problem.repair "
                         f"(or mcm_gym.core.repair_cpsat.repair_cpsat)")
    t0 = time.perf_counter()
    cand = as_candidate(problem, candidate)
    settled, lo, hi = settled_without_solver(problem, cand, t0)
    if settled is not None:
        return settled
    res: RepairResult | None = None
    if cfg.use_solver:
        res = _solve(problem, cand, lo, hi, cfg, t0)
        if res.status in ("optimal", "infeasible"):
            return res
    p = greedy_repair(problem, cand)
    elapsed = time.perf_counter() - t0
    info = dict(res.info) if res else {}
    if res is not None and res.partition is not None:  # Z3's best when a budget ran out
        assert res.changes is not None
        if p is None or int((p != cand).sum()) >= res.changes:
            res.solve_time = elapsed
            return res
    if p is None:
        return RepairResult(None, "unknown", None, elapsed, "greedy",
                            res.exact_memory if res else True, info)
    return RepairResult(p, "feasible", int((p != cand).sum()), elapsed, "greedy",
                        res.exact_memory if res else True, info)


class _Budget:
    """The repair's budgets across solver calls: a wall-clock deadline (``perf_counter`` seconds)
    and Z3 resource units (counted per context from Z3's ``rlimit count`` statistic)."""

    def __init__(self, cfg: RepairConfig, t0: float) -> None:
        self.cfg = cfg
        self.deadline = t0 + cfg.timeout
        self.spent = 0  # rlimit units of closed contexts
        self.rlimit = cfg.rlimit  # units for the whole repair (lowered for a far candidate's search)
        self.rlimit_reason = "rlimit"  # "far_rlimit" once lowered

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()

    def rlimit_left(self, current: int = 0) -> int:
        return self.rlimit - self.spent - current

    def exhausted(self, current: int = 0) -> str | None:
        if self.rlimit_left(current) <= 0:
            return self.rlimit_reason
        if self.time_left() <= 0:
            return "time"
        return None

    def apply(self, solver: Any, current: int = 0, share: float = 1.0) -> int:
        """Give the next call on ``solver`` (a ``z3.Solver`` or ``z3.Optimize``) a ``share`` of what
        is left; ``current``: units its context has used so far. Returns the units given."""
        units = max(1, int(share * self.rlimit_left(current)))
        solver.set("timeout", max(1, int(share * self.time_left() * 1000)))
        solver.set("rlimit", units)
        return units


def _rlimit_count(solver: Any) -> int:
    """Resource units the solver's context has used so far."""
    st = solver.statistics()
    return int(st.get_key_value("rlimit count")) if "rlimit count" in st.keys() else 0


def _peak_memory_mb(solver: Any) -> float:
    st = solver.statistics()
    return float(st.get_key_value("max memory")) if "max memory" in st.keys() else 0.0


def _why(reason: str, solver: Any, budget: _Budget, memory_mb: float, hit_rlimit: bool) -> str:
    """Which budget an ``unknown`` answer (Z3 reason string ``reason``) ran into. Z3's SAT solver
    reports an exhausted ``rlimit`` as ``sat.canceled`` (``hit_rlimit``: the call used all the
    units it was given), and ``Optimize`` gives no reason when it reaches the memory cap
    (``memory_mb``), so the budgets themselves are consulted too."""
    r = reason.lower()
    if "resource limit" in r or hit_rlimit:
        return "rlimit"
    if "memory" in r:
        return "memory"
    if "timeout" in r or budget.time_left() <= 0.02 * budget.cfg.timeout:
        return "time"
    if _peak_memory_mb(solver) >= 0.8 * memory_mb:
        return "memory"
    return f"solver gave up ({reason})"


_MESSAGES = {
    "time": "the repair's wall-clock timeout ({cfg.timeout:g} s) ran out",
    "rlimit": "Z3's resource limit ({cfg.rlimit} units) ran out",
    "memory": "Z3 reached its memory cap ({cfg.max_memory_mb} MB; {cfg.maxres_memory_mb} MB for MaxRes)",
    "far_rlimit": ("the candidate is far from any valid partition and its formula too large for MaxRes: the "
                   "order DP's best, with {cfg.far_rlimit} Z3 units for a search from above "
                   "(RepairConfig.far_rlimit)"),
}


@dataclass
class _Outcome:
    """What one engine found. ``status``: ``optimal``, ``feasible`` (valid, not proven minimal),
    ``infeasible``, ``unknown`` or ``gave_up`` (MSU3's call limit); ``cost``: soft literals falsified
    by ``partition``, or a proven lower bound on them when there is no partition."""

    status: str
    partition: np.ndarray | None = None
    cost: int = 0
    calls: int = 0
    reason: str = ""  # when a budget stopped it: "time", "rlimit", "memory" or a sentence
    source: str = "z3"  # "greedy" / "order" when the partition is the greedy repair's / the order DP's


def _bools(ctx: Any, names: Sequence[str]) -> list[Any]:
    """Boolean constants of ``ctx`` by name, through Z3's C API (``z3.Bool`` costs ~15 us each)."""
    from z3 import BoolRef, BoolSort, z3core

    cref, sort = ctx.ref(), BoolSort(ctx)
    return [BoolRef(z3core.Z3_mk_const(cref, z3core.Z3_mk_string_symbol(cref, nm), sort.ast), ctx)
            for nm in names]


def _at_least(ctx: Any, lits: Sequence[Any], k: int) -> Any:
    """``z3.AtLeast(*lits, k)`` without the Python wrapper's per-argument coercion."""
    from z3 import BoolRef, z3core

    arr = (z3core.Ast * len(lits))()
    for i, a in enumerate(lits):
        arr[i] = a.as_ast()
    return BoolRef(z3core.Z3_mk_atleast(ctx.ref(), len(lits), arr, k), ctx)


def _check(solver: Any, assumptions: list[Any]) -> int:
    """``solver.check(*assumptions)`` as 1 (sat), -1 (unsat), 0 (unknown), through the C API: the
    Python wrapper re-casts every assumption on every call."""
    from z3 import z3core

    arr = (z3core.Ast * len(assumptions))()
    for i, a in enumerate(assumptions):
        arr[i] = a.as_ast()
    return int(z3core.Z3_solver_check_assumptions(solver.ctx.ref(), solver.solver, len(assumptions), arr))


def _disjoint_cores(problem: RepairTarget, cand: np.ndarray, soft_of: np.ndarray,
                    units: tuple[list[int], list[int]] | None) -> list[list[int]]:
    """Pairwise disjoint sets of soft literals (indices into the soft list) of which every valid
    partition must falsify at least one, read off the candidate: under ``dataflow`` each pair
    ``u ->* w`` (``w`` reachable from ``u``) with ``cand[u] > cand[w]``, matched greedily (fewest
    partners first); each edge that skips a chip (``neighbor_only``), each triangle spread over
    three chips, each chip whose kept nodes overflow its SRAM (``units``: the formula's integer
    weights per node and capacities per chip). Their number is a lower bound on the changes beyond
    the forced ones."""
    g, hw = problem.graph, problem.hardware
    cons = hw.constraints
    soft = soft_of >= 0
    taken = np.zeros(g.n, dtype=bool)
    out: list[list[int]] = []
    if cons.dataflow:
        for u, w in _inverted_pairs(g, cand, soft):
            taken[u] = taken[w] = True
            out.append(sorted((int(soft_of[u]), int(soft_of[w]))))
    found: list[np.ndarray] = []
    src, dst = g.edge_src, g.edge_dst
    if cons.neighbor_only:
        bad = soft[src] & soft[dst] & (cand[dst] - cand[src] > 1)
        found += [np.array([a, b]) for a, b in zip(src[bad], dst[bad], strict=True)]
    if cons.triangle and g.triangles.size:
        t = g.triangles
        bad = (cand[t[:, 0]] < cand[t[:, 1]]) & (cand[t[:, 1]] < cand[t[:, 2]]) & np.all(soft[t], axis=1)
        found += list(t[bad])
    if cons.memory and units is not None:
        wt = np.asarray(units[0], dtype=np.int64)
        kept = np.flatnonzero(soft & (wt > 0))
        for c in range(hw.num_chips):
            on_c = kept[cand[kept] == c]
            if on_c.size and int(wt[on_c].sum()) > units[1][c]:
                found.append(on_c)
    found.sort(key=lambda nodes: (nodes.size, nodes.tolist()))
    for nodes in found:
        if not taken[nodes].any():
            taken[nodes] = True
            out.append(sorted(int(soft_of[v]) for v in nodes))
    return out


#: Above this many nodes the lower bound uses backward edges only, not all pairs ``u ->* w`` (their
#: bitsets take ``n * n / 4`` bytes).
_PAIRS_MAX_NODES = 20_000


def _certified_local(problem: RepairTarget, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     cores: list[list[int]], soft: list[tuple[int, int]], max_tries: int) -> np.ndarray | None:
    """A valid partition that changes exactly one node per group and nothing else, or None. The groups
    are the nodes whose candidate chip is outside their bounds (each must change) and the disjoint
    cores (one of each must change), so their number is a lower bound on the changes and such a
    partition is optimal. Every combination (one node of each group, each to a chip within its
    bounds) is tried in a fixed order, as long as there are at most ``max_tries`` of them; the first
    valid one wins (deterministic)."""
    outside = np.flatnonzero((cand < lo) | (cand > hi))
    groups = [[int(v)] for v in outside] + [[soft[i][0] for i in core] for core in cores]
    if not groups:
        return None
    options: list[list[tuple[int, int]]] = []
    total = 1
    for nodes in groups:
        opts = [(v, c) for v in nodes for c in range(int(lo[v]), int(hi[v]) + 1) if c != cand[v]]
        if not opts:
            return None
        total *= len(opts)
        options.append(opts)
    if total > max_tries:
        return _greedy_per_group(problem, cand, np.clip(cand, lo, hi), options, max_tries)
    # every combination, the last group's option varying fastest (mixed-radix digits: numpy's
    # meshgrid takes at most 64 groups, and a far candidate can have more, each with one option)
    sizes = np.array([len(o) for o in options], dtype=np.int64)
    strides = np.append(np.cumprod(sizes[::-1])[::-1][1:], 1)
    grid = (np.arange(total, dtype=np.int64)[:, None] // strides[None, :]) % sizes[None, :]
    batch = np.repeat(cand[None, :], grid.shape[0], axis=0)
    rows = np.arange(grid.shape[0])
    for j, opts in enumerate(options):
        vs = np.array([v for v, _ in opts], dtype=np.int64)[grid[:, j]]
        cs = np.array([c for _, c in opts], dtype=np.int64)[grid[:, j]]
        batch[rows, vs] = cs
    ok = np.flatnonzero(problem.is_valid(batch))
    return batch[ok[0]].copy() if ok.size else None


def _badness(problem: RepairTarget, batch: np.ndarray) -> np.ndarray:
    """How far each partition of a batch is from valid: violated edges, triangles and empty chips,
    plus each chip's SRAM overflow as a fraction of its SRAM; 0 exactly when valid."""
    hw = problem.hardware
    p = problem.cost.check_shape(batch)  # type: ignore[attr-defined]
    mem = problem.cost.chip_memory(p)  # type: ignore[attr-defined]
    total = np.zeros(p.shape[0])
    for c in problem.constraints:
        if c.name == "memory":
            total += (np.maximum(mem - hw.sram_bytes[None, :], 0) / hw.sram_bytes[None, :]).sum(axis=1)
        else:
            total += c.count(problem.graph, hw, p, mem)
    return total


#: Largest number of node entries (options x nodes) the one-group-at-a-time search evaluates before it
#: gives way to Z3 (about 0.1 s of numpy).
_LOCAL_MAX_WORK = 1_000_000
#: ... and the most groups it takes on: far-off candidates (hundreds of groups) rarely succeed, and
#: the pass would only delay Z3.
_LOCAL_MAX_GROUPS = 48


def _greedy_per_group(problem: RepairTarget, cand: np.ndarray, start: np.ndarray,
                      options: list[list[tuple[int, int]]], max_tries: int) -> np.ndarray | None:
    """:func:`_certified_local` when the combinations are too many: one group at a time, the option that
    leaves the partition least far from valid (:func:`_badness`; ties: first), the others kept; valid at
    the end means optimal (one change per lower-bound group). At most ``max_tries`` partitions per group."""
    work = sum(len(o) for o in options) * problem.graph.n  # node entries evaluated in all
    if (not hasattr(problem, "cost") or len(options) > _LOCAL_MAX_GROUPS or work > _LOCAL_MAX_WORK
            or any(len(o) > max_tries for o in options)):
        return None
    part = start.copy()  # the candidate, nodes outside their bounds moved inside (their groups decide)
    for opts in options:
        batch = np.repeat(part[None, :], len(opts), axis=0)
        vs = np.array([v for v, _ in opts], dtype=np.int64)
        batch[np.arange(len(opts)), vs] = [c for _, c in opts]
        part = batch[int(np.argmin(_badness(problem, batch)))]
    changes = int((part != cand).sum())
    return part.copy() if changes == len(options) and problem.is_valid(part) else None


def _inverted_pairs(g: Graph, cand: np.ndarray, soft: np.ndarray) -> list[tuple[int, int]]:
    """A maximal set of disjoint pairs ``(u, w)`` of soft nodes with ``w`` reachable from ``u`` and
    ``cand[u] > cand[w]`` (dataflow forces one of them to move): reachability as Python-int
    bitsets (``n * n / 8`` bytes each way), nodes with the fewest partners matched first, each to
    the one with the fewest partners among its first 32 free ones. Beyond ``_PAIRS_MAX_NODES``
    nodes, only pairs joined by an edge."""
    n = g.n
    soft_nodes = np.flatnonzero(soft).tolist()
    if not soft_nodes:
        return []
    if n > _PAIRS_MAX_NODES:
        src, dst = g.edge_src, g.edge_dst
        bad = soft[src] & soft[dst] & (cand[src] > cand[dst])
        used = np.zeros(n, dtype=bool)
        out = []
        for u, w in zip(src[bad].tolist(), dst[bad].tolist(), strict=True):
            if not (used[u] or used[w]):
                used[u] = used[w] = True
                out.append((u, w))
        return out
    desc = [0] * n
    anc = [0] * n
    for v in range(n - 1, -1, -1):
        d = 1 << v
        for w in g.succs[v]:
            d |= desc[w]
        desc[v] = d
    for v in range(n):
        a = 1 << v
        for u in g.preds[v]:
            a |= anc[u]
        anc[v] = a
    chips = int(cand[soft].max()) + 1
    on = [0] * chips  # soft nodes per candidate chip
    for v in soft_nodes:
        on[int(cand[v])] |= 1 << v
    below, above = [0] * chips, [0] * chips  # soft nodes with cand < c, with cand > c
    for c in range(1, chips):
        below[c] = below[c - 1] | on[c - 1]
    for c in range(chips - 2, -1, -1):
        above[c] = above[c + 1] | on[c + 1]
    partners = [0] * n
    for v in soft_nodes:
        c = int(cand[v])
        partners[v] = ((desc[v] & below[c]) | (anc[v] & above[c])) & ~(1 << v)
    degree = [p.bit_count() for p in partners]
    order = sorted((v for v in soft_nodes if degree[v]), key=lambda v: (degree[v], v))
    free = 0
    for v in order:
        free |= 1 << v
    pairs = []
    for u in order:
        if not free >> u & 1:
            continue
        options = partners[u] & free
        best, best_deg, seen = -1, n + 1, 0
        while options and seen < 32:
            low = options & -options
            w = low.bit_length() - 1
            options ^= low
            seen += 1
            if degree[w] < best_deg:
                best, best_deg = w, degree[w]
        if best < 0:
            continue
        free &= ~((1 << u) | (1 << best))
        pairs.append((u, best) if u < best else (best, u))
    return pairs


class _SatEngine:
    """One incremental SAT solver (Z3 ``QF_FD``, a fresh context) on the formula, with the soft
    literals ``x[v][cand[v]]`` as constants; MSU3, the candidate-guided first solution and the
    bisection share it (and the clauses it learns). Close it to count its resource units."""

    def __init__(self, enc: Encoding, soft: list[tuple[int, int]], budget: _Budget) -> None:
        import z3

        self.enc, self.soft, self.budget = enc, soft, budget
        # A fresh context per repair: in Z3's shared main context, AST ids (and so the SAT solver's
        # variable order) depend on earlier calls, and equal-cost optima would differ between calls.
        self.ctx = ctx = z3.Context()
        self.s = s = z3.SolverFor("QF_FD", ctx=ctx)
        s.set("ctrl_c", False)  # interruptible() turns Ctrl-C into Z3_interrupt and a KeyboardInterrupt
        budget.apply(s)
        s.from_string(enc.cnf_text())

        def internalize() -> None:  # pure clauses skip Z3's preprocessing; the PB constraints follow
            s.push()
            s.pop()

        interruptible(ctx, internalize)
        if enc.pb_asserts:
            s.from_string(enc.pb_text())
        self.names = [f"x{v}_{c}" for v, c in soft]
        self.lits = _bools(ctx, self.names)
        self.index = {lit.get_id(): i for i, lit in enumerate(self.lits)}
        # Soft literals of nodes the bounds pin to their candidate chip are asserted: not assumed.
        self.pinned = [enc.lo[v] == enc.hi[v] for v, _ in soft]
        self.calls = 0
        self.hit_rlimit = False
        self.hinted = False

    def close(self) -> None:
        self.budget.spent += _rlimit_count(self.s)

    def check(self, assumptions: list[Any], share: float = 1.0) -> int:
        """1 (sat), -1 (unsat) or 0 (unknown) with ``share`` of the budget left."""
        before = _rlimit_count(self.s)
        units = self.budget.apply(self.s, before, share)
        self.calls += 1
        r = interruptible(self.ctx, lambda: _check(self.s, assumptions))
        self.hit_rlimit = _rlimit_count(self.s) - before >= units
        return r

    def reason(self) -> str:
        """Why the last call answered unknown (see :func:`_why`)."""
        return _why(self.s.reason_unknown(), self.s, self.budget, self.budget.cfg.max_memory_mb, self.hit_rlimit)

    def solution(self, fixed: dict[int, int] | None = None) -> tuple[np.ndarray, int]:
        """The last model's partition and its falsified soft literals."""
        m = self.s.model()
        if fixed is None:
            keep = Encoding.true_literals(m, self.names)
            fixed = {v: c for (v, c), t in zip(self.soft, keep, strict=True) if t}
        return self.enc.decode(m, fixed), len(self.soft) - len(fixed)

    def guard(self, name: str, relaxed: list[int], falsified: int) -> Any:
        """A fresh literal that, assumed, allows at most ``falsified`` of the soft literals
        ``relaxed`` to be false."""
        import z3

        g = z3.Bool(name, self.ctx)
        if falsified < len(relaxed):
            self.s.add(z3.Implies(g, _at_least(self.ctx, [self.lits[i] for i in relaxed], len(relaxed) - falsified)))
        return g

    def guard_per_core(self, name: str, cores: list[list[int]]) -> Any:
        """A fresh literal that, assumed, allows at most one false soft literal per core. With every
        other soft literal assumed, the same solutions as "at most ``len(cores)`` false in the cores"
        (each core needs one false), without one large cardinality constraint."""
        import z3

        g = z3.Bool(name, self.ctx)
        for core in cores:
            lits = [self.lits[i] for i in core]
            if len(lits) == 2:
                self.s.add(z3.Or(z3.Not(g), lits[0], lits[1]))
            elif len(lits) > 2:
                self.s.add(z3.Implies(g, _at_least(self.ctx, lits, len(lits) - 1)))
        return g

    def msu3(self, cores: list[list[int]], max_calls: int, share: float = 1.0) -> _Outcome:
        """Unweighted partial MaxSAT by core-guided linear search from below (MSU3).

        Keep every soft literal as an assumption; each unsat core moves its soft literals to the
        relaxed set R and raises the lower bound ``lam`` by one; a cardinality constraint "at most
        ``lam`` of R false" (behind a fresh guard literal) is assumed. ``cores`` (disjoint, see
        :func:`_disjoint_cores`) start R and ``lam``: every solution falsifies at least ``lam``
        literals of R, the invariant MSU3 keeps. The first satisfiable call is optimal with cost
        ``lam``. Status ``gave_up`` after ``max_calls`` calls (``cost``: the lower bound reached);
        each call gets ``share`` of what is left of the budget.
        """
        active = [True] * len(self.lits)
        relaxed: list[int] = [i for core in cores for i in core]
        for i in relaxed:
            active[i] = False
        lam = len(cores)
        guard = self.guard_per_core("__card_start", cores) if cores else None
        calls = 0
        while True:
            why = self.budget.exhausted(_rlimit_count(self.s))
            if why:
                return _Outcome("unknown", cost=lam, calls=calls, reason=why)
            if calls >= max_calls:
                return _Outcome("gave_up", cost=lam, calls=calls)
            assumptions = [lit for lit, a, fixed in zip(self.lits, active, self.pinned, strict=True) if a and not fixed]
            if guard is not None:
                assumptions.append(guard)
            calls += 1
            r = self.check(assumptions, share)
            if r == 1:
                fixed = {v: c for (v, c), a in zip(self.soft, active, strict=True) if a}
                p, cost = self.solution(fixed)
                return _Outcome("optimal", p, lam, calls)
            if r == 0:
                return _Outcome("unknown", cost=lam, calls=calls, reason=self.reason())
            core = [self.index.get(x.get_id()) for x in self.s.unsat_core()]
            newly = sorted(i for i in core if i is not None and active[i])
            if not newly and lam >= len(relaxed):
                return _Outcome("infeasible", cost=lam, calls=calls)  # the hard clauses alone are unsat
            for i in newly:
                active[i] = False
            relaxed += newly
            lam += 1
            guard = self.guard(f"__card_{self.calls}", relaxed, lam)

    def hint_candidate(self) -> None:
        """Set the SAT solver's initial phases to the candidate's chips (``x[v][cand[v]]`` and the
        ``y`` literals around it), so that its first solutions keep most of them."""
        from z3 import BoolVal, z3core

        if self.hinted:
            return
        self.hinted = True
        cref, sref = self.ctx.ref(), self.s.solver
        t, f = BoolVal(True, self.ctx), BoolVal(False, self.ctx)
        enc = self.enc
        hints = [(lit, t) for lit in self.lits]
        hints += [(y, t) for y in _bools(self.ctx, [f"y{v}_{c}" for v, c in self.soft if c < enc.hi[v]])]
        hints += [(y, f) for y in _bools(self.ctx, [f"y{v}_{c - 1}" for v, c in self.soft if c > enc.lo[v]])]
        for var, val in hints:
            z3core.Z3_solver_set_initial_value(cref, sref, var.as_ast(), val.as_ast())

    def first_solution(self) -> _Outcome:
        """Any valid partition, the SAT solver's phases set to the candidate (so it keeps most of
        the candidate's chips): ``feasible``, ``infeasible`` or ``unknown``."""
        self.hint_candidate()
        r = self.check([], share=0.5)
        if r == 1:
            p, cost = self.solution()
            return _Outcome("feasible", p, cost, 1)
        if r == -1:
            return _Outcome("infeasible", calls=1)
        return _Outcome("unknown", calls=1, reason=self.reason())

    def bisect(self, lower: int, best: _Outcome) -> _Outcome:
        """Search on the number of falsified soft literals between a proven lower bound and the
        incumbent ``best`` (a valid partition), from above: each call asks for a partition with at
        most ``ub - step`` falsified, ``step`` an eighth of the gap (at least 1). A satisfiable call
        improves the incumbent, an unsatisfiable one raises the lower bound, one that runs out of
        its share (half of what is left of the budget) moves the next bound closer to the
        incumbent. ``optimal`` once the bounds meet; otherwise ``feasible`` with the budget's
        reason. (Small steps: on meshes the calls far below the incumbent are the hard ones.)"""
        ub, lo, k_failed, calls = best.cost, lower, -1, 0
        reason = ""
        while lo < ub:
            why = self.budget.exhausted(_rlimit_count(self.s))
            if why:
                reason = why
                break
            k = max(lo, k_failed + 1, ub - max(1, (ub - lo) // 8))
            if k >= ub:
                break
            g = self.guard(f"__bound_{self.calls}", list(range(len(self.lits))), k)
            calls += 1
            r = self.check([g], share=0.5)
            if r == 1:
                p, cost = self.solution()
                best = _Outcome("feasible", p, cost)
                ub, k_failed = cost, -1
            elif r == -1:
                lo = k + 1
            else:
                reason, k_failed = self.reason(), k
        status = "optimal" if lo >= ub else "feasible"
        return _Outcome(status, best.partition, ub, calls, "" if status == "optimal" else reason, best.source)


def _maxres(enc: Encoding, soft: list[tuple[int, int]], cfg: RepairConfig, budget: _Budget) -> _Outcome:
    """Z3 ``Optimize`` (core-guided MaxRes) under its own memory cap (``cfg.maxres_memory_mb``):
    fast on rings when many nodes must change, but it outgrows any cap within a second on meshes."""
    import z3

    why = budget.exhausted()
    if why:
        return _Outcome("unknown", reason=why)
    cap = min(cfg.maxres_memory_mb, cfg.max_memory_mb)
    ctx = z3.Context()
    opt = z3.Optimize(ctx=ctx)
    opt.set("ctrl_c", False)
    opt.from_string(enc.text() + "\n" + "\n".join(f"(assert-soft x{v}_{c} :weight 1)" for v, c in soft))
    before = _rlimit_count(opt)
    units = budget.apply(opt, before)
    try:
        # The lower cap only for the search: Z3 cannot recover from running out while parsing.
        z3.set_param("memory_max_size", int(cap))
        try:
            r = interruptible(ctx, opt.check)
        except z3.Z3Exception as e:  # out of memory, reported as an error of the call
            if "memory" not in str(e).lower():
                raise
            return _Outcome("unknown", calls=1, reason="memory")
        if r == z3.sat:
            m = opt.model()
            keep = Encoding.true_literals(m, [f"x{v}_{c}" for v, c in soft])
            fixed = {v: c for (v, c), t in zip(soft, keep, strict=True) if t}
            return _Outcome("optimal", enc.decode(m, fixed), len(soft) - len(fixed), 1)
        if r == z3.unsat:
            return _Outcome("infeasible", calls=1)
        hit = _rlimit_count(opt) - before >= units
        return _Outcome("unknown", calls=1, reason=_why(opt.reason_unknown(), opt, budget, cap, hit))
    finally:
        budget.spent += _rlimit_count(opt)
        z3.set_param("memory_max_size", int(cfg.max_memory_mb))


def _sat_relaxed(problem: RepairTarget, lo: np.ndarray, hi: np.ndarray, cfg: RepairConfig,
                 budget: _Budget) -> tuple[int, str]:
    """Satisfiability of the over-approximated memory encoding (weights down, capacities up):
    (1 sat, -1 unsat, 0 unknown; the budget reason when unknown)."""
    import z3

    why = budget.exhausted()
    if why:
        return 0, why
    relaxed = Encoding(problem.graph, problem.hardware, problem.mem_demand, lo, hi, cfg.pb_units, relaxed=True)
    for c in problem.constraints:
        c.encode(relaxed)
    ctx = z3.Context()
    s = z3.SolverFor("QF_FD", ctx=ctx)
    s.set("ctrl_c", False)
    s.from_string(relaxed.text())
    before = _rlimit_count(s)
    units = budget.apply(s, before)
    try:
        r = interruptible(ctx, lambda: _check(s, []))
        hit = _rlimit_count(s) - before >= units
        return r, (_why(s.reason_unknown(), s, budget, cfg.max_memory_mb, hit) if r == 0 else "")
    finally:
        budget.spent += _rlimit_count(s)


def _encode(problem: RepairTarget, lo: np.ndarray, hi: np.ndarray, cfg: RepairConfig) -> Encoding:
    enc = Encoding(problem.graph, problem.hardware, problem.mem_demand, lo, hi, cfg.pb_units)
    for c in problem.constraints:
        c.encode(enc)
    return enc


def _within_hops(g: Graph, seeds: np.ndarray, hops: int) -> np.ndarray:
    """Nodes at most ``hops`` edges (either direction) from a node of the mask ``seeds``, shape ``(n,)``."""
    mark = seeds.copy()
    src, dst = g.edge_src, g.edge_dst
    for _ in range(hops):
        nxt = mark.copy()
        nxt[dst[mark[src]]] = True
        nxt[src[mark[dst]]] = True
        if np.array_equal(nxt, mark):
            break
        mark = nxt
    return mark


def _restricted_msu3(problem: RepairTarget, lo_r: np.ndarray, hi_r: np.ndarray, soft: list[tuple[int, int]],
                     cores: list[list[int]], cfg: RepairConfig, budget: _Budget, info: dict[str, Any]) -> _Outcome:
    """MSU3 on the formula with the bounds ``lo_r``/``hi_r`` (inside the node bounds, around the
    candidate), with half of what is left of the budget per call."""
    enc = _encode(problem, lo_r, hi_r, cfg)
    eng = _SatEngine(enc, soft, budget)
    try:
        out = eng.msu3(cores, cfg.msu3_max_calls, share=0.5)
    finally:
        eng.close()
    info["solver_calls"] += out.calls
    if out.status == "unknown":
        info["restricted_reason"] = out.reason
    return out


def _run_engines(problem: RepairTarget, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 soft: list[tuple[int, int]], cores: list[list[int]], cfg: RepairConfig, budget: _Budget,
                 info: dict[str, Any]) -> tuple[_Outcome, Encoding | None]:
    """The engines in turn, until one proves an answer; returns it (or the best valid partition
    found, ``feasible``) and the formula it used.

    Near the candidate (the cores' lower bound is at most ``cfg.near_fraction`` of the nodes): MSU3
    on formulas restricted to chips within ``cfg.restrict_radius``, then twice, four times that
    radius of each candidate chip clipped to the node's bounds (while they are at least 40% smaller
    than the whole formula): an optimum there at the lower bound is optimal for the whole problem,
    and any other is a valid incumbent; then MSU3 on the whole formula. Far from it, or when MSU3
    reaches its call limit, MaxRes on formulas of at most ``cfg.maxres_max_literals``. If none
    proves an optimum, a search from above (:meth:`_SatEngine.bisect`) from the best of the
    incumbent, a first SAT solution and the greedy repair, while the budget lasts."""
    g, hw = problem.graph, problem.hardware
    lower = len(cores)
    near = cfg.msu3_max_calls > 0 and g.n - len(soft) + lower <= cfg.near_fraction * g.n
    limit = cfg.literal_limit()
    n_vars, n_lits = formula_size(g, hw, lo, hi)
    info["formula_literals"] = n_lits
    best: _Outcome | None = None  # the best valid partition found, not proven optimal

    def keep(out: _Outcome) -> None:
        nonlocal best
        if out.partition is not None and (best is None or out.cost < best.cost):
            best = _Outcome("feasible", out.partition, out.cost, out.calls, out.reason, out.source)

    def stop(reason: str, enc: Encoding | None) -> tuple[_Outcome, Encoding | None]:
        # A budget (not the clock: the timeout is for the whole repair) ran out near the candidate.
        if "order_dp" not in info and cfg.order_restarts >= 0 and reason != "time":
            part, order_info = order_repair(problem, cand, restarts=order_restarts(), deadline=None)
            info["order_dp"] = order_info
            if part is not None:
                keep(_Outcome("feasible", part, int(sum(part[v] != c for v, c in soft)), source="order"))
                order_info["changes"] = int((part != cand).sum())
        if best is not None:
            best.reason = reason
            if best.source == "order":
                info["engine"] = "order"
            return best, enc
        return _Outcome("unknown", reason=reason), enc

    def order_restarts() -> int:  # large graphs get fewer orders: at most _ORDER_WORK node x chip entries
        return min(cfg.order_restarts, _ORDER_WORK // max(1, g.n * hw.num_chips))

    if not near and cfg.order_restarts >= 0:  # far from valid: the order DP's incumbent, no solver
        # Where MaxRes will run (small formulas) one order suffices as a fallback incumbent.
        restarts = order_restarts() if n_lits > cfg.maxres_max_literals else 0
        part, order_info = order_repair(problem, cand, restarts=restarts, deadline=budget.deadline)
        info["order_dp"] = order_info
        if part is not None:
            keep(_Outcome("feasible", part, int(sum(part[v] != c for v, c in soft)), source="order"))
            order_info["changes"] = int((part != cand).sum())
        if best is not None and best.cost == lower:  # meets the lower bound: optimal
            info["engine"] = "order"
            return _Outcome("optimal", best.partition, best.cost, source="order"), None
    def attempt(lo_r: np.ndarray, hi_r: np.ndarray, key: str, value: int
                ) -> tuple[_Outcome, Encoding | None] | bool:
        """MSU3 on the formula restricted to ``lo_r``/``hi_r``: an answer to return, True to go on to a
        larger restriction, False when this one is too large to try (``info[key] = value`` when run)."""
        r_lits = formula_size(g, hw, lo_r, hi_r)[1]
        if r_lits > limit or r_lits >= 0.6 * n_lits or r_lits * _LOAD_S_PER_LITERAL > budget.time_left():
            return False
        out = _restricted_msu3(problem, lo_r, hi_r, soft, cores, cfg, budget, info)
        info[key] = value
        if out.status == "optimal":
            if out.cost == lower:  # the whole problem's lower bound: optimal there too
                info["engine"] = "restricted"
                return out, None
            keep(out)
        why = budget.exhausted()
        return stop(why, None) if why else True

    radius = cfg.restrict_radius
    at = np.clip(cand, lo, hi)
    if near and cfg.restrict_hops > 0 and n_lits > cfg.restrict_min_literals and radius > 0:
        # Large graphs: only nodes within `hops` edges of a lower-bound group may move (and only within
        # `radius` chips); the others stay on their candidate chip. Optimal if it meets the bound.
        seeds = np.zeros(g.n, dtype=bool)
        seeds[(cand < lo) | (cand > hi)] = True
        for core in cores:
            seeds[[soft[i][0] for i in core]] = True
        # Hops 0 first: a partition with as many changes as the lower bound changes only group nodes.
        for hops in (0, *(cfg.restrict_hops * 2 ** i for i in range(3))):
            free = _within_hops(g, seeds, hops)
            done = attempt(np.where(free, np.maximum(lo, at - radius), at),
                           np.where(free, np.minimum(hi, at + radius), at), "restricted_hops", hops)
            if done is False:
                break
            if done is not True:
                return done
            if free.all():
                break
    while near and radius > 0:
        done = attempt(np.maximum(lo, at - radius), np.minimum(hi, at + radius), "restricted_radius", radius)
        if done is False:
            break
        if done is not True:
            return done
        radius *= 2
    if not near and best is not None and best.source == "order" and cfg.far_rlimit <= 0 \
            and n_lits > cfg.maxres_max_literals:
        return stop("far_rlimit", None)
    if n_lits > limit:
        info["message"] = (f"the formula would have about {n_lits:,} literals ({n_vars:,} variables), more "
                           f"than the {limit:,} that fit under Z3's memory cap of {cfg.max_memory_mb} MB "
                           f"(RepairConfig.max_memory_mb, max_literals)")
        return stop("formula too large", None)
    if n_lits * _LOAD_S_PER_LITERAL > budget.time_left():
        return stop("time", None)
    enc = _encode(problem, lo, hi, cfg)
    sat: _SatEngine | None = None
    try:
        if near:
            info["engine"] = "msu3"
            sat = _SatEngine(enc, soft, budget)
            out = sat.msu3(cores, cfg.msu3_max_calls)
            info["solver_calls"] += out.calls
            if out.status in ("optimal", "infeasible"):
                return out, enc
            if out.status == "unknown":
                return stop(out.reason, enc)
            lower = max(lower, out.cost)
        if n_lits <= cfg.maxres_max_literals:
            info["engine"] = "maxres"
            out = _maxres(enc, soft, cfg, budget)
            info["solver_calls"] += out.calls
            if out.status in ("optimal", "infeasible"):
                return out, enc
            why = budget.exhausted()
            if why:
                return stop(why, enc)
            info["maxres_reason"] = out.reason
        info["engine"] = "bisection"
        if not near and n_lits > cfg.maxres_max_literals and best is not None and best.source == "order":
            # Far, from the order DP's incumbent: less of the budget (the search rarely beats it).
            if budget.spent + cfg.far_rlimit < budget.rlimit:
                budget.rlimit, budget.rlimit_reason = budget.spent + cfg.far_rlimit, "far_rlimit"
        sat = sat or _SatEngine(enc, soft, budget)
        if best is None or best.source != "order":  # the order DP's incumbent is better than a first model
            first = sat.first_solution()
            info["solver_calls"] += first.calls
            if first.status == "infeasible":
                return first, enc
            if first.status != "feasible":
                return stop(first.reason, enc)
            keep(first)
            info["first_solution_s"] = time.perf_counter() - (budget.deadline - cfg.timeout)
        greedy = greedy_repair(problem, cand)  # a better incumbent, often, on meshes
        if greedy is not None:
            keep(_Outcome("feasible", greedy, int(sum(greedy[v] != c for v, c in soft)), source="greedy"))
        assert best is not None
        out = sat.bisect(lower, best)
        info["solver_calls"] += out.calls
        return out, enc
    finally:
        if sat is not None:
            sat.close()


def _solve(problem: RepairTarget, cand: np.ndarray, lo: np.ndarray, hi: np.ndarray, cfg: RepairConfig,
           t0: float) -> RepairResult:
    import z3

    g, hw = problem.graph, problem.hardware
    budget = _Budget(cfg, t0)
    soft_of = np.full(g.n, -1, dtype=np.int64)
    ok = (lo <= cand) & (cand <= hi)
    soft_of[ok] = np.arange(int(ok.sum()))
    soft = [(int(v), int(cand[v])) for v in np.flatnonzero(ok)]
    forced = g.n - len(soft)
    info: dict[str, Any] = {"forced_changes": forced, "solver_calls": 0, "engine": "none"}
    weights, caps, exact = memory_units(np.concatenate([problem.mem_demand, g.shared_bytes]), hw.sram_bytes,
                                        cfg.pb_units)
    weights = weights[:g.n]  # per node; the cores below leave shared tensors out (still sound)
    cores = _disjoint_cores(problem, cand, soft_of, (weights, caps) if hw.constraints.memory else None)
    info["lower_bound"] = forced + len(cores)
    if cfg.local_search_max > 0:
        local = _certified_local(problem, cand, lo, hi, cores, soft, cfg.local_search_max)
        if local is not None:  # as many changes as the lower bound: optimal without Z3
            info["engine"] = "local"
            return RepairResult(local, "optimal", int((local != cand).sum()), time.perf_counter() - t0, "local",
                                exact, info)

    def give_up(reason: str, message: str) -> RepairResult:
        info["reason"], info["message"] = reason, message
        return RepairResult(None, "unknown", None, time.perf_counter() - t0, "z3", exact, info)

    z3.set_param("memory_max_size", int(cfg.max_memory_mb))
    try:
        out, enc = _run_engines(problem, cand, lo, hi, soft, cores, cfg, budget, info)
    except z3.Z3Exception as e:  # Z3 reports running out of memory as an error of the call
        text = str(e)
        if "memory" not in text.lower():
            raise
        return give_up("memory", f"{_MESSAGES['memory'].format(cfg=cfg)}: {text}")
    if enc is not None:
        exact = enc.exact_memory
    if out.partition is not None:
        p = out.partition
        if not problem.is_valid(p):  # defensive: the encoding must agree with the checker
            raise AssertionError("Z3 repair produced an invalid partition; please report this bug")
        changes = int((p != cand).sum())
        if changes != out.cost + forced:  # the engine's cost and the decoded solution must agree
            raise AssertionError(f"repair cost mismatch ({changes} != {out.cost + forced}); please report")
        if out.status == "feasible":
            info["reason"] = out.reason
            detail = info.get("message") if out.reason == "formula too large" else None  # the sizes
            info["message"] = ((detail or _MESSAGES.get(out.reason, out.reason).format(cfg=cfg))
                               + "; the best solution found is not proven minimal")
        return RepairResult(p, out.status, changes, time.perf_counter() - t0, out.source, exact, info)
    if out.status == "infeasible":
        if exact:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", True, info)
        # Rounded memory sizes: only an over-approximation can prove infeasibility.
        r, why = _sat_relaxed(problem, lo, hi, cfg, budget)
        if r == -1:
            return RepairResult(None, "infeasible", None, time.perf_counter() - t0, "z3", False, info)
        if r == 0:
            return give_up(why, _MESSAGES.get(why, why).format(cfg=cfg) + " while proving infeasibility")
        return give_up("unsatisfiable only with memory sizes rounded",
                       "unsatisfiable with memory sizes rounded up, satisfiable with them rounded down")
    if out.reason == "formula too large":
        return give_up(out.reason, info.pop("message"))
    return give_up(out.reason, _MESSAGES.get(out.reason, out.reason).format(cfg=cfg))
