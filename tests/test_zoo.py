"""The graph zoo, the importers (torch.export, ONNX, networkx) and coarsening.

Zoo checks read the committed JSON with plain json + mcm_gym (no torch). Importer tests skip
cleanly without torch / onnx.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

import mcm_gym
from mcm_gym import Graph, GraphError, Problem, get_hardware, load_graph
from mcm_gym.core.hardware import ConstraintSwitches, uniform
from mcm_gym.instances.coarsen import coarsen, expand_partition
from mcm_gym.instances.importers import from_networkx
from mcm_gym.instances.zoo import HELDOUT_SEEDS, TRAIN_SEEDS, graph_table, show_graph, split_ids, zoo_ids
from mcm_gym.search import fits, split_by_work

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / "graphs"


def _zoo_files() -> list[Path]:
    out = []
    for path in sorted(GRAPHS.glob("*.json")):
        with open(path, encoding="utf-8") as f:
            if '"zoo://' in f.read(2048):
                out.append(path)
    return out


ZOO_FILES = _zoo_files()


# ----------------------------------------------------------------------------- zoo (no torch)
def test_zoo_has_the_required_models() -> None:
    names = {p.stem for p in ZOO_FILES}
    assert len(names) >= 12
    for required in ("bert-base", "bert-large", "gpt2", "t5-small-encoder", "vit-base",
                     "resnet-50", "mobilenet-v2", "efficientnet-b0", "convnext-tiny",
                     "mlp-mixer-b16", "gnmt"):
        assert required in names, required
    assert sum(p.stat().st_size for p in ZOO_FILES) < 15e6


@pytest.mark.parametrize("path", ZOO_FILES, ids=[p.stem for p in ZOO_FILES])
def test_zoo_graph_totals_and_feasibility(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    g = Graph.from_dict(doc, source=str(path))  # validates: acyclic, sizes, names
    assert re.fullmatch(rf"zoo://{re.escape(path.stem)}-v[0-9]+", g.id or "")
    meta = g.metadata
    for key in ("source", "dtype", "totals", "default_hardware"):
        assert key in meta, key
    totals = meta["totals"]
    assert totals["flop_counter_flops"] > 0
    assert math.isclose(g.total_flops, totals["flop_counter_flops"], rel_tol=1e-2)
    assert g.total_weight_bytes == totals["param_bytes"] > 0
    limit = meta.get("max_nodes", 600)  # None: kept at full size on purpose (graphs/make_zoo.py)
    assert limit is None or g.n <= limit + 50
    if "coarsening" in meta:
        assert meta["coarsening"]["original_nodes"] > g.n
    problem = Problem(g, get_hardware(meta["default_hardware"]))
    res = problem.repair(split_by_work(problem))
    assert res.partition is not None and problem.is_valid(res.partition), res.status


def test_split_is_documented_and_disjoint() -> None:
    train, held = split_ids("train"), split_ids("heldout")
    assert not set(train) & set(held)
    assert "zoo://bert-base-v1" in held
    zoo = set(zoo_ids())
    assert zoo == {i for i in train + held if i.startswith("zoo://")}
    assert [i for i in train if i.startswith("generator://")] == [
        f"generator://layered-dag-v0/{s}" for s in TRAIN_SEEDS]
    assert [i for i in held if i.startswith("generator://")] == [
        f"generator://layered-dag-v0/{s}" for s in HELDOUT_SEEDS]
    assert not set(TRAIN_SEEDS) & set(HELDOUT_SEEDS)
    assert split_ids("heldout", generators=False) == [i for i in held if i.startswith("zoo://")]
    with pytest.raises(ValueError, match="split"):
        split_ids("test")


def test_graph_table_and_show_graph() -> None:
    rows = graph_table(["zoo://resnet-50-v1", "tiny://chain-v1"])
    assert [r["id"] for r in rows] == ["zoo://resnet-50-v1", "tiny://chain-v1"]
    r = rows[0]
    assert r["nodes"] > 100 and r["gflops"] > 1 and r["weight_mb"] > 10
    resnet = load_graph("zoo://resnet-50-v1")
    assert [h for h in ("ring-1", "mesh-2x2") if fits(resnet, h)] == ["mesh-2x2"]  # 51 MB > one 45 MiB chip
    text = show_graph("zoo://resnet-50-v1")
    assert "GFLOP" in text and "aten.conv2d" in text and "ResNetConfig" in text


# ----------------------------------------------------------------------------- coarsening
def _check_coarsening(g: Graph, target: int) -> Any:
    c = coarsen(g, target)
    cg = c.graph
    assert math.isclose(cg.total_flops, g.total_flops, rel_tol=1e-12)
    assert cg.total_weight_bytes == pytest.approx(g.total_weight_bytes, rel=1e-12)
    assert cg.out_bytes.sum() == pytest.approx(g.out_bytes.sum(), rel=1e-12)
    assert nx.is_directed_acyclic_graph(cg.to_networkx())
    assert sorted(v for grp in c.groups for v in grp) == list(range(g.n))
    for ci, grp in enumerate(c.groups):
        assert all(c.assignment[v] == ci for v in grp)
    # every original edge between groups is a coarse edge
    coarse_edges = set(zip(cg.edge_src.tolist(), cg.edge_dst.tolist(), strict=True))
    for s, d in zip(g.edge_src.tolist(), g.edge_dst.tolist(), strict=True):
        a, b = int(c.assignment[s]), int(c.assignment[d])
        assert a == b or (a, b) in coarse_edges
    return c


@pytest.mark.parametrize("activation_memory", [False, True])
def test_coarsen_layered_dags_expand_valid(activation_memory: bool) -> None:
    hw = uniform(4, peak_flops=1e12, sram_bytes=40e6, link_bandwidth=1e10,
                 constraints=ConstraintSwitches(activation_memory=activation_memory, neighbor_only=False))
    for seed in range(40):
        g = mcm_gym.layered_dag(seed)
        target = [4, 6, 10, 20][seed % 4]
        c = _check_coarsening(g, target)
        assert c.graph.n <= target and c.reached_target  # layered DAGs are connected
        coarse = Problem(c.graph, hw)
        res = coarse.repair(split_by_work(coarse))
        if res.partition is None:
            continue
        full = expand_partition(c, res.partition)
        assert full.shape == (g.n,)
        assert Problem(g, hw).is_valid(full), (seed, target)
        np.testing.assert_array_equal(c.contract(full), res.partition)


def test_coarsen_random_dags_stay_acyclic_and_dataflow_valid() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(2, 60))
        p_edge = float(rng.uniform(0.02, 0.4))
        nodes = [{"name": f"v{i}", "flops": float(rng.choice([0, rng.uniform(1, 1e9)])),
                  "weight_bytes": float(rng.integers(0, 1000)),
                  "out_bytes": float(rng.integers(0, 99))}
                 for i in range(n)]
        edges = [(f"v{i}", f"v{j}", float(rng.integers(0, 50))) for i in range(n)
                 for j in range(i + 1, n) if rng.random() < p_edge]
        g = Graph(nodes, edges)
        target = int(rng.integers(1, n + 1))
        c = _check_coarsening(g, target)
        if nx.is_weakly_connected(g.to_networkx()):
            assert c.graph.n <= target, trial
        # chips increasing along the coarse topological order satisfy dataflow on the original
        k = 4
        coarse_p = (np.arange(c.graph.n) * k) // c.graph.n
        full = c.expand(coarse_p)
        assert np.all(full[g.edge_src] <= full[g.edge_dst]), trial


def test_coarsen_bert_keeps_totals_and_valid_partitions() -> None:
    g = mcm_gym.load_graph("zoo://bert-base-v1")
    c = _check_coarsening(g, 100)
    assert c.graph.n <= 100
    assert c.graph.metadata["coarsening"]["original_nodes"] == g.n
    hw = get_hardware("ring-8")
    coarse = Problem(c.graph, hw)
    res = coarse.repair(split_by_work(coarse))
    assert res.partition is not None
    assert Problem(g, hw).is_valid(c.expand(res.partition))
    batch = np.stack([res.partition, res.partition])
    assert c.expand(batch).shape == (2, g.n)
    with pytest.raises(ValueError, match="coarse node"):
        c.expand(np.zeros(g.n, dtype=int))


def test_coarsen_never_creates_a_cycle() -> None:
    # A->B and C->D are each the only path between their ends, but merging both would give
    # AB -> CD (A->D) and CD -> AB (C->B): a cycle. The second merge must be refused.
    g = Graph([{"name": x, "flops": 1} for x in "ABCD"],
              [("A", "B"), ("C", "D"), ("A", "D"), ("C", "B")])
    for target in (1, 2, 3):
        c = _check_coarsening(g, target)
        assert c.graph.n >= 2 or target == 1


def test_coarsen_edge_bytes_multicast_and_caps() -> None:
    # p feeds q and r (both merged into one group): its tensor counts once on the coarse edge.
    nodes = [{"name": "p", "flops": 1e9, "out_bytes": 100}, {"name": "q", "flops": 1},
             {"name": "r", "flops": 1}, {"name": "s", "flops": 1}]
    g = Graph(nodes, [("p", "q"), ("p", "r"), ("q", "s"), ("r", "s")])
    c = coarsen(g, 2)
    assert c.graph.n == 2
    assert c.graph.edge_bytes.tolist() == [100.0]
    # weight cap: two 30-byte nodes never share a group under a 40-byte cap
    g2 = Graph([{"name": "a", "weight_bytes": 30}, {"name": "b", "weight_bytes": 30}], [("a", "b")])
    assert coarsen(g2, 1, max_group_weight_bytes=40).graph.n == 2
    assert coarsen(g2, 1).graph.n == 1
    # unconnected parts are never merged
    g3 = Graph([{"name": "x"}, {"name": "y"}], [])
    c3 = coarsen(g3, 1)
    assert c3.graph.n == 2 and not c3.reached_target
    with pytest.raises(ValueError, match="target_nodes"):
        coarsen(g3, 0)


# ----------------------------------------------------------------------------- networkx
def test_from_networkx_valid_and_named_errors() -> None:
    d = nx.DiGraph(name="toy")
    d.add_node("a", op="matmul", flops=10, weight_bytes=4, out_bytes=2)
    d.add_node("b", flops=5)
    d.add_edge("a", "b", bytes=2)
    g = from_networkx(d, graph_id="test://toy")
    assert (g.n, g.num_edges, g.total_flops, g.id, g.name) == (2, 1, 15.0, "test://toy", "toy")
    with pytest.raises(GraphError, match="undirected"):
        from_networkx(nx.Graph([("a", "b")]))
    with pytest.raises(GraphError, match="multigraph"):
        from_networkx(nx.MultiDiGraph([("a", "b")]))
    with pytest.raises(GraphError, match="cycle"):
        from_networkx(nx.DiGraph([("a", "b"), ("b", "a")]))
    bad = nx.DiGraph()
    bad.add_node("n1", flops=-1)
    with pytest.raises(GraphError, match="'n1'.*flops"):
        from_networkx(bad)
    with pytest.raises(GraphError, match="DiGraph"):
        from_networkx({"a": "b"})


# ----------------------------------------------------------------------------- torch importer
def test_from_torch_small_cnn_rnn_model() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from mcm_gym.instances.importers import from_torch

    torch.set_num_threads(1)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.rnn = torch.nn.LSTM(8, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 4)

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.bn(self.conv(x)))  # (B, 8, 6, 6)
            seq = y.flatten(2).transpose(1, 2)  # (B, 36, 8)
            h, _ = self.rnn(seq)
            return self.head(h[:, -1])

    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 6, 6)
    with FlopCounterMode(display=False) as fc:
        model(x)
    g = from_torch(model, (x,), dtype="float32", name="net", graph_id="test://net")
    totals = g.metadata["totals"]
    conv = 2 * 2 * 8 * 36 * 27
    lstm = 2 * 2 * 36 * 4 * 16 * (8 + 16)
    head = 2 * 2 * 16 * 4
    assert g.total_flops == totals["flop_counter_flops"] == conv + lstm + head
    assert fc.get_total_flops() in (conv + head, conv + lstm + head)  # oneDNN LSTM: no formula
    params = sum(p.numel() * 4 for p in model.parameters())
    assert g.total_weight_bytes == totals["param_bytes"] == params
    report = g.metadata["import_report"]
    assert "aten.batch_norm" in report["ops_without_flop_formula"]
    assert "aten.relu" in report["ops_without_flop_formula"]
    assert "aten.transpose" in report["zero_flop_data_ops"]
    assert g.metadata["buffer_bytes"] > 0  # running stats are not weights
    # int8 storage: bytes of floating tensors scale, FLOPs do not
    g8 = from_torch(Net(), (x,), dtype="float32", dtype_bytes=1)
    assert g8.total_weight_bytes == params // 4 and g8.total_flops == g.total_flops
    assert g8.metadata["dtype_bytes"] == 1


def test_from_torch_untraceable_model_names_the_cause() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers import TraceError, from_torch

    class DataDependent(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            if x.sum() > 0:  # Python control flow on a tensor's value
                return x * 2
            return x - 1

    with pytest.raises(TraceError, match=r"torch.export could not trace DataDependent: \w+"):
        from_torch(DataDependent(), (torch.ones(3),), dtype="float32")
    assert issubclass(TraceError, GraphError)


class _Cache:
    """Like a transformers KV cache: holds tensors, but torch.export has no pytree for it."""

    def __init__(self, t: Any) -> None:
        self.t = t


def test_from_torch_leaves_out_outputs_export_cannot_return_and_says_so() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers import from_torch

    class WithCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)

        def forward(self, x: Any) -> Any:
            h = self.emb(self.emb(x))  # one layer twice: a shared parameter, named as in the model
            return {"out": self.head(h), "cache": _Cache(h)}

    with pytest.warns(UserWarning, match=r"WithCache: traced without .*output\.cache: _Cache"):
        g = from_torch(WithCache(), (torch.randn(2, 8),), dtype="float32")
    report = g.metadata["import_report"]
    assert report["dropped_outputs"] == ["output.cache: _Cache"]
    assert report["dropped_outputs_reason"].startswith("torch.export could not trace WithCache")
    assert g.total_flops == 2 * (2 * 2 * 8 * 8) + 2 * 2 * 8 * 4
    assert g.total_weight_bytes == (64 + 8 + 32 + 4) * 4
    assert sorted(t.name for t in g.shared) == ["emb.bias", "emb.weight"]  # no wrapper prefix


def test_from_torch_wrapped_buffer_names_lose_the_wrapper_prefix() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers import from_torch

    class WithBuffer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)
            self.register_buffer("scale", torch.ones(8))

        def forward(self, x: Any) -> Any:
            h = self.lin(x) * self.scale
            return h, _Cache(h)

    with pytest.warns(UserWarning, match="traced without"):
        g = from_torch(WithBuffer(), (torch.randn(2, 8),), dtype="float32")
    assert list(g.metadata["import_report"]["buffers"]) == ["scale"]
    assert g.metadata["import_report"]["buffers"]["scale"] == 8 * 4


def test_from_torch_raises_the_first_error_when_no_output_tensor_is_left() -> None:
    torch = pytest.importorskip("torch")
    from mcm_gym.instances.importers import TraceError, from_torch

    class OnlyCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, x: Any) -> Any:
            return _Cache(self.lin(x))  # nothing torch.export can return

    with pytest.raises(TraceError, match=r"torch.export could not trace OnlyCache"):
        from_torch(OnlyCache(), (torch.randn(2, 8),), dtype="float32")


# ----------------------------------------------------------------------------- ONNX importer
def _toy_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.zeros((16, 32), np.float32), "W1"),
             numpy_helper.from_array(np.zeros((32,), np.float32), "B1"),
             numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "Wc")]
    nodes = [helper.make_node("Conv", ["img", "Wc"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("MatMul", ["x", "W1"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "B1"], ["a"]),
             helper.make_node("Gemm", ["a", "W1"], ["out"], transB=1, name="gemm")]
    graph = helper.make_graph(
        nodes, "toy",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, [1, 512]),
         helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 16])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_from_onnx_toy_model_totals(tmp_path: Path) -> None:
    from mcm_gym.instances.importers import from_onnx

    path = _toy_onnx(tmp_path / "toy.onnx")
    g = from_onnx(path, graph_id="test://toy")
    by = {nd.name: nd for nd in g.nodes}
    assert by["conv"].flops == 2 * (8 * 8 * 8) * 27
    assert by["mm"].flops == 2 * 4 * 32 * 16
    assert by["gemm"].flops == 2 * 4 * 16 * 32
    # W1 is read by mm and gemm: a shared tensor, held on each chip that runs one of them
    assert by["mm"].weight_bytes == 0 and by["gemm"].weight_bytes == 0
    assert [(t.name, t.bytes, t.users) for t in g.shared] == [("W1", 16 * 32 * 4, ("mm", "gemm"))]
    assert g.param_bytes[g.index["mm"]] == g.param_bytes[g.index["gemm"]] == 16 * 32 * 4
    assert g.total_weight_bytes == g.metadata["totals"]["param_bytes"] == (512 + 32 + 216) * 4
    assert by["img"].op == "input" and by["img"].out_bytes == 3 * 64 * 4
    report = g.metadata["import_report"]
    assert set(report["ops_without_flop_formula"]) == {"Add", "Relu"}
    assert report["shared_initializers"] == {"W1": ["mm", "gemm"]}
    g8 = from_onnx(path, dtype_bytes=1)
    assert g8.total_weight_bytes == 512 + 32 + 216 and g8.total_flops == g.total_flops


def test_from_onnx_torch_exported_model_matches_flop_counter(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from mcm_gym.instances.importers import from_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 10))
    x = torch.randn(1, 3, 8, 8)
    path = tmp_path / "seq.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(path), dynamo=False)
    except Exception as exc:  # noqa: BLE001 - exporter unavailable in this torch build
        pytest.skip(f"torch.onnx.export unavailable: {exc}")
    with FlopCounterMode(display=False) as fc:
        model(x)
    g = from_onnx(path)
    assert g.total_flops == fc.get_total_flops()
    assert g.total_weight_bytes == sum(p.numel() * 4 for p in model.parameters())


def test_from_onnx_malformed_files_name_the_cause(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from mcm_gym.instances.importers import from_onnx

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"definitely not a protobuf \x00\xff\x12\x99")
    with pytest.raises(GraphError, match="not a valid ONNX model"):
        from_onnx(garbage)
    with pytest.raises(GraphError, match="not found"):
        from_onnx(tmp_path / "missing.onnx")
    # a node reading a tensor nobody defines: the checker's reason is in the message
    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "bad", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(bad))
    with pytest.raises(GraphError, match="checker rejected.*nowhere"):
        from_onnx(bad)


# ----------------------------------------------------------------------------- import_model
def test_import_model_from_onnx_json_and_function(tmp_path: Path) -> None:
    from mcm_gym.instances.zoo import import_model

    with pytest.raises(GraphError, match="cannot import"):
        import_model(tmp_path / "model.bin")
    src = mcm_gym.load_graph("tiny://chain-v1")
    src.save(tmp_path / "chain.json")
    g = import_model(tmp_path / "chain.json", tmp_path / "out.json", graph_id="test://chain",
                     coarsen_to=3)
    assert g.n <= 3 and Graph.load(tmp_path / "out.json").id == "test://chain"
    assert g.total_flops == src.total_flops
    if pytest.importorskip("onnx"):
        g2 = import_model(_toy_onnx(tmp_path / "toy.onnx"))
        assert g2.total_flops > 0
    pytest.importorskip("torch")
    (tmp_path / "mymodel.py").write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Linear(8, 4), (torch.randn(2, 8),)\n")
    g3 = import_model(f"{tmp_path / 'mymodel.py'}:make", dtype="float32")
    assert g3.total_flops == 2 * 2 * 8 * 4 and g3.total_weight_bytes == (32 + 4) * 4
    with pytest.raises(GraphError, match="no function"):
        import_model(f"{tmp_path / 'mymodel.py'}:missing")
    (tmp_path / "broken.py").write_text("def make():\n    raise AssertionError('padding_idx out of range')\n"
                                        "import no_such_module_here\n")
    with pytest.raises(GraphError, match=r"broken\.py raised ModuleNotFoundError: No module named 'no_such"):
        import_model(f"{tmp_path / 'broken.py'}:make")
    (tmp_path / "raises.py").write_text("def make():\n    raise AssertionError('padding_idx out of range')\n")
    with pytest.raises(GraphError, match=r"raises\.py:make'.*calling make\(\) raised AssertionError: padding_idx"):
        import_model(f"{tmp_path / 'raises.py'}:make")
