"""The docs' figures and API reference are made by committed code that runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "docs" / "make_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_api_reference_lists_the_public_api() -> None:
    text = _load().api()
    for name in ("MCMPartitionEnv", "Problem", "repair", "CostModel", "DPSearch", "run_bench", "coarsen"):
        assert name in text
    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed.splitlines()[0] == text.splitlines()[0]


def test_concept_figures_are_generated(tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    mod = _load()
    monkeypatch.setattr(mod, "FIG", tmp_path)
    paths = mod.figures()
    assert len(paths) == 3 and all(p.stat().st_size > 10_000 for p in paths)
    for p in paths:  # every figure the concepts page shows is one of them
        assert f"figures/{p.name}" in (ROOT / "docs" / "concepts.md").read_text()
