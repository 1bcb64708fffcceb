"""The graph zoo: bundled real-model graphs, the train / held-out split, tables and imports.

Zoo graphs (``zoo://<name>-v1``) are built by ``graphs/make_zoo.py`` (and ``graphs/make_bert.py``
for BERT-base) from real model definitions; each file's metadata records its source, config,
dtype, totals, ``default_hardware`` (a preset where it is feasible) and ``split``.

**The split** (for pre-training a policy, then zero-shot / fine-tuning evaluation):

* ``train``: the zoo graphs whose ``metadata["split"]`` is ``"train"``, plus the random
  ``generator://layered-dag-v0/<seed>`` graphs for seeds ``0..999`` (:data:`TRAIN_SEEDS`);
* ``heldout``: the zoo graphs marked ``"heldout"`` (BERT-base, the paper's target, whose file
  predates the field; plus one model per family whose relatives are in ``train``: ResNet-50, Swin,
  the Llama-style SmolLM), plus generator seeds ``1000..1099`` (:data:`HELDOUT_SEEDS`).

``tiny://`` graphs are for tests and teaching and belong to neither split.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym.core.graph import Graph, GraphError, error_summary
from mcm_gym.instances.catalog import list_graphs, load_graph

__all__ = ["HELDOUT_SEEDS", "SPLITS", "TRAIN_SEEDS", "graph_split", "graph_table",
           "import_model", "show_graph", "split_ids", "zoo_ids"]

SPLITS = ("train", "heldout")
TRAIN_SEEDS = range(0, 1000)
HELDOUT_SEEDS = range(1000, 1100)
GENERATOR = "generator://layered-dag-v0/{}"
# Files whose metadata has no "split" field (made before the split existed).
_SPLIT_FALLBACK = {"zoo://bert-base-v1": "heldout"}
DEFAULT_PRESETS = ("ring-4", "ring-8", "ring-16", "mesh-2x2", "mesh-4x4", "mesh-6x6")


def zoo_ids() -> list[str]:
    """Ids of the bundled zoo graphs (``zoo://...``), sorted."""
    return [i for i in list_graphs() if i.startswith("zoo://")]


def graph_split(graph: Graph) -> str | None:
    """``"train"``, ``"heldout"`` or None (not in the split) for a graph."""
    split = graph.metadata.get("split") or _SPLIT_FALLBACK.get(graph.id or "")
    if split is not None and split not in SPLITS:
        raise GraphError(f"graph {graph.id!r} has unknown split {split!r}; use one of {SPLITS}")
    return split


def split_ids(split: str, *, generators: bool = True) -> list[str]:
    """Graph ids of ``split`` (``"train"`` or ``"heldout"``): zoo graphs first (sorted), then the
    generator ids of the split's seeds unless ``generators`` is False. See the module doc."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    ids = [i for i in zoo_ids() if graph_split(load_graph(i)) == split]
    if generators:
        seeds = TRAIN_SEEDS if split == "train" else HELDOUT_SEEDS
        ids += [GENERATOR.format(s) for s in seeds]
    return ids


def graph_table(ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per graph: ``id``, ``nodes``, ``edges``, ``gflops`` (GFLOP), ``weight_mb`` and
    ``max_node_weight_mb`` (MB = 1e6 bytes), ``dtype``, ``split``, ``default_hardware``. ``ids``
    defaults to every bundled graph. Cheap: it reads the graphs only (whether a graph fits a preset
    is a search, :func:`mcm_gym.search.fits`)."""
    rows = []
    for gid in (list(ids) if ids is not None else list_graphs()):
        g = load_graph(gid)
        rows.append({
            "id": g.id or gid, "nodes": g.n, "edges": g.num_edges,
            "gflops": g.total_flops / 1e9, "weight_mb": g.total_weight_bytes / 1e6,
            "max_node_weight_mb": float(g.weight_bytes.max()) / 1e6,
            "dtype": g.metadata.get("dtype"), "split": graph_split(g),
            "default_hardware": g.metadata.get("default_hardware"),
        })
    return rows


def show_graph(graph_id: str | Graph, *, top: int = 8) -> str:
    """A text summary of a graph: totals, op histogram, largest nodes, source and config."""
    g = graph_id if isinstance(graph_id, Graph) else load_graph(graph_id)
    meta = g.metadata
    lines = [f"{g.id or g.name}  ({g.name})",
             f"  nodes {g.n}, edges {g.num_edges}, depth {int(g.depth.max()) + 1}",
             f"  FLOPs {g.total_flops / 1e9:.3f} GFLOP   "
             f"weights {g.total_weight_bytes / 1e6:.2f} MB"
             f"   largest node weights {float(g.weight_bytes.max()) / 1e6:.2f} MB"
             f"   activations {float(g.out_bytes.sum()) / 1e6:.2f} MB (sum of outputs)"]
    for key in ("source", "family", "dtype", "default_hardware", "split"):
        if meta.get(key) is not None:
            lines.append(f"  {key:<16} {meta[key]}")
    if "split" not in meta and graph_split(g):
        lines.append(f"  {'split':<16} {graph_split(g)}")
    totals = meta.get("totals") or {}
    if "flop_counter_flops" in totals:
        lines.append(f"  flop counter     {totals['flop_counter_flops'] / 1e9:.3f} GFLOP; "
                     f"param bytes {totals.get('param_bytes', 0) / 1e6:.2f} MB")
    co = meta.get("coarsening")
    if co:
        lines.append(f"  coarsened        {co.get('original_nodes')} -> {co.get('coarse_nodes')} "
                     f"nodes (mcm_gym.instances.coarsen)")
    cfg = meta.get("config")
    if isinstance(cfg, dict):
        keys = [k for k in ("model_type", "hidden_size", "num_hidden_layers",
                            "num_attention_heads", "intermediate_size", "vocab_size", "d_model",
                            "num_layers", "image_size", "depths", "hidden_sizes", "dim", "depth",
                            "hidden", "layers", "vocab") if k in cfg]
        if keys:
            lines.append("  config           " + ", ".join(f"{k}={cfg[k]}" for k in keys))
    ops = Counter(nd.op for nd in g.nodes)
    lines.append("  ops              " + ", ".join(f"{op} x{c}" for op, c in ops.most_common(top)))
    report = meta.get("import_report") or {}
    nf = report.get("ops_without_flop_formula")
    if nf:
        lines.append("  no FLOP formula  " + ", ".join(sorted(nf)))
    order = np.argsort(-g.flops, kind="stable")[:top]
    lines.append("  largest nodes by FLOPs:")
    for v in order:
        nd = g.nodes[int(v)]
        lines.append(f"    {nd.name:<32} {nd.op:<36} {nd.flops / 1e9:9.3f} GFLOP "
                     f"{nd.weight_bytes / 1e6:9.2f} MB")
    order = np.argsort(-g.weight_bytes, kind="stable")[:min(top, 4)]
    lines.append("  largest nodes by weights:")
    for v in order:
        nd = g.nodes[int(v)]
        lines.append(f"    {nd.name:<32} {nd.op:<36} {nd.weight_bytes / 1e6:9.2f} MB")
    return "\n".join(lines)


def _load_callable(spec: str) -> Any:
    """``pkg.module:function`` or ``path/to/file.py:function`` -> the function."""
    target, _, func = spec.rpartition(":")
    if not target or not func:
        raise GraphError(f"bad model spec {spec!r}: use module:function")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise GraphError(f"model spec {spec!r}: file {target} not found")
        mod_name = f"_mcm_gym_import_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise GraphError(f"model spec {spec!r}: cannot import {target}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # a syntax or import error in the user's file
            sys.modules.pop(mod_name, None)
            raise GraphError(f"model spec {spec!r}: importing {target} raised {error_summary(exc)}") \
                from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise GraphError(f"model spec {spec!r}: cannot import module {target!r} "
                             f"({error_summary(exc)})") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise GraphError(f"model spec {spec!r}: {target} has no function {func!r}")
    return fn


def import_model(spec: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 name: str | None = None, graph_id: str | None = None, dtype: str = "bfloat16",
                 dtype_bytes: int | None = None, coarsen_to: int | None = None) -> Graph:
    """Import a model into an ``mcm-graph/1`` graph, optionally coarsen it, optionally save it.

    ``spec`` is an ``.onnx`` file (:func:`mcm_gym.instances.importers.from_onnx`), a ``.json`` graph file, or
    ``module:function`` / ``file.py:function`` naming a function that returns
    ``(model, example_inputs)`` (:func:`mcm_gym.instances.importers.from_torch`, with ``dtype`` and
    ``dtype_bytes``). ``coarsen_to``: merge nodes until at most that many remain
    (:func:`mcm_gym.instances.importers.coarsen`; recorded in the metadata). ``out``: write the graph there.
    """
    from mcm_gym.instances.coarsen import coarsen
    from mcm_gym.instances.importers import from_onnx, from_torch

    s = os.fspath(spec)
    if s.endswith(".onnx"):
        g = from_onnx(s, dtype_bytes=dtype_bytes, name=name, graph_id=graph_id)
    elif s.endswith(".json"):
        g = Graph.load(s)
        if name or graph_id:
            g = Graph(g.nodes, g.edges, name=name or g.name, id=graph_id or g.id,
                      metadata=g.metadata, shared=g.shared)
    elif ":" in s:
        fn = _load_callable(s)
        try:
            made = fn()
        except Exception as exc:  # the user's builder: say where, not a traceback from inside it
            raise GraphError(f"model spec {s!r}: calling {s.rpartition(':')[2]}() raised "
                             f"{error_summary(exc)}") from exc
        if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[1], tuple)):
            raise GraphError(f"model spec {s!r} must return (model, example_inputs) with "
                             f"example_inputs a tuple, got {type(made).__name__}")
        model, inputs = made
        g = from_torch(model, inputs, dtype=dtype, dtype_bytes=dtype_bytes,
                       name=name or s.rpartition(":")[2], graph_id=graph_id,
                       metadata={"source": s})
    else:
        raise GraphError(f"cannot import {s!r}: give an .onnx file, a .json graph, or "
                         f"module:function returning (model, example_inputs)")
    if coarsen_to is not None and g.n > coarsen_to:
        g = coarsen(g, coarsen_to, graph_id=g.id).graph
    if out is not None:
        g.save(out)
    return g
