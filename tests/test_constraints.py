"""Constraints: hand-made cases per family, messages, batch counts, and an independent oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import all_valid, raw_from_spec, violated
from strategies import batches, graph_specs, instances

from mcm_gym.core.constraints import CONSTRAINTS, PlacementState
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import ConstraintSwitches, Hardware
from mcm_gym.core.problem import InfeasibleError, Problem

NAMES = ("dataflow", "memory", "contiguous", "neighbor_only", "triangle")


def only(hw: Hardware, *names: str, activation_memory: bool = False) -> Hardware:
    return hw.with_constraints(**{n: n in names for n in NAMES},
                               activation_memory=activation_memory)


def check(g: Graph, hw: Hardware, p: list[int]) -> list:
    return Problem(g, hw).check(np.array(p))


# ------------------------------------------------------------------ hand-made
def test_dataflow(chain4: Graph, small_hw: Hardware) -> None:
    hw = only(small_hw, "dataflow")
    assert check(chain4, hw, [0, 0, 1, 2]) == []
    assert check(chain4, hw, [2, 2, 2, 2]) == []
    (v,) = check(chain4, hw, [1, 0, 1, 1])
    assert v.constraint == "dataflow" and v.nodes == ("a", "b")
    assert str(v) == "[dataflow] edge a -> b goes back from chip 1 to chip 0"
    vs = check(chain4, hw, [2, 1, 0, 0])
    assert [x.nodes for x in vs] == [("a", "b"), ("b", "c")]
    assert Problem(chain4, hw).violation_counts(np.array([2, 1, 0, 0]))["dataflow"].tolist() == [2]


def test_memory(chain4: Graph, small_hw: Hardware) -> None:
    hw = only(small_hw, "memory")  # weights a 4, b 6, c 2, d 1; 10 bytes per chip
    assert check(chain4, hw, [0, 0, 1, 1]) == []  # exactly full is fine
    (v,) = check(chain4, hw, [0, 0, 0, 1])
    assert v.constraint == "memory"
    assert "chip 0 holds 12 bytes > SRAM 10 bytes" in str(v)
    assert set(v.nodes) == {"a", "b", "c"}
    assert all(n in v.message for n in ("a", "b", "c"))
    act = only(small_hw, "memory", activation_memory=True)  # + outputs a 2, b 3, c 1, d 1
    (v,) = check(chain4, act, [0, 0, 1, 1])
    assert "chip 0 holds 15 bytes" in v.message
    assert check(chain4, act, [0, 1, 2, 2]) == []


def test_contiguous(chain4: Graph, small_hw: Hardware) -> None:
    hw = only(small_hw, "contiguous")
    assert check(chain4, hw, [1, 1, 0, 0]) == []  # chips {0, 1}: no gap (order is dataflow's job)
    assert check(chain4, hw, [0, 0, 0, 0]) == []
    (v,) = check(chain4, hw, [0, 0, 2, 2])
    assert v.constraint == "contiguous" and "chip 1 is empty but chip 2 is used" in v.message
    vs = check(chain4, hw, [2, 2, 2, 2])
    assert [x.message for x in vs] == ["chip 0 is empty but chip 2 is used",
                                       "chip 1 is empty but chip 2 is used"]


def test_neighbor_only(chain4: Graph, small_hw: Hardware) -> None:
    hw = only(small_hw, "neighbor_only")
    assert check(chain4, hw, [0, 1, 1, 2]) == []
    assert check(chain4, hw, [2, 0, 1, 2]) == []  # going back is dataflow's business
    (v,) = check(chain4, hw, [0, 0, 2, 2])
    assert v.constraint == "neighbor_only" and v.nodes == ("b", "c")
    assert "b -> c skips from chip 0 to chip 2" in v.message


def test_triangle(diamond: Graph, small_hw: Hardware) -> None:
    hw = only(small_hw, "triangle")  # triangles (s, x, t) and (s, y, t); order s, x, y, t
    assert sorted(map(tuple, diamond.triangles.tolist())) == [(0, 1, 3), (0, 2, 3)]
    assert check(diamond, hw, [0, 1, 1, 1]) == []
    assert check(diamond, hw, [0, 0, 1, 1]) == []  # y, t on chip 1: (s, y, t) is not spread
    assert check(diamond, hw, [0, 1, 2, 1]) == []  # t before y: not increasing
    (v,) = check(diamond, hw, [0, 1, 0, 2])
    assert v.constraint == "triangle" and v.nodes == ("s", "x", "t")
    assert "s -> x -> t spreads over chips 0 < 1 < 2" in v.message
    assert len(check(diamond, hw, [0, 1, 1, 2])) == 2


def test_default_switches_and_messages(diamond: Graph, small_hw: Hardware) -> None:
    pr = Problem(diamond, small_hw.with_constraints(neighbor_only=True, triangle=True))
    assert [c.name for c in pr.constraints] == list(NAMES)
    vs = pr.check(np.array([2, 2, 0, 2]))  # y -> t ok; s -> y back; chips 1 empty
    got = {(v.constraint, v.nodes) for v in vs}
    assert ("dataflow", ("s", "y")) in got
    assert any(c == "contiguous" for c, _ in got)
    assert all(str(v).startswith(f"[{v.constraint}] ") for v in vs)
    assert not pr.is_valid(np.array([2, 2, 0, 2]))
    assert pr.is_valid(np.array([0, 0, 1, 1]))
    assert pr.scores(np.array([[2, 2, 0, 2], [0, 0, 1, 1]]))[0] == 0.0


# ------------------------------------------------------------------ random instances vs oracle
def problem_or_none(spec, hw: Hardware) -> Problem | None:  # noqa: ANN001
    try:
        return Problem(spec.graph(), hw)
    except InfeasibleError:
        assert hw.constraints.memory
        assert all_valid(raw_from_spec(spec), hw) == []
        return None


@given(instances(), st.data())
def test_counts_and_validity_match_oracle(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr = problem_or_none(spec, hw)
    if pr is None:
        return
    p = np.array(data.draw(batches(spec.n, hw.num_chips, max_batch=8)))
    counts = pr.violation_counts(p)
    assert set(counts) == set(hw.constraints.enabled())
    valid = pr.is_valid(p)
    raw = raw_from_spec(spec)
    for i, row in enumerate(p.tolist()):
        bad = violated(raw, hw, row)
        assert bool(valid[i]) == (not bad)
        assert pr.is_valid(p[i]) is (not bad)
        one = pr.violation_counts(p[i])
        explained = pr.check(p[i])
        for name, c in counts.items():
            assert (c[i] > 0) == (name in bad), (name, row)
            assert one[name].tolist() == [c[i]]
            assert sum(v.constraint == name for v in explained) == c[i]


@given(instances(max_nodes=6), st.data())
def test_masks_are_sound(inst, data: st.DataObject) -> None:  # noqa: ANN001
    """Placing a valid partition node by node in topological order, the masks of ``dataflow``,
    ``memory``, ``neighbor_only`` and ``triangle`` always allow the chip it uses."""
    spec, hw = inst
    pr = problem_or_none(spec, hw)
    if pr is None:
        return
    valid = all_valid(raw_from_spec(spec), hw)
    if not valid:
        return
    for p in data.draw(st.lists(st.sampled_from(valid), min_size=1, max_size=5)):
        state = PlacementState(pr.graph, hw, pr.mem_demand)
        for v in range(spec.n):
            for c in pr.constraints:
                if c.name != "contiguous":
                    assert c.mask(state, v)[p[v]], (c.name, p, v)
            state.place(v, p[v])


@given(graph_specs(max_nodes=14, max_weight=20), st.data())
def test_desc_demand_counts_each_descendant_once(spec, data: st.DataObject) -> None:  # noqa: ANN001
    """``PlacementState.desc_demand[v]``: the memory of ``v`` and of every node reachable from it,
    each counted once however many paths lead there (an independent walk over the edges)."""
    from mcm_gym.core.hardware import uniform

    g = spec.graph()
    mem = np.array(data.draw(st.lists(st.integers(0, 10**9), min_size=spec.n, max_size=spec.n)), dtype=float)
    state = PlacementState(g, uniform(2, peak_flops=1, sram_bytes=10**10, link_bandwidth=1), mem)
    succ: dict[int, list[int]] = {i: [] for i in range(spec.n)}
    for i, j, _ in spec.edges:
        succ[i].append(j)
    for v in range(spec.n):
        seen, todo = {v}, [v]
        while todo:
            for w in succ[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        assert state.desc_demand[v] == sum(mem[w] for w in seen)


def test_memory_mask_exact_fit() -> None:
    """Two 5-byte chips, a (5 B) -> b (5 B): a must take chip 0 (b needs the room behind it),
    an exact fit."""
    from mcm_gym.core.graph import Node
    from mcm_gym.core.hardware import uniform

    g = Graph([Node("a", weight_bytes=5), Node("b", weight_bytes=5)], [("a", "b")])
    hw = uniform(2, peak_flops=1, sram_bytes=5, link_bandwidth=1)
    pr = Problem(g, hw)
    state = PlacementState(g, hw, pr.mem_demand)
    m = CONSTRAINTS["memory"].mask
    assert m(state, 0).tolist() == [True, False]
    state.place(0, 0)
    assert m(state, 1).tolist() == [False, True]


def test_contiguous_mask_keeps_pipeline_order(chain4: Graph, small_hw: Hardware) -> None:
    pr = Problem(chain4, small_hw)
    state = PlacementState(chain4, small_hw, pr.mem_demand)
    m = CONSTRAINTS["contiguous"].mask
    assert m(state, 0).tolist() == [True, False, False]
    state.place(0, 0)
    state.place(1, 1)
    assert m(state, 2).tolist() == [True, True, True]


def test_all_partitions_tiny(diamond: Graph, small_hw: Hardware) -> None:
    """Exhaustive on a fixture: the batch answer equals the oracle for all 3^4 partitions."""
    hw = small_hw.with_constraints(neighbor_only=True, triangle=True)
    pr = Problem(diamond, hw)
    allp = np.array(list(itertools.product(range(3), repeat=4)))
    from oracle import raw_from_graph

    raw = raw_from_graph(diamond)
    expect = [not violated(raw, hw, p) for p in allp.tolist()]
    assert pr.is_valid(allp).tolist() == expect
    assert 0 < sum(expect) < len(expect)


def test_constraints_dataclass_default() -> None:
    assert ConstraintSwitches().enabled() == ("dataflow", "memory", "contiguous")
    with pytest.raises(TypeError):
        ConstraintSwitches(skip=True)  # type: ignore[call-arg]
