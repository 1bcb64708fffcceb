"""The cost simulator: a pure, vectorised model of a pipelined MCM.

For a partition ``p`` (chip index per node):

* node time on chip ``k``: ``max(flops / peak_flops[k], traffic / mem_bw[k])`` (roofline), where
  ``traffic = weight_bytes + in_bytes + out_bytes`` (bytes; an upper bound for gathers);
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

from .graph import Graph
from .hardware import Hardware

__all__ = ["CostModel", "Evaluation"]


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
        traffic = graph.weight_bytes + graph.in_bytes + graph.out_bytes
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
        self.mem_demand: np.ndarray = graph.weight_bytes + (
            graph.out_bytes if hardware.constraints.activation_memory else 0.0)
        self._src = graph.edge_src
        self._dst = graph.edge_dst
        self._ebytes = graph.edge_bytes
        self._routes = hardware.routes  # (K, K, L)
        self._driver = np.zeros((hardware.num_links, k))
        if hardware.num_links:
            self._driver[np.arange(hardware.num_links), hardware.link_driver] = 1.0

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

    def link_loads(self, p: np.ndarray) -> np.ndarray:
        """Bytes per link with multicast, shape ``(B, L)``."""
        b = p.shape[0]
        nl = self.hardware.num_links
        out = np.zeros((b, nl))
        if nl == 0 or self._src.size == 0:
            return out
        ps, pd = p[:, self._src], p[:, self._dst]
        bi, ei = np.nonzero(ps != pd)  # row-major: sorted by batch, then edge (edges sorted by src)
        if bi.size == 0:
            return out
        r = self._routes[ps[bi, ei], pd[bi, ei]]  # (M, L) bool
        vals = r * self._ebytes[ei][:, None]
        prod = self._src[ei]
        key_change = np.r_[True, (bi[1:] != bi[:-1]) | (prod[1:] != prod[:-1])]
        starts = np.flatnonzero(key_change)
        per_producer = np.maximum.reduceat(vals, starts, axis=0)  # (G, L): multicast = max, not sum
        gb = bi[starts]
        idx = (gb[:, None] * nl + np.arange(nl)[None, :]).ravel()
        return np.bincount(idx, weights=per_producer.ravel(), minlength=b * nl).reshape(b, nl)

    def evaluate(self, partitions: np.ndarray, *, chunk: int = 4096) -> Evaluation:
        """Score a batch of partitions, shape ``(B, n)`` (or one, ``(n,)``)."""
        p = self.check_shape(partitions)
        if p.shape[0] > chunk:
            parts = [self.evaluate(p[i:i + chunk], chunk=chunk) for i in range(0, p.shape[0], chunk)]
            return Evaluation(**{f: (np.concatenate([getattr(e, f) for e in parts])
                                     if f != "lower_bound" else self.lower_bound)
                                 for f in Evaluation.__dataclass_fields__})
        hw = self.hardware
        chip_time = self.chip_sums(p, self.node_time)
        memory = self.chip_sums(p, self.mem_demand)
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
