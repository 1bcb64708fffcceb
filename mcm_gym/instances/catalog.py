"""Graphs by id: the bundled files (``zoo://``, ``tiny://``), generator ids and file paths.

``zoo://bert-base-v1`` is a bundled file (``graphs/*.json``; the file's ``id`` field), and its short
name ``bert-base`` works too; ``generator://layered-dag-v0/<seed>`` is built by its family (see
:mod:`mcm_gym.core.ids` for the grammar). Bundled data are read lazily, never at import time.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mcm_gym.core.graph import Graph, GraphError
from mcm_gym.core.ids import InstanceIdError, parse_id
from mcm_gym.instances.generators import generate

__all__ = ["load_graph", "list_graphs", "graph_dir"]


def graph_dir() -> Path:
    """Folder of the bundled graph files (in a wheel: ``mcm_gym/_graphs``; in a checkout: ``graphs/``)."""
    try:
        packaged = resources.files("mcm_gym") / "_graphs"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parents[2] / "graphs"


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


def load_graph(spec: str | os.PathLike[str] | Graph | dict[str, Any]) -> Graph:
    """Resolve a graph: a :class:`Graph`, a ``mcm-graph/1`` dict, an id, a short name or a file path
    (``mcm-graph/1`` JSON, or an ``.onnx`` model, imported with :func:`~mcm_gym.instances.from_onnx`)."""
    if isinstance(spec, Graph):
        return spec
    if isinstance(spec, dict):
        return Graph.from_dict(spec)
    s = str(spec)
    try:
        pid = parse_id(s)
    except InstanceIdError as exc:
        raise GraphError(f"unknown graph {s!r}: {exc}") from None
    if pid.scheme == "generator":
        if pid.is_range:
            raise GraphError(f"{s!r} stands for {len(pid.seeds or ())} graphs; give one seed, or expand it "
                             f"with mcm_gym.instances.expand_ids")
        return generate(pid.name, pid.seed)
    idx = _index()
    if s in idx:
        return _load_cached(str(idx[s]))
    if os.path.exists(s):
        if s.endswith(".onnx") and os.path.isfile(s):  # imported on the fly (mcm-gym[onnx])
            from mcm_gym.instances.importers import from_onnx

            return from_onnx(s)
        return Graph.load(s)
    raise GraphError(f"unknown graph {s!r}: give a file path, a generator id "
                     f"(generator://layered-dag-v0/<seed>) or one of {', '.join(list_graphs())}")


