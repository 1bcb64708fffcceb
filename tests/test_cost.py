"""The cost simulator: hand-computed examples, an independent reference, and properties."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import node_time, raw_from_spec, reference_cost
from strategies import batches, graph_specs, hardwares, instances

from mcm_gym.core import kernels
from mcm_gym.core.cost import CostModel, Evaluation
from mcm_gym.core.graph import Edge, Graph, Node
from mcm_gym.core.hardware import Chip, Hardware, Link, get_hardware, uniform

RTOL = 1e-12


def close(a: object, b: object) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=RTOL,
                               atol=0)


# ------------------------------------------------------------------ hand-computed
@pytest.fixture
def chain3() -> Graph:
    return Graph([Node("A", "mm", 20, 4, 10), Node("B", "mm", 30, 6, 5), Node("C", "mm", 10, 2, 1)],
                 [Edge("A", "B"), Edge("B", "C")], name="chain3")


@pytest.fixture
def ring3() -> Hardware:
    return uniform(3, peak_flops=10, sram_bytes=100, link_bandwidth=5, link_latency=0.5)


def test_hand_computed_chain(chain3: Graph, ring3: Hardware) -> None:
    cm = CostModel(chain3, ring3)
    # node times: 20/10, 30/10, 10/10 s; lower bound max(6/3, 3) = 3 s
    assert cm.lower_bound == 3.0
    ev = cm.evaluate(np.array([[0, 1, 1], [0, 0, 2], [0, 1, 2]]))
    # [0,1,1]: chips 2, 3+1, 0; A->B (10 B) on link 0: 10/5 + 0.5 = 2.5 s
    assert ev.chip_time[0].tolist() == [2.0, 4.0, 0.0]
    assert ev.link_bytes[0].tolist() == [10.0, 0.0, 0.0]
    assert ev.link_time[0].tolist() == [2.5, 0.0, 0.0]
    assert ev.memory[0].tolist() == [4.0, 8.0, 0.0]
    # [0,0,2]: chips 5, 0, 1; B->C (5 B) from chip 0 to 2 crosses links 0 and 1: 5/5 + 0.5 each
    assert ev.chip_time[1].tolist() == [5.0, 0.0, 1.0]
    assert ev.link_bytes[1].tolist() == [5.0, 5.0, 0.0]
    assert ev.link_time[1].tolist() == [1.5, 1.5, 0.0]
    # [0,1,2]: chips 2, 3, 1; links 2.5 and 1.5: the bottleneck reaches the bound
    assert ev.link_time[2].tolist() == [2.5, 1.5, 0.0]
    assert ev.bottleneck.tolist() == [4.0, 5.0, 3.0]
    assert ev.throughput.tolist() == [0.25, 0.2, 1 / 3]
    assert ev.latency.tolist() == [8.5, 9.0, 10.0]
    assert ev.score.tolist() == [0.75, 0.6, 1.0]
    assert ev.lower_bound == 3.0

    ser = CostModel(chain3, replace(ring3, serialize_comm=True)).evaluate(
        np.array([[0, 1, 1], [0, 1, 2]]))
    # stage = compute + the links the chip drives: chip 0: 2 + 2.5; chip 1: 3 + 1.5
    assert ser.bottleneck.tolist() == [4.5, 4.5]


def test_hand_computed_roofline(chain3: Graph) -> None:
    hw = uniform(3, peak_flops=10, sram_bytes=100, link_bandwidth=5, mem_bw=2)
    cm = CostModel(chain3, hw)
    # traffic = weights + inputs + output: A 4+0+10, B 6+10+5, C 2+5+1 bytes, at 2 B/s
    assert cm.node_time[:, 0].tolist() == [7.0, 10.5, 4.0]
    assert cm.lower_bound == 10.5  # max(21.5 / 3, 10.5)
    ev = cm.evaluate(np.array([0, 1, 1]))
    assert ev.chip_time[0].tolist() == [7.0, 14.5, 0.0]
    assert ev.bottleneck[0] == 14.5


def test_lower_bound_heterogeneous() -> None:
    # peak 1 and 3 FLOP/s, two independent nodes of 4 FLOPs: total work / aggregate speed
    # = 8 / 4 = 2 s
    # (largest node on the fastest chip: 4/3 s). Best partition: both on the fast chip, 8/3 s.
    hw = Hardware(chips=(Chip(1, 10), Chip(3, 10)), links=(Link(0, 1, 1), Link(1, 0, 1)),
                  topology="ring")
    g = Graph([Node("a", flops=4), Node("b", flops=4)], [])
    cm = CostModel(g, hw)
    assert cm.lower_bound == pytest.approx(2.0, rel=RTOL)
    ev = cm.evaluate(np.array([[0, 0], [1, 1], [0, 1], [1, 0]]))
    close(ev.bottleneck, [8, 8 / 3, 4, 4])
    assert ev.bottleneck.min() >= cm.lower_bound


def test_multicast_same_chip() -> None:
    # P (out 7 B) on chip 0 feeds X and Y, both on chip 2 of a 3-ring: links 0 and 1 carry 7 B once
    g = Graph([Node("P", out_bytes=7), Node("X"), Node("Y")], [("P", "X"), ("P", "Y")])
    hw = uniform(3, peak_flops=1, sram_bytes=1, link_bandwidth=7, link_latency=1.0)
    ev = CostModel(g, hw).evaluate(np.array([[0, 2, 2], [0, 1, 2], [0, 0, 1], [1, 1, 1]]))
    assert ev.link_bytes.tolist() == [[7, 7, 0], [7, 7, 0], [7, 0, 0], [0, 0, 0]]
    assert ev.link_time.tolist() == [[2, 2, 0], [2, 2, 0], [2, 0, 0], [0, 0, 0]]
    # two producers do add up on a shared link
    g2 = Graph([Node("P", out_bytes=7), Node("Q", out_bytes=3), Node("X")],
               [("P", "X"), ("Q", "X")])
    assert CostModel(g2, hw).evaluate(np.array([0, 0, 2])).link_bytes[0].tolist() == [10, 10, 0]


@given(st.integers(2, 7), st.data())
def test_ring_route_loads(k: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, k - 2))
    j = data.draw(st.integers(i + 1, k - 1))
    nbytes = data.draw(st.integers(1, 100))
    g = Graph([Node("u", out_bytes=nbytes), Node("v")], [("u", "v")])
    hw = uniform(k, peak_flops=1, sram_bytes=1, link_bandwidth=1)
    ev = CostModel(g, hw).evaluate(np.array([i, j]))
    assert ev.link_bytes[0].tolist() == [nbytes if i <= l_ < j else 0 for l_ in range(k)]


def test_bad_partitions(chain3: Graph, ring3: Hardware) -> None:
    cm = CostModel(chain3, ring3)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        cm.evaluate(np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="chip index 3 out of range 0..2"):
        cm.evaluate(np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="integer"):
        cm.evaluate(np.array([0, 0.5, 1]))
    assert cm.evaluate(np.array([0.0, 1.0, 1.0])).bottleneck.tolist() == [4.0]


# ------------------------------------------------------------------ properties
def row(ev: Evaluation, i: int) -> dict[str, np.ndarray]:
    return {f.name: np.asarray(getattr(ev, f.name)) if f.name == "lower_bound"
            else np.asarray(getattr(ev, f.name))[i] for f in fields(Evaluation)}


@given(instances(), st.data())
def test_batch_equals_rows_and_reference(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    cm = CostModel(spec.graph(), hw)
    p = np.array(data.draw(batches(spec.n, hw.num_chips)))
    ev = cm.evaluate(p)
    chunked = cm.evaluate(p, chunk=2)
    assert len(ev) == len(p) == len(chunked)
    raw = raw_from_spec(spec)
    for i in range(len(p)):
        one = cm.evaluate(p[i])
        for name, value in row(ev, i).items():
            close(value, row(one, 0)[name])
            close(value, row(chunked, i)[name])
        ref = reference_cost(raw, hw, p[i].tolist())
        for name, value in ref.items():
            close(getattr(ev, name)[i], value)


@given(instances(), st.data())
def test_score_bound_throughput(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    cm = CostModel(spec.graph(), hw)
    ev = cm.evaluate(np.array(data.draw(batches(spec.n, hw.num_chips))))
    raw = raw_from_spec(spec)
    k = hw.num_chips
    tmin = [min(node_time(raw, hw, v, c) for c in range(k)) for v in range(spec.n)]
    has_work = max(tmin) > 0
    assert np.all(ev.bottleneck >= ev.lower_bound * (1 - RTOL))
    assert np.all((ev.score >= 0) & (ev.score <= 1))
    if has_work:
        assert ev.lower_bound > 0
        assert np.all(ev.score > 0)
        close(ev.throughput, 1.0 / ev.bottleneck)
        close(ev.score, ev.lower_bound / ev.bottleneck)
    # DESIGN: lower bound >= total work / aggregate speed of all chips, and >= the largest node's
    # time on its fastest chip
    assert ev.lower_bound >= max(tmin) * (1 - RTOL)
    assert ev.lower_bound >= sum(spec.flops) / sum(c.peak_flops for c in hw.chips) * (1 - RTOL)
    if all(c.mem_bw is not None for c in hw.chips):
        traffic = sum(raw.params_read(v) for v in range(raw.n)) + sum(raw.out) + sum(b for _, _, b in raw.edges)
        assert ev.lower_bound >= traffic / sum(c.mem_bw for c in hw.chips) * (1 - RTOL)


@st.composite
def big_hardware(draw: st.DrawFn) -> Hardware:
    """Many links (beyond one 64-bit word of route bits): ring/chain of up to 70 chips or a mesh."""
    topology = draw(st.sampled_from(["ring", "chain", "mesh"]))
    grid = None
    if topology == "mesh":
        grid = (draw(st.integers(1, 6)), draw(st.integers(2, 7)))
        k = grid[0] * grid[1]
    else:
        k = draw(st.integers(2, 70))
    return uniform(k, peak_flops=draw(st.integers(1, 5)), sram_bytes=1,
                   link_bandwidth=draw(st.integers(1, 5)),
                   link_latency=draw(st.sampled_from([0.0, 1.0])), topology=topology, grid=grid)


@given(graph_specs(), big_hardware(), st.data())
def test_reference_on_many_links(spec, hw: Hardware, data: st.DataObject) -> None:  # noqa: ANN001
    cm = CostModel(spec.graph(), hw)
    p = np.array(data.draw(batches(spec.n, hw.num_chips, max_batch=4)))
    ev = cm.evaluate(p)
    raw = raw_from_spec(spec)
    for i in range(len(p)):
        ref = reference_cost(raw, hw, p[i].tolist())
        for name in ("link_bytes", "link_time", "bottleneck", "latency", "chip_time"):
            close(getattr(ev, name)[i], ref[name])


def test_multicast_uneven_bytes_mesh() -> None:
    # mesh-2x3 in snake order: row 0 = chips 0 1 2, row 1 = chips 5 4 3. P on chip 0 sends 10 B to X
    # on chip 2 and 4 B to Y on chip 5 (below chip 0): disjoint routes. Z on chip 1 gets 6 B: the
    # link 0->1 is shared with X's route and carries max(10, 6) = 10 B.
    hw = get_hardware("mesh-2x3")
    assert hw.positions == ((0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0))
    g = Graph([Node("P", out_bytes=1), Node("X"), Node("Y"), Node("Z")],
              [Edge("P", "X", 10), Edge("P", "Y", 4), Edge("P", "Z", 6)])
    ev = CostModel(g, hw).evaluate(np.array([0, 2, 5, 1]))
    lid = {(ln.src, ln.dst): i for i, ln in enumerate(hw.links)}
    expect = np.zeros(hw.num_links)
    expect[[lid[(0, 1)], lid[(1, 2)]]] = 10
    expect[lid[(0, 5)]] = 4
    assert ev.link_bytes[0].tolist() == expect.tolist()


@given(graph_specs(), hardwares(), st.data())
def test_serialize_not_faster(spec, hw: Hardware, data: st.DataObject) -> None:  # noqa: ANN001
    g = spec.graph()
    p = np.array(data.draw(batches(spec.n, hw.num_chips)))
    over = CostModel(g, replace(hw, serialize_comm=False)).evaluate(p)
    ser = CostModel(g, replace(hw, serialize_comm=True)).evaluate(p)
    assert np.all(ser.bottleneck >= over.bottleneck)
    close(ser.chip_time, over.chip_time)
    close(ser.latency, over.latency)


@pytest.mark.skipif(not kernels.available(), reason="numba not installed (pip install 'mcm-gym[fast]')")
@given(graph_specs(), big_hardware(), st.data())
def test_compiled_kernels_equal_the_numpy_path(spec, hw: Hardware, data: st.DataObject) -> None:  # noqa: ANN001
    """The numba kernels (chip time, memory with shared tensors, multicast link loads) give the numpy
    path's numbers on random graphs, meshes and rings of up to 70 chips."""
    cm = CostModel(spec.graph(), hw)
    p = np.array(data.draw(batches(spec.n, hw.num_chips, max_batch=5)))
    fast = cm.evaluate(p)
    chip_time, memory = kernels.chip_loads(p, cm.node_time, cm.mem_demand, cm._shared_ptr, cm._shared_nodes,
                                           cm.shared_bytes)
    assert np.allclose(chip_time, cm.chip_sums(p, cm.node_time), rtol=1e-12, atol=0)
    assert np.array_equal(memory, cm.chip_memory(p)) and np.array_equal(fast.memory, memory)
    assert np.allclose(fast.link_bytes, cm.link_loads_numpy(p), rtol=1e-12, atol=0)


def test_numpy_path_when_numba_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MCM_GYM_NUMBA=0`` selects the numpy path; both paths score BERT partitions alike."""
    import mcm_gym

    cm = CostModel(mcm_gym.load_graph("bert-base"), get_hardware("ring-8"))
    p = np.random.default_rng(0).integers(0, 8, (64, cm.graph.n))
    a = cm.evaluate(p)
    monkeypatch.setenv("MCM_GYM_NUMBA", "0")
    assert not kernels.enabled()
    b = cm.evaluate(p)
    assert np.allclose(a.bottleneck, b.bottleneck, rtol=1e-12) and np.array_equal(a.memory, b.memory)


@pytest.mark.skipif(not kernels.available(), reason="numba not installed (pip install 'mcm-gym[fast]')")
@given(instances(), st.data())
def test_compiled_violation_counts_equal_the_constraints(inst, data: st.DataObject) -> None:  # noqa: ANN001
    """The kernel's dataflow / neighbor_only / contiguous / triangle counts equal each constraint's
    numpy ``count`` on random graphs and partitions."""
    from mcm_gym.core.constraints import CONSTRAINTS

    spec, hw = inst
    g = spec.graph()
    p = np.array(data.draw(batches(spec.n, hw.num_chips, max_batch=6)), dtype=np.int64)
    got = kernels.graph_violations(p, g.edge_src, g.edge_dst, g.triangles, hw.num_chips)
    mem = np.zeros((p.shape[0], hw.num_chips))
    by = CONSTRAINTS
    for j, name in enumerate(("dataflow", "neighbor_only", "contiguous", "triangle")):
        assert got[:, j].tolist() == by[name].count(g, hw, p, mem).tolist(), name
