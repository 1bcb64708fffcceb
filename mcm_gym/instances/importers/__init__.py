"""Importers: real model definitions into ``mcm-graph/1`` graphs.

::

    from mcm_gym.instances.importers import from_torch, from_onnx, from_networkx

* :func:`from_torch` — a ``torch.nn.Module`` and example inputs, via ``torch.export``
  (needs ``mcm-gym[torch]``);
* :func:`from_onnx` — an ``.onnx`` file, via ONNX shape inference (needs ``mcm-gym[onnx]``);
* :func:`from_networkx` — a ``networkx.DiGraph`` whose attributes use the ``mcm-graph/1`` field
  names;

Every function returns a validated :class:`~mcm_gym.Graph` (units: FLOPs and bytes); a bad input
raises :class:`~mcm_gym.GraphError` naming the cause. torch and onnx are imported only when used.
"""

from __future__ import annotations

from typing import Any

from mcm_gym.core.graph import Graph, GraphError
from mcm_gym.instances.importers.torch_export import TraceError

__all__ = ["TraceError", "from_networkx", "from_onnx", "from_torch"]


def from_torch(model: Any, example_inputs: tuple[Any, ...], *, dtype: str = "bfloat16",
               dtype_bytes: int | None = None, name: str | None = None,
               graph_id: str | None = None, metadata: dict[str, Any] | None = None,
               example_kwargs: dict[str, Any] | None = None) -> Graph:
    """Import a PyTorch model with ``torch.export``; see
    :func:`mcm_gym.instances.importers.torch_export.from_torch` for the rules (nodes, FLOPs, weights, bytes).

    ``dtype`` is the floating dtype the model is cast to; ``dtype_bytes`` overrides the storage
    size of floating tensors (e.g. ``1`` for int8). The import report (ops without a FLOP formula,
    shared parameters, ...) is in ``graph.metadata["import_report"]``. Raises
    :class:`~mcm_gym.instances.importers.torch_export.TraceError` (a :class:`GraphError`) when
    ``torch.export`` cannot trace the model.
    """
    from mcm_gym.instances.importers.torch_export import from_torch as _from_torch

    doc = _from_torch(model, example_inputs, dtype=dtype, dtype_bytes=dtype_bytes, name=name,
                      graph_id=graph_id, metadata=metadata, example_kwargs=example_kwargs)
    return Graph.from_dict(doc, source=f"import of {type(model).__name__}")


def from_onnx(path: Any, *, dtype_bytes: int | None = None, name: str | None = None,
              graph_id: str | None = None) -> Graph:
    """Import an ONNX file; see :func:`mcm_gym.instances.importers.onnx_import.from_onnx`."""
    from mcm_gym.instances.importers.onnx_import import from_onnx as _from_onnx

    return _from_onnx(path, dtype_bytes=dtype_bytes, name=name, graph_id=graph_id)


def from_networkx(g: Any, *, name: str | None = None, graph_id: str | None = None,
                  metadata: dict[str, Any] | None = None) -> Graph:
    """Build a graph from a ``networkx.DiGraph``.

    Node attributes: ``op`` (str), ``flops`` (FLOPs), ``weight_bytes``, ``out_bytes`` (bytes), all
    optional (default ``"op"`` / 0); edge attribute ``bytes`` (optional, default: the producer's
    ``out_bytes``). Node keys become names (``str(key)``). Other attributes are ignored.

    Raises:
        GraphError: ``g`` is not a directed simple graph, has a cycle, or a size is not a finite
            number >= 0; the message names the node or edge.
    """
    try:
        import networkx as nx
    except ImportError as exc:  # pragma: no cover - networkx is a dependency
        raise ImportError("from_networkx needs networkx: pip install networkx") from exc
    if not isinstance(g, nx.Graph):
        raise GraphError(f"from_networkx: expected a networkx.DiGraph, got {type(g).__name__}")
    if not g.is_directed():
        raise GraphError("from_networkx: the graph is undirected; use a networkx.DiGraph "
                         "(edges point from producer to consumer)")
    if g.is_multigraph():
        raise GraphError("from_networkx: multigraphs are not supported; merge parallel edges "
                         "(sum their bytes) into a networkx.DiGraph")
    keys = [str(v) for v in g.nodes]
    if len(set(keys)) != len(keys):
        raise GraphError("from_networkx: two node keys have the same string form")
    label = name or str(g.graph.get("name", "graph"))
    try:
        graph = Graph.from_networkx(g, name=label, id=graph_id)
    except GraphError as exc:
        raise GraphError(f"from_networkx({label!r}): {exc}") from None
    if metadata:
        graph = Graph(graph.nodes, graph.edges, name=graph.name, id=graph.id, metadata=metadata,
                      shared=graph.shared)
    return graph
