"""Importers that turn real model definitions into ``mcm-graph/1`` graphs.

Importing this package is cheap: torch and onnx are only imported when an importer is used, e.g.
``from mcm_gym.importers import from_torch`` (needs ``pip install 'mcm-gym[torch]'``) or
``from mcm_gym.importers import from_onnx`` (needs ``pip install 'mcm-gym[onnx]'``).

``from_torch`` here returns the ``mcm-graph/1`` *document* (a dict); ``from_onnx`` a
:class:`~mcm_gym.Graph`. The public facade :mod:`mcm_gym.graphs` returns graphs from both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .onnx_import import from_onnx as from_onnx
    from .torch_export import TraceError as TraceError
    from .torch_export import from_torch as from_torch

__all__ = ["TraceError", "from_onnx", "from_torch"]


def __getattr__(name: str) -> Any:
    if name in ("from_torch", "TraceError"):
        from . import torch_export

        return getattr(torch_export, name)
    if name == "from_onnx":
        from .onnx_import import from_onnx

        return from_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
