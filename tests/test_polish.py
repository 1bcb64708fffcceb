"""The local polish (``mcm_gym.search.polish``), against brute force on small random instances: its
moves are exactly the valid one-node moves to a neighbouring chip, it never loses score, stops only
where no move improves (or the budget is spent), and is deterministic."""

from __future__ import annotations

import itertools
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mcm_gym.cli import main
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.instances import load_graph
from mcm_gym.search import get_searcher
from mcm_gym.search import polish as polish_module
from mcm_gym.search.base import SearchResult
from mcm_gym.search.polish import _lex_better, leximax_key, one_node_moves, polish, polish_result
from tests.strategies import instances

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_partitions(problem: Problem) -> np.ndarray:
    """Every valid partition (brute force over ``K^n``)."""
    k, n = problem.num_chips, problem.n
    allp = np.array(list(itertools.product(range(k), repeat=n)), dtype=np.int64)
    return allp[np.asarray(problem.is_valid(allp), dtype=bool)]


def _brute_moves(problem: Problem, p: np.ndarray) -> set[tuple[int, ...]]:
    """The valid partitions that differ from ``p`` in one node moved one chip (brute force)."""
    out = set()
    for v in range(problem.n):
        for d in (-1, 1):
            q = p.copy()
            q[v] += d
            if 0 <= q[v] < problem.num_chips and problem.is_valid(q):
                out.add(tuple(q.tolist()))
    return out


def _problem_and_start(data: st.DataObject, max_nodes: int = 6) -> tuple[Problem, np.ndarray]:
    spec, hw = data.draw(instances(max_nodes=max_nodes, max_chips=3))
    try:
        problem = Problem(spec.graph(), hw)
    except InfeasibleError:
        assume(False)
    valid = _valid_partitions(problem)
    assume(len(valid) > 0)
    return problem, valid[data.draw(st.integers(0, len(valid) - 1))]


@SETTINGS
@given(st.data())
def test_moves_are_every_valid_one_node_move(data: st.DataObject) -> None:
    problem, p = _problem_and_start(data)
    moves = one_node_moves(problem, p)
    got = [tuple(m.tolist()) for m in moves]
    assert len(got) == len(set(got))
    assert set(got) == _brute_moves(problem, p)
    limit = data.draw(st.integers(0, len(got) + 1))
    assert np.array_equal(one_node_moves(problem, p, limit=limit), moves[:limit])


@SETTINGS
@given(st.data())
def test_polish_never_loses_and_stops_at_a_local_optimum(data: st.DataObject) -> None:
    problem, p = _problem_and_start(data)
    budget = data.draw(st.integers(0, 40))
    seen: list[np.ndarray] = []
    res = polish(problem, p, budget, on_evaluated=lambda moves, scores: seen.append(scores))
    start = float(problem.evaluate(p[None]).score[0])
    assert problem.is_valid(res.partition)
    assert res.score >= start and res.start_score == pytest.approx(start, rel=1e-12)
    assert res.score == pytest.approx(float(problem.evaluate(res.partition[None]).score[0]), rel=1e-12)
    assert res.evaluations <= budget and res.evaluations == sum(len(s) for s in seen)
    assert res.moves <= res.evaluations
    neighbours = _brute_moves(problem, res.partition)
    if res.stop == "local optimum":  # no single valid move scores higher (the oracle: brute force)
        best_next = max((float(problem.evaluate(np.array([q])).score[0]) for q in neighbours), default=0.0)
        assert best_next <= res.score * (1 + 1e-9)
        keys = leximax_key(problem.evaluate(np.array(sorted(neighbours)))) if neighbours else None
        here = leximax_key(problem.evaluate(res.partition[None]))[0]
        assert keys is None or not (_lex_better(keys, here) & (keys[:, 0] <= here[0])).any()
    else:
        assert res.stop == "budget" and neighbours and res.evaluations == budget
    if budget == 0:
        assert np.array_equal(res.partition, p) and res.evaluations == 0
    again = polish(problem, p, budget)
    assert np.array_equal(again.partition, res.partition) and again.evaluations == res.evaluations


@SETTINGS
@given(st.data())
def test_chunks_do_not_change_the_result(data: st.DataObject) -> None:
    """Moves listed and scored a few rows at a time (as on large graphs) give the same polish."""
    problem, p = _problem_and_start(data)
    budget = data.draw(st.integers(0, 30))
    whole, listed = polish(problem, p, budget), one_node_moves(problem, p)
    limit = data.draw(st.integers(0, len(listed) + 1))
    with patch.object(polish_module, "_MOVE_ENTRIES", problem.n * data.draw(st.integers(1, 3))):
        chunked = polish(problem, p, budget)
        assert np.array_equal(one_node_moves(problem, p), listed)
        assert np.array_equal(one_node_moves(problem, p, limit=limit), listed[:limit])
    assert np.array_equal(whole.partition, chunked.partition)
    assert (whole.evaluations, whole.moves, whole.stop) == (chunked.evaluations, chunked.moves, chunked.stop)


@SETTINGS
@given(st.data())
def test_polish_beats_every_neighbour_of_its_start(data: st.DataObject) -> None:
    """Steepest descent takes the best first move, so with budget enough for the first round the
    result is at least as good as every valid one-node move of the start."""
    problem, p = _problem_and_start(data)
    res = polish(problem, p, 10_000)
    for q in _brute_moves(problem, p):
        assert float(problem.evaluate(np.array([q])).score[0]) <= res.score * (1 + 1e-9)


def test_polish_refuses_an_invalid_start() -> None:
    problem = Problem(*_tiny())
    bad = np.zeros(problem.n, dtype=np.int64)
    bad[0] = problem.num_chips - 1  # a producer after its consumers: dataflow breaks
    with pytest.raises(ValueError, match=r"polish needs a valid start partition: \[dataflow\] edge"):
        polish(problem, bad, 5)
    with pytest.raises(ValueError, match="budget must be >= 0"):
        polish(problem, np.zeros(problem.n, dtype=np.int64), -1)
    with pytest.raises(TypeError):
        polish(problem, np.zeros(problem.n, dtype=np.int64), 5.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer chip indices, got dtype float64"):
        polish(problem, np.zeros(problem.n), 5)
    with pytest.raises(ValueError, match="partition has shape"):
        polish(problem, np.zeros(problem.n + 1, dtype=np.int64), 5)


def _tiny() -> tuple:
    return load_graph("tiny://diamond-v1"), get_hardware("ring-4")


def test_polish_result_extends_the_trace() -> None:
    problem = Problem(load_graph("generator://layered-dag-v0/1007"), get_hardware("mesh-2x2"))
    res = get_searcher("balanced").search(problem, budget=1, seed=0)
    out = polish_result(problem, res, 30)
    info = out.extra["polish"]
    assert info["moves"] >= 1 and out.score > res.score  # an instance where the polish improves
    assert np.array_equal(out.partition, polish(problem, res.partition, 30).partition)
    assert out.method == "balanced+polish"
    assert out.evaluations == res.evaluations + info["evaluations"] == len(out.trace) == len(out.trace_time)
    assert all(b >= a for a, b in zip(out.trace, out.trace[1:], strict=False))
    assert out.score == pytest.approx(out.trace[-1]) and out.score >= res.score
    assert info["start_score"] == pytest.approx(res.score)
    empty = SearchResult.of(problem, "x", 0, None, 0.0, [0.0], 0.1)
    assert polish_result(problem, empty, 5).extra["polish"] == {"skipped": "no valid partition to polish"}


def test_polish_result_keeps_tie_breaking_moves() -> None:
    """On layered-DAG 3 / ring-4 the polish of dp's first splits takes moves that only lighten the
    runners-up (same score): the result is the polished partition, which it reports, not the start."""
    problem = Problem(load_graph("generator://layered-dag-v0/3"), get_hardware("ring-4"))
    res = get_searcher("dp").search(problem, budget=4, seed=0)
    plain = polish(problem, res.partition, 30)
    assert plain.moves >= 1 and plain.score == pytest.approx(res.score)  # ties only
    out = polish_result(problem, res, 30)
    assert np.array_equal(out.partition, plain.partition) and not np.array_equal(out.partition, res.partition)
    assert out.score == pytest.approx(res.score)


def test_cli_polish(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partition", "--graph", "generator://layered-dag-v0/1007", "--hardware", "mesh-2x2",
                 "--method", "balanced", "--budget", "1", "--polish", "40"]) == 0
    out = capsys.readouterr().out
    assert "method    balanced+polish" in out
    assert "polish    " in out and "evaluations, stopped at" in out
    with pytest.raises(SystemExit) as exc:
        main(["partition", "--polish", "-3"])
    assert exc.value.code == 2
    assert "--polish: must be >= 0 evaluations, got -3" in capsys.readouterr().err
