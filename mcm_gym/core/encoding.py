"""The solver's view of a partition: per-node chip bounds and the Z3 pseudo-Boolean order encoding.

Used by the repair (:mod:`mcm_gym.core.repair`) and the exact search (:mod:`mcm_gym.search.exact`).
Works on a graph, a hardware profile and the memory demand per node (bytes); every enabled
constraint encodes itself through :class:`Encoding`'s ``add_*`` methods. :func:`interruptible`
runs a blocking Z3 call so that Ctrl-C stops it and propagates as ``KeyboardInterrupt``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any, TypeVar

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware

__all__ = ["node_bounds", "Encoding", "formula_size", "interruptible", "run_interruptible", "memory_units"]

T = TypeVar("T")


# ------------------------------------------------------------------------------ bounds
def node_bounds(graph: Graph, hardware: Hardware, mem_demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earliest and latest feasible chip per node, shape ``(n,)`` each (``lo > hi`` means infeasible).

    Under ``dataflow`` and ``memory``: the ancestors of ``v`` (and ``v``) sit on chips ``0..p[v]``, so
    their memory (bytes) must fit in those chips' SRAM; its descendants sit on ``p[v]..K-1``. Under
    ``neighbor_only`` with ``dataflow``, ``p[v] <= p[u] + dist(u, v)`` gives nothing without a fixed
    source, so it adds no bound here. The ancestor and descendant sums are exact
    (:meth:`Graph.reach_sums`, bitsets: no ``n x n`` matrix).
    """
    g, hw = graph, hardware
    k = hw.num_chips
    lo = np.zeros(g.n, dtype=np.int64)
    hi = np.full(g.n, k - 1, dtype=np.int64)
    cons = hw.constraints
    # Alone on a chip a node needs its own demand and the shared tensors it reads. The ancestor and
    # descendant sums below leave shared tensors out: a lower bound, so the bounds stay sound.
    alone = mem_demand + g.shared_read_bytes
    too_big = alone > hw.sram_bytes.max() if cons.memory else np.zeros(g.n, bool)
    if cons.memory and cons.dataflow:
        anc, desc = g.reach_sums(mem_demand)  # memory of ancestors / descendants incl. self (bytes)
        pre = np.cumsum(hw.sram_bytes)  # chips 0..c
        suf = np.cumsum(hw.sram_bytes[::-1])[::-1]  # chips c..K-1
        tol = 1e-9 * max(1.0, float(pre[-1]))
        lo = np.searchsorted(pre, anc - tol, side="left").astype(np.int64)
        hi = (np.searchsorted(-suf, -desc + tol, side="right") - 1).astype(np.int64)
    hi = np.minimum(hi, k - 1)
    lo[too_big] = k  # no chip can hold it
    return lo, hi


def formula_size(graph: Graph, hardware: Hardware, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int]:
    """An upper estimate of the size of :class:`Encoding`'s formula for these bounds, before it is
    built: ``(variables, literal occurrences)``. Used to refuse formulas too large for Z3's memory
    cap (Z3 cannot recover from running out of memory while parsing)."""
    cons = hardware.constraints
    width = np.maximum(hi - lo + 1, 0).astype(np.int64)  # x literals per node
    n_vars = int(2 * width.sum())
    pinned = int((width == 1).sum())  # one declared, asserted literal each; folded elsewhere
    lits = int(9 * width.sum()) - 8 * pinned  # order chain and one-hot definitions: 9w - 10 per node
    src, dst = graph.edge_src, graph.edge_dst
    span = np.maximum(hi[src] - lo[dst], 0)  # clauses per edge of p[u] <= p[v] (+ d)
    per_edge = int(cons.dataflow) + int(cons.neighbor_only)
    lits += int(2 * per_edge * span.sum())
    if cons.memory:
        lits += int(width.sum())
        if graph.shared:  # held-on-chip literals and their implications
            users = graph.shared_pairs[1]
            lits += int(3 * width[users].sum())
            n_vars += int(width[users].sum())
    if cons.contiguous:
        lits += int(3 * width.sum())
        n_vars += hardware.num_chips
    if cons.triangle:
        lits += int(3 * (width[graph.triangles[:, 1]].sum() if graph.triangles.size else 0))
    return n_vars, lits


# ------------------------------------------------------------------------------ solver calls
#: How often (s) :func:`run_interruptible` repeats its stop while the interrupted call has not returned.
STOP_REPEAT_S = 0.05


def run_interruptible(call: Callable[[], T], stop: Callable[[], object]) -> T:
    """``call()`` (one blocking solver call) run so that Ctrl-C stops it: the call runs in a helper
    thread while this one waits, and a ``KeyboardInterrupt`` (or any exception) arriving here calls
    ``stop()`` (which makes the solver return; repeated every :data:`STOP_REPEAT_S` until it does,
    since a stop that comes before the solver has started is lost), waits for the call to return and
    propagates. A second Ctrl-C while it waits propagates at once and leaves the thread behind.
    Exceptions raised by ``call`` propagate too."""
    box: dict[str, Any] = {}
    done = threading.Event()  # not Thread.join: CPython 3.11 reports an interrupted join's thread as ended

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    th = threading.Thread(target=target, name="solver-call", daemon=True)
    try:
        th.start()
        done.wait()
    except BaseException:
        if th.ident is not None:  # started: stop it and wait (a thread that never started never sets done)
            stop()
            while not done.wait(STOP_REPEAT_S):
                stop()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def interruptible(ctx: Any, call: Callable[[], T]) -> T:
    """``call()`` (one blocking Z3 call on the ``z3.Context`` ``ctx``, e.g. a ``check``) under
    :func:`run_interruptible`, stopped with ``ctx.interrupt()``.

    The solver must have Z3's own Ctrl-C handling off (``ctrl_c=False``): otherwise Z3 swallows
    SIGINT and reports a cancelled call as ``unknown``, which a caller would mistake for an
    exhausted budget."""
    return run_interruptible(call, ctx.interrupt)


# ------------------------------------------------------------------------------ encoding
class Encoding:
    """Z3 order encoding of a partition, restricted to per-node chip bounds.

    Variables: ``y{v}_{c}`` means ``p[v] <= c`` (for ``lo[v] <= c < hi[v]``), ``x{v}_{c}`` means
    ``p[v] == c`` (for ``lo[v] <= c <= hi[v]``, defined from ``y`` in both directions).

    The formula is written as SMT-LIB2 text and parsed by Z3 in one call: building it through Z3's
    Python expression API costs several times the solve itself on BERT-size graphs. Literals are
    ``True``/``False`` (folded away) or SMT-LIB strings. Clauses (:meth:`cnf_text`) and
    pseudo-Boolean constraints (:meth:`pb_text`) are kept apart: Z3's SAT solver takes a pure
    clause set without its preprocessing, which costs more than the solve on mesh-size formulas.
    """

    def __init__(self, graph: Graph, hardware: Hardware, mem_demand: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, pb_units: int, relaxed: bool = False) -> None:
        self.graph = graph
        self.hardware = hardware
        self.mem_demand = mem_demand
        self.k = hardware.num_chips
        self.lo: list[int] = [int(x) for x in lo]
        self.hi: list[int] = [int(x) for x in hi]
        self.pb_units = pb_units
        self.relaxed = relaxed
        self.exact_memory = True
        self.decls: list[str] = []
        self.asserts: list[str] = []  # clauses only
        self.pb_asserts: list[str] = []  # pseudo-Boolean / cardinality constraints
        decls, asserts = self.decls, self.asserts
        for v in range(self.graph.n):
            lo_v, hi_v = self.lo[v], self.hi[v]
            if lo_v > hi_v:
                asserts.append("(assert false)")
                continue
            ys = [f"y{v}_{c}" for c in range(lo_v, hi_v)]
            xs = [f"x{v}_{c}" for c in range(lo_v, hi_v + 1)]
            decls += [f"(declare-const {y} Bool)" for y in ys]
            decls += [f"(declare-const {x} Bool)" for x in xs]
            if not ys:  # a single allowed chip
                asserts.append(f"(assert {xs[0]})")
                continue
            asserts += [f"(assert (or (not {a}) {b}))" for a, b in zip(ys, ys[1:], strict=False)]
            # x = y[c] and not y[c-1]; y[hi] is True and y[lo-1] False.
            asserts += [f"(assert (or (not {x}) {y}))" for x, y in zip(xs, ys, strict=False)]
            asserts += [f"(assert (or (not {x}) (not {y})))" for x, y in zip(xs[1:], ys, strict=True)]
            asserts.append(f"(assert (or (not {ys[0]}) {xs[0]}))")
            asserts += [f"(assert (or (not {ys[i]}) {ys[i - 1]} {xs[i]}))" for i in range(1, len(ys))]
            asserts.append(f"(assert (or {ys[-1]} {xs[-1]}))")

    def Y(self, v: int, c: int) -> bool | str:  # noqa: N802 - math notation
        """The literal ``p[v] <= c`` (a constant outside ``v``'s bounds)."""
        if c < self.lo[v]:
            return False
        if c >= self.hi[v]:
            return True
        return f"y{v}_{c}"

    def X(self, v: int, c: int) -> bool | str:  # noqa: N802
        """The literal ``p[v] == c`` (False outside ``v``'s bounds, True when they pin ``v`` to ``c``;
        a pinned node's ``x`` is still declared and asserted, so the name exists)."""
        if c < self.lo[v] or c > self.hi[v]:
            return False
        if self.lo[v] == self.hi[v]:
            return True
        return f"x{v}_{c}"

    @staticmethod
    def _neg(lit: bool | str) -> bool | str:
        if isinstance(lit, bool):
            return not lit
        return lit[5:-1] if lit.startswith("(not ") else f"(not {lit})"

    def _clause(self, lits: list[bool | str]) -> None:
        if any(lit is True for lit in lits):
            return
        kept = [lit for lit in lits if lit is not False]
        if not kept:
            self.asserts.append("(assert false)")
        elif len(kept) == 1:
            self.asserts.append(f"(assert {kept[0]})")
        else:
            self.asserts.append(f"(assert (or {' '.join(kept)}))")  # type: ignore[arg-type]

    def add_leq(self, u: int, v: int, d: int) -> None:
        """``p[u] <= p[v] + d``: for every c, ``p[v] <= c`` implies ``p[u] <= c + d``."""
        lo_v, hi_v, lo_u, hi_u = self.lo[v], self.hi[v], self.lo[u], self.hi[u]
        # Elsewhere the clause is trivially true; where both literals are variables, write it at once.
        c0, c1 = max(lo_v, lo_u - d), min(hi_v, hi_u - d)
        for c in range(lo_v, min(c0, hi_u - d)):
            self._clause([self._neg(self.Y(v, c)), self.Y(u, c + d)])
        if c0 < c1:
            self.asserts += [f"(assert (or (not y{v}_{c}) y{u}_{c + d}))" for c in range(c0, c1)]
        for c in range(max(c0, c1), hi_u - d):
            self._clause([self._neg(self.Y(v, c)), self.Y(u, c + d)])

    def add_not_increasing(self, u: int, v: int, w: int) -> None:
        """not ``p[u] < p[v] < p[w]``: ``p[v] == j`` implies ``p[u] >= j`` or ``p[w] <= j``."""
        for j in range(self.lo[v], self.hi[v] + 1):
            self._clause([self._neg(self.X(v, j)), self._neg(self.Y(u, j - 1)), self.Y(w, j)])

    def add_memory(self) -> None:
        """Per chip ``c``: ``sum_v weight[v] * x[v][c] + sum_s shared[s] * h[s][c] <= capacity[c]``
        (integer units, see :attr:`pb_weights`, :attr:`pb_caps`), one ``pble`` per chip that could
        overflow. ``h{s}_{c}`` (shared tensor ``s`` is held on chip ``c``) is implied by every user of
        ``s`` on ``c``; a tensor with one possible user on ``c`` adds its weight to that user's ``x``."""
        hw, g = self.hardware, self.graph
        n = g.n
        weights, caps, exact = memory_units(np.concatenate([self.mem_demand, g.shared_bytes]), hw.sram_bytes,
                                            self.pb_units, relaxed=self.relaxed)
        self.exact_memory = exact
        self.pb_weights, self.pb_caps = weights[:n], caps
        lo, hi = self.lo, self.hi
        heavy = [v for v in range(n) if weights[v] > 0]
        pinned_on: list[int] = [0] * self.k  # units of the nodes pinned to each chip (constants)
        for v in heavy:
            if lo[v] == hi[v]:
                pinned_on[lo[v]] += weights[v]
        free_on: list[list[int]] = [[] for _ in range(self.k)]  # heavy nodes that may go on each chip
        for v in heavy:
            if lo[v] < hi[v]:
                for c in range(lo[v], hi[v] + 1):
                    free_on[c].append(v)
        for c in range(self.k):
            coef = {f"x{v}_{c}": weights[v] for v in free_on[c]}
            fixed = pinned_on[c]
            for s, us in enumerate(g.shared_users):
                w = weights[n + s]
                on_c = [v for v in us if lo[v] <= c <= hi[v]]
                if w <= 0 or not on_c:
                    continue
                if any(lo[v] == hi[v] for v in on_c):  # a pinned user holds it there
                    fixed += w
                    continue
                if len(on_c) == 1:
                    lit = f"x{on_c[0]}_{c}"
                    coef[lit] = coef.get(lit, 0) + w
                    continue
                held = f"h{s}_{c}"
                self.decls.append(f"(declare-const {held} Bool)")
                self.asserts += [f"(assert (or (not x{v}_{c}) {held}))" for v in on_c]
                coef[held] = w
            cap = caps[c] - fixed
            if cap < 0:
                self.asserts.append("(assert false)")  # the pinned nodes alone overflow chip c
                continue
            terms = list(coef.items())
            if not terms or sum(w for _, w in terms) <= cap:
                continue
            coeffs = " ".join(str(w) for _, w in terms)
            lits = " ".join(x for x, _ in terms)
            self.pb_asserts.append(f"(assert ((_ pble {cap} {coeffs}) {lits}))")

    def add_contiguous(self) -> None:
        lo, hi = self.lo, self.hi
        pinned = np.zeros(self.k, dtype=bool)  # some node is pinned to the chip: it is used
        may: list[list[int]] = [[] for _ in range(self.k)]  # nodes that may go on each chip
        for v in range(self.graph.n):
            if lo[v] == hi[v] < self.k:
                pinned[lo[v]] = True
            for c in range(lo[v], min(hi[v], self.k - 1) + 1):
                may[c].append(v)
        for c in range(self.k):
            self.decls.append(f"(declare-const used{c} Bool)")
            if pinned[c]:
                self.asserts.append(f"(assert used{c})")
            else:
                on_c = [f"x{v}_{c}" for v in may[c]]
                self.asserts += [f"(assert (or (not {lit}) used{c}))" for lit in on_c]
                self._clause([f"(not used{c})", *on_c])
            if c + 1 < self.k:
                self._clause([f"(not used{c + 1})", f"used{c}"])

    def cnf_text(self) -> str:
        """Declarations and clauses (SMT-LIB2)."""
        return "\n".join(self.decls + self.asserts)

    def pb_text(self) -> str:
        """The pseudo-Boolean constraints (SMT-LIB2), to be read after :meth:`cnf_text`."""
        return "\n".join(self.pb_asserts)

    def text(self) -> str:
        """The whole formula (SMT-LIB2)."""
        return "\n".join(self.decls + self.asserts + self.pb_asserts)

    def decode(self, model: Any, fixed: Mapping[int, int] | None = None) -> np.ndarray:
        """The chip of every node, shape ``(n,)``, from a Z3 model of this formula.

        ``fixed`` maps nodes whose chip is already known (e.g. whose ``x`` literal was assumed true
        in the satisfiable call) to it; every other node's chip is found by a binary search over
        its ``y`` literals, evaluated one at a time through Z3's C API (printing the whole model and
        parsing it cost more than the solve on meshes)."""
        true = _evaluator(model)
        p = np.array(self.lo, dtype=np.int64)
        fixed = fixed or {}
        for v in range(self.graph.n):
            if v in fixed:
                p[v] = fixed[v]
                continue
            a, b = self.lo[v], self.hi[v]  # p[v] in [a, b]; y[v][b] is True
            while a < b:
                mid = (a + b) // 2
                if true(f"y{v}_{mid}"):
                    b = mid
                else:
                    a = mid + 1
            p[v] = a
        return p

    @staticmethod
    def true_literals(model: Any, names: list[str]) -> list[bool]:
        """Whether each named Boolean constant is true in the Z3 model (absent ones are false)."""
        true = _evaluator(model)
        return [true(name) for name in names]


def _evaluator(model: Any) -> Callable[[str], bool]:
    """``name -> bool``: the value of a Boolean constant in a Z3 model (model completion on), through
    the C API: a constant is made, evaluated and dropped at once (Z3 keeps the last result of each
    call alive until the next one)."""
    from z3 import BoolSort, z3core

    ctx = model.ctx
    cref, mref = ctx.ref(), model.model
    sort = BoolSort(ctx)
    out = (z3core.Ast * 1)()

    def true(name: str) -> bool:
        const = z3core.Z3_mk_const(cref, z3core.Z3_mk_string_symbol(cref, name), sort.ast)
        if not z3core.Z3_model_eval(cref, mref, const, True, out):
            raise RuntimeError(f"Z3 could not evaluate {name} in the model")
        return bool(z3core.Z3_get_bool_value(cref, out[0]) == 1)

    return true


def memory_units(dem: np.ndarray, cap: np.ndarray, units: int,
                 relaxed: bool = False) -> tuple[list[int], list[int], bool]:
    """Integer pseudo-Boolean weights per node and capacities per chip from bytes (``dem``, ``cap``),
    and whether they are exact: bytes divided by their GCD when that leaves at most ``units`` per
    chip; otherwise rounded to ``max(cap) / units`` bytes, weights up and capacities down (or, with
    ``relaxed``, the other way: an over-approximation that proves infeasibility soundly)."""
    vals = np.concatenate([dem[dem > 0], cap])
    if np.all(np.equal(np.mod(vals, 1), 0)):
        g = reduce(math.gcd, (int(x) for x in vals), 0) or 1
        if cap.max() / g <= units:
            return [int(x) // g for x in dem], [int(x) // g for x in cap], True
    unit = float(cap.max()) / units
    if relaxed:  # an over-approximation of the feasible set: proves infeasibility soundly
        return [math.floor(x / unit) for x in dem], [math.ceil(x / unit) for x in cap], False
    return [math.ceil(x / unit) for x in dem], [math.floor(x / unit) for x in cap], False
