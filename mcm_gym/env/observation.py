"""The observation of ``MCMPartition-v0``: padded node and chip features, written by name.

Static features are computed once per instance; the dynamic ones (``placed``, ``chip``, ``current``,
``memory_used``, ``work``, ``frontier``, ``allowed``) at every step. Every feature lies in [0, 1];
the comment beside each name says how it is normalised.
"""

from __future__ import annotations

import numpy as np

from mcm_gym.core.constraints import PlacementState
from mcm_gym.core.graph import Graph
from mcm_gym.core.problem import Problem

__all__ = ["NODE_FEATURES", "CHIP_FEATURES", "ObservationBuilder", "cut_bytes", "cut_feature"]

NODE_FEATURES = (
    "time",  # fastest time of the node / lower bound (<= 1)
    "weight",  # weight_bytes / largest chip SRAM (<= 1)
    "transfer",  # out_bytes / slowest link bandwidth / lower bound, clipped to 1
    "position",  # index in the topological order / (n - 1)
    "depth",  # longest path from a source / max depth
    "in_degree",  # in-degree / 8, clipped to 1
    "out_degree",  # out-degree / 8, clipped to 1
    "work_before",  # share of total work (fastest times) of the nodes before it in the order
    "placed",  # 1 once placed (dynamic)
    "chip",  # chip placed on / (K_max - 1), 0 if not placed (dynamic)
    "current",  # 1 for the node being placed now (dynamic)
    "cut",  # bytes crossing a pipeline cut right after the node (in the order) / slowest link / lower bound,
    # clipped to 1
)
CHIP_FEATURES = (
    "exists",  # 1 for a real chip, 0 for padding up to K_max
    "sram",  # SRAM / largest SRAM
    "peak",  # peak FLOP/s / fastest chip
    "memory_used",  # bytes placed / SRAM, clipped to 1
    "work",  # compute time placed / its fair share (total work / K) / 2, clipped to 1: 0.5 = a fair share
    "frontier",  # 1 for the highest chip used so far
    "allowed",  # the action mask for the current node (stages mode: 1 for the chip whose stage is chosen)
)


def cut_bytes(g: Graph, order: np.ndarray | None = None) -> np.ndarray:
    """Bytes crossing a cut between positions ``i`` and ``i + 1`` of ``order`` (a topological order of
    node indices; None: the graph's own), for every ``i``: each tensor whose producer is at or
    before ``i`` and whose last consumer is after ``i`` (sent once)."""
    n = g.n
    pos = np.arange(n) if order is None else np.argsort(np.asarray(order, dtype=np.int64), kind="stable")
    last = np.full(n, -1, dtype=np.int64)  # by producer position: the last consumer's position
    np.maximum.at(last, pos[g.edge_src], pos[g.edge_dst])
    out = np.zeros(n)
    out[pos] = g.out_bytes
    has = last >= 0
    diff = np.zeros(n + 1)
    np.add.at(diff, np.flatnonzero(has), out[has])
    np.add.at(diff, last[has], -out[has])
    return np.cumsum(diff)[:n]


def cut_feature(problem: Problem, order: np.ndarray | None = None) -> np.ndarray:
    """The observation's ``cut`` feature along ``order`` (None: the graph's own), by position: bytes
    crossing a cut right after each position / the slowest link's bandwidth / the lower bound, in [0, 1]."""
    hw = problem.hardware
    lb = problem.lower_bound if problem.lower_bound > 0 else 1.0
    bw = hw.link_bandwidth.min() if hw.num_links else np.inf  # bytes/s
    return np.clip(cut_bytes(problem.graph, order) / bw / lb, 0, 1)


_NODE = {name: i for i, name in enumerate(NODE_FEATURES)}
_CHIP = {name: i for i, name in enumerate(CHIP_FEATURES)}


class ObservationBuilder:
    """The observation of one instance, padded to ``max_nodes``, ``max_edges`` and ``k_max``."""

    def __init__(self, problem: Problem, max_nodes: int, max_edges: int, k_max: int) -> None:
        g, hw = problem.graph, problem.hardware
        self.problem, self.k_max = problem, k_max
        n, k = g.n, hw.num_chips
        lb = problem.lower_bound if problem.lower_bound > 0 else 1.0
        tmin = problem.cost.node_time.min(axis=1)  # s, on the fastest chip
        bw = hw.link_bandwidth.min() if hw.num_links else np.inf  # bytes/s
        depth = g.depth
        total = tmin.sum() if tmin.sum() > 0 else 1.0
        self.total_work = float(total)  # s
        static = {
            "time": np.clip(tmin / lb, 0, 1),
            "weight": np.clip(problem.mem_demand / hw.sram_bytes.max(), 0, 1),
            "transfer": np.clip(g.out_bytes / bw / lb, 0, 1),
            "position": np.arange(n) / max(n - 1, 1),
            "depth": depth / max(int(depth.max()), 1),
            "in_degree": np.clip(np.bincount(g.edge_dst, minlength=n) / 8, 0, 1),
            "out_degree": np.clip(np.bincount(g.edge_src, minlength=n) / 8, 0, 1),
            "work_before": (np.cumsum(tmin) - tmin) / total,
            "cut": cut_feature(problem),
        }
        # Node features as of the last build (static ones filled here), updated in place by build().
        self._live = np.zeros((max_nodes, len(NODE_FEATURES)), dtype=np.float32)
        for name, values in static.items():
            self._live[:n, _NODE[name]] = values
        self.edge_index = np.zeros((2, max_edges), dtype=np.int64)  # padding edges are 0 -> 0
        self.edge_index[0, : g.num_edges] = g.edge_src
        self.edge_index[1, : g.num_edges] = g.edge_dst
        self.node_mask = np.zeros(max_nodes, dtype=np.int8)
        self.node_mask[:n] = 1
        self.edge_mask = np.zeros(max_edges, dtype=np.int8)
        self.edge_mask[: g.num_edges] = 1
        self._seen = np.full(n, -1, dtype=np.int64)  # assignment shown in _live
        self._current = -1
        self.chips = np.zeros((k_max, len(CHIP_FEATURES)), dtype=np.float32)
        self.chips[:k, _CHIP["exists"]] = 1
        self.chips[:k, _CHIP["sram"]] = hw.sram_bytes / hw.sram_bytes.max()
        self.chips[:k, _CHIP["peak"]] = hw.peak_flops / hw.peak_flops.max()

    def build(self, state: PlacementState, work: np.ndarray, cursor: int, done: bool, action_mask: np.ndarray,
              allowed: np.ndarray | None) -> dict[str, np.ndarray]:
        """The observation after ``cursor`` nodes are placed (``state``; ``work``: compute seconds
        placed per chip). ``allowed``: the current node's chip mask (sequential mode), else None (every
        real chip is shown as allowed)."""
        n, k = self.problem.graph.n, self.problem.num_chips
        live = self._live
        assign = state.assign[:n]
        changed = np.flatnonzero(assign != self._seen)  # only these rows differ from the last build
        if changed.size:
            a = assign[changed]
            placed = a >= 0
            live[changed, _NODE["placed"]] = placed
            live[changed, _NODE["chip"]] = np.where(placed, np.clip(a, 0, self.k_max - 1), 0) / max(self.k_max - 1, 1)
            self._seen[changed] = a
        cur = min(cursor, n - 1)
        if self._current >= 0:
            live[self._current, _NODE["current"]] = 0.0
        self._current = -1 if done else cur
        if not done:
            live[cur, _NODE["current"]] = 1.0
        nodes = live.copy()
        chips = self.chips.copy()
        chips[:k, _CHIP["memory_used"]] = np.clip(state.mem_used / self.problem.hardware.sram_bytes, 0, 1)
        chips[:k, _CHIP["work"]] = np.clip(work * k / self.total_work / 2, 0, 1)
        if state.max_used >= 0:
            chips[state.max_used, _CHIP["frontier"]] = 1.0
        if allowed is not None:
            chips[:, _CHIP["allowed"]] = allowed
        else:
            chips[:k, _CHIP["allowed"]] = 1.0
        return {
            "node_features": nodes,
            "edge_index": self.edge_index.copy(),  # fresh arrays every step (users keep them)
            "node_mask": self.node_mask.copy(),
            "edge_mask": self.edge_mask.copy(),
            "current_node": np.array([cur], dtype=np.int64),
            "chip_state": chips,
            "action_mask": action_mask.astype(np.int8),
        }
