"""Bad input, as a user meets it: every case names the problem (and the file), exits 2 (1 for
`validate` finding a bad record), and shows no traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mcm_gym
from mcm_gym import HardwareError, Problem, get_hardware
from mcm_gym.bench import ResultsFileError, read_rows, run_bench
from mcm_gym.cli import main
from mcm_gym.core.graph import Edge, Graph, Node
from mcm_gym.core.hardware import uniform
from mcm_gym.env import InvalidActionError

RING = "topology: ring\nlink_bandwidth: 1e10\nchips: {count: 4, peak_flops: 1e12, sram_bytes: 1e8}\n"
HEADER = ("graph_id,hardware_id,method,seed,budget,score,throughput,bottleneck,lower_bound,evaluations,"
          "wall_time,partition,trace,trace_time\n")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "adir").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"\xf7\x01\x02 not an onnx model")
    (tmp_path / "binary.json").write_bytes(b"\xf7\x01\x02")
    (tmp_path / "grid.yaml").write_text("topology: mesh\ngrid: [2]\nlink_bandwidth: 1e10\n"
                                        "chips: {count: 4, peak_flops: 1e12, sram_bytes: 1e8}\n")
    (tmp_path / "cons.yaml").write_text(RING + "constraints: [memory, dataflow]\n")
    (tmp_path / "count.yaml").write_text(RING.replace("count: 4", "count: true"))
    (tmp_path / "torus.yaml").write_text(RING.replace("ring", "torus"))
    (tmp_path / "negbw.yaml").write_text(RING.replace("1e10", "-5"))
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "header.csv").write_text(HEADER)
    (tmp_path / "garbage.csv").write_text(HEADER + "garbage,,x\n")
    (tmp_path / "five.jsonl").write_text("5\n")
    rec = {"graph_id": "tiny://chain-v1", "hardware_id": "ring-4", "partition": [0] * 6, "score": 0.5}
    (tmp_path / "letter.jsonl").write_text(json.dumps({**rec, "partition": ["a"] + [0] * 5}) + "\n")
    (tmp_path / "other.jsonl").write_text(json.dumps({**rec, "graph_id": "tiny://diamond-v1"}) + "\n")
    (tmp_path / "trunc.jsonl").write_text(json.dumps(rec)[:40] + "\n")
    (tmp_path / "raises.py").write_text("def make():\n    raise RuntimeError('no weights here')\n")
    return tmp_path


@pytest.mark.parametrize("args, code, message", [
    (["partition", "--graph", "{d}/adir", "--hardware", "ring-4"], 2, "{d}/adir is a directory, not a graph file"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/adir"], 2,
     "{d}/adir is a directory, not a hardware file"),
    (["partition", "--graph", "{d}/model.onnx"], 2, "{d}/model.onnx"),
    (["partition", "--graph", "{d}/binary.json"], 2, "{d}/binary.json: not a mcm-graph/1 JSON file"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/grid.yaml"], 2,
     "{d}/grid.yaml: 'grid' must be [rows, cols]"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/cons.yaml"], 2,
     "{d}/cons.yaml: 'constraints' must map names to true/false"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/count.yaml"], 2,
     "{d}/count.yaml: 'chips.count' must be an integer, got True"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/torus.yaml"], 2,
     "{d}/torus.yaml: unknown topology 'torus'"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "{d}/negbw.yaml"], 2,
     "{d}/negbw.yaml: link 0->1: bandwidth must be > 0"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "ring-100000"], 2, "ring needs 1..256 chips"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "mesh-20x20"], 2, "at most 256 chips"),
    (["partition", "--graph", "tiny://chain-v1", "--hardware", "ring-4", "--split", "dp"], 2,
     "--split applies to --policy"),
    (["graphs", "import", "{d}/raises.py:make"], 2, "calling make() raised RuntimeError: no weights here"),
    (["validate", "{d}/adir"], 2, "{d}/adir is a directory"),
    (["validate", "{d}/empty.jsonl"], 2, "{d}/empty.jsonl: no result records"),
    (["validate", "{d}/header.csv"], 2, "{d}/header.csv: no result records"),
    (["validate", "{d}/garbage.csv"], 2, "{d}/garbage.csv:2: bad row"),
    (["validate", "{d}/trunc.jsonl"], 2, "{d}/trunc.jsonl:1: not a JSON record"),
    (["validate", "{d}/five.jsonl"], 1, "BAD a record is a JSON object"),
    (["validate", "{d}/letter.jsonl"], 1, "BAD partition must be a list of integer chip indices"),
    (["validate", "{d}/other.jsonl"], 1, "graph 'tiny://diamond-v1' has 7 nodes"),
    # --out naming a file: refused before any run (a suite run used to finish its runs, then fail)
    (["bench", "--graphs", "tiny://chain-v1", "--hardware", "ring-4", "--methods", "random", "--budget", "2",
      "--out", "{d}/header.csv"], 2, "--out {d}/header.csv: a folder is expected"),
    (["bench", "--suite", "suite://heldout-v1", "--methods", "random", "--budget", "2", "--out", "{d}/header.csv"], 2,
     "--out {d}/header.csv: a folder is expected"),
])
def test_cli_names_the_problem(files: Path, args: list[str], code: int, message: str, capsys) -> None:
    assert main([a.format(d=files) for a in args]) == code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert message.format(d=files) in text, text
    assert "Traceback" not in text


def test_a_result_of_a_graph_file_validates(tmp_path: Path, capsys) -> None:
    src = mcm_gym.instances.graph_dir() / "tiny-diamond.json"
    graph = tmp_path / "mine.json"
    g = Graph.load(src)
    Graph(g.nodes, g.edges, name="mine", id=None).save(graph)  # a graph no registry knows
    out = tmp_path / "r.json"
    assert main(["partition", "--graph", str(graph), "--hardware", "ring-4", "--budget", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["graph_file"] == str(graph.resolve())
    assert main(["validate", str(out)]) == 0
    rec = json.loads(out.read_text())
    del rec["graph_file"]
    out.write_text(json.dumps(rec) + "\n")
    capsys.readouterr()
    assert main(["validate", str(out)]) == 1  # the id alone does not find it
    assert "unknown graph 'mine'" in capsys.readouterr().out
    assert main(["validate", str(out), "--graph", str(graph)]) == 0


def test_a_missing_extra_says_which_to_install(tmp_path: Path, monkeypatch, capsys) -> None:
    res = tmp_path / "r.json"
    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--budget", "1",
                 "--out", str(res)]) == 0
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    capsys.readouterr()
    assert main(["show", str(res), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "mcm-gym[viz]" in err and "Traceback" not in err


@pytest.mark.parametrize("edges, reason", [
    ([Edge("n0", "n1"), Edge("n1", "n2")], "node 'n1' has no feasible chip"),  # the chip bounds say it
    ([], "runs out at node 'n2'"),  # independent nodes: three 6-byte items do not pack in two 10-byte bins
])
def test_unpackable_weights_are_explained(edges: list[Edge], reason: str) -> None:
    nodes = [Node(f"n{i}", "matmul", flops=1e6, weight_bytes=6.0, out_bytes=1.0) for i in range(3)]
    hw = uniform(2, peak_flops=1e12, sram_bytes=10.0, link_bandwidth=1e9)
    problem = Problem(Graph(nodes, edges, name="stuck"), hw)  # 18 bytes fit the 20 bytes of SRAM in total
    for method in ("balanced", "exact"):
        res = mcm_gym.search.get_searcher(method).search(problem, budget=4)
        assert res.partition is None
        text = mcm_gym.search.format_result(problem, res)
        assert "no valid partition found" in text and reason in text, text


def test_the_largest_tensor_names_the_int8_way_out() -> None:
    g = Graph([Node("big", "embedding", flops=0.0, weight_bytes=60e6, out_bytes=1.0)], [], name="big")
    with pytest.raises(mcm_gym.InfeasibleError, match="--dtype-bytes 1"):
        Problem(g, get_hardware("ring-8"))


def test_presets_are_bounded_and_hardware_files_checked(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match="ring needs 1..256 chips"):
        get_hardware("ring-257")
    assert get_hardware("ring-256").num_chips == 256
    with pytest.raises(HardwareError, match="constraint switches must be true or false: triangle"):
        mcm_gym.Hardware.from_dict({"topology": "ring", "link_bandwidth": 1e9, "constraints": {"triangle": "yes"},
                                    "chips": {"count": 2, "peak_flops": 1e12, "sram_bytes": 1e6}})


@pytest.mark.parametrize("mode, action", [
    ("sequential", True), ("sequential", 1.5), ("sequential", "1"), ("sequential", [1, 2]),
    ("oneshot", [0.9, 1.9, 0, 0, 0, 0]), ("oneshot", ["a"] * 6), ("oneshot", [True] * 6),
])
def test_env_refuses_actions_that_are_not_chip_indices(mode: str, action: object) -> None:
    env = gym.make("MCMPartition-v0", graph="tiny://chain-v1", hardware="ring-4", mode=mode).unwrapped
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="give integer chip indices"):
        env.step(action)


def test_env_takes_integral_actions() -> None:
    env = gym.make("MCMPartition-v0", graph="tiny://chain-v1", hardware="ring-4", mode="oneshot").unwrapped
    env.reset(seed=0)
    _, reward, done, _, _ = env.step(np.zeros(6))
    assert done and reward > 0


def test_a_garbage_results_row_is_named_and_no_resume_moves_the_file_aside(tmp_path: Path) -> None:
    csv_path = tmp_path / "results.csv"
    csv_path.write_text(HEADER + "garbage,,x\n")
    with pytest.raises(ResultsFileError, match=r"results.csv:2: bad row .*fix or delete that line"):
        run_bench(["tiny://chain-v1"], ["ring-4"], ["balanced"], [0], 1, out_csv=csv_path)
    with pytest.warns(RuntimeWarning, match="moved the file to .*results.csv.unreadable"):
        rows = run_bench(["tiny://chain-v1"], ["ring-4"], ["balanced"], [0], 1, out_csv=csv_path, resume=False)
    assert len(rows) == 1 and len(read_rows(csv_path)) == 1
    assert (tmp_path / "results.csv.unreadable").read_text().endswith("garbage,,x\n")


def test_partition_method_takes_options_and_checks_them_up_front(capsys) -> None:
    """``partition --method`` accepts ``name:key=value`` as ``bench --methods`` does; a bad option
    value stops at the argument, exit 2, naming it."""
    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--method", "sa:t_start=0.1",
                 "--budget", "5"]) == 0
    assert "sa:t_start=0.1" in capsys.readouterr().out
    for bad, says in (("sa:nosuch=1", "bad option"), ("nosuch", "unknown method 'nosuch'")):
        with pytest.raises(SystemExit) as exc:
            main(["partition", "--graph", "tiny://diamond-v1", "--method", bad])
        assert exc.value.code == 2 and says in capsys.readouterr().err
