"""Random graph families, by versioned name: ``generator://<family>-v<N>/<seed>`` ids.

A family is a function ``seed -> Graph`` (the same graph for the same seed) that also states the
largest sizes it can produce (nodes, edges), so padded observations can be sized without sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mcm_gym.core.graph import Edge, Graph, GraphError, Node

__all__ = ["Family", "FAMILIES", "generate", "layered_dag"]


def layered_dag(seed: int, *, min_nodes: int = 8, max_nodes: int = 48, max_width: int = 4) -> Graph:
    """A random layered DAG resembling a small network: FLOPs, weights and activations drawn from
    log-uniform ranges (FLOPs 1e6..1e9, weights 1e3..4e6 bytes, outputs 1e3..1e5 bytes). Every node
    of a layer has 1-2 inputs from the previous layers, mostly the last one. Same seed, same graph."""
    rng = np.random.default_rng(seed)
    n_target = int(rng.integers(min_nodes, max_nodes + 1))
    layers: list[list[int]] = [[0]]
    count = 1
    while count < n_target:
        w = min(int(rng.integers(1, max_width + 1)), n_target - count)
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


@dataclass(frozen=True)
class Family:
    """A generator family: ``make(seed)`` and the most nodes / edges any seed gives."""

    name: str
    make: Callable[[int], Graph]
    max_nodes: int
    max_edges: int


#: Family name (with version) -> :class:`Family`. Layered DAGs: at most 48 nodes; every node but the
#: first has at most 2 inputs, and every sink but the last gets one edge to the last node.
FAMILIES: dict[str, Family] = {
    "layered-dag-v0": Family("layered-dag-v0", layered_dag, max_nodes=48, max_edges=3 * 48),
}


def generate(family: str, seed: int) -> Graph:
    """The graph of ``family`` for ``seed``; raises :class:`GraphError` for an unknown family."""
    fam = FAMILIES.get(family)
    if fam is None:
        raise GraphError(f"unknown generator family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    if seed < 0:
        raise GraphError(f"generator seeds are >= 0, got {seed}")
    return fam.make(seed)
