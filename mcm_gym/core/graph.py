"""Computation graphs: nodes with FLOPs and bytes, edges with bytes, the ``mcm-graph/1`` JSON format.

Units: ``flops`` in FLOPs (a multiply-add counts 2), every size in bytes.
A node's ``weight_bytes`` are its own parameters; a parameter tensor read by several nodes (tied
embeddings, a layer reused across depth as in ALBERT) is a :class:`SharedTensor` of the graph, listed
once with its users: a chip holds it once if it runs any of them (see :mod:`mcm_gym.core.cost`).
A :class:`Graph` keeps its nodes in a topological order (stable with respect to the order given),
so node ``i``'s predecessors always have indices ``< i``; the arrays below use that order.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym._io import atomic_write_text

FORMAT = "mcm-graph/1"

__all__ = ["FORMAT", "Graph", "GraphError", "Node", "Edge", "SharedTensor", "error_summary"]


class GraphError(ValueError):
    """A graph is malformed: a cycle, a dangling edge, a bad size, a duplicate name, a bad file."""


def error_summary(exc: BaseException) -> str:
    """``"TypeName: first non-empty line of the message"``: a third-party exception (a user's model
    builder, torch.export) in one line, for a :class:`GraphError` that names the file."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


@dataclass(frozen=True)
class Node:
    """One operation. ``flops`` in FLOPs; ``weight_bytes`` (parameters resident in SRAM) and
    ``out_bytes`` (its output tensor) in bytes."""

    name: str
    op: str = "op"
    flops: float = 0.0
    weight_bytes: float = 0.0
    out_bytes: float = 0.0


@dataclass(frozen=True)
class Edge:
    """Data dependency ``src -> dst`` carrying ``bytes`` (default: the producer's ``out_bytes``)."""

    src: str
    dst: str
    bytes: float | None = None


@dataclass(frozen=True)
class SharedTensor:
    """A parameter tensor of ``bytes`` bytes read by every node in ``users`` (node names): each chip
    that runs at least one user keeps its own copy in SRAM."""

    name: str
    bytes: float
    users: tuple[str, ...]


def _check_size(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise GraphError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise GraphError(f"{what} must be finite, got {value!r}")
    if v < 0:
        raise GraphError(f"{what} must be >= 0, got {value!r}")
    return v


@dataclass(frozen=True, eq=False)
class Graph:
    """A validated DAG of operations.

    Build one from :class:`Node` and :class:`Edge` objects (or ``(src, dst[, bytes])`` tuples), from a
    ``mcm-graph/1`` dict (:meth:`from_dict`) or file (:meth:`load`). Invalid input raises
    :class:`GraphError` naming the problem.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    name: str = "graph"
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    shared: tuple[SharedTensor, ...] = ()

    def __init__(
        self,
        nodes: Iterable[Node | Mapping[str, Any]],
        edges: Iterable[Edge | Sequence[Any] | Mapping[str, Any]],
        *,
        name: str = "graph",
        id: str | None = None,  # noqa: A002 - matches the JSON field
        metadata: Mapping[str, Any] | None = None,
        shared: Iterable[SharedTensor | Mapping[str, Any]] = (),
    ) -> None:
        node_list = [_coerce_node(x, i) for i, x in enumerate(nodes)]
        if not node_list:
            raise GraphError("graph has no nodes")
        index: dict[str, int] = {}
        for i, nd in enumerate(node_list):
            if nd.name in index:
                raise GraphError(f"duplicate node name {nd.name!r}")
            index[nd.name] = i
        edge_list = [_coerce_edge(e, i) for i, e in enumerate(edges)]
        seen: set[tuple[str, str]] = set()
        for e in edge_list:
            for end in (e.src, e.dst):
                if end not in index:
                    raise GraphError(f"edge {e.src!r} -> {e.dst!r} names unknown node {end!r}")
            if e.src == e.dst:
                raise GraphError(f"self-loop on node {e.src!r}: the graph must be acyclic")
            if (e.src, e.dst) in seen:
                raise GraphError(f"duplicate edge {e.src!r} -> {e.dst!r}")
            seen.add((e.src, e.dst))
        order = _topological_order(len(node_list), [(index[e.src], index[e.dst]) for e in edge_list],
                                   [nd.name for nd in node_list])
        object.__setattr__(self, "nodes", tuple(node_list[i] for i in order))
        object.__setattr__(self, "edges", tuple(edge_list))
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "metadata", dict(metadata or {}))
        object.__setattr__(self, "shared", _coerce_shared(shared, index))

    # ----------------------------------------------------------------- basic views
    @property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(nd.name for nd in self.nodes)

    @cached_property
    def index(self) -> dict[str, int]:
        """Node name -> position in the topological order."""
        return {nm: i for i, nm in enumerate(self.names)}

    @cached_property
    def flops(self) -> np.ndarray:
        """FLOPs per node, shape ``(n,)``."""
        return np.array([nd.flops for nd in self.nodes], dtype=np.float64)

    @cached_property
    def weight_bytes(self) -> np.ndarray:
        """Parameter bytes per node, shape ``(n,)``."""
        return np.array([nd.weight_bytes for nd in self.nodes], dtype=np.float64)

    @cached_property
    def shared_bytes(self) -> np.ndarray:
        """Bytes per shared tensor, shape ``(S,)``."""
        return np.array([t.bytes for t in self.shared], dtype=np.float64)

    @cached_property
    def shared_users(self) -> tuple[tuple[int, ...], ...]:
        """For each shared tensor, the indices of the nodes that read it."""
        idx = self.index
        return tuple(tuple(idx[u] for u in t.users) for t in self.shared)

    @cached_property
    def shared_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tensor, node)`` index arrays, shape ``(M,)`` each: one entry per (shared tensor, user),
        grouped by tensor."""
        ts = [i for i, us in enumerate(self.shared_users) for _ in us]
        vs = [v for us in self.shared_users for v in us]
        return np.array(ts, dtype=np.int64), np.array(vs, dtype=np.int64)

    @cached_property
    def node_shared(self) -> tuple[tuple[int, ...], ...]:
        """For each node, the indices of the shared tensors it reads."""
        out: list[list[int]] = [[] for _ in range(self.n)]
        for t, v in zip(*(a.tolist() for a in self.shared_pairs), strict=True):
            out[v].append(t)
        return tuple(tuple(x) for x in out)

    @cached_property
    def shared_read_bytes(self) -> np.ndarray:
        """Bytes of the shared tensors each node reads, shape ``(n,)``."""
        out = np.zeros(self.n)
        t, v = self.shared_pairs
        np.add.at(out, v, self.shared_bytes[t])
        return out

    @cached_property
    def param_bytes(self) -> np.ndarray:
        """Parameter bytes each node reads: its own plus every shared tensor it uses, shape ``(n,)``."""
        return self.weight_bytes + self.shared_read_bytes

    @cached_property
    def out_bytes(self) -> np.ndarray:
        """Output tensor bytes per node, shape ``(n,)``."""
        return np.array([nd.out_bytes for nd in self.nodes], dtype=np.float64)

    @cached_property
    def _edge_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.index
        src = np.array([idx[e.src] for e in self.edges], dtype=np.int64)
        dst = np.array([idx[e.dst] for e in self.edges], dtype=np.int64)
        byt = np.array(
            [self.nodes[idx[e.src]].out_bytes if e.bytes is None else e.bytes for e in self.edges],
            dtype=np.float64,
        )
        order = np.lexsort((dst, src))
        return src[order], dst[order], byt[order]

    @property
    def edge_src(self) -> np.ndarray:
        """Producer index per edge, shape ``(E,)``; edges sorted by ``(src, dst)``."""
        return self._edge_arrays[0]

    @property
    def edge_dst(self) -> np.ndarray:
        """Consumer index per edge, shape ``(E,)``."""
        return self._edge_arrays[1]

    @property
    def edge_bytes(self) -> np.ndarray:
        """Bytes carried per edge, shape ``(E,)``."""
        return self._edge_arrays[2]

    @cached_property
    def in_bytes(self) -> np.ndarray:
        """Bytes read from predecessors per node, shape ``(n,)``."""
        out = np.zeros(self.n)
        np.add.at(out, self.edge_dst, self.edge_bytes)
        return out

    @cached_property
    def preds(self) -> tuple[tuple[int, ...], ...]:
        p: list[list[int]] = [[] for _ in range(self.n)]
        for s, d in zip(self.edge_src.tolist(), self.edge_dst.tolist(), strict=True):
            p[d].append(s)
        return tuple(tuple(x) for x in p)

    @cached_property
    def succs(self) -> tuple[tuple[int, ...], ...]:
        s_: list[list[int]] = [[] for _ in range(self.n)]
        for s, d in zip(self.edge_src.tolist(), self.edge_dst.tolist(), strict=True):
            s_[s].append(d)
        return tuple(tuple(x) for x in s_)

    @cached_property
    def triangles(self) -> np.ndarray:
        """All ``(u, v, w)`` with edges u->v, v->w and u->w; shape ``(T, 3)``."""
        succ = [set(x) for x in self.succs]
        tri = [(u, v, w) for u in range(self.n) for v in self.succs[u] for w in self.succs[v]
               if w in succ[u]]
        return np.array(tri, dtype=np.int64).reshape(-1, 3)

    @cached_property
    def triangles_ending_at(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """For each node ``w``, the ``(u, v)`` pairs of the triangles ``(u, v, w)``."""
        by_w: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]
        for u, v, w in self.triangles.tolist():
            by_w[w].append((u, v))
        return tuple(tuple(x) for x in by_w)

    @cached_property
    def reach(self) -> np.ndarray:
        """``reach[u, v]`` is True when ``v`` is reachable from ``u`` (or ``u == v``); shape ``(n, n)``."""
        r = np.eye(self.n, dtype=bool)
        for v in range(self.n - 1, -1, -1):
            for w in self.succs[v]:
                r[v] |= r[w]
        return r

    def reach_sums(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact sums of ``weights`` (shape ``(n,)``) over every node's ancestors and descendants.

        Returns ``(anc, desc)``, each of shape ``(n,)``: ``anc[v]`` sums ``weights[u]`` over the nodes
        ``u`` from which ``v`` is reachable, ``desc[v]`` over the nodes reachable from ``v``; both
        include ``v`` itself and count a node reached along several paths once (equal to
        ``reach.T @ weights`` and ``reach @ weights``). Unlike :attr:`reach` it never builds an
        ``n x n`` matrix: reachability is kept as bitsets (``n * n / 8`` bytes, in blocks of target
        nodes of at most 64 MB each) and summed through a per-byte table. Time ``O(E * n / 64)``.
        The last few results are cached per weight vector.
        """
        w = np.ascontiguousarray(weights, dtype=np.float64)
        if w.shape != (self.n,):
            raise ValueError(f"weights must have shape ({self.n},), got {w.shape}")
        key = w.tobytes()
        cache = self._reach_sums_cache
        if key not in cache:
            desc = _closure_sums(self.succs, range(self.n - 1, -1, -1), w)
            anc = _closure_sums(self.preds, range(self.n), w)
            anc.flags.writeable = desc.flags.writeable = False
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = (anc, desc)
        return cache[key]

    @cached_property
    def _reach_sums_cache(self) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        return {}

    def priority_order(self, key: np.ndarray) -> np.ndarray:
        """A topological order that always takes the ready node with the smallest ``key[v]`` (ties
        by index); shape ``(n,)``, node indices."""
        indeg = np.array([len(p) for p in self.preds], dtype=np.int64)
        heap = [(float(key[v]), v) for v in range(self.n) if indeg[v] == 0]
        heapq.heapify(heap)
        out: list[int] = []
        while heap:
            _, v = heapq.heappop(heap)
            out.append(v)
            for w in self.succs[v]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    heapq.heappush(heap, (float(key[w]), w))
        return np.array(out, dtype=np.int64)

    @cached_property
    def depth(self) -> np.ndarray:
        """Longest path (in edges) from any source to each node, shape ``(n,)``."""
        d = np.zeros(self.n, dtype=np.int64)
        for v in range(self.n):
            for u in self.preds[v]:
                d[v] = max(d[v], d[u] + 1)
        return d

    @property
    def total_flops(self) -> float:
        return float(self.flops.sum())

    @property
    def total_weight_bytes(self) -> float:
        """Parameter bytes of the model: every node's own plus each shared tensor once."""
        return float(self.weight_bytes.sum() + self.shared_bytes.sum())

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, id={self.id!r}, n={self.n}, edges={self.num_edges}, "
                f"flops={self.total_flops:.3g}, weight_bytes={self.total_weight_bytes:.3g})")

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "nodes": self.n, "edges": self.num_edges,
                "flops": self.total_flops, "weight_bytes": self.total_weight_bytes,
                "max_node_weight_bytes": float(self.param_bytes.max()), "shared_tensors": len(self.shared)}

    # ----------------------------------------------------------------- conversion
    def to_networkx(self) -> Any:
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        if self.shared:
            g.graph["shared"] = [_shared_doc(t) for t in self.shared]
        for nd in self.nodes:
            g.add_node(nd.name, op=nd.op, flops=nd.flops, weight_bytes=nd.weight_bytes,
                       out_bytes=nd.out_bytes)
        for s, d, b in zip(self.edge_src, self.edge_dst, self.edge_bytes, strict=True):
            g.add_edge(self.names[s], self.names[d], bytes=float(b))
        return g

    @classmethod
    def from_networkx(cls, g: Any, *, name: str | None = None, id: str | None = None) -> Graph:  # noqa: A002
        """Build from a ``networkx.DiGraph`` whose node/edge attributes use this module's field names."""
        nodes = [Node(name=str(v), op=str(a.get("op", "op")), flops=a.get("flops", 0.0),
                      weight_bytes=a.get("weight_bytes", 0.0), out_bytes=a.get("out_bytes", 0.0))
                 for v, a in g.nodes(data=True)]
        edges = [Edge(str(u), str(v), a.get("bytes")) for u, v, a in g.edges(data=True)]
        return cls(nodes, edges, name=name or str(g.graph.get("name", "graph")), id=id,
                   shared=g.graph.get("shared") or ())

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> int | float:
            return int(x) if float(x).is_integer() else float(x)

        return {
            "format": FORMAT,
            "id": self.id,
            "name": self.name,
            "metadata": dict(self.metadata),
            "nodes": [{"name": nd.name, "op": nd.op, "flops": num(nd.flops),
                       "weight_bytes": num(nd.weight_bytes), "out_bytes": num(nd.out_bytes)}
                      for nd in self.nodes],
            "edges": [{"src": e.src, "dst": e.dst, **({} if e.bytes is None else {"bytes": num(e.bytes)})}
                      for e in self.edges],
            **({"shared": [_shared_doc(t) for t in self.shared]} if self.shared else {}),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str = "graph document") -> Graph:
        if not isinstance(doc, Mapping):
            raise GraphError(f"{source}: expected a JSON object, got {type(doc).__name__}")
        fmt = doc.get("format")
        if fmt != FORMAT:
            raise GraphError(f"{source}: field 'format' must be {FORMAT!r}, got {fmt!r}")
        for key in ("nodes", "edges"):
            if key not in doc:
                raise GraphError(f"{source}: missing field {key!r}")
            if not isinstance(doc[key], list):
                raise GraphError(f"{source}: field {key!r} must be a list")
        if not isinstance(doc.get("shared", []), list):
            raise GraphError(f"{source}: field 'shared' must be a list")
        try:
            return cls(doc["nodes"], doc["edges"], name=str(doc.get("name", "graph")),
                       id=doc.get("id"), metadata=doc.get("metadata") or {}, shared=doc.get("shared", []))
        except GraphError as exc:
            raise GraphError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Graph:
        """Load a ``mcm-graph/1`` JSON file."""
        path = Path(path)
        if path.is_dir():
            raise GraphError(f"{path} is a directory, not a graph file ({FORMAT} JSON)")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GraphError(f"graph file not found: {path}") from None
        except UnicodeDecodeError:
            hint = (" It looks like an ONNX model: mcm_gym.load_graph and the CLI import .onnx files "
                    "(with mcm-gym[onnx]), or convert it once with `mcm-gym graphs import "
                    f"{path} --out model.json`." if path.suffix == ".onnx" or _is_onnx(path) else "")
            raise GraphError(f"{path}: not a {FORMAT} JSON file (binary content).{hint}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(doc, source=str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as ``mcm-graph/1`` JSON, atomically, one node or edge per line."""
        doc = self.to_dict()
        head = {k: v for k, v in doc.items() if k not in ("nodes", "edges", "shared")}
        lines = json.dumps(head, indent=1)[:-2].rstrip()
        parts = [lines + ",", ' "nodes": [']
        parts.append(",\n".join("  " + json.dumps(x) for x in doc["nodes"]))
        parts.append(' ],\n "edges": [')
        parts.append(",\n".join("  " + json.dumps(x) for x in doc["edges"]))
        if "shared" in doc:
            parts.append(' ],\n "shared": [')
            parts.append(",\n".join("  " + json.dumps(x) for x in doc["shared"]))
        parts.append(" ]\n}\n")
        atomic_write_text(path, "\n".join(parts))


_NODE_FIELDS = ("name", "op", "flops", "weight_bytes", "out_bytes")


def _coerce_node(x: Node | Mapping[str, Any], i: int) -> Node:
    if isinstance(x, Node):
        d: Mapping[str, Any] = {f: getattr(x, f) for f in _NODE_FIELDS}
    elif isinstance(x, Mapping):
        d = x
    else:
        raise GraphError(f"node #{i} must be a Node or an object, got {type(x).__name__}")
    if "name" not in d:
        raise GraphError(f"node #{i} is missing field 'name'")
    name = d["name"]
    if not isinstance(name, str) or not name:
        raise GraphError(f"node #{i}: 'name' must be a non-empty string, got {name!r}")
    unknown = set(d) - set(_NODE_FIELDS)
    if unknown:
        raise GraphError(f"node {name!r}: unknown field(s) {sorted(unknown)}")
    return Node(
        name=name,
        op=str(d.get("op", "op")),
        flops=_check_size(d.get("flops", 0), f"node {name!r} field 'flops'"),
        weight_bytes=_check_size(d.get("weight_bytes", 0), f"node {name!r} field 'weight_bytes'"),
        out_bytes=_check_size(d.get("out_bytes", 0), f"node {name!r} field 'out_bytes'"),
    )


def _shared_doc(t: SharedTensor) -> dict[str, Any]:
    b = int(t.bytes) if float(t.bytes).is_integer() else float(t.bytes)
    return {"name": t.name, "bytes": b, "users": list(t.users)}


def _coerce_shared(items: Iterable[SharedTensor | Mapping[str, Any]],
                   index: Mapping[str, int]) -> tuple[SharedTensor, ...]:
    out: list[SharedTensor] = []
    names: set[str] = set()
    for i, x in enumerate(items):
        if isinstance(x, SharedTensor):
            name, size, users = x.name, x.bytes, x.users
        elif isinstance(x, Mapping):
            unknown = set(x) - {"name", "bytes", "users"}
            if unknown:
                raise GraphError(f"shared tensor #{i}: unknown field(s) {sorted(unknown)}")
            for key in ("name", "bytes", "users"):
                if key not in x:
                    raise GraphError(f"shared tensor #{i} is missing field {key!r}")
            name, size, users = x["name"], x["bytes"], x["users"]
        else:
            raise GraphError(f"shared tensor #{i} must be a SharedTensor or an object, got {type(x).__name__}")
        if not isinstance(name, str) or not name:
            raise GraphError(f"shared tensor #{i}: 'name' must be a non-empty string, got {name!r}")
        if name in names:
            raise GraphError(f"duplicate shared tensor name {name!r}")
        names.add(name)
        if isinstance(users, str) or not isinstance(users, Sequence) or not users:
            raise GraphError(f"shared tensor {name!r}: 'users' must be a non-empty list of node names")
        for u in users:
            if u not in index:
                raise GraphError(f"shared tensor {name!r} names unknown node {u!r}")
        if len(set(users)) != len(users):
            raise GraphError(f"shared tensor {name!r} lists a user twice")
        out.append(SharedTensor(name, _check_size(size, f"shared tensor {name!r} field 'bytes'"),
                                tuple(str(u) for u in users)))
    return tuple(out)


def _coerce_edge(e: Edge | Sequence[Any] | Mapping[str, Any], i: int) -> Edge:
    if isinstance(e, Edge):
        src, dst, b = e.src, e.dst, e.bytes
    elif isinstance(e, Mapping):
        for key in ("src", "dst"):
            if key not in e:
                raise GraphError(f"edge #{i} is missing field {key!r}")
        unknown = set(e) - {"src", "dst", "bytes"}
        if unknown:
            raise GraphError(f"edge #{i}: unknown field(s) {sorted(unknown)}")
        src, dst, b = e["src"], e["dst"], e.get("bytes")
    elif isinstance(e, Sequence) and not isinstance(e, str) and len(e) in (2, 3):
        src, dst = e[0], e[1]
        b = e[2] if len(e) == 3 else None
    else:
        raise GraphError(f"edge #{i} must be an Edge, an object or a (src, dst[, bytes]) tuple")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise GraphError(f"edge #{i}: 'src' and 'dst' must be node names, got {src!r}, {dst!r}")
    if b is not None:
        b = _check_size(b, f"edge {src!r} -> {dst!r} field 'bytes'")
    return Edge(src, dst, b)


def _topological_order(n: int, edges: list[tuple[int, int]], names: list[str]) -> list[int]:
    """Kahn's algorithm, smallest original index first (stable); names a cycle if there is one."""
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for s, d in edges:
        succ[s].append(d)
        indeg[d] += 1
    heap = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        v = heapq.heappop(heap)
        order.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, w)
    if len(order) < n:
        raise GraphError(f"graph has a cycle: {' -> '.join(names[i] for i in _find_cycle(n, succ, indeg))}")
    return order


def _find_cycle(n: int, succ: list[list[int]], indeg: list[int]) -> list[int]:
    # Every node left with indeg > 0 has a predecessor that is also left: walking predecessors
    # must repeat a node, and the repeated stretch (reversed) is a cycle.
    remaining = {i for i in range(n) if indeg[i] > 0}
    pred: dict[int, int] = {}
    for s in sorted(remaining):
        for w in succ[s]:
            if w in remaining and w not in pred:
                pred[w] = s
    seen: dict[int, int] = {}
    path: list[int] = []
    v = min(remaining)
    while v not in seen:
        seen[v] = len(path)
        path.append(v)
        v = pred[v]
    cyc = path[seen[v]:][::-1]
    return cyc + [cyc[0]]


def _is_onnx(path: Path) -> bool:
    """Whether a binary file looks like an ONNX model (a protobuf that names an ONNX producer or
    opset near its start)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"onnx" in head.lower() or b"pytorch" in head.lower()


#: ``_BYTE_BITS[b, i]`` is bit ``i`` of the byte value ``b`` (LSB first), as float64.
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)


def _closure_sums(nbrs: Sequence[Sequence[int]], order: Iterable[int], w: np.ndarray,
                  max_bytes: int = 1 << 26) -> np.ndarray:
    """``out[v] = sum of w[u]`` over the nodes ``u`` reachable from ``v`` through ``nbrs`` (``v``
    included), where ``order`` visits every node after all of its ``nbrs``.

    Reachability bitsets (bit ``t`` of row ``v``: byte ``t // 8``, bit ``t % 8``) are built for one
    block of target nodes at a time, so that a block takes at most ``max_bytes`` bytes; each row's
    weighted popcount is a sum of per-byte table entries (exact for integer weights)."""
    n = w.size
    out = np.zeros(n)
    order = list(order)
    block = max(64, (max_bytes * 8 // max(n, 1)) // 64 * 64)  # target nodes per block
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        words = (j1 - j0 + 63) // 64
        bits = np.zeros((n, words), dtype=np.uint64)
        view = bits.view(np.uint8)  # (n, 8 * words): byte-wise view of the same rows
        for v in order:
            row = bits[v]
            for u in nbrs[v]:
                np.bitwise_or(row, bits[u], out=row)
            if j0 <= v < j1:
                t = v - j0
                view[v, t >> 3] |= np.uint8(1 << (t & 7))
        wb = np.zeros(8 * view.shape[1])
        wb[:j1 - j0] = w[j0:j1]
        table = wb.reshape(-1, 8) @ _BYTE_BITS.T  # (bytes per row, 256): weight of the set bits
        cols = np.arange(view.shape[1])
        chunk = max(1, (1 << 21) // view.shape[1])  # rows per gather (about 16 MB of float64)
        for r0 in range(0, n, chunk):
            out[r0:r0 + chunk] += table[cols[None, :], view[r0:r0 + chunk]].sum(axis=1)
    return out
