"""Hypothesis strategies for small random instances: DAGs (<= 8 nodes, integer sizes, edges i -> j
with i < j, so acyclic and already in topological order) and hardware (1-3 chips, integer SRAM,
random constraint switches, ring or chain, optionally heterogeneous chips and links)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import strategies as st

from mcm_gym.core.graph import Edge, Graph, Node
from mcm_gym.core.hardware import Chip, ConstraintSwitches, Hardware, Link, uniform

__all__ = ["GraphSpec", "graph_specs", "hardwares", "instances", "partitions", "batches"]


@dataclass(frozen=True)
class GraphSpec:
    """A DAG as plain lists; node ``i`` is named ``n{i}``; ``edges`` are ``(i, j, bytes or None)``
    with ``i < j``, so index order is a topological order."""

    flops: tuple[int, ...]
    weight: tuple[int, ...]
    out: tuple[int, ...]
    edges: tuple[tuple[int, int, int | None], ...]
    #: Shared parameter tensors: ``(bytes, user node indices)``.
    shared: tuple[tuple[int, tuple[int, ...]], ...] = ()
    #: Node ops (``"op"`` or ``"embedding"``, a gather); all ``"op"`` when empty.
    ops: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.flops)

    @property
    def names(self) -> list[str]:
        return [f"n{i}" for i in range(self.n)]

    def edge_bytes(self, i: int, j: int, b: int | None) -> int:
        return self.out[i] if b is None else b

    def graph(self, name: str = "random") -> Graph:
        ops = self.ops or ("op",) * self.n
        nodes = [Node(f"n{i}", ops[i], self.flops[i], self.weight[i], self.out[i])
                 for i in range(self.n)]
        shared = [{"name": f"w{t}", "bytes": b, "users": [f"n{i}" for i in users]}
                  for t, (b, users) in enumerate(self.shared)]
        return Graph(nodes, [Edge(f"n{i}", f"n{j}", b) for i, j, b in self.edges], name=name, shared=shared)


@st.composite
def graph_specs(draw: st.DrawFn, max_nodes: int = 8, min_nodes: int = 1, max_size: int = 10,
                max_weight: int = 8) -> GraphSpec:
    n = draw(st.integers(min_nodes, max_nodes))
    ints = st.integers(0, max_size)
    flops = draw(st.lists(ints, min_size=n, max_size=n))
    weight = draw(st.lists(st.integers(0, max_weight), min_size=n, max_size=n))
    out = draw(st.lists(ints, min_size=n, max_size=n))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = []
    for (i, j), k in zip(pairs, keep, strict=True):
        if k:
            edges.append((i, j, draw(st.none() | ints)))
    # Up to two shared tensors (tied / reused weights), each read by two or more nodes, and a few
    # gathers (embedding lookups read out_bytes of their table).
    shared: list[tuple[int, tuple[int, ...]]] = []
    if n >= 2:
        for _ in range(draw(st.integers(0, 2))):
            users = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=n, unique=True))
            shared.append((draw(st.integers(0, max_weight)), tuple(sorted(users))))
    ops = tuple(draw(st.lists(st.sampled_from(["op", "op", "embedding"]), min_size=n, max_size=n)))
    return GraphSpec(tuple(flops), tuple(weight), tuple(out), tuple(edges), tuple(shared), ops)


def _links(topology: str, k: int, bw: list[int], lat: list[float]) -> tuple[Link, ...]:
    if k == 1:
        return ()
    if topology == "ring":
        return tuple(Link(i, (i + 1) % k, bw[i], lat[i]) for i in range(k))
    out = []
    for i in range(k - 1):
        out += [Link(i, i + 1, bw[i], lat[i]), Link(i + 1, i, bw[k - 1 - i], lat[i])]
    return tuple(out)


@st.composite
def hardwares(draw: st.DrawFn, max_chips: int = 3, min_chips: int = 1, max_sram: int = 20,
              constraints: ConstraintSwitches | None = None) -> Hardware:
    k = draw(st.integers(min_chips, max_chips))
    topology = draw(st.sampled_from(["ring", "chain"]))
    if constraints is None:
        b = st.booleans()
        constraints = ConstraintSwitches(dataflow=draw(b), memory=draw(b), contiguous=draw(b),
                                  neighbor_only=draw(b), triangle=draw(b),
                                  activation_memory=draw(b))
    serialize = draw(st.booleans())
    peak = st.integers(1, 5)
    sram = st.integers(1, max_sram)
    mem_bw = st.none() | st.integers(1, 8)
    bw = st.integers(1, 5)
    lat = st.sampled_from([0.0, 0.5, 1.0])
    if draw(st.booleans()):  # homogeneous, through the public helper
        hw = uniform(k, peak_flops=draw(peak), sram_bytes=draw(sram), link_bandwidth=draw(bw),
                     link_latency=draw(lat), mem_bw=draw(mem_bw), topology=topology,
                     constraints=constraints)
        return replace(hw, serialize_comm=serialize)
    chips = tuple(Chip(draw(peak), draw(sram), draw(mem_bw)) for _ in range(k))
    links = _links(topology, k, [draw(bw) for _ in range(k)], [draw(lat) for _ in range(k)])
    return Hardware(chips=chips, links=links, topology=topology, name=f"hetero-{topology}-{k}",
                    constraints=constraints, serialize_comm=serialize)


def instances(max_nodes: int = 8, max_chips: int = 3, **hw_kwargs: object) -> st.SearchStrategy:
    """``(GraphSpec, Hardware)`` pairs."""
    return st.tuples(graph_specs(max_nodes=max_nodes), hardwares(max_chips=max_chips, **hw_kwargs))


def partitions(n: int, k: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, k - 1), min_size=n, max_size=n)


def batches(n: int, k: int, max_batch: int = 6) -> st.SearchStrategy[list[list[int]]]:
    return st.lists(partitions(n, k), min_size=1, max_size=max_batch)
