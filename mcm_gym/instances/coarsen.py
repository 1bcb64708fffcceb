"""Graph coarsening: merge chains and tiny ops into groups, explicitly and reversibly.

:func:`coarsen` contracts edges ``u -> v`` of a :class:`~mcm_gym.Graph`, smallest groups first,
until at most ``target_nodes`` groups remain (or no edge can be contracted). It returns a
:class:`Coarsening` holding the coarse graph and the mapping back to the original nodes.

Guarantees (units: FLOPs and bytes, as in :mod:`mcm_gym.core.graph`):

* **acyclic**: an edge ``A -> B`` between groups is contracted only when it is the *only* path
  from ``A`` to ``B`` (checked by a search bounded by a maintained topological order), so no cycle
  can appear; nodes never merge across unconnected parts;
* **exact totals**: a group's ``flops`` and ``weight_bytes`` are the sums over its members, and its
  ``out_bytes`` too (so per-chip activation memory is also unchanged); a shared tensor is read by
  the groups of its users, and becomes part of a group's ``weight_bytes`` when they all fall in
  one group, so per-chip memory is unchanged. A gather with a table (an embedding lookup) is
  never merged: it reads only the rows it outputs, which its group's op would no longer say;
* **edge bytes, multicast**: the coarse edge ``A -> B`` carries, for every producer ``u`` in ``A``
  with consumers in ``B``, ``u``'s tensor once (the largest of its edges into ``B``), summed over
  producers; edges inside a group vanish;
* **reversible**: :meth:`Coarsening.expand` maps a coarse partition to the original nodes (each
  member gets its group's chip). A partition satisfying ``dataflow``, ``contiguous``, ``memory``
  (with or without activation memory), ``neighbor_only`` or ``triangle`` on the coarse graph
  satisfies it on the original: every original edge between groups is a coarse edge, per-chip
  sums are equal, and the set of used chips is the same.

Group size, which orders the merges: ``flops / total_flops + weight_bytes / total_weight_bytes +
out_bytes / total_out_bytes + members / n``, so zero-cost ops (views, casts) and chains of small
ops merge first and the groups stay balanced.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcm_gym.core.cost import GATHER_OPS, op_kind
from mcm_gym.core.graph import Edge, Graph, GraphError, Node, SharedTensor

__all__ = ["Coarsening", "coarsen", "expand_partition"]


@dataclass(frozen=True, eq=False)
class Coarsening:
    """The result of :func:`coarsen`: ``graph`` (coarse), ``original``, and the node mapping.

    ``groups[c]`` lists the original node indices merged into coarse node ``c`` (indices in the
    graphs' topological orders); ``assignment[v]`` is the coarse node of original node ``v``.
    """

    original: Graph
    graph: Graph
    groups: tuple[tuple[int, ...], ...]
    assignment: np.ndarray = field(repr=False)
    target_nodes: int = 0

    @property
    def reached_target(self) -> bool:
        """True when the coarse graph has at most ``target_nodes`` nodes."""
        return self.graph.n <= self.target_nodes

    def expand(self, partition: Sequence[int] | np.ndarray) -> np.ndarray:
        """Chip per original node from a coarse partition: shape ``(m,)`` -> ``(n,)`` or a batch
        ``(B, m)`` -> ``(B, n)``."""
        p = np.asarray(partition)
        if p.shape[-1:] != (self.graph.n,) or p.ndim not in (1, 2):
            raise ValueError(f"partition must have shape ({self.graph.n},) or (B, {self.graph.n}) "
                             f"(one chip per coarse node), got {p.shape}")
        return p[..., self.assignment]

    def contract(self, partition: Sequence[int] | np.ndarray) -> np.ndarray:
        """Coarse partition from an original one: each group takes the chip of its member with the
        most FLOPs (ties: the first). Shape ``(n,)`` -> ``(m,)`` or ``(B, n)`` -> ``(B, m)``."""
        p = np.asarray(partition)
        if p.shape[-1:] != (self.original.n,) or p.ndim not in (1, 2):
            raise ValueError(f"partition must have shape ({self.original.n},) or "
                             f"(B, {self.original.n}), got {p.shape}")
        f = self.original.flops
        rep = np.array([g[int(np.argmax(f[list(g)]))] for g in self.groups], dtype=np.int64)
        return p[..., rep]

    def summary(self) -> dict[str, Any]:
        """What was merged: node counts before/after and the largest groups."""
        sizes = sorted((len(g) for g in self.groups), reverse=True)
        return {"original_nodes": self.original.n, "coarse_nodes": self.graph.n,
                "original_edges": self.original.num_edges, "coarse_edges": self.graph.num_edges,
                "target_nodes": self.target_nodes, "reached_target": self.reached_target,
                "merged_nodes": self.original.n - self.graph.n, "largest_groups": sizes[:5]}


def coarsen(graph: Graph, target_nodes: int, *, max_group_weight_bytes: float | None = None,
            name: str | None = None, graph_id: str | None = None) -> Coarsening:
    """Merge nodes of ``graph`` until at most ``target_nodes`` remain (see the module doc).

    Args:
        graph: the graph to coarsen (not modified).
        target_nodes: the node count to reach (>= 1). Stops early when no edge can be contracted
            (e.g. disconnected parts, or the weight cap); check :attr:`Coarsening.reached_target`.
        max_group_weight_bytes: never create a group whose weights exceed this many bytes (e.g. a
            chip's SRAM, so that the coarse graph stays feasible); None for no cap.
        name, graph_id: name and id of the coarse graph (default: the original's name, no id).

    Returns:
        A :class:`Coarsening`; its ``graph.metadata["coarsening"]`` records what was done.
    """
    if isinstance(target_nodes, bool) or not isinstance(target_nodes, (int, np.integer)) \
            or target_nodes < 1:
        raise ValueError(f"target_nodes must be an integer >= 1, got {target_nodes!r}")
    n = graph.n
    tot = [max(float(a.sum()), 1e-300) for a in (graph.flops, graph.weight_bytes, graph.out_bytes)]
    base = graph.flops / tot[0] + graph.weight_bytes / tot[1] + graph.out_bytes / tot[2] + 1.0 / n
    size = base.astype(float).tolist()
    weight = graph.weight_bytes.astype(float).tolist()
    cap = float("inf") if max_group_weight_bytes is None else float(max_group_weight_bytes)

    succ: list[set[int]] = [set(s) for s in graph.succs]
    pred: list[set[int]] = [set(p) for p in graph.preds]
    members: list[list[int]] = [[v] for v in range(n)]
    alive = [True] * n
    version = [0] * n
    order: list[int] = list(range(n))  # a topological order of the live groups (with holes)
    pos: list[int] = list(range(n))

    heap: list[tuple[float, int, int, int, int]] = []

    # A gather with a table (an embedding lookup) reads only the rows it outputs; merged into a group
    # its op would be lost and the whole table costed as read, so such nodes stay on their own.
    alone = [op_kind(nd.op) in GATHER_OPS and graph.param_bytes[v] > 0 for v, nd in enumerate(graph.nodes)]

    def push(a: int, b: int) -> None:
        if weight[a] + weight[b] <= cap and not (alone[a] or alone[b]):
            heapq.heappush(heap, (size[a] + size[b], a, b, version[a], version[b]))

    for a in range(n):
        for b in succ[a]:
            push(a, b)

    def descendants_before(a: int, b: int) -> list[int] | None:
        """Groups reachable from ``a`` with position < pos[b] (not via the edge a->b); None if
        ``b`` is reachable that way (contracting a->b would close a cycle)."""
        limit = pos[b]
        seen: set[int] = set()
        stack = [w for w in succ[a] if w != b]
        while stack:
            w = stack.pop()
            if w in seen:
                continue
            if w == b:
                return None
            if pos[w] > limit:
                continue  # beyond b in the topological order: cannot lead to b
            seen.add(w)
            stack.extend(succ[w])
        return [w for w in seen if pos[w] < limit]

    live = n
    while live > target_nodes and heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb or b not in succ[a]:
            continue
        if len(succ[a]) == 1 or len(pred[b]) == 1:
            below: list[int] = []  # no other path a ~> b can exist
            if len(succ[a]) > 1:  # still move a's other descendants after the merged group
                below = descendants_before(a, b) or []
        else:
            found = descendants_before(a, b)
            if found is None:
                continue  # re-pushed when a or b changes; other merges cannot remove the path
            below = found
        # Reorder the window pos[a]..pos[b]: [others], merged group (at a's id), [a's descendants].
        lo, hi = pos[a], pos[b]
        below_set = set(below)
        window = [w for w in order[lo:hi + 1] if w != -1 and w != a and w != b]
        others = [w for w in window if w not in below_set]
        desc = [w for w in window if w in below_set]
        new = others + [a] + desc
        new += [-1] * (hi - lo + 1 - len(new))
        order[lo:hi + 1] = new
        for i, w in enumerate(new, start=lo):
            if w != -1:
                pos[w] = i
        # Contract b into a.
        alive[b] = False
        live -= 1
        members[a].extend(members[b])
        members[b] = []
        size[a] += size[b]
        weight[a] += weight[b]
        succ[a].discard(b)
        pred[b].discard(a)
        for w in succ[b]:
            pred[w].discard(b)
            pred[w].add(a)
            succ[a].add(w)
        for u in pred[b]:
            succ[u].discard(b)
            succ[u].add(a)
            pred[a].add(u)
        succ[b], pred[b] = set(), set()
        version[a] += 1
        for w in succ[a]:
            push(a, w)
        for u in pred[a]:
            push(u, a)

    groups_live = [g for g in order if g != -1]
    return _build(graph, [sorted(members[g]) for g in groups_live], target_nodes, name, graph_id)


def _build(graph: Graph, groups: list[list[int]], target: int, name: str | None,
           graph_id: str | None) -> Coarsening:
    """The coarse graph of ``groups`` (listed in a topological order of the contracted graph)."""
    n = graph.n
    assign = np.empty(n, dtype=np.int64)
    for c, g in enumerate(groups):
        assign[g] = c
    f, w, o = graph.flops, graph.weight_bytes, graph.out_bytes
    names: list[str] = []
    nodes: list[Node] = []
    for g in groups:
        lead = max(g, key=lambda v: (f[v], w[v], -v))  # the member with the most FLOPs
        nm = graph.names[lead] if len(g) == 1 else f"{graph.names[lead]}+{len(g) - 1}"
        names.append(nm)
        nodes.append(Node(nm, graph.nodes[lead].op, float(f[g].sum()), float(w[g].sum()),
                          float(o[g].sum())))
    # Multicast: producer u sends its tensor once to group B (its largest edge into B).
    per_producer: dict[tuple[int, int], float] = {}
    for s, d, b in zip(graph.edge_src.tolist(), graph.edge_dst.tolist(), graph.edge_bytes.tolist(),
                       strict=True):
        cs, cd = int(assign[s]), int(assign[d])
        if cs != cd:
            key = (s, cd)
            per_producer[key] = max(per_producer.get(key, 0.0), b)
    agg: dict[tuple[int, int], float] = {}
    for (s, cd), b in per_producer.items():
        key = (int(assign[s]), cd)
        agg[key] = agg.get(key, 0.0) + b
    edges = [Edge(names[a], names[b], byt) for (a, b), byt in sorted(agg.items())]
    # Shared tensors: read by groups now; one read by a single group becomes part of its weights.
    shared: list[SharedTensor] = []
    extra = np.zeros(len(groups))
    for t in graph.shared:
        users = sorted({int(assign[graph.index[u]]) for u in t.users})
        if len(users) == 1:
            extra[users[0]] += t.bytes
        else:
            shared.append(SharedTensor(t.name, t.bytes, tuple(names[c] for c in users)))
    if extra.any():
        nodes = [Node(nd.name, nd.op, nd.flops, nd.weight_bytes + float(x), nd.out_bytes)
                 for nd, x in zip(nodes, extra.tolist(), strict=True)]
    if len(set(names)) != len(names):  # pragma: no cover - leads are distinct nodes
        raise GraphError("coarsening produced duplicate group names")
    ops = Counter(graph.nodes[v].op for g in groups if len(g) > 1 for v in g)
    meta = dict(graph.metadata)
    meta["coarsening"] = {
        "method": "mcm_gym.instances.coarsen.coarsen (contract single-path edges, smallest groups first)",
        "original_id": graph.id, "original_nodes": n, "original_edges": graph.num_edges,
        "coarse_nodes": len(groups), "target_nodes": target,
        "merged_ops": dict(ops.most_common(12)),
        "node_rule": "flops, weight_bytes, out_bytes summed over members; op and name of the "
                     "member with the most FLOPs, '+k' = k more members",
        "edge_rule": "per producer, its largest edge into the consumer group, summed over "
                     "producers",
    }
    totals = meta.get("totals")
    if isinstance(totals, dict):
        meta["totals"] = {**totals, "num_nodes": len(groups), "num_edges": len(edges)}
    coarse = Graph(nodes, edges, name=name or graph.name, id=graph_id, metadata=meta, shared=shared)
    # Groups were listed in a topological order, which Graph keeps; map through names to be safe.
    idx = coarse.index
    perm = np.array([idx[nm] for nm in names], dtype=np.int64)
    ordered: list[tuple[int, ...]] = [()] * len(groups)
    for c, g in enumerate(groups):
        ordered[perm[c]] = tuple(g)
    return Coarsening(original=graph, graph=coarse, groups=tuple(ordered), assignment=perm[assign],
                      target_nodes=int(target))


def expand_partition(coarsening: Coarsening, partition: Sequence[int] | np.ndarray) -> np.ndarray:
    """Chip per original node from a partition of ``coarsening.graph`` (see
    :meth:`Coarsening.expand`)."""
    return coarsening.expand(partition)
