"""Bundled graphs, presets they run on, the search interface and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mcm_gym
import mcm_gym.instances
from mcm_gym.bench import validate_record
from mcm_gym.cli import main
from mcm_gym.search.base import get_searcher
from mcm_gym.search.heuristics import RandomSearch, split_by_work


@pytest.mark.parametrize("gid", mcm_gym.list_graphs())
def test_every_bundled_graph_is_feasible_on_its_default_preset(gid: str) -> None:
    g = mcm_gym.load_graph(gid)
    hw = mcm_gym.get_hardware(g.metadata.get("default_hardware", "ring-8"))
    problem = mcm_gym.Problem(g, hw)
    res = problem.repair(split_by_work(problem))
    assert res.partition is not None and problem.is_valid(res.partition)


def test_bert_memory_binds_on_ring8() -> None:
    problem = mcm_gym.Problem(mcm_gym.load_graph("bert-base"), mcm_gym.get_hardware("ring-8"))
    fill = problem.graph.total_weight_bytes / problem.hardware.total_sram_bytes
    largest = problem.graph.weight_bytes.max()
    # 8 equal chips must each hold the largest node: the fill cannot exceed this ceiling.
    ceiling = problem.graph.total_weight_bytes / (8 * largest)
    assert 0.55 <= fill <= ceiling
    # memory binds: putting everything on the first 4 chips is impossible
    assert problem.graph.total_weight_bytes > 4 * problem.hardware.sram_bytes[0]


def test_bert_totals_match_metadata() -> None:
    g = mcm_gym.load_graph("zoo://bert-base-v1")
    totals = g.metadata["totals"]
    assert g.total_flops == totals["flops"] == totals["flop_counter_flops"]
    assert g.total_weight_bytes == totals["weight_bytes"] == totals["param_bytes"]


def test_searchers_are_reproducible_and_respect_the_budget() -> None:
    problem = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
    a = RandomSearch().search(problem, budget=7, seed=5)
    b = RandomSearch().search(problem, budget=7, seed=5)
    assert a.evaluations == 7 and len(a.trace) == 7
    assert a.score == b.score and np.array_equal(a.partition, b.partition)
    assert all(x <= y for x, y in zip(a.trace, a.trace[1:], strict=False))
    assert problem.is_valid(a.partition) and a.score == pytest.approx(problem.evaluate(a.partition).score[0])
    with pytest.raises(ValueError, match="budget"):
        RandomSearch().search(problem, budget=0)
    with pytest.raises(ValueError, match="unknown method"):
        get_searcher("nope")


def test_cli_partition_writes_a_replayable_result(tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    rc = main(["partition", "--graph", "tiny://attention-v1", "--hardware", "ring-4", "--budget", "3",
               "--seed", "1", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "score" in text and "throughput" in text
    rec = json.loads(out.read_text())
    assert rec["graph_id"] == "tiny://attention-v1" and rec["seed"] == 1
    assert main(["validate", str(out)]) == 0
    rec["score"] += 0.01  # a tampered record fails validation
    ok, msg = validate_record(rec)
    assert not ok and "differs" in msg
    rec["partition"][0] = 3  # dataflow broken
    ok, msg = validate_record(rec)
    assert not ok and "invalid" in msg


@pytest.mark.parametrize("args, message", [
    (["partition", "--graph", "nope"], "unknown graph"),
    (["partition", "--hardware", "ring-0"], "ring needs 1..256 chips, got 0"),
    (["partition", "--hardware", "hexagon-9"], "unknown hardware preset"),
    (["partition", "--hardware", "ring-2"], "SRAM"),
])
def test_cli_errors_are_clear(args, message, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_graphs_list_show_import(tmp_path, capsys) -> None:
    assert main(["graphs", "list", "--hardware", "ring-8"]) == 0
    out = capsys.readouterr().out
    assert "zoo://resnet-50-v1" in out and "zoo://bert-base-v1" in out
    assert main(["graphs", "show", "zoo://gpt2-v1"]) == 0
    assert "GFLOP" in capsys.readouterr().out
    dst = tmp_path / "copy.json"
    src = str(mcm_gym.instances.catalog.graph_dir() / "tiny-chain.json")
    assert main(["graphs", "import", src, "--out", str(dst), "--id", "user://chain-v1"]) == 0
    assert mcm_gym.load_graph(str(dst)).id == "user://chain-v1"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    pytest.importorskip("onnx")
    assert main(["graphs", "import", str(bad)]) == 2
    assert "onnx" in capsys.readouterr().err.lower()


def test_cli_show_draws_a_result(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    res = tmp_path / "r.json"
    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--budget", "2",
                 "--out", str(res)]) == 0
    png = tmp_path / "fig.png"
    assert main(["show", str(res), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", str(res), "--row", "5", "--out", str(png)]) == 2
