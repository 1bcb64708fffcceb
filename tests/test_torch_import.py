"""Tests of the torch.export importer and of the bundled ``graphs/bert-base.json``.

The bundled-graph tests need only the standard library (and networkx); the importer tests skip
without torch / transformers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from mcm_gym.core.graph import Graph

ROOT = Path(__file__).resolve().parents[1]
BERT_BASE = ROOT / "graphs" / "bert-base.json"


def check_document(doc: dict[str, Any]) -> None:
    """Structural checks shared by every imported graph."""
    assert doc["format"] == "mcm-graph/1"
    nodes, edges = doc["nodes"], doc["edges"]
    names = [n["name"] for n in nodes]
    assert len(names) == len(set(names)), "node names must be unique"
    by_name = {n["name"]: n for n in nodes}
    for n in nodes:
        for key in ("flops", "weight_bytes", "out_bytes"):
            v = n[key]
            assert isinstance(v, int) and not isinstance(v, bool), (n["name"], key, v)
            assert math.isfinite(v) and v >= 0, (n["name"], key, v)
        assert isinstance(n["op"], str) and n["op"]
    pairs = set()
    for e in edges:
        assert e["src"] in by_name and e["dst"] in by_name, e
        assert isinstance(e["bytes"], int) and e["bytes"] >= 0, e
        # an edge carries some of the producer's outputs, never more
        assert e["bytes"] <= by_name[e["src"]]["out_bytes"], e
        pairs.add((e["src"], e["dst"]))
    assert len(pairs) == len(edges), "parallel edges must be merged"
    g = nx.DiGraph()
    g.add_nodes_from(names)
    g.add_edges_from(pairs)
    assert nx.is_directed_acyclic_graph(g)
    position = {nm: i for i, nm in enumerate(names)}
    assert all(position[s] < position[d] for s, d in pairs), "nodes must be topologically ordered"
    for n in nodes:
        if n["op"] == "input":
            assert n["flops"] == 0 and n["weight_bytes"] == 0
            assert not list(g.predecessors(n["name"]))
    totals = doc["metadata"]["totals"]
    assert totals["num_nodes"] == len(nodes)
    assert totals["num_edges"] == len(edges)
    assert totals["flops"] == sum(n["flops"] for n in nodes)
    shared = doc.get("shared", [])
    assert totals["weight_bytes"] == sum(n["weight_bytes"] for n in nodes) + sum(t["bytes"] for t in shared)
    for t in shared:  # a shared tensor has two or more distinct readers, all nodes of the graph
        assert len(t["users"]) >= 2 and len(set(t["users"])) == len(t["users"]) and set(t["users"]) <= set(by_name)


# ----------------------------------------------------------------- bundled graph (no torch)
def test_bundled_bert_base_is_consistent() -> None:
    doc = json.loads(BERT_BASE.read_text(encoding="utf-8"))
    assert doc["format"] == "mcm-graph/1"
    assert doc["id"] == "zoo://bert-base-v1"
    assert doc["name"] == "bert-base"
    check_document(doc)
    meta = doc["metadata"]
    totals = meta["totals"]
    assert totals["flops"] == totals["flop_counter_flops"] > 0
    assert totals["weight_bytes"] == totals["param_bytes"]
    assert meta["dtype"] == "bfloat16" and meta["dtype_bytes"] == 2
    # BERT-base has ~109.5M parameters -> ~219 MB at bf16
    assert 108e6 < totals["param_bytes"] / 2 < 111e6
    assert meta["config"]["num_hidden_layers"] == 12
    assert meta["config"]["hidden_size"] == 768
    ops = meta["import_report"]["op_counts"]
    assert ops["aten.scaled_dot_product_attention"] == 12
    assert ops["aten.linear"] == 12 * 6 + 1  # q, k, v, out, ffn up/down per layer + pooler


# ----------------------------------------------------------------- importer (needs torch)
def test_importers_package_does_not_import_torch() -> None:
    code = (
        "import sys, mcm_gym; before = 'torch' in sys.modules; "
        "import mcm_gym.instances.importers, mcm_gym.instances.importers.torch_export; "
        "assert before or 'torch' not in sys.modules, 'torch imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.fixture(scope="module")
def tiny_bert() -> tuple[dict[str, Any], int]:
    """A tiny BERT imported at bf16; also returns its parameter bytes at bf16."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from mcm_gym.instances.importers.torch_export import from_torch

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64,
    )
    model = transformers.BertModel(config)
    input_ids = torch.randint(0, config.vocab_size, (2, 16))
    doc = from_torch(model, (input_ids,), dtype="bfloat16", name="tiny-bert", graph_id="test://tiny")
    param_bytes = sum(p.numel() * 2 for p in model.parameters())
    return doc, param_bytes


def test_tiny_bert_flops_match_flop_counter(tiny_bert: tuple[dict[str, Any], int]) -> None:
    doc, _ = tiny_bert
    totals = doc["metadata"]["totals"]
    node_sum = sum(n["flops"] for n in doc["nodes"])
    assert node_sum > 0
    assert math.isclose(node_sum, totals["flop_counter_flops"], rel_tol=1e-6)
    # attention is counted (torch lacks a formula for the CPU flash kernel; the importer adds one)
    sdpa = [n for n in doc["nodes"] if n["op"] == "aten.scaled_dot_product_attention"]
    assert len(sdpa) == 2
    b, h, s, d = 2, 2, 16, 32
    assert all(n["flops"] == 4 * b * h * s * s * d for n in sdpa)


def test_tiny_bert_weight_bytes_equal_parameter_bytes(
    tiny_bert: tuple[dict[str, Any], int],
) -> None:
    doc, param_bytes = tiny_bert
    totals = doc["metadata"]["totals"]
    assert sum(n["weight_bytes"] for n in doc["nodes"]) == param_bytes == totals["param_bytes"]
    assert doc["metadata"]["import_report"]["unused_parameters"] == []
    # buffers (position_ids, token_type_ids) are neither nodes nor weights
    assert doc["metadata"]["buffer_bytes"] > 0


def test_tiny_bert_structure(tiny_bert: tuple[dict[str, Any], int]) -> None:
    doc, _ = tiny_bert
    check_document(doc)
    inputs = [n for n in doc["nodes"] if n["op"] == "input"]
    assert [n["name"] for n in inputs] == ["input_ids"]
    assert inputs[0]["out_bytes"] == 2 * 16 * 8  # int64 token ids
    assert doc["metadata"]["example_inputs"] == [{"shape": [2, 16], "dtype": "int64"}]
    json.dumps(doc)  # serialisable


def test_shared_parameters_and_getitem_folding() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers.torch_export import from_torch

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x: Any) -> Any:
            y = self.lin(x)
            z = self.lin(y)  # same parameters used twice
            a, b = torch.split(y, 4, dim=-1)  # multi-output op -> getitem nodes
            return z, a * b

    doc = from_torch(Toy(), (torch.randn(3, 8),), dtype="float32", name="toy", graph_id="t://toy")
    check_document(doc)
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert not any(n["op"] == "getitem" or n["op"].endswith(".getitem") for n in doc["nodes"])
    report = doc["metadata"]["import_report"]
    assert report["folded_getitems"] == 2
    param_bytes = (8 * 8 + 8) * 4
    # Both linears read the same parameters: none is charged to a node, both are shared tensors.
    assert sum(n["weight_bytes"] for n in doc["nodes"]) == 0
    linears = [n for n in by_name if by_name[n]["op"] == "aten.linear"]
    assert {t["name"]: t["users"] for t in doc["shared"]} == {"lin.weight": linears, "lin.bias": linears}
    assert sum(t["bytes"] for t in doc["shared"]) == param_bytes == doc["metadata"]["totals"]["weight_bytes"]
    assert set(report["shared_parameters"]) == {"lin.weight", "lin.bias"}
    g = Graph.from_dict(doc)
    assert g.total_weight_bytes == param_bytes
    assert g.param_bytes[g.index[linears[0]]] == g.param_bytes[g.index[linears[1]]] == param_bytes
    # split -> mul carries both halves (two distinct tensors of 3*4 floats)
    split = next(n for n in doc["nodes"] if n["op"] == "aten.split")
    mul = next(n for n in doc["nodes"] if n["op"] == "aten.mul")
    edge = next(e for e in doc["edges"] if e["src"] == split["name"] and e["dst"] == mul["name"])
    assert edge["bytes"] == 2 * 3 * 4 * 4 == split["out_bytes"]
    assert doc["metadata"]["totals"]["flops"] == doc["metadata"]["totals"]["flop_counter_flops"]


def test_rejects_non_floating_dtype() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers.torch_export import from_torch

    with pytest.raises(ValueError, match="floating dtype"):
        from_torch(torch.nn.Linear(2, 2), (torch.randn(1, 2),), dtype="int8", name="x",
                   graph_id="t://x")


def test_albert_shared_layer_weights_are_held_on_every_chip_that_runs_a_layer() -> None:
    """ALBERT reuses one layer's weights at every depth: each pipeline stage that runs a layer
    needs its own copy (before shared tensors, layers 2-6 needed 0 bytes)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from mcm_gym import Problem, get_hardware
    from mcm_gym.instances.importers import from_torch
    from mcm_gym.search.dp import DPSearch

    torch.manual_seed(0)
    cfg = transformers.AlbertConfig(vocab_size=1000, embedding_size=64, hidden_size=128, num_hidden_layers=6,
                                    num_attention_heads=4, intermediate_size=256)
    model = transformers.AlbertModel(cfg)
    g = from_torch(model, (torch.zeros(1, 32, dtype=torch.long),), name="albert")
    params = sum(p.numel() * 2 for p in model.parameters())  # bf16
    assert g.total_weight_bytes == params
    layer = [t for t in g.shared if ".albert_layers.0." in t.name]
    assert layer and all(len(t.users) == 6 for t in layer)  # one reader per depth
    layer_bytes = sum(t.bytes for t in layer)
    problem = Problem(g, get_hardware("ring-4"))
    res = DPSearch().search(problem, budget=4, seed=0)
    mem = problem.evaluate(res.partition).memory[0]
    users = {g.index[u] for t in layer for u in t.users}
    for chip in {int(res.partition[v]) for v in users}:
        assert mem[chip] >= layer_bytes, (chip, mem[chip], layer_bytes)
