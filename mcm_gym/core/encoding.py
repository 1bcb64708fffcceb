"""The solver's view of a partition: per-node chip bounds and the Z3 pseudo-Boolean order encoding.

Used by the repair (:mod:`mcm_gym.core.repair`) and the exact search (:mod:`mcm_gym.search.exact`).
Works on a graph, a hardware profile and the memory demand per node (bytes); every enabled
constraint encodes itself through :class:`Encoding`'s ``add_*`` methods.
"""

from __future__ import annotations

import math
import re
from functools import reduce
from typing import Any

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware

__all__ = ["node_bounds", "Encoding"]


# ------------------------------------------------------------------------------ bounds
def node_bounds(graph: Graph, hardware: Hardware, mem_demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earliest and latest feasible chip per node, shape ``(n,)`` each (``lo > hi`` means infeasible).

    Under ``dataflow`` and ``memory``: the ancestors of ``v`` (and ``v``) sit on chips ``0..p[v]``, so
    their memory must fit in those chips' SRAM; its descendants sit on ``p[v]..K-1``. Under
    ``neighbor_only`` with ``dataflow``, ``p[v] <= p[u] + dist(u, v)`` gives nothing without a fixed
    source, so it adds no bound here.
    """
    g, hw = graph, hardware
    k = hw.num_chips
    lo = np.zeros(g.n, dtype=np.int64)
    hi = np.full(g.n, k - 1, dtype=np.int64)
    cons = hw.constraints
    too_big = mem_demand > hw.sram_bytes.max() if cons.memory else np.zeros(g.n, bool)
    if cons.memory and cons.dataflow:
        reach = g.reach.astype(np.float64)
        anc = reach.T @ mem_demand  # memory of ancestors incl. self
        desc = reach @ mem_demand
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
    """Z3 order encoding of a partition, restricted to per-node chip bounds.

    The formula is written as SMT-LIB2 text and parsed by Z3 in one call: building it through Z3's
    Python expression API costs several times the solve itself on BERT-size graphs. Literals are
    ``True``/``False`` (folded away) or SMT-LIB strings.
    """

    def __init__(self, graph: Graph, hardware: Hardware, mem_demand: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, pb_units: int, relaxed: bool = False) -> None:
        self.graph = graph
        self.hardware = hardware
        self.mem_demand = mem_demand
        self.k = hardware.num_chips
        self.lo, self.hi = lo.tolist(), hi.tolist()
        self.pb_units = pb_units
        self.relaxed = relaxed
        self.exact_memory = True
        self.decls: list[str] = []
        self.asserts: list[str] = []
        for v in range(self.graph.n):
            lo_v, hi_v = self.lo[v], self.hi[v]
            for c in range(lo_v, hi_v):  # y{v}_{c} = (p[v] <= c)
                self.decls.append(f"(declare-const y{v}_{c} Bool)")
                if c > lo_v:
                    self.asserts.append(f"(assert (or (not y{v}_{c - 1}) y{v}_{c}))")
            for c in range(lo_v, hi_v + 1):  # x{v}_{c} = (p[v] == c), defined from y
                self.decls.append(f"(declare-const x{v}_{c} Bool)")
                yc, yp = self.Y(v, c), self.Y(v, c - 1)
                self._clause([f"(not x{v}_{c})", yc])
                self._clause([f"(not x{v}_{c})", self._neg(yp)])
                self._clause([self._neg(yc), yp, f"x{v}_{c}"])

    def Y(self, v: int, c: int) -> bool | str:  # noqa: N802 - math notation
        """The literal ``p[v] <= c`` (a constant outside ``v``'s bounds)."""
        if c < self.lo[v]:
            return False
        if c >= self.hi[v]:
            return True
        return f"y{v}_{c}"

    def X(self, v: int, c: int) -> bool | str:  # noqa: N802
        """The literal ``p[v] == c`` (False outside ``v``'s bounds)."""
        if c < self.lo[v] or c > self.hi[v]:
            return False
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
        for c in range(self.lo[v], self.hi[u] - d):  # elsewhere the clause is trivially true
            self._clause([self._neg(self.Y(v, c)), self.Y(u, c + d)])

    def add_not_increasing(self, u: int, v: int, w: int) -> None:
        """not ``p[u] < p[v] < p[w]``: ``p[v] == j`` implies ``p[u] >= j`` or ``p[w] <= j``."""
        for j in range(self.lo[v], self.hi[v] + 1):
            self._clause([self._neg(self.X(v, j)), self._neg(self.Y(u, j - 1)), self.Y(w, j)])

    def add_memory(self) -> None:
        hw = self.hardware
        weights, caps, exact = _scale(self.mem_demand, hw.sram_bytes, self.pb_units,
                                      relaxed=self.relaxed)
        self.exact_memory = exact
        for c in range(self.k):
            terms = [(f"x{v}_{c}", weights[v]) for v in range(self.graph.n)
                     if weights[v] > 0 and self.lo[v] <= c <= self.hi[v]]
            if not terms or sum(w for _, w in terms) <= caps[c]:
                continue
            coeffs = " ".join(str(w) for _, w in terms)
            lits = " ".join(x for x, _ in terms)
            self.asserts.append(f"(assert ((_ pble {caps[c]} {coeffs}) {lits}))")

    def add_contiguous(self) -> None:
        for c in range(self.k):
            self.decls.append(f"(declare-const used{c} Bool)")
            on_c = [f"x{v}_{c}" for v in range(self.graph.n) if self.lo[v] <= c <= self.hi[v]]
            for lit in on_c:
                self._clause([f"(not {lit})", f"used{c}"])
            self._clause([f"(not used{c})", *on_c])
            if c + 1 < self.k:
                self._clause([f"(not used{c + 1})", f"used{c}"])

    def text(self) -> str:
        return "\n".join(self.decls + self.asserts)

    def decode(self, model: Any) -> np.ndarray:
        # One call for the whole model: iterating Z3 model objects from Python is slow.
        true = set(re.findall(r"\(define-fun (x\d+_\d+) \(\) Bool\s+true\)", model.sexpr()))
        p = np.array(self.lo, dtype=np.int64)  # a node with a single allowed chip may be absent
        for name in true:
            v, c = name[1:].split("_")
            p[int(v)] = int(c)
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
