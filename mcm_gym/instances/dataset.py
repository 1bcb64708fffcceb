"""A seeded stream of graph instances that knows its sizes (for padded observations)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property

import numpy as np

from mcm_gym.core.graph import Graph, GraphError
from mcm_gym.core.ids import expand_ids
from mcm_gym.instances.catalog import load_graph

__all__ = ["GraphGenerator"]


class GraphGenerator:
    """Graphs drawn at random from a fixed list of ids (ranges such as
    ``generator://layered-dag-v0/0:100`` allowed) or :class:`Graph` objects.

    ``GraphGenerator(["zoo://bert-base-v1", "tiny://mlp-v1"])`` draws among two graphs;
    ``GraphGenerator.layered(range(100))`` among ``generator://layered-dag-v0/<seed>`` graphs.
    :attr:`max_nodes` and :attr:`max_edges` are the largest sizes it can give (each graph is built
    once to measure them, on first access), so an environment pads for all of them up front.
    """

    def __init__(self, ids: Iterable[str | Graph]) -> None:
        self.ids: list[str | Graph] = list(expand_ids(ids))
        if not self.ids:
            raise GraphError("GraphGenerator needs at least one graph id")

    @classmethod
    def layered(cls, seeds: Iterable[int]) -> GraphGenerator:
        return cls([f"generator://layered-dag-v0/{s}" for s in seeds])

    @cached_property
    def _sizes(self) -> tuple[int, int]:
        graphs = [load_graph(i) for i in self.ids]
        return max(g.n for g in graphs), max(max(g.num_edges, 1) for g in graphs)

    @property
    def max_nodes(self) -> int:
        """The most nodes of any graph it gives."""
        return self._sizes[0]

    @property
    def max_edges(self) -> int:
        """The most edges of any graph it gives (at least 1)."""
        return self._sizes[1]

    def sample(self, rng: np.random.Generator) -> Graph:
        """One graph, drawn uniformly with ``rng``."""
        return load_graph(self.ids[int(rng.integers(len(self.ids)))])

    def __iter__(self) -> Iterator[Graph]:
        return (load_graph(i) for i in self.ids)

    def __len__(self) -> int:
        return len(self.ids)
