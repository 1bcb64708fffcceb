"""Graphs: the mcm-graph/1 format, topological order, validation errors, ids."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import GraphSpec, graph_specs

from mcm_gym._io import atomic_write_text
from mcm_gym.core.graph import FORMAT, Edge, Graph, GraphError, Node
from mcm_gym.instances.catalog import list_graphs, load_graph


def doc(nodes: list, edges: list, **extra: object) -> dict:
    return {"format": FORMAT, "name": "g", "nodes": nodes, "edges": edges, **extra}


# ------------------------------------------------------------------ round trip
def test_save_load_round_trip(tmp_path: Path, diamond: Graph) -> None:
    path = tmp_path / "sub" / "diamond.json"
    diamond.save(path)
    back = Graph.load(path)
    assert back.to_dict() == diamond.to_dict()
    assert back.names == diamond.names
    assert back.edge_bytes.tolist() == diamond.edge_bytes.tolist()
    assert os.listdir(path.parent) == ["diamond.json"]  # no temporary file left behind
    assert json.loads(path.read_text())["format"] == "mcm-graph/1"


@given(graph_specs(), st.floats(0, 1e12, allow_nan=False), st.text(max_size=5))
def test_round_trip_random(spec: GraphSpec, x: float, label: str) -> None:
    nodes = [Node(f"n{i}", "op", spec.flops[i] + x, spec.weight[i], spec.out[i] * 0.5)
             for i in range(spec.n)]
    g = Graph(nodes, [Edge(f"n{i}", f"n{j}", b) for i, j, b in spec.edges], name=label,
              id="test://x-v1", metadata={"k": [1, 2], "label": label})
    with tempfile.TemporaryDirectory() as d:
        g.save(Path(d) / "g.json")
        back = Graph.load(Path(d) / "g.json")
        assert os.listdir(d) == ["g.json"]
    assert back.to_dict() == g.to_dict()
    assert back.flops.tolist() == g.flops.tolist()  # exact floats


def test_atomic_write_failure_keeps_old_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.json"
    path.write_text("old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.json"]


# ------------------------------------------------------------------ topological order
@given(graph_specs(), st.randoms(use_true_random=False))
def test_topological_order(spec: GraphSpec, rnd: random.Random) -> None:
    g0 = spec.graph()
    assert list(g0.names) == spec.names  # already topological: the given order is kept
    nodes = list(g0.nodes)
    rnd.shuffle(nodes)
    edges = list(g0.edges)
    rnd.shuffle(edges)
    g = Graph(nodes, edges)
    assert sorted(g.names) == sorted(spec.names)
    for e in g.edges:
        assert g.index[e.src] < g.index[e.dst]
    for v in range(g.n):
        assert all(u < v for u in g.preds[v])
    assert {(g.names[s], g.names[d]) for s, d in zip(g.edge_src, g.edge_dst, strict=True)} == \
        {(f"n{i}", f"n{j}") for i, j, _ in spec.edges}


# ------------------------------------------------------------------ errors
def test_cycle_is_named() -> None:
    nodes = [{"name": n} for n in ("in", "a", "b", "c", "out")]
    edges = [{"src": "in", "dst": "a"}, {"src": "a", "dst": "b"}, {"src": "b", "dst": "c"},
             {"src": "c", "dst": "a"}, {"src": "c", "dst": "out"}]
    with pytest.raises(GraphError, match="cycle") as ei:
        Graph.from_dict(doc(nodes, edges))
    msg = str(ei.value)
    cyc = msg.split("cycle:")[1].strip().split(" -> ")
    assert cyc[0] == cyc[-1] and set(cyc) == {"a", "b", "c"} and len(cyc) == 4
    for s, d in zip(cyc[:-1], cyc[1:], strict=True):  # the named cycle follows real edges
        assert {"src": s, "dst": d} in edges


def test_self_loop() -> None:
    with pytest.raises(GraphError, match="self-loop on node 'a'"):
        Graph([Node("a")], [("a", "a")])


@pytest.mark.parametrize("end", ["src", "dst"])
def test_unknown_node_in_edge(end: str) -> None:
    e = {"src": "a", "dst": "b", end: "ghost"}
    with pytest.raises(GraphError, match="unknown node 'ghost'"):
        Graph.from_dict(doc([{"name": "a"}, {"name": "b"}], [e]))


@pytest.mark.parametrize("field", ["flops", "weight_bytes", "out_bytes"])
@pytest.mark.parametrize("value,word", [(-1, ">= 0"), (float("nan"), "finite"),
                                        (float("inf"), "finite"), ("12", "number")])
def test_bad_node_size(field: str, value: object, word: str) -> None:
    with pytest.raises(GraphError, match=f"node 'a' field '{field}'.*{word}"):
        Graph.from_dict(doc([{"name": "a", field: value}], []))


@pytest.mark.parametrize("value", [-5, float("nan"), float("-inf")])
def test_bad_edge_bytes(value: float) -> None:
    with pytest.raises(GraphError, match="edge 'a' -> 'b' field 'bytes'"):
        Graph([Node("a"), Node("b")], [("a", "b", value)])


def test_nan_in_json_file(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text('{"format": "mcm-graph/1", "nodes": [{"name": "a", "flops": NaN}], '
                    '"edges": []}')
    with pytest.raises(GraphError, match=r"nan.json: node 'a' field 'flops' must be finite"):
        Graph.load(path)


def test_duplicate_name() -> None:
    with pytest.raises(GraphError, match="duplicate node name 'a'"):
        Graph.from_dict(doc([{"name": "a"}, {"name": "b"}, {"name": "a"}], []))


def test_duplicate_edge() -> None:
    with pytest.raises(GraphError, match="duplicate edge 'a' -> 'b'"):
        Graph([Node("a"), Node("b")], [("a", "b"), Edge("a", "b", 3)])


def test_missing_name() -> None:
    with pytest.raises(GraphError, match="node #1 is missing field 'name'"):
        Graph.from_dict(doc([{"name": "a"}, {"op": "add"}], []))


@pytest.mark.parametrize("fmt", [None, "mcm-graph/2", "onnx"])
def test_wrong_format(fmt: str | None) -> None:
    d = doc([{"name": "a"}], [])
    if fmt is None:
        del d["format"]
    else:
        d["format"] = fmt
    with pytest.raises(GraphError, match="'format' must be 'mcm-graph/1'"):
        Graph.from_dict(d)


def test_other_document_errors() -> None:
    with pytest.raises(GraphError, match="no nodes"):
        Graph.from_dict(doc([], []))
    with pytest.raises(GraphError, match="missing field 'edges'"):
        Graph.from_dict({"format": FORMAT, "nodes": [{"name": "a"}]})
    with pytest.raises(GraphError, match="unknown field"):
        Graph.from_dict(doc([{"name": "a", "flop": 3}], []))
    with pytest.raises(GraphError, match="expected a JSON object"):
        Graph.from_dict([1, 2])  # type: ignore[arg-type]


def test_malformed_json_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "mcm-graph/1", "nodes": [\n')
    with pytest.raises(GraphError, match=r"bad.json: not valid JSON"):
        Graph.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="graph file not found.*nope.json"):
        Graph.load(tmp_path / "nope.json")


# ------------------------------------------------------------------ ids
def test_load_bundled_by_id_and_short_name() -> None:
    g = load_graph("tiny://chain-v1")
    assert g.id == "tiny://chain-v1" and g.name == "chain"
    assert g.names == ("input", "layer1", "layer2", "layer3", "layer4", "layer5")
    assert g.num_edges == 5
    assert load_graph("chain").to_dict() == g.to_dict()
    assert "tiny://chain-v1" in list_graphs()


def test_load_from_path_and_dict(tmp_path: Path, chain4: Graph) -> None:
    chain4.save(tmp_path / "c.json")
    assert load_graph(tmp_path / "c.json").to_dict() == chain4.to_dict()
    assert load_graph(chain4.to_dict()).to_dict() == chain4.to_dict()
    assert load_graph(chain4) is chain4


def test_generator_is_deterministic() -> None:
    a = load_graph("generator://layered-dag-v0/3")
    b = load_graph("generator://layered-dag-v0/3")
    c = load_graph("generator://layered-dag-v0/4")
    assert a is not b and a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    assert a.id == "generator://layered-dag-v0/3"
    assert 8 <= a.n <= 48
    for e in a.edges:
        assert a.index[e.src] < a.index[e.dst]


def test_unknown_id() -> None:
    with pytest.raises(GraphError, match=r"unknown graph 'tiny://nope-v9'.*tiny://chain-v1"):
        load_graph("tiny://nope-v9")
    with pytest.raises(GraphError, match="unknown graph"):
        load_graph("generator://layered-dag-v0/x")


def test_error_summary_keeps_the_type_and_first_non_empty_line() -> None:
    from mcm_gym.core.graph import error_summary

    assert error_summary(RuntimeError("\n  bad shape  \nTraceback (most recent call last):\n ...")) \
        == "RuntimeError: bad shape"
    assert error_summary(KeyError()) == "KeyError"
