"""A partitioning problem: one graph on one hardware profile, with its cost model and constraints."""

from __future__ import annotations

from typing import Any

import numpy as np

from mcm_gym.core import kernels, repair_cpsat
from mcm_gym.core.constraints import Violation, active_constraints
from mcm_gym.core.cost import CostModel, Evaluation
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, HardwareError
from mcm_gym.core.repair import RepairConfig, RepairResult, repair

__all__ = ["Problem", "InfeasibleError", "CHUNK"]

#: Rows of a batch checked at a time (bounded memory on large batches).
CHUNK = 4096
#: Batches of at least this many node entries are checked by the compiled kernel (where enabled):
#: below it, numpy is as fast and a single check needs no numba import.
_KERNEL_MIN_ENTRIES = 4096


class InfeasibleError(HardwareError):
    """The hardware cannot hold the graph at all (e.g. its weights exceed the total SRAM)."""


class Problem:
    """``graph`` on ``hardware``: evaluation, validity checks and repair.

    Raises :class:`InfeasibleError` up front when the memory constraint can obviously never hold:
    the graph's weights exceed the total SRAM, or one node's weights exceed every chip's SRAM.
    """

    def __init__(self, graph: Graph, hardware: Hardware) -> None:
        self.graph = graph
        self.hardware = hardware
        self.cost = CostModel(graph, hardware)
        self.constraints = active_constraints(hardware)
        self.mem_demand: np.ndarray = self.cost.mem_demand
        if hardware.constraints.memory:
            need = float(self.mem_demand.sum() + self.cost.shared_bytes.sum())
            have = hardware.total_sram_bytes
            if need > have:
                what = "weights and activations" if hardware.constraints.activation_memory else "weights"
                raise InfeasibleError(
                    f"graph {graph.name!r} needs {need:.6g} bytes of {what} but hardware "
                    f"{hardware.name!r} has only {have:.6g} bytes of SRAM in total")
            alone = self.cost.mem_alone  # own demand plus the shared tensors it reads
            v = int(np.argmax(alone))
            if alone[v] > hardware.sram_bytes.max():
                dtype = graph.metadata.get("dtype_bytes")
                hint = ("; store the model at 1 byte per value (int8), as the zoo does for BERT-large and GPT-2: "
                        "`mcm-gym graphs import ... --dtype-bytes 1`, or from_torch(..., dtype_bytes=1)"
                        if dtype is None or dtype > 1 else "")
                raise InfeasibleError(
                    f"node {graph.names[v]!r} of graph {graph.name!r} needs {alone[v]:.6g} bytes "
                    f"but the largest chip of {hardware.name!r} has {hardware.sram_bytes.max():.6g} bytes{hint}")

    @property
    def n(self) -> int:
        return self.graph.n

    @property
    def num_chips(self) -> int:
        return self.hardware.num_chips

    @property
    def lower_bound(self) -> float:
        """Seconds per sample no partition can beat (see :mod:`mcm_gym.core.cost`)."""
        return self.cost.lower_bound

    def evaluate(self, partitions: np.ndarray) -> Evaluation:
        """Costs of a batch ``(B, n)`` of partitions (validity not considered; see :meth:`check`)."""
        return self.cost.evaluate(partitions)

    def violation_counts(self, partitions: np.ndarray,
                         evaluation: Evaluation | None = None) -> dict[str, np.ndarray]:
        """Violations per enabled constraint, each of shape ``(B,)``."""
        p = self.cost.check_shape(partitions)
        mem = evaluation.memory if evaluation is not None else self.cost.chip_memory(p)
        return self.constraint_counts(p, mem)

    def constraint_counts(self, p: np.ndarray, memory: np.ndarray) -> dict[str, np.ndarray]:
        """Violations per enabled constraint of checked partitions ``p`` ``(B, n)`` whose bytes per chip
        are ``memory`` ``(B, K)``."""
        names = [c.name for c in self.constraints]
        if kernels.enabled() and p.shape[0] * self.graph.n >= _KERNEL_MIN_ENTRIES:
            g = self.graph
            tri = g.triangles if "triangle" in names else np.zeros((0, 3), dtype=np.int64)
            counts = kernels.graph_violations(p, g.edge_src, g.edge_dst, tri, self.num_chips)
            col = {"dataflow": 0, "neighbor_only": 1, "contiguous": 2, "triangle": 3}
            out = {name: counts[:, col[name]] for name in names if name in col}
            for c in self.constraints:
                if c.name not in col:
                    out[c.name] = c.count(g, self.hardware, p, memory)
            return {name: out[name] for name in names}
        return {c.name: c.count(self.graph, self.hardware, p, memory) for c in self.constraints}

    def is_valid(self, partitions: np.ndarray, *, chunk: int = CHUNK) -> Any:
        """True where a partition satisfies every enabled constraint: a bool for one partition
        ``(n,)``, an array ``(B,)`` for a batch (checked ``chunk`` rows at a time, so memory stays
        bounded on large batches)."""
        arr = np.asarray(partitions)
        p = self.cost.check_shape(arr)
        ok = np.ones(p.shape[0], dtype=bool)
        for i in range(0, p.shape[0], chunk):
            for c in self.violation_counts(p[i:i + chunk]).values():
                ok[i:i + chunk] &= c == 0
        return bool(ok[0]) if arr.ndim == 1 else ok

    def check(self, partition: np.ndarray) -> list[Violation]:
        """Every violation of one partition, each naming its constraint, nodes and chips."""
        p = self.cost.check_shape(partition)
        mem = self.cost.chip_memory(p)[0]
        out: list[Violation] = []
        for c in self.constraints:
            out += c.explain(self.graph, self.hardware, p[0], mem)
        return out

    def evaluate_valid(self, partitions: np.ndarray, *, chunk: int = CHUNK) -> tuple[Evaluation, np.ndarray]:
        """Costs of a batch and whether each partition is valid (bool array ``(B,)``), ``chunk`` rows
        at a time."""
        p = self.cost.check_shape(partitions)
        ev = self.cost.evaluate(p, chunk=chunk)
        ok = np.ones(len(ev), dtype=bool)
        for i in range(0, p.shape[0], chunk):
            part = p[i:i + chunk]
            counts = self.constraint_counts(part, ev.memory[i:i + chunk])
            for c in counts.values():
                ok[i:i + chunk] &= c == 0
        return ev, ok

    def scores(self, partitions: np.ndarray) -> np.ndarray:
        """Normalised score per partition, 0 where invalid; shape ``(B,)``."""
        ev, ok = self.evaluate_valid(partitions)
        return np.where(ok, ev.score, 0.0)

    def repair(self, candidate: np.ndarray, config: RepairConfig | None = None) -> RepairResult:
        """The valid partition with the fewest changes from ``candidate`` (see :mod:`mcm_gym.core.repair`;
        with ``RepairConfig(backend="cpsat")``, :mod:`mcm_gym.core.repair_cpsat`)."""
        if config is not None and config.backend == "cpsat":
            if not repair_cpsat.available():
                raise ValueError("RepairConfig(backend='cpsat') needs OR-Tools: pip install 'mcm-gym[cpsat]'")
            return repair_cpsat.repair_cpsat(self, candidate, time_limit=config.timeout)
        return repair(self, candidate, config)

    def __repr__(self) -> str:
        return f"Problem({self.graph!r}, {self.hardware!r})"
