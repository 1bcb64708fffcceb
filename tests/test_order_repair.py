"""The order DP (mcm_gym.core.order_repair) against brute force on small instances."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import all_valid, changes, is_valid, min_changes, raw_from_spec
from strategies import instances

from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.core.order_repair import improve_moves, order_dp, order_repair
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.core.repair import RepairConfig, greedy_repair
from mcm_gym.instances.catalog import load_graph


def _plain(hw: Hardware) -> bool:
    """The order DP builds in dataflow, memory and contiguous, not neighbor_only or triangle."""
    return not (hw.constraints.neighbor_only or hw.constraints.triangle)


def _problem(spec, hw):  # noqa: ANN001, ANN202
    try:
        return Problem(spec.graph(), hw)
    except InfeasibleError:
        return None


def _best_along(raw, hw: Hardware, order: list[int], cand: list[int]) -> int | None:  # noqa: ANN001
    """Brute force: fewest changes over valid partitions that are non-decreasing along ``order``
    with every chip up to the highest one used (as the DP builds them)."""
    best = None
    for labels in itertools.product(range(hw.num_chips), repeat=len(order)):
        if any(a > b for a, b in zip(labels, labels[1:], strict=False)):
            continue
        p = [0] * len(order)
        for v, c in zip(order, labels, strict=True):
            p[v] = c
        if set(p) != set(range(max(p) + 1)) or not is_valid(raw, hw, p):
            continue
        ch = changes(p, cand)
        best = ch if best is None else min(best, ch)
    return best


@settings(max_examples=60, deadline=None)
@given(instances(max_nodes=6, max_chips=3), st.data())
def test_order_dp_is_optimal_for_its_order(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr = _problem(spec, hw)
    if pr is None or not _plain(hw):
        return
    cand = np.array(data.draw(st.lists(st.integers(0, hw.num_chips - 1), min_size=spec.n, max_size=spec.n)))
    order = pr.graph.priority_order(cand.astype(float))
    p = order_dp(pr, cand, order)
    raw = raw_from_spec(spec)
    ref = _best_along(raw, hw, order.tolist(), cand.tolist())
    if ref is None:
        assert p is None
        return
    assert p is not None and is_valid(raw, hw, p.tolist())
    assert changes(p.tolist(), cand.tolist()) == ref
    assert np.all(np.diff(p[order]) >= 0)


@settings(max_examples=60, deadline=None)
@given(instances(max_nodes=7, max_chips=3), st.data())
def test_order_repair_valid_and_never_below_the_optimum(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr = _problem(spec, hw)
    if pr is None:
        return
    cand = np.array(data.draw(st.lists(st.integers(0, hw.num_chips - 1), min_size=spec.n, max_size=spec.n)))
    p, info = order_repair(pr, cand, restarts=4)
    raw = raw_from_spec(spec)
    valid = all_valid(raw, hw)
    if p is None:
        return  # a heuristic may find nothing; the repair then goes on to Z3
    assert is_valid(raw, hw, p.tolist())
    best = min_changes(valid, cand.tolist())
    assert best is not None and changes(p.tolist(), cand.tolist()) >= best
    assert info["orders"] == 5
    if _plain(hw):
        assert info["dropped"] == 0


@settings(max_examples=80, deadline=None)
@given(instances(max_nodes=7, max_chips=3), st.data())
def test_improve_moves_keeps_the_dp_output_valid(inst, data: st.DataObject) -> None:  # noqa: ANN001
    """Single moves from the raw DP labelling (not an already improved one) stay valid and never add changes."""
    spec, hw = inst
    pr = _problem(spec, hw)
    if pr is None or not _plain(hw):
        return
    cand = np.array(data.draw(st.lists(st.integers(0, hw.num_chips - 1), min_size=spec.n, max_size=spec.n)))
    key = np.array(data.draw(st.lists(st.floats(0, 3), min_size=spec.n, max_size=spec.n)))
    p = order_dp(pr, cand, pr.graph.priority_order(key))
    if p is None:
        return
    raw = raw_from_spec(spec)
    q = improve_moves(pr, cand, p)
    assert is_valid(raw, hw, q.tolist())
    assert changes(q.tolist(), cand.tolist()) <= changes(p.tolist(), cand.tolist())


def test_order_repair_deterministic_and_close_on_bert() -> None:
    """Uniformly random BERT-base candidates on ring-8: the same answer twice, and within 3% of the
    repair's proven minimum (MaxRes)."""
    pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("ring-8"))
    cand = np.random.default_rng(3).integers(0, pr.num_chips, pr.n)
    a, _ = order_repair(pr, cand, restarts=16)
    b, _ = order_repair(pr, cand, restarts=16)
    assert a is not None and b is not None and np.array_equal(a, b)
    exact = pr.repair(cand)
    assert exact.status == "optimal" and exact.changes is not None
    assert exact.changes <= int((a != cand).sum()) <= 1.03 * exact.changes


def test_far_candidates_on_a_mesh_answered_by_the_order_dp() -> None:
    """BERT-base / mesh-4x4, uniformly random: the order DP answers (feasible, its reason named) and
    beats the greedy repair; with a solver budget the search from above never makes it worse."""
    pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("mesh-4x4"))
    cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
    res = pr.repair(cand)
    assert res.status == "feasible" and res.method == "order" and res.info["reason"] == "far_rlimit"
    assert res.info["message"] and pr.is_valid(res.partition)
    g = greedy_repair(pr, cand)
    assert g is not None and res.changes is not None and res.changes < int((g != cand).sum())
    more = pr.repair(cand, RepairConfig(far_rlimit=2_000_000))
    assert more.changes is not None and more.changes <= res.changes and pr.is_valid(more.partition)


def test_far_candidate_without_an_order_dp_answer_keeps_the_solver_budget() -> None:
    """Under neighbor_only the order DP's partitions are dropped: the solver must still get its
    budget (a review found it capped to far_rlimit=0, giving 'unknown' where Z3 proves infeasible)."""
    from dataclasses import replace

    hw = get_hardware("mesh-4x4")
    hw = replace(hw, constraints=replace(hw.constraints, neighbor_only=True))
    pr = Problem(load_graph("zoo://bert-base-v1"), hw)
    cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
    res = pr.repair(cand)
    assert res.status == "infeasible", res.info  # Z3 proves it within the default budget (0.3 s)


def test_node_restricted_formula_proves_large_noisy_candidates() -> None:
    """BERT-base / mesh-6x6, 10% moved, the node-restricted path forced on (restrict_min_literals=0,
    no local search): optimal at the lower bound, engine 'restricted', hops recorded, the same change
    count as the default repair."""
    pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("mesh-6x6"))
    base = pr.repair(np.minimum(np.arange(pr.n) * pr.num_chips // pr.n, pr.num_chips - 1)).partition
    assert base is not None
    rng = np.random.default_rng(1)
    cand = base.copy()
    idx = rng.choice(pr.n, 31, replace=False)
    cand[idx] = np.clip(cand[idx] + rng.choice([-2, -1, 1, 2], idx.size), 0, pr.num_chips - 1)
    forced = pr.repair(cand, RepairConfig(restrict_min_literals=0, local_search_max=0))
    default = pr.repair(cand)
    assert forced.status == default.status == "optimal"
    assert forced.info["engine"] == "restricted" and forced.info["restricted_hops"] == 0, forced.info
    assert forced.changes == default.changes == forced.info["lower_bound"]
