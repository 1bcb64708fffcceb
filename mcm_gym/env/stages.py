"""The stage-ends action of ``MCMPartition-v0`` (``mode="stages"``): masks and the shaping potential.

Nodes are in the graph's topological order. Step ``c`` closes the stage of chip ``c``: action ``a``
puts nodes ``start..a`` (inclusive) on chip ``c``. A split of the order into contiguous stages holds
dataflow and contiguity by construction; :class:`StageMasker` rules out, for chip ``c``, the stage
ends that break memory (bytes: the nodes' demand plus each shared tensor once per chip), that leave
more bytes than the later chips hold in total (a necessary condition), or that break
``neighbor_only`` / ``triangle`` through an edge from an earlier stage.
"""

from __future__ import annotations

import numpy as np

from mcm_gym.core.problem import Problem

__all__ = ["StageMasker", "STAGE_RELAXATIONS", "STAGE_REWARDS"]

#: The parts of the stage mask dropped one by one, in this order, while it allows nothing; after the
#: last, only ``a = n - 1`` (the rest of the graph on this chip) is left, for the repair to fix.
STAGE_RELAXATIONS = ("triangle", "neighbor_only", "remaining")

#: ``reward`` choices of stages mode: ``final`` (0 until the last step, then the score) and
#: ``shaped`` (the default; potential-based, see :meth:`StageMasker.potential`; the return is the score).
STAGE_REWARDS = ("final", "shaped")

_REL = 1e-12  # relative slack on byte comparisons, on the safe side (a borderline fit is ruled out)


class StageMasker:
    """Stage-end masks for one problem; per-instance tables are built once, each mask is O(n + S + T + E)
    numpy work (``S`` shared tensors, ``T`` triangles, ``E`` edges)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        g, hw = problem.graph, problem.hardware
        self.n, self.k = g.n, hw.num_chips
        names = {c.name for c in problem.constraints}
        self.memory = "memory" in names
        self.neighbor_only = "neighbor_only" in names
        self.triangle = "triangle" in names
        self.sram = hw.sram_bytes.astype(np.float64)  # bytes per chip
        self.sram_after = np.r_[np.cumsum(self.sram[::-1])[::-1][1:], 0.0]  # bytes on chips c+1..K-1
        self.demand = problem.mem_demand.astype(np.float64)  # bytes per node, shared tensors excluded
        self.shared_t, self.shared_v = (np.asarray(x, dtype=np.int64) for x in g.shared_pairs)
        self.shared_bytes = g.shared_bytes
        # bytes the nodes after a need at least, for every a: their demand plus each shared tensor
        # one of them reads, once (a tensor split over chips needs more)
        last = np.full(self.shared_bytes.size, -1, dtype=np.int64)
        np.maximum.at(last, self.shared_t, self.shared_v)
        shared_done = np.cumsum(np.bincount(last[last >= 0], weights=self.shared_bytes[last >= 0],
                                            minlength=self.n))[: self.n] if self.shared_bytes.size else 0.0
        self.rest_bytes = (self.demand.sum() - np.cumsum(self.demand)) + (self.shared_bytes.sum() - shared_done)
        self.edge_src, self.edge_dst = g.edge_src, g.edge_dst
        self.triangles = g.triangles if self.triangle else np.zeros((0, 3), dtype=np.int64)
        self.tmin = problem.cost.node_time.min(axis=1)  # s per node on its fastest chip
        self.work_after = self.tmin[::-1].cumsum()[::-1]  # s of nodes start..n-1

    def stage_bytes(self, start: int) -> np.ndarray:
        """Bytes of a chip holding nodes ``start..a``, for every ``a`` in ``start..n-1``, shape ``(n - start,)``."""
        add = self.demand[start:].copy()
        if self.shared_bytes.size:
            sel = self.shared_v >= start
            first = np.full(self.shared_bytes.size, self.n, dtype=np.int64)
            np.minimum.at(first, self.shared_t[sel], self.shared_v[sel])
            used = first < self.n
            np.add.at(add, first[used] - start, self.shared_bytes[used])
        return np.cumsum(add)

    def parts(self, chip: int, start: int) -> dict[str, np.ndarray]:
        """The stage mask's parts for ``chip`` starting at node ``start``: each a bool array over the
        ends ``a = start..n-1``."""
        ends = np.arange(start, self.n)
        out: dict[str, np.ndarray] = {}
        if chip >= self.k - 1:
            out["last"] = ends == self.n - 1
        if self.memory:
            out["memory"] = self.stage_bytes(start) * (1 + _REL) <= self.sram[chip]
            out["remaining"] = self.rest_bytes[ends] * (1 - _REL) <= self.sram_after[chip] * (1 + _REL)
            out["remaining"] |= ends == self.n - 1
        if self.neighbor_only and start > 0:
            before = self.edge_src < start
            reach = int(self.edge_dst[before].max()) if before.any() else -1
            out["neighbor_only"] = ends >= reach  # every edge from an earlier stage ends in this one
        if self.triangle and self.triangles.size and start > 0:
            t = self.triangles
            open_ = (t[:, 0] < start) & (t[:, 1] >= start)  # u placed earlier, v not yet: w must join v
            diff = np.zeros(self.n - start + 1, dtype=np.int64)
            np.add.at(diff, t[open_, 1] - start, 1)
            np.add.at(diff, t[open_, 2] - start, -1)
            out["triangle"] = np.cumsum(diff)[:-1] == 0  # no end a with v <= a < w
        return out

    def mask(self, chip: int, start: int, length: int) -> tuple[np.ndarray, int]:
        """The allowed ends ``(length,)`` (bool, indexed by node) for ``chip`` from node ``start``, and the
        number of relaxations it took (:data:`STAGE_RELAXATIONS`; one more when only ``n - 1`` is left)."""
        parts = self.parts(chip, start)
        full = np.zeros(length, dtype=bool)

        def combine() -> np.ndarray:
            allowed = np.ones(self.n - start, dtype=bool)
            for m in parts.values():
                allowed &= m
            return allowed

        allowed = combine()
        relaxed = 0
        for drop in STAGE_RELAXATIONS:
            if allowed.any():
                break
            if parts.pop(drop, None) is not None:
                relaxed += 1
                allowed = combine()
        if not allowed.any():
            relaxed += 1
            allowed[-1] = True
        full[start: self.n] = allowed
        return full, relaxed

    def potential(self, work: np.ndarray, chip: int, start: int) -> float:
        """Estimated score ``lower_bound / bottleneck`` (in (0, 1]) once chips ``0..chip-1`` are closed and
        nodes ``start..`` remain: the bottleneck is at least the closed chips' compute times (``work``,
        s per chip), the rest's fastest work spread evenly over the chips left, and the lower bound.
        Links and memory are left out (the final score counts them)."""
        lb = self.problem.lower_bound
        if lb <= 0:
            return 1.0
        est = max(lb, float(work[:chip].max()) if chip else 0.0)
        if start < self.n and chip < self.k:
            est = max(est, float(self.work_after[start]) / (self.k - chip))
        return lb / est
