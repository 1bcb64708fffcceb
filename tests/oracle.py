"""Independent reference implementations, written from DESIGN.md sections 4 and 5 in plain Python.

They read only raw data (a :class:`GraphSpec`, or a graph's node/edge fields, and the hardware's
chips, links and switches), never the library's checker, cost model or repair.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware


@dataclass(frozen=True)
class Raw:
    """A graph as plain lists, nodes indexed 0..n-1; ``edges`` are ``(u, v, bytes)``."""

    flops: list[float]
    weight: list[float]
    out: list[float]
    edges: list[tuple[int, int, float]]
    #: Shared parameter tensors ``(bytes, users)``: held once on each chip that runs a user.
    shared: list[tuple[float, list[int]]] = field(default_factory=list)
    #: Whether each node is a gather (reads only ``out`` bytes of its parameters); none when empty.
    gather: list[bool] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.flops)

    def params_read(self, v: int) -> float:
        """Parameter bytes node ``v`` reads: its own and its shared tensors, a gather only its output."""
        total = self.weight[v] + sum(b for b, users in self.shared if v in users)
        return min(total, self.out[v]) if self.gather and self.gather[v] else total

    def chip_memory(self, p: Sequence[int], chip: int, activations: bool) -> float:
        """Bytes on ``chip``: its nodes' weights (and outputs) plus each shared tensor one of them reads."""
        own = sum(self.weight[v] + (self.out[v] if activations else 0) for v in range(self.n) if p[v] == chip)
        return own + sum(b for b, users in self.shared if any(p[u] == chip for u in users))


def raw_from_spec(spec) -> Raw:  # noqa: ANN001 - a strategies.GraphSpec
    return Raw(list(spec.flops), list(spec.weight), list(spec.out),
               [(i, j, spec.edge_bytes(i, j, b)) for i, j, b in spec.edges],
               [(b, list(users)) for b, users in spec.shared], [op == "embedding" for op in spec.ops])


def raw_from_graph(g: Graph) -> Raw:
    """Raw lists in the graph's node order (read from ``Node``/``Edge`` objects, not the arrays)."""
    pos = {nd.name: i for i, nd in enumerate(g.nodes)}
    out = [nd.out_bytes for nd in g.nodes]
    return Raw([nd.flops for nd in g.nodes], [nd.weight_bytes for nd in g.nodes], out,
               [(pos[e.src], pos[e.dst], out[pos[e.src]] if e.bytes is None else e.bytes)
                for e in g.edges],
               [(t.bytes, [pos[u] for u in t.users]) for t in g.shared],
               [nd.op.split(".")[-1].lower() == "embedding" for nd in g.nodes])


# ------------------------------------------------------------------------ constraints
def triangles(r: Raw) -> list[tuple[int, int, int]]:
    es = {(u, v) for u, v, _ in r.edges}
    return [(u, v, w) for (u, v) in es for (v2, w) in es if v2 == v and (u, w) in es]


def violated(r: Raw, hw: Hardware, p: Sequence[int]) -> set[str]:
    """Names of the enabled DESIGN rules that ``p`` breaks."""
    c = hw.constraints
    k = len(hw.chips)
    bad: set[str] = set()
    if c.dataflow and any(p[u] > p[v] for u, v, _ in r.edges):
        bad.add("dataflow")
    if c.memory:
        for chip in range(k):
            if r.chip_memory(p, chip, c.activation_memory) > hw.chips[chip].sram_bytes:
                bad.add("memory")
    if c.contiguous and set(p) != set(range(max(p) + 1)):
        bad.add("contiguous")
    if c.neighbor_only and any(p[v] - p[u] > 1 for u, v, _ in r.edges):
        bad.add("neighbor_only")
    if c.triangle and any(p[u] < p[v] < p[w] for u, v, w in triangles(r)):
        bad.add("triangle")
    return bad


def is_valid(r: Raw, hw: Hardware, p: Sequence[int]) -> bool:
    k = len(hw.chips)
    return all(0 <= x < k for x in p) and not violated(r, hw, p)


def all_valid(r: Raw, hw: Hardware) -> list[tuple[int, ...]]:
    """Every valid partition, by enumerating all K^n assignments."""
    return [p for p in itertools.product(range(len(hw.chips)), repeat=r.n)
            if not violated(r, hw, p)]


def changes(p: Sequence[int], cand: Sequence[int]) -> int:
    return sum(int(a != b) for a, b in zip(p, cand, strict=True))


def min_changes(valid: list[tuple[int, ...]], cand: Sequence[int]) -> int | None:
    return min((changes(p, cand) for p in valid), default=None)


# ------------------------------------------------------------------------ cost
def route(hw: Hardware, a: int, b: int) -> list[int]:
    """Link indices from chip a to chip b: on a ring a, a+1, ... (mod K); on a chain straight; on a
    mesh XY (along the row to b's column, then along the column), from the chips' grid positions."""
    k = len(hw.chips)
    lid = {(ln.src, ln.dst): i for i, ln in enumerate(hw.links)}
    if hw.topology == "mesh":
        at = {pos: i for i, pos in enumerate(hw.positions)}
        (r, c), (r1, c1) = hw.positions[a], hw.positions[b]
        chips = [a]
        while c != c1:
            c += 1 if c1 > c else -1
            chips.append(at[(r, c)])
        while r != r1:
            r += 1 if r1 > r else -1
            chips.append(at[(r, c)])
        return [lid[hop] for hop in zip(chips[:-1], chips[1:], strict=True)]
    hops = []
    x = a
    while x != b:
        y = (x + 1) % k if hw.topology == "ring" else (x + 1 if b > x else x - 1)
        hops.append(lid[(x, y)])
        x = y
    return hops


def node_time(r: Raw, hw: Hardware, v: int, c: int) -> float:
    chip = hw.chips[c]
    t = r.flops[v] / chip.peak_flops
    if chip.mem_bw is not None:
        traffic = r.params_read(v) + r.out[v] + sum(b for _, d, b in r.edges if d == v)
        t = max(t, traffic / chip.mem_bw)
    return t


def reference_cost(r: Raw, hw: Hardware, p: Sequence[int]) -> dict[str, object]:
    k, nl = len(hw.chips), len(hw.links)
    chip_time = [0.0] * k
    memory = [0.0] * k
    for v in range(r.n):
        chip_time[p[v]] += node_time(r, hw, v, p[v])
    memory = [r.chip_memory(p, c, hw.constraints.activation_memory) for c in range(k)]
    link_bytes = [0.0] * nl
    # multicast: per producer, a link carries the largest tensor routed over it
    for u in range(r.n):
        per_link = [0.0] * nl
        for s, d, b in r.edges:
            if s == u and p[d] != p[u]:
                for lk in route(hw, p[u], p[d]):
                    per_link[lk] = max(per_link[lk], b)
        link_bytes = [x + y for x, y in zip(link_bytes, per_link, strict=True)]
    link_time = [lb / ln.bandwidth + ln.latency if lb > 0 else 0.0
                 for lb, ln in zip(link_bytes, hw.links, strict=True)]
    if hw.serialize_comm:
        bottleneck = max(chip_time[c] + sum(t for t, ln in zip(link_time, hw.links, strict=True)
                                            if ln.src == c) for c in range(k))
    else:
        bottleneck = max(chip_time + link_time)
    return {"chip_time": chip_time, "memory": memory, "link_bytes": link_bytes,
            "link_time": link_time, "bottleneck": bottleneck,
            "latency": sum(chip_time) + sum(link_time)}
