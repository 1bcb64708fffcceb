"""Problem instances: bundled graph files and random generators behind one interface.

Ids are stable and versioned:

* ``zoo://bert-base-v1``: a bundled file (``graphs/*.json``; the file's ``id`` field); the short name
  ``bert-base`` works too;
* ``tiny://chain-v1`` etc.: small hand-made graphs for tests and teaching;
* ``generator://layered-dag-v0/<seed>``: a random layered DAG, the same for the same seed.

Bundled data are read lazily (on first use), never at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .graph import Edge, Graph, GraphError, Node

__all__ = ["load_graph", "list_graphs", "graph_dir", "layered_dag", "GraphGenerator"]


def graph_dir() -> Path:
    """Folder of the bundled graph files (in a wheel: ``mcm_gym/_graphs``; in a checkout: ``graphs/``)."""
    try:
        packaged = resources.files("mcm_gym") / "_graphs"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parent.parent / "graphs"


@lru_cache(maxsize=1)
def _index() -> dict[str, Path]:
    """id and short name -> file, reading only each file's head."""
    out: dict[str, Path] = {}
    for path in sorted(graph_dir().glob("*.json")):
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
        m = re.search(r'"id"\s*:\s*"([^"]+)"', head)
        n = re.search(r'"name"\s*:\s*"([^"]+)"', head)
        if m:
            out[m.group(1)] = path
        if n:
            out.setdefault(n.group(1), path)
        out.setdefault(path.stem, path)
    return out


def list_graphs() -> list[str]:
    """Ids of the bundled graphs (``zoo://``, ``tiny://``)."""
    return sorted(k for k in _index() if "://" in k)


@lru_cache(maxsize=32)
def _load_cached(path: str) -> Graph:
    return Graph.load(path)


_GEN_RE = re.compile(r"^generator://layered-dag-v0/(\d+)$")


def load_graph(spec: str | os.PathLike[str] | Graph | dict[str, Any]) -> Graph:
    """Resolve a graph: a :class:`Graph`, a ``mcm-graph/1`` dict, an id, a short name or a file path."""
    if isinstance(spec, Graph):
        return spec
    if isinstance(spec, dict):
        return Graph.from_dict(spec)
    s = str(spec)
    m = _GEN_RE.match(s)
    if m:
        return layered_dag(int(m.group(1)))
    idx = _index()
    if s in idx:
        return _load_cached(str(idx[s]))
    if os.path.exists(s):
        return Graph.load(s)
    raise GraphError(f"unknown graph {s!r}: give a file path, a generator id "
                     f"(generator://layered-dag-v0/<seed>) or one of {', '.join(list_graphs())}")


def layered_dag(seed: int, *, min_nodes: int = 8, max_nodes: int = 48, max_width: int = 4) -> Graph:
    """A random layered DAG resembling a small network: FLOPs, weights and activations drawn from
    log-uniform ranges (FLOPs 1e6..1e9, weights 1e3..4e6 bytes, outputs 1e3..1e5 bytes). Every node
    of a layer has 1-2 inputs from the previous layers, mostly the last one. Same seed, same graph."""
    rng = np.random.default_rng(seed)
    n_target = int(rng.integers(min_nodes, max_nodes + 1))
    layers: list[list[int]] = [[0]]
    count = 1
    while count < n_target:
        w = int(min(rng.integers(1, max_width + 1), n_target - count))
        layers.append(list(range(count, count + w)))
        count += w
    nodes, edges = [], []
    ops = ["matmul", "conv", "add", "norm", "act"]
    for i in range(count):
        op = ops[int(rng.integers(len(ops)))] if i else "input"
        heavy = op in ("matmul", "conv")
        nodes.append(Node(
            name=f"n{i}", op=op,
            flops=float(np.round(10 ** rng.uniform(8, 9) if heavy else 10 ** rng.uniform(6, 7))) if i else 0.0,
            weight_bytes=float(np.round(10 ** rng.uniform(5, 6.6))) if heavy else 0.0,
            out_bytes=float(np.round(10 ** rng.uniform(3, 5)))))
    for li in range(1, len(layers)):
        for v in layers[li]:
            srcs = {int(rng.choice(layers[li - 1]))}
            if rng.random() < 0.3 and li >= 2:
                back = int(rng.integers(0, li - 1)) if li > 1 else 0
                srcs.add(int(rng.choice(layers[back])))
            edges += [Edge(f"n{u}", f"n{v}") for u in sorted(srcs)]
    # make every node but the last reach the output: connect sinks to the final node
    has_succ = {e.src for e in edges}
    last = count - 1
    for v in range(count - 1):
        if f"n{v}" not in has_succ and v not in layers[-1]:
            edges.append(Edge(f"n{v}", f"n{last}"))
    return Graph(nodes, edges, name=f"layered-dag-{seed}", id=f"generator://layered-dag-v0/{seed}",
                 metadata={"generator": "layered-dag-v0", "seed": seed})


class GraphGenerator:
    """An endless, seeded stream of instances: bundled ids or a generator family.

    ``GraphGenerator(["zoo://bert-base-v1", "tiny://mlp-v1"])`` cycles through graphs at random;
    ``GraphGenerator.layered(range(100))`` gives ``generator://layered-dag-v0/<seed>`` graphs.
    """

    def __init__(self, ids: list[str]) -> None:
        if not ids:
            raise GraphError("GraphGenerator needs at least one graph id")
        self.ids = list(ids)

    @classmethod
    def layered(cls, seeds: Any) -> GraphGenerator:
        return cls([f"generator://layered-dag-v0/{s}" for s in seeds])

    def sample(self, rng: np.random.Generator) -> Graph:
        return load_graph(self.ids[int(rng.integers(len(self.ids)))])

    def __iter__(self) -> Iterator[Graph]:
        return (load_graph(i) for i in self.ids)

    def __len__(self) -> int:
        return len(self.ids)


