"""Suites and the leaderboard: versioned instance lists, best known and proven bound per instance,
gaps, validation (a tampered entry fails), and the CLI around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcm_gym.bench import leaderboard as lb
from mcm_gym.bench.suites import Instance, get_suite, list_suites, register_suite
from mcm_gym.cli import main


def test_suites_are_versioned_lists_of_buildable_instances() -> None:
    assert {"suite://paper-v1", "suite://zoo-v2", "suite://heldout-v1"} <= set(list_suites())
    paper = get_suite("paper-v1")
    assert paper.id == "suite://paper-v1" and len(paper.instances) == 2
    keys = {lb.instance_key(i.problem()) for i in paper.instances}
    assert len(keys) == 2 and any("triangle" in k for k in keys)  # the switch is part of the instance
    with pytest.raises(ValueError, match="retired.*zoo-v2"):
        get_suite("suite://zoo-v1")
    zoo = get_suite("suite://zoo-v2")
    assert len({i.graph for i in zoo.instances}) == 14 and all(i.problem().n > 0 for i in zoo.instances[:3])
    with pytest.raises(ValueError, match="unknown suite 'suite://nope-v1'"):
        get_suite("suite://nope-v1")
    with pytest.raises(ValueError, match="exists"):
        register_suite("suite://paper-v1", "again", [])


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    register_suite("suite://test-tiny-v1", "two tiny instances", [
        Instance.of("tiny://diamond-v1", "ring-4"), Instance.of("tiny://attention-v1", "ring-4", {"triangle": True})])
    path = tmp_path_factory.mktemp("lb") / "leaderboard.json"
    lb.update(["suite://test-tiny-v1"], time_limit=30, path=path)
    return path


def test_update_records_best_and_bound_and_validates(board: Path) -> None:
    entries = lb.load(board)
    assert len(entries) == 2
    for e in entries.values():
        assert e["suites"] == ["suite://test-tiny-v1"]
        assert 0 < e["best"]["score"] <= e["bound"]["score"] * (1 + 1e-9) <= 1 + 1e-9
        assert e["best"]["method"] in ("dp", "exact") and e["best"]["seconds"] >= 0
    results = lb.validate(board)
    assert len(results) == 2 and all(ok for _, ok, _ in results), results
    # a second update keeps the file's entries (no worse best, no looser bound)
    before = {k: (e["best"]["score"], e["bound"]["score"]) for k, e in entries.items()}
    lb.update(["suite://test-tiny-v1"], time_limit=30, path=board)
    after = {k: (e["best"]["score"], e["bound"]["score"]) for k, e in lb.load(board).items()}
    assert after == before


def _tamper(board: Path, tmp_path: Path, change) -> Path:
    doc = json.loads(board.read_text())
    change(doc["entries"][0])
    out = tmp_path / "tampered.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("change, message", [
    (lambda e: e["best"].update(score=e["best"]["score"] * 0.9), "not the claimed"),
    (lambda e: e["best"].update(partition=[0] * (len(e["best"]["partition"]) - 1) + [3]), "not valid"),
    (lambda e: e["bound"].update(score=e["best"]["score"] * 0.95), "beats its own proven bound"),
    (lambda e: e.update(key="zoo://x-v1 | preset://ring-4-v1 | dataflow"), "not the key"),
])
def test_a_tampered_entry_fails(board: Path, tmp_path: Path, change, message: str, capsys) -> None:
    bad = _tamper(board, tmp_path, change)
    results = lb.validate(bad)
    assert any(not ok and message in msg for _, ok, msg in results), results
    assert main(["validate", str(bad)]) == 1
    assert main(["validate", str(board)]) == 0


def test_entries_of_another_cost_model_fail_and_are_dropped(board: Path, tmp_path: Path) -> None:
    doc = json.loads(board.read_text())
    assert doc["cost_model"] == lb.COST_MODEL
    doc["cost_model"] = "mcm-cost/1"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    results = lb.validate(old)
    assert results and all(not ok and "regenerate" in msg for _, ok, msg in results), results
    problem = get_suite("suite://test-tiny-v1").instances[0].problem()
    assert lb.gaps(problem, 0.5, old) is None  # no gaps against stale optima
    lb.update(["suite://test-tiny-v1"], time_limit=30, path=old)
    assert all(ok for _, ok, _ in lb.validate(old))


def test_gaps_and_evaluate(board: Path) -> None:
    inst = get_suite("suite://test-tiny-v1").instances[0]
    problem = inst.problem()
    e = lb.load(board)[lb.instance_key(problem)]
    g = lb.gaps(problem, e["best"]["score"] / 2, board)
    assert g is not None and g["gap_to_best"] == pytest.approx(0.5)
    assert g["gap_to_bound"] == pytest.approx(1 - e["best"]["score"] / 2 / e["bound"]["score"])
    lines: list[str] = []
    rows = lb.evaluate("balanced", "suite://test-tiny-v1", budget=1, path=board, out=lines.append)
    assert len(rows) == 2 and all(0 <= r["gap_to_best"] <= 1 for r in rows)
    assert len(lines) == 3 + 2 and "gap to best" in lines[1]


def test_the_shipped_leaderboard_validates() -> None:
    if not lb.default_path().exists():
        pytest.skip("no leaderboard shipped")
    results = lb.validate()
    assert results and all(ok for _, ok, _ in results), [r for r in results if not r[1]][:3]
    assert {"suite://paper-v1", "suite://zoo-v2", "suite://heldout-v1"} <= {
        s for e in lb.load().values() for s in e["suites"]}


def test_bench_rows_carry_the_gaps(tmp_path: Path) -> None:
    from mcm_gym.bench import read_rows, run_bench

    if not lb.default_path().exists():
        pytest.skip("no leaderboard shipped")
    out = tmp_path / "r.csv"
    rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], ["balanced"], [0], 1, out_csv=out)
    back = read_rows(out)
    best = lb.lookup(mcm_gym_problem("zoo://bert-base-v1", "ring-8"))["best"]["score"]
    assert rows[0]["gap_to_best"] == pytest.approx(1 - rows[0]["score"] / best, abs=1e-6)
    assert back[0]["gap_to_best"] == pytest.approx(rows[0]["gap_to_best"]) and back[0]["gap_to_bound"] >= 0
    # an instance the leaderboard does not hold: empty gaps, read back as None
    run_bench(["tiny://chain-v1"], ["ring-4"], ["balanced"], [0], 1, out_csv=out)
    assert [r["gap_to_best"] for r in read_rows(out) if r["graph_id"] == "tiny://chain-v1"] == [None]


def mcm_gym_problem(graph: str, hardware: str):
    import mcm_gym

    return mcm_gym.Problem(mcm_gym.load_graph(graph), mcm_gym.get_hardware(hardware))


def test_gaps_follow_a_rewritten_leaderboard(board: Path, tmp_path: Path) -> None:
    """A benchmark running beside a regeneration sees the new file, not a stale cached one."""
    import os

    copy = tmp_path / "lb.json"
    copy.write_text(board.read_text())
    problem = get_suite("suite://test-tiny-v1").instances[0].problem()
    best = lb.gaps(problem, 0.5, copy)["best_score"]
    doc = json.loads(copy.read_text())
    key = lb.instance_key(problem)
    for e in doc["entries"]:
        if e["key"] == key:
            e["best"]["score"] = best / 2
    copy.write_text(json.dumps(doc))
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))  # a later write
    assert lb.gaps(problem, 0.5, copy)["best_score"] == pytest.approx(best / 2)


class _FailsOnSecond:
    """A method that runs ``balanced`` on the first instance and raises ``exc`` on the second."""

    name = "flaky"

    def __init__(self, exc: BaseException) -> None:
        from mcm_gym.search import get_searcher

        self.exc, self.calls, self.inner = exc, 0, get_searcher("balanced")

    def search(self, problem, budget, seed=0, progress=None):
        self.calls += 1
        if self.calls == 2:
            raise self.exc
        return self.inner.search(problem, budget=budget, seed=seed)


def test_a_suite_run_reports_an_instance_it_cannot_run_and_keeps_its_rows(
        board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    rows = lb.evaluate(_FailsOnSecond(ValueError("needs 9 chips")), "suite://test-tiny-v1", budget=1, path=board,
                       out=lines.append)
    assert "score" in rows[0] and rows[1]["failed"] == "needs 9 chips" and "score" not in rows[1]
    assert lines[-1].endswith("| failed: needs 9 chips | - | - | - | - | - |")
    cmd = ["bench", "--suite", "suite://test-tiny-v1", "--methods", "balanced", "--budget", "1", "--out", str(tmp_path)]
    table = tmp_path / "test-tiny-v1.md"
    monkeypatch.setattr(lb, "get_searcher", lambda spec: _FailsOnSecond(ValueError("needs 9 chips")))
    assert main(cmd) == 1  # the suite finished, one instance failed
    text = table.read_text()
    assert "| tiny://diamond-v1" in text and "failed: needs 9 chips" in text
    assert "FAILED flaky" in capsys.readouterr().err
    table.unlink()
    monkeypatch.setattr(lb, "get_searcher", lambda spec: _FailsOnSecond(KeyboardInterrupt()))
    assert main(cmd) == 130  # Ctrl-C on the second instance: the first one's row is on disk
    text = table.read_text()
    assert "| tiny://diamond-v1" in text and "attention" not in text
    assert "interrupted" in capsys.readouterr().err
