"""Importers that turn real model definitions into ``mcm-graph/1`` documents.

Importing this package is cheap: torch is only imported when an importer is used, e.g.
``from mcm_gym.importers import from_torch`` (needs ``pip install 'mcm-gym[torch]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .torch_export import from_torch as from_torch

__all__ = ["from_torch"]


def __getattr__(name: str) -> Any:
    if name == "from_torch":
        from .torch_export import from_torch

        return from_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
