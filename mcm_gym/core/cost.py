"""The cost simulator: a pure, vectorised model of a pipelined MCM.

For a partition ``p`` (chip index per node):

* node time on chip ``k``: ``max(flops / peak_flops[k], traffic / mem_bw[k])`` (roofline), where
  ``traffic = weights read + in_bytes + out_bytes`` (bytes). The weights a node reads depend on its
  op (:func:`weight_read_bytes`): most ops read all their parameters (own and shared); a gather
  (embedding lookup, indexing; :data:`GATHER_OPS`) reads only the rows it outputs, ``out_bytes``,
  at most its table;
* memory per chip (bytes): the ``weight_bytes`` of its nodes (plus their ``out_bytes`` with
  ``activation_memory``), plus each shared tensor (:class:`mcm_gym.core.graph.SharedTensor`) once if
  any of its users runs there: a tensor shared by nodes on two chips is stored on both;
* chip time: the sum of its nodes' times (seconds);
* link time: ``bytes routed over the link / bandwidth + latency`` (seconds, latency only when used).
  A tensor goes once to each consumer chip, multicast along the routes: a link carries a producer's
  tensor once however many of its consumers lie behind it;
* bottleneck = max over chip and link times (compute and transfer overlap), or, with
  ``hardware.serialize_comm``, max over chips of compute time + the time of the links it drives;
* throughput = 1 / bottleneck (samples/s); latency = sum of chip and link times (seconds, the time
  one sample takes when stages and transfers run one after another);
* lower bound = ``max(sum_v min_k t_v(k) / K, total FLOPs / sum_k peak_flops[k],
  total traffic / sum_k mem_bw[k], max_v min_k t_v(k))`` (seconds): no partition beats it;
* score = lower_bound / bottleneck in [0, 1]; 1 means the physical limit is reached.

Everything works on a batch: ``partitions`` is an integer array of shape ``(B, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mcm_gym.core import kernels
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware

__all__ = ["COST_MODEL", "CostModel", "Evaluation", "GATHER_OPS", "op_kind", "weight_read_bytes"]

#: Version of the cost model's rules. Scores, optima and bounds recorded under another version (e.g. in
#: a leaderboard file) are not comparable. 2 (2026-12-02): shared tensors held once per chip that uses
#: them; a gather reads the rows it outputs. 1: a shared tensor charged to its first reader only, a
#: gather costed as reading its whole table.
COST_MODEL = "mcm-cost/2"

#: Op kinds (see :func:`op_kind`) that gather rows of a table: they read ``out_bytes`` of it.
GATHER_OPS = frozenset({"embedding", "embedding_bag", "index_select", "index", "gather", "take",
                        "gatherelements", "gathernd", "gather_elements", "gather_nd"})


def op_kind(op: str) -> str:
    """The bare, lower-case op name: ``"aten.embedding.default"``, ``"aten::embedding"`` and
    ``"Embedding"`` all give ``"embedding"``; a trailing ``_`` (in-place) is dropped."""
    parts = [x for x in op.lower().replace("::", ".").split(".") if x]
    if len(parts) > 1 and parts[-1] in ("default", "tensor", "int", "scalar", "out"):
        parts = parts[:-1]
    return (parts[-1] if parts else "").rstrip("_")


def weight_read_bytes(graph: Graph) -> np.ndarray:
    """Parameter bytes each node reads per sample, shape ``(n,)``: all its own and shared
    parameters, except that a gather (:data:`GATHER_OPS`) reads the rows it outputs,
    ``min(parameters, out_bytes)``."""
    read = graph.param_bytes.copy()
    gather = np.array([op_kind(nd.op) in GATHER_OPS for nd in graph.nodes], dtype=bool)
    read[gather] = np.minimum(read[gather], graph.out_bytes[gather])
    return read

# _BYTE_BITS[v, i] = bit i of the byte v (little-endian), shape (256, 8).
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)


@dataclass(frozen=True)
class Evaluation:
    """Costs of a batch of ``B`` partitions on ``K`` chips and ``L`` links (seconds, bytes)."""

    bottleneck: np.ndarray  # (B,) s
    throughput: np.ndarray  # (B,) samples/s
    latency: np.ndarray  # (B,) s
    score: np.ndarray  # (B,) in [0, 1]
    chip_time: np.ndarray  # (B, K) s
    link_time: np.ndarray  # (B, L) s
    link_bytes: np.ndarray  # (B, L) bytes
    memory: np.ndarray  # (B, K) bytes used
    lower_bound: float  # s

    def __len__(self) -> int:
        return int(self.bottleneck.shape[0])

    def row(self, i: int = 0) -> dict[str, Any]:
        """One partition's figures as plain Python values."""
        return {
            "score": float(self.score[i]),
            "throughput": float(self.throughput[i]),
            "bottleneck": float(self.bottleneck[i]),
            "latency": float(self.latency[i]),
            "lower_bound": self.lower_bound,
            "chip_time": self.chip_time[i].tolist(),
            "link_time": self.link_time[i].tolist(),
            "link_bytes": self.link_bytes[i].tolist(),
            "memory": self.memory[i].tolist(),
        }


class CostModel:
    """Precomputed cost tables for one ``(graph, hardware)`` pair; :meth:`evaluate` scores batches."""

    def __init__(self, graph: Graph, hardware: Hardware) -> None:
        self.graph = graph
        self.hardware = hardware
        k = hardware.num_chips
        traffic = weight_read_bytes(graph) + graph.in_bytes + graph.out_bytes
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.maximum(graph.flops[:, None] / hardware.peak_flops[None, :],
                           traffic[:, None] / hardware.mem_bw[None, :])
        self.node_time: np.ndarray = np.nan_to_num(t, nan=0.0)  # (n, K) s
        tmin = self.node_time.min(axis=1)
        # Total work over the aggregate speed (FLOPs and, where every chip models it, memory traffic;
        # tighter on heterogeneous chips), the mean of the per-node minima, the largest node.
        aggregate = max(graph.total_flops / float(hardware.peak_flops.sum()),
                        float(traffic.sum()) / float(hardware.mem_bw.sum()))
        self.lower_bound: float = float(max(tmin.sum() / k, aggregate, tmin.max()))
        #: Memory each node brings to its chip on its own (bytes, shape ``(n,)``), shared tensors
        #: excluded: they are counted once per chip in :meth:`chip_memory`.
        self.mem_demand: np.ndarray = graph.weight_bytes + (
            graph.out_bytes if hardware.constraints.activation_memory else 0.0)
        #: Bytes per shared tensor, shape ``(S,)``, and the most one node needs alone (its demand
        #: plus the shared tensors it reads), shape ``(n,)``.
        self.shared_bytes: np.ndarray = graph.shared_bytes
        self.mem_alone: np.ndarray = self.mem_demand + graph.shared_read_bytes
        self._shared_t, self._shared_v = graph.shared_pairs  # grouped by tensor: CSR for the kernel
        self._shared_ptr = np.r_[0, np.cumsum([len(us) for us in graph.shared_users])].astype(np.int64)
        self._shared_nodes = self._shared_v
        self._driver = np.zeros((hardware.num_links, k))
        if hardware.num_links:
            self._driver[np.arange(hardware.num_links), hardware.link_driver] = 1.0
        self._init_multicast(graph, hardware)

    def _init_multicast(self, graph: Graph, hardware: Hardware) -> None:
        """Tables for multicast link loads.

        Routes become bit masks over links (``uint64`` words). A producer's tensor crosses the union
        of the routes to its consumer chips. When a producer's edges carry different byte counts, a
        link carries the largest one routed over it: with levels ``b1 > b2 > ...`` that is
        ``sum_j (b_j - b_{j+1}) * [link in union of routes of edges with bytes >= b_j]``, so each
        level is one "cumulative group" of edges with a weight.
        """
        nl = hardware.num_links
        self._words = max(1, -(-nl // 64))
        bits = np.zeros(hardware.routes.shape[:2] + (self._words,), dtype=np.uint64)
        for link in range(nl):
            w, b = divmod(link, 64)
            bits[..., w] |= hardware.routes[..., link].astype(np.uint64) << np.uint64(b)
        self._route_bits = bits  # (K, K, W)
        src, byt = graph.edge_src, graph.edge_bytes
        edges: list[int] = []
        starts: list[int] = []
        weights: list[float] = []
        bounds = np.flatnonzero(np.r_[True, src[1:] != src[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # edges of one producer
            levels = np.unique(byt[a:b])[::-1]
            for j, level in enumerate(levels):
                if level <= 0:
                    continue
                starts.append(len(edges))
                edges.extend(int(e) for e in range(a, b) if byt[e] >= level)
                nxt = levels[j + 1] if j + 1 < len(levels) else 0.0
                weights.append(float(level - max(nxt, 0.0)))
        self._cg_src = src[edges] if edges else np.zeros(0, dtype=np.int64)
        self._cg_dst = graph.edge_dst[edges] if edges else np.zeros(0, dtype=np.int64)
        self._cg_starts = np.array(starts, dtype=np.int64)
        self._cg_weight = np.array(weights, dtype=np.float64)
        self._cg_bounds = np.r_[self._cg_starts, len(edges)].astype(np.int64)  # group g: [b[g], b[g+1])
        self._route_csr: tuple[np.ndarray, np.ndarray] | None = None  # for the compiled kernels
        self._ring: np.ndarray | None = None

    @property
    def num_chips(self) -> int:
        return self.hardware.num_chips

    def check_shape(self, partitions: np.ndarray) -> np.ndarray:
        p = np.asarray(partitions)
        if p.ndim == 1:
            p = p[None, :]
        n, k = self.graph.n, self.num_chips
        if p.ndim != 2 or p.shape[1] != n:
            raise ValueError(f"partitions must have shape (B, {n}) or ({n},), got {np.shape(partitions)}")
        if p.size and not np.issubdtype(p.dtype, np.integer):
            if not np.all(np.equal(np.mod(p, 1), 0)):
                raise ValueError("partitions must hold integer chip indices")
        p = p.astype(np.int64, copy=False)
        if p.size and (p.min() < 0 or p.max() >= k):
            bad = int(p.min()) if p.min() < 0 else int(p.max())
            raise ValueError(f"chip index {bad} out of range 0..{k - 1}")
        return p

    def chip_sums(self, p: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per-chip sums of per-node ``values`` (shape ``(n,)`` or ``(n, K)``) -> ``(B, K)``."""
        b, n = p.shape
        k = self.num_chips
        w = values[np.arange(n)[None, :], p] if values.ndim == 2 else np.broadcast_to(values, p.shape)
        idx = (np.arange(b)[:, None] * k + p).ravel()
        return np.bincount(idx, weights=w.ravel(), minlength=b * k).reshape(b, k)

    def chip_memory(self, p: np.ndarray) -> np.ndarray:
        """Bytes used per chip, shape ``(B, K)``: the nodes' own demand plus each shared tensor once
        on every chip that runs one of its users."""
        mem = self.chip_sums(p, self.mem_demand)
        if self._shared_t.size:
            b, k, s = p.shape[0], self.num_chips, self.shared_bytes.size
            key = (np.arange(b)[:, None] * s + self._shared_t[None, :]) * k + p[:, self._shared_v]
            key = np.unique(key.ravel())  # one entry per (row, tensor, chip) holding it
            row, rest = np.divmod(key, s * k)
            tensor, chip = np.divmod(rest, k)
            mem += np.bincount(row * k + chip, weights=self.shared_bytes[tensor],
                               minlength=b * k).reshape(b, k)
        return mem

    def placed_memory(self, partition: np.ndarray) -> np.ndarray:
        """Bytes used per chip, shape ``(K,)``, by the placed nodes of one partial partition ``(n,)``
        (entries outside ``0..K-1`` are not placed)."""
        p = np.asarray(partition, dtype=np.int64)
        k = self.num_chips
        placed = (p >= 0) & (p < k)
        mem = np.bincount(p[placed], weights=self.mem_demand[placed], minlength=k).astype(np.float64)
        if self._shared_t.size:
            ok = placed[self._shared_v]
            pairs = np.unique(self._shared_t[ok] * k + p[self._shared_v[ok]])
            mem += np.bincount(pairs % k, weights=self.shared_bytes[pairs // k], minlength=k)
        return mem

    def link_loads(self, p: np.ndarray) -> np.ndarray:
        """Bytes per link with multicast, shape ``(B, L)`` (compiled with numba where enabled, see
        :mod:`mcm_gym.core.kernels`; :meth:`link_loads_numpy` otherwise)."""
        nl = self.hardware.num_links
        if nl == 0 or self._cg_starts.size == 0:
            return np.zeros((p.shape[0], nl))
        if kernels.enabled():
            if self._route_csr is None:
                self._route_csr = kernels.route_lists(self.hardware.routes)
                self._ring = kernels.ring_links(self.hardware.routes)
            if self._ring is not None:
                return kernels.ring_link_loads(p, self._cg_src, self._cg_bounds, self._cg_dst, self._cg_weight,
                                               self._ring, nl)
            return kernels.link_loads(p, self._cg_src, self._cg_dst, self._cg_bounds, self._cg_weight,
                                      *self._route_csr, self.num_chips, nl)
        return self.link_loads_numpy(p)

    def link_loads_numpy(self, p: np.ndarray) -> np.ndarray:
        """:meth:`link_loads` in numpy (the reference): route bit masks, OR-reduced per group."""
        b = p.shape[0]
        k, nl = self.num_chips, self.hardware.num_links
        out = np.zeros((b, nl))
        if nl == 0 or self._cg_starts.size == 0:
            return out
        small = p.astype(np.int32 if k * k > 32767 else np.int16)  # less memory traffic
        pair = small[:, self._cg_src] * k + small[:, self._cg_dst]  # (B, E') route ids
        masks = self._route_bits.reshape(k * k, self._words)[pair]  # (B, E', W)
        union = np.bitwise_or.reduceat(masks, self._cg_starts, axis=1)  # (B, G, W)
        # Sum weights per (row, byte of the union mask) with one bincount, then expand bytes to bits.
        rows = np.repeat(np.arange(b) * 256, union.shape[1])
        weights = np.tile(self._cg_weight, b)
        for j in range(-(-nl // 8)):
            w, shift = divmod(8 * j, 64)
            byte = ((union[:, :, w] >> np.uint64(shift)) & np.uint64(0xFF)).ravel().astype(np.int64)
            hist = np.bincount(rows + byte, weights=weights, minlength=b * 256).reshape(b, 256)
            width = min(8, nl - 8 * j)
            out[:, 8 * j:8 * j + width] = hist @ _BYTE_BITS[:, :width]
        return out

    def evaluate(self, partitions: np.ndarray, *, chunk: int = 4096) -> Evaluation:
        """Score a batch of partitions, shape ``(B, n)`` (or one, ``(n,)``)."""
        p = self.check_shape(partitions)
        if p.shape[0] > chunk:
            parts = [self.evaluate(p[i:i + chunk], chunk=chunk) for i in range(0, p.shape[0], chunk)]
            fields: dict[str, Any] = {f: (np.concatenate([getattr(e, f) for e in parts])
                                          if f != "lower_bound" else self.lower_bound)
                                      for f in Evaluation.__dataclass_fields__}
            return Evaluation(**fields)
        hw = self.hardware
        if kernels.enabled():
            chip_time, memory = kernels.chip_loads(p, self.node_time, self.mem_demand, self._shared_ptr,
                                                   self._shared_nodes, self.shared_bytes)
        else:
            chip_time, memory = self.chip_sums(p, self.node_time), self.chip_memory(p)
        link_bytes = self.link_loads(p)
        link_time = np.where(link_bytes > 0, link_bytes / hw.link_bandwidth + hw.link_latency, 0.0) \
            if hw.num_links else link_bytes
        if hw.serialize_comm:
            stage = chip_time + link_time @ self._driver
            bottleneck = stage.max(axis=1)
        else:
            bottleneck = chip_time.max(axis=1)
            if hw.num_links:
                bottleneck = np.maximum(bottleneck, link_time.max(axis=1))
        latency = chip_time.sum(axis=1) + link_time.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            throughput = np.where(bottleneck > 0, 1.0 / bottleneck, np.inf)
            score = np.where(bottleneck > 0, self.lower_bound / bottleneck, 1.0)
        # The bound is computed from the same node times; clip rounding noise (a few ulps) only.
        score = np.minimum(score, 1.0)
        return Evaluation(bottleneck=bottleneck, throughput=throughput, latency=latency, score=score,
                          chip_time=chip_time, link_time=link_time, link_bytes=link_bytes,
                          memory=memory, lower_bound=self.lower_bound)
