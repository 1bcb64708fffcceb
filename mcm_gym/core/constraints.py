"""The five constraint families of a valid partition (DESIGN section 4).

Each :class:`Constraint` can

(a) count violations on a batch and name every violation of one partition (:meth:`count`,
    :meth:`explain`),
(b) encode itself for the Z3 repair (:meth:`encode`, over the one-hot / order encoding of
    :class:`mcm_gym.core.encoding.Encoding`),
(c) tell the sequential environment which chips it rules out for the next node, from what is
    already placed (:meth:`mask`). Masks are local. ``dataflow``, ``neighbor_only`` and ``triangle``
    never rule out a chip that some valid completion needs. ``contiguous`` opens chips in the order
    of the nodes (chip ``c + 1`` only once chip ``c`` is used): partitions where a later, independent
    node opens a lower chip are not reachable through the mask (they are for the repair and for
    ``oneshot``). ``memory`` checks the chip's free SRAM and that the node's descendants still fit on
    the chips from there on; bin packing can still strand a later node.

``neighbor_only`` and ``triangle`` are this project's reading of the paper's "no skipping on links"
and "chip triangle dependency" terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware

__all__ = ["Violation", "Constraint", "CONSTRAINTS", "active_constraints", "PlacementState", "EncodingSink"]


class EncodingSink(Protocol):
    """The solver encoding a constraint writes itself into (:class:`mcm_gym.core.encoding.Encoding`):
    clauses over ``p[v]``, the chip of node ``v``."""

    graph: Graph

    def add_leq(self, u: int, v: int, d: int) -> None:
        """``p[u] <= p[v] + d``."""

    def add_not_increasing(self, u: int, v: int, w: int) -> None:
        """not ``p[u] < p[v] < p[w]``."""

    def add_memory(self) -> None:
        """Per chip, the memory demand placed there fits its SRAM."""

    def add_contiguous(self) -> None:
        """The used chips are ``0..m-1``."""


@dataclass(frozen=True)
class Violation:
    constraint: str
    message: str
    nodes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.constraint}] {self.message}"


class PlacementState:
    """What the sequential environment has placed so far (nodes in topological order)."""

    def __init__(self, graph: Graph, hardware: Hardware, mem_demand: np.ndarray) -> None:
        self.graph = graph
        self.hardware = hardware
        self.mem_demand = mem_demand
        k = hardware.num_chips
        self.assign = np.full(graph.n, -1, dtype=np.int64)
        self.mem_used = np.zeros(k)
        self.max_used = -1
        # Memory of each node and all its descendants (bytes), shape (n,): under dataflow they all go
        # on or after the node's chip, so the free SRAM there must hold them. Exact sums from bitsets
        # (Graph.reach_sums), cached on the graph: no n x n matrix at each reset.
        # Shared tensors are left out of it (a lower bound, so the mask never rules out a valid chip).
        self.desc_demand: np.ndarray = graph.reach_sums(mem_demand)[1]
        self.shared_bytes = graph.shared_bytes
        self.shared_on = np.zeros((len(graph.shared), k), dtype=bool)  # tensor s already on chip c

    def extra_shared(self, v: int) -> np.ndarray:
        """Bytes of the shared tensors ``v`` reads that each chip does not hold yet, shape ``(K,)``."""
        ts = list(self.graph.node_shared[v])
        if not ts:
            return np.zeros(self.hardware.num_chips)
        return self.shared_bytes[ts] @ ~self.shared_on[ts]

    def place(self, v: int, chip: int) -> None:
        self.assign[v] = chip
        if 0 <= chip < self.hardware.num_chips:
            self.mem_used[chip] += self.mem_demand[v]
            ts = list(self.graph.node_shared[v])
            if ts:
                self.mem_used[chip] += float(self.shared_bytes[ts] @ ~self.shared_on[ts, chip])
                self.shared_on[ts, chip] = True
            self.max_used = max(self.max_used, chip)


class Constraint:
    name: str = ""

    def count(self, g: Graph, hw: Hardware, p: np.ndarray, mem: np.ndarray) -> np.ndarray:
        """Violations per partition of a batch ``p`` (B, n); ``mem`` is bytes per chip (B, K)."""
        raise NotImplementedError

    def explain(self, g: Graph, hw: Hardware, p: np.ndarray, mem: np.ndarray) -> list[Violation]:
        """Every violation of one partition ``p`` (n,); ``mem`` (K,)."""
        raise NotImplementedError

    def encode(self, enc: EncodingSink) -> None:
        raise NotImplementedError

    def mask(self, st: PlacementState, v: int) -> np.ndarray:
        """Chips (K,) that placing node ``v`` next leaves allowed."""
        return np.ones(st.hardware.num_chips, dtype=bool)


class Dataflow(Constraint):
    """Every edge u -> v has ``p[u] <= p[v]``: tensors only flow forward along the pipeline."""

    name = "dataflow"

    def count(self, g, hw, p, mem):
        return (p[:, g.edge_src] > p[:, g.edge_dst]).sum(axis=1)

    def explain(self, g, hw, p, mem):
        bad = np.flatnonzero(p[g.edge_src] > p[g.edge_dst])
        return [Violation(self.name, f"edge {g.names[u]} -> {g.names[v]} goes back from chip "
                          f"{p[u]} to chip {p[v]}", (g.names[u], g.names[v]))
                for u, v in zip(g.edge_src[bad], g.edge_dst[bad], strict=True)]

    def encode(self, enc):
        for u, v in zip(enc.graph.edge_src.tolist(), enc.graph.edge_dst.tolist(), strict=True):
            enc.add_leq(u, v, 0)

    def mask(self, st, v):
        k = st.hardware.num_chips
        preds = st.graph.preds[v]
        lo = max((st.assign[u] for u in preds), default=0)
        return np.arange(k) >= lo


class Memory(Constraint):
    """Per chip, the sum of ``weight_bytes`` (plus ``out_bytes`` with ``activation_memory``), plus each
    shared tensor one of its nodes reads (once), fits SRAM."""

    name = "memory"

    def count(self, g, hw, p, mem):
        return (mem > hw.sram_bytes[None, :]).sum(axis=1)

    def explain(self, g, hw, p, mem):
        out = []
        for c in np.flatnonzero(mem > hw.sram_bytes):
            names = tuple(g.names[v] for v in np.flatnonzero(p == c))
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} nodes)" if len(names) > 8 else "")
            out.append(Violation(self.name, f"chip {c} holds {mem[c]:.6g} bytes > SRAM "
                                 f"{hw.sram_bytes[c]:.6g} bytes: {shown}", names))
        return out

    def encode(self, enc):
        enc.add_memory()

    def mask(self, st, v):
        sram = st.hardware.sram_bytes
        ok = st.mem_used + st.mem_demand[v] + st.extra_shared(v) <= sram
        if st.hardware.constraints.dataflow:
            free_after = np.cumsum((sram - st.mem_used)[::-1])[::-1]  # free bytes on chips c..K-1
            ok &= free_after >= st.desc_demand[v] * (1 - 1e-12)
        return ok


class Contiguous(Constraint):
    """The used chips are exactly ``0..m-1``: no empty chip inside the pipeline."""

    name = "contiguous"

    def count(self, g, hw, p, mem):
        k = hw.num_chips
        used = np.zeros((p.shape[0], k), dtype=bool)
        used[np.arange(p.shape[0])[:, None], p] = True
        m = k - np.argmax(used[:, ::-1], axis=1)  # highest used chip + 1
        return m - used.sum(axis=1)  # empty chips below the highest used one

    def explain(self, g, hw, p, mem):
        used = np.zeros(hw.num_chips, dtype=bool)
        used[p] = True
        top = int(np.flatnonzero(used).max())
        return [Violation(self.name, f"chip {c} is empty but chip {top} is used")
                for c in range(top) if not used[c]]

    def encode(self, enc):
        enc.add_contiguous()

    def mask(self, st, v):
        return np.arange(st.hardware.num_chips) <= st.max_used + 1


class NeighborOnly(Constraint):
    """Every edge spans at most one chip: ``p[v] - p[u] <= 1``."""

    name = "neighbor_only"

    def count(self, g, hw, p, mem):
        return (p[:, g.edge_dst] - p[:, g.edge_src] > 1).sum(axis=1)

    def explain(self, g, hw, p, mem):
        bad = np.flatnonzero(p[g.edge_dst] - p[g.edge_src] > 1)
        return [Violation(self.name, f"edge {g.names[u]} -> {g.names[v]} skips from chip {p[u]} to "
                          f"chip {p[v]}", (g.names[u], g.names[v]))
                for u, v in zip(g.edge_src[bad], g.edge_dst[bad], strict=True)]

    def encode(self, enc):
        for u, v in zip(enc.graph.edge_src.tolist(), enc.graph.edge_dst.tolist(), strict=True):
            enc.add_leq(v, u, 1)

    def mask(self, st, v):
        preds = st.graph.preds[v]
        if not preds:
            return np.ones(st.hardware.num_chips, dtype=bool)
        return np.arange(st.hardware.num_chips) <= min(st.assign[u] for u in preds) + 1


class Triangle(Constraint):
    """For every triangle u->v, v->w, u->w: not ``p[u] < p[v] < p[w]``."""

    name = "triangle"

    def _bad(self, g: Graph, p: np.ndarray) -> np.ndarray:
        t = g.triangles
        pu, pv, pw = p[..., t[:, 0]], p[..., t[:, 1]], p[..., t[:, 2]]
        return (pu < pv) & (pv < pw)

    def count(self, g, hw, p, mem):
        if g.triangles.size == 0:
            return np.zeros(p.shape[0], dtype=np.int64)
        return self._bad(g, p).sum(axis=1)

    def explain(self, g, hw, p, mem):
        if g.triangles.size == 0:
            return []
        out = []
        for u, v, w in g.triangles[self._bad(g, p)]:
            names = (g.names[u], g.names[v], g.names[w])
            out.append(Violation(self.name, f"triangle {names[0]} -> {names[1]} -> {names[2]} spreads "
                                 f"over chips {p[u]} < {p[v]} < {p[w]}", names))
        return out

    def encode(self, enc):
        for u, v, w in enc.graph.triangles.tolist():
            enc.add_not_increasing(u, v, w)

    def mask(self, st, w):
        allowed = np.ones(st.hardware.num_chips, dtype=bool)
        for u, v in st.graph.triangles_ending_at[w]:
            if st.assign[u] < st.assign[v]:
                allowed[st.assign[v] + 1:] = False
        return allowed


CONSTRAINTS: dict[str, Constraint] = {c.name: c for c in
                                      (Dataflow(), Memory(), Contiguous(), NeighborOnly(), Triangle())}


def active_constraints(hw: Hardware) -> list[Constraint]:
    """The constraint objects the hardware profile switches on, in a fixed order."""
    return [CONSTRAINTS[name] for name in hw.constraints.enabled()]

