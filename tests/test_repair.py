"""Repair: Z3 minimal-change repair and the greedy fallback vs brute force on tiny instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import all_valid, changes, is_valid, min_changes, raw_from_graph, raw_from_spec
from strategies import GraphSpec, graph_specs, hardwares, instances

from mcm_gym.core.encoding import node_bounds
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.core.repair import RepairConfig, RepairResult, greedy_repair, repair
from mcm_gym.instances.catalog import load_graph


def setup(spec: GraphSpec, hw: Hardware) -> tuple[Problem | None, list[tuple[int, ...]]]:
    valid = all_valid(raw_from_spec(spec), hw)
    try:
        return Problem(spec.graph(), hw), valid
    except InfeasibleError:
        assert hw.constraints.memory and valid == []
        return None, valid


def candidates(n: int, k: int) -> st.SearchStrategy[list[int]]:
    """Mostly in range, sometimes a chip that does not exist (k, k+1) or a negative one."""
    return st.lists(st.integers(0, k - 1) | st.sampled_from([-1, k, k + 4]), min_size=n, max_size=n)


def assert_consistent(res: RepairResult, cand: list[int], spec: GraphSpec, hw: Hardware) -> None:
    assert res.status in ("optimal", "feasible", "infeasible", "unknown")
    if res.partition is None:
        assert res.changes is None and res.status in ("infeasible", "unknown")
        return
    p = res.partition.tolist()
    assert is_valid(raw_from_spec(spec), hw, p), (p, res)
    assert res.changes == changes(p, cand)
    assert res.status in ("optimal", "feasible")
    assert res.solve_time >= 0


# The default, MaxRes at once, MSU3 handing over to MaxRes after one call, MSU3 (every candidate
# counted as near), and the bisection (MaxRes stopped at once by a 1 MB memory cap).
# "hops": every candidate near, the node-restricted formulas (nodes pinned) on every size.
ENGINES = [RepairConfig(), RepairConfig(msu3_max_calls=0), RepairConfig(msu3_max_calls=1, near_fraction=1.0),
           RepairConfig(near_fraction=1.0), RepairConfig(msu3_max_calls=0, maxres_memory_mb=1),
           RepairConfig(near_fraction=1.0, restrict_min_literals=0, local_search_max=0)]


@pytest.mark.parametrize("cfg", ENGINES, ids=["default", "maxres", "handover", "msu3", "bisection", "hops"])
@given(instances(), st.data())
def test_repair_matches_brute_force(cfg: RepairConfig, inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, hw.num_chips))
    res = pr.repair(np.array(cand), cfg)
    assert_consistent(res, cand, spec, hw)
    best = min_changes(valid, cand)
    if valid:
        assert res.status == "optimal"  # tiny instance: never near the solver budget
        assert res.exact_memory
        assert res.changes == best
    else:
        assert res.status == "infeasible" and res.partition is None
        lo, hi = node_bounds(pr.graph, pr.hardware, pr.mem_demand)
        assert res.method == ("bounds" if np.any(lo > hi) else "z3")
    # greedy on the same input: valid or None, and never better than the optimum
    g = greedy_repair(pr, np.array(cand))
    if g is not None:
        assert is_valid(raw_from_spec(spec), hw, g.tolist())
        assert valid and changes(g.tolist(), cand) >= best


@given(instances(max_nodes=6, max_chips=5), st.data())
def test_restricted_first_attempt_matches_brute_force(inst, data: st.DataObject) -> None:  # noqa: ANN001
    """Up to 5 chips with restricted formulas (radius 1, then 2, ...) tried first: still the optimum;
    when a restricted formula answers, the partition lies within its radius of the candidate chip
    clipped to the node's chip bounds (the restriction's centre)."""
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, hw.num_chips))
    res = pr.repair(np.array(cand), RepairConfig(restrict_radius=1, near_fraction=1.0))
    assert_consistent(res, cand, spec, hw)
    if valid:
        assert res.status == "optimal" and res.changes == min_changes(valid, cand)
        if res.info.get("engine") == "restricted":
            assert res.info["lower_bound"] == res.changes
            lo, hi = node_bounds(pr.graph, pr.hardware, pr.mem_demand)
            at = np.clip(cand, lo, hi)
            assert np.all(np.abs(res.partition - at) <= res.info["restricted_radius"])
    else:
        assert res.status == "infeasible"


@given(instances(), st.data())
def test_node_bounds_are_sound(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    lo, hi = node_bounds(pr.graph, pr.hardware, pr.mem_demand)
    for p in valid:
        assert all(lo[v] <= p[v] <= hi[v] for v in range(spec.n)), (p, lo, hi)


def reach_matrix_bounds(g: Graph, hw: Hardware, mem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bounds as first written, from the ``n x n`` reachability matrix (the reference)."""
    k = hw.num_chips
    lo, hi = np.zeros(g.n, dtype=np.int64), np.full(g.n, k - 1, dtype=np.int64)
    cons = hw.constraints
    alone = mem + np.array([sum(t.bytes for t in g.shared if nm in t.users) for nm in g.names])
    too_big = alone > hw.sram_bytes.max() if cons.memory else np.zeros(g.n, bool)
    if cons.memory and cons.dataflow:
        reach = g.reach.astype(np.float64)
        pre, suf = np.cumsum(hw.sram_bytes), np.cumsum(hw.sram_bytes[::-1])[::-1]
        tol = 1e-9 * max(1.0, float(pre[-1]))
        lo = np.searchsorted(pre, reach.T @ mem - tol, side="left").astype(np.int64)
        hi = (np.searchsorted(-suf, -(reach @ mem) + tol, side="right") - 1).astype(np.int64)
    hi = np.minimum(hi, k - 1)
    lo[too_big] = k
    return lo, hi


@given(graph_specs(max_nodes=14, max_weight=12), hardwares(max_chips=5, max_sram=30), st.booleans())
def test_node_bounds_equal_the_reachability_formula(spec: GraphSpec, hw: Hardware, act: bool) -> None:
    """The bitset bounds equal the n x n matrix formula, on graphs with shared ancestors (each
    counted once), with and without activation memory."""
    hw = hw.with_constraints(activation_memory=act)
    g = spec.graph()
    mem = g.weight_bytes + (g.out_bytes if act else 0.0)
    new, old = node_bounds(g, hw, mem), reach_matrix_bounds(g, hw, mem)
    assert new[0].tolist() == old[0].tolist() and new[1].tolist() == old[1].tolist()
    anc, desc = g.reach_sums(mem)
    reach = g.reach.astype(np.float64)
    assert np.array_equal(anc, reach.T @ mem) and np.array_equal(desc, reach @ mem)


def test_reach_sums_blocks_and_sizes() -> None:
    """Larger graphs, and bitsets cut into blocks of 64 target nodes (the path of huge graphs)."""
    from mcm_gym.core.graph import _closure_sums  # the block size is internal
    from mcm_gym.instances.generators import layered_dag

    for seed, n in [(0, 1), (1, 65), (2, 300)]:
        g = layered_dag(seed, min_nodes=n, max_nodes=n)
        w = g.weight_bytes + 1.0
        reach = g.reach.astype(np.float64)
        anc, desc = g.reach_sums(w)
        assert np.array_equal(anc, reach.T @ w) and np.array_equal(desc, reach @ w)
        small = _closure_sums(g.succs, range(g.n - 1, -1, -1), w, max_bytes=64)
        assert np.array_equal(small, reach @ w)
    with pytest.raises(ValueError, match="shape"):
        g.reach_sums(np.zeros(3))


def test_bounds_and_masks_never_build_the_reachability_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """node_bounds, PlacementState and the repair do not touch Graph.reach (n x n bytes, and an
    n x n float64 copy, 800 MB at 10,000 nodes)."""
    from mcm_gym.core.constraints import PlacementState

    def forbidden(self: Graph) -> np.ndarray:
        raise AssertionError("Graph.reach used")

    monkeypatch.setattr(Graph, "reach", property(forbidden))
    g = load_graph("tiny://attention-v1")
    pr = Problem(g, get_hardware("ring-4"))
    node_bounds(g, pr.hardware, pr.mem_demand)
    PlacementState(g, pr.hardware, pr.mem_demand)
    assert pr.repair(np.full(g.n, 3)).status == "optimal"


def test_huge_graph_refused_not_crashed() -> None:
    """10,000 nodes on ring-64, a uniformly random candidate: by default the order DP answers without
    Z3 (reason far_rlimit); given a solver budget, the formula would not fit under Z3's memory cap,
    so the repair says so (before, Z3 ran out of memory parsing 155 MB and killed the process). The
    order DP's partition changes fewer nodes than the greedy repair's either way."""
    from mcm_gym.core.graph import Node
    from mcm_gym.instances.generators import layered_dag

    g = layered_dag(7, min_nodes=10_000, max_nodes=10_000)
    hw = get_hardware("ring-64")
    scale = 0.6 * hw.total_sram_bytes / g.total_weight_bytes
    g = Graph([Node(nd.name, nd.op, nd.flops, float(np.floor(nd.weight_bytes * scale)), nd.out_bytes)
               for nd in g.nodes], [(e.src, e.dst) for e in g.edges])
    pr = Problem(g, hw)
    cand = np.random.default_rng(0).integers(0, hw.num_chips, g.n)
    greedy = greedy_repair(pr, cand)
    assert greedy is not None
    res = pr.repair(cand)
    assert res.info["reason"] == "far_rlimit", res.info
    assert res.status == "feasible" and res.method == "order" and pr.is_valid(res.partition)
    assert res.changes is not None and res.changes < int((greedy != cand).sum())
    res = pr.repair(cand, RepairConfig(far_rlimit=10**6))
    assert res.info["reason"] == "formula too large", res.info
    assert res.status == "feasible" and res.method == "order" and pr.is_valid(res.partition)


@given(instances(), st.data())
def test_greedy_fallback(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, hw.num_chips))
    res = pr.repair(np.array(cand), RepairConfig(use_solver=False))
    assert_consistent(res, cand, spec, hw)
    if res.partition is not None:
        assert res.changes >= min_changes(valid, cand)
    if res.status == "infeasible":
        assert valid == []
    if res.method == "greedy":
        assert res.status in ("feasible", "unknown")


@given(instances(), st.data())
def test_deterministic_and_valid_candidate(inst, data: st.DataObject) -> None:  # noqa: ANN001
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    cand = np.array(data.draw(candidates(spec.n, hw.num_chips)))
    for cfg in ENGINES[:2]:
        a, b = pr.repair(cand, cfg), Problem(spec.graph(), hw).repair(cand.copy(), cfg)
        assert a.status == b.status and a.changes == b.changes and a.method == b.method
        assert (a.partition is None and b.partition is None) or \
            np.array_equal(a.partition, b.partition)
    if valid:
        p = np.array(data.draw(st.sampled_from(valid)))
        res = pr.repair(p)
        assert res.status == "optimal" and res.changes == 0 and res.method == "none"
        assert np.array_equal(res.partition, p) and res.partition is not p


@given(instances(), st.data())
def test_rounded_memory_is_sound(inst, data: st.DataObject) -> None:  # noqa: ANN001
    """With very coarse PB units (memory sizes rounded), answers stay valid and 'infeasible' stays
    true."""
    spec, hw = inst
    pr, valid = setup(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, hw.num_chips))
    res = pr.repair(np.array(cand), RepairConfig(pb_units=3))
    assert_consistent(res, cand, spec, hw)
    if res.status == "infeasible":
        assert valid == []
    if res.partition is not None:
        assert res.changes >= min_changes(valid, cand)
        if res.exact_memory and res.method == "z3":
            assert res.changes == min_changes(valid, cand)


# ------------------------------------------------------------------ hand-made
def test_pinned_nodes(chain4: Graph) -> None:
    """Memory pins every node of a chain to one chip (bounds lo == hi): the solver must cope."""
    from mcm_gym.core.graph import Node

    g = Graph([Node("a", weight_bytes=5), Node("b", weight_bytes=5), Node("c", weight_bytes=5)],
              [("a", "b"), ("b", "c")])
    hw = Hardware.from_dict({"chips": {"count": 3, "peak_flops": 1, "sram_bytes": 5},
                             "topology": "ring", "link_bandwidth": 1})
    pr = Problem(g, hw)
    assert [x.tolist() for x in node_bounds(pr.graph, pr.hardware, pr.mem_demand)] == [[0, 1, 2], [0, 1, 2]]
    res = pr.repair(np.array([2, 1, 0]))
    assert res.status == "optimal" and res.partition.tolist() == [0, 1, 2] and res.changes == 2


def big(k: int, **switches: bool) -> Hardware:
    hw = Hardware.from_dict({"chips": {"count": k, "peak_flops": 1, "sram_bytes": 100},
                             "topology": "ring", "link_bandwidth": 1})
    return hw.with_constraints(**switches)


@pytest.mark.parametrize("edges,k,switches,cand,best,unique", [
    # contiguous alone, two free nodes both on chip 2 of 3: both must move (the optimum needs 2
    # relaxations from one core)
    ([], 3, {"dataflow": False, "memory": False}, [2, 2], 2, None),
    # triangle u -> v -> w, u -> w spread over 0 < 1 < 2: only [0, 1, 1] is one change away
    ([("a", "b"), ("b", "c"), ("a", "c")], 3, {"triangle": True}, [0, 1, 2], 1, [0, 1, 1]),
    # neighbour-only: a -> b from chip 0 to 2 must shrink to one hop
    ([("a", "b")], 3, {"neighbor_only": True}, [0, 2], 1, None),
    # dataflow: a on chip 1 feeding b, c on chip 0
    ([("a", "b"), ("b", "c")], 2, {}, [1, 0, 0], 1, [0, 0, 0]),
])
def test_one_family_at_a_time(edges, k, switches, cand, best, unique) -> None:  # noqa: ANN001
    from mcm_gym.core.graph import Node

    names = "abc"[:len(cand)]
    g = Graph([Node(x) for x in names], edges)
    hw = big(k, **switches)
    pr = Problem(g, hw)
    raw = raw_from_graph(g)
    assert min_changes(all_valid(raw, hw), cand) == best  # the hand count agrees with brute force
    res = pr.repair(np.array(cand))
    assert res.status == "optimal" and res.changes == best
    assert is_valid(raw, hw, res.partition.tolist())
    if unique is not None:
        assert res.partition.tolist() == unique


def test_out_of_range_candidate(chain4: Graph, small_hw: Hardware) -> None:
    pr = Problem(chain4, small_hw)  # weights 4, 6, 2, 1 on 10-byte chips
    res = pr.repair(np.array([0, 7, 1, -3]))
    assert res.status == "optimal"
    assert res.changes == 2  # the two out-of-range nodes move; a and c can stay
    assert res.partition[0] == 0 and res.partition[2] == 1 and pr.is_valid(res.partition)
    assert is_valid(raw_from_graph(chain4), small_hw, res.partition.tolist())
    g = pr.repair(np.array([0, 7, 1, -3]), RepairConfig(use_solver=False))
    assert g.partition is not None and pr.is_valid(g.partition)


def test_wrong_shape(chain4: Graph, small_hw: Hardware) -> None:
    pr = Problem(chain4, small_hw)
    with pytest.raises(ValueError, match=r"candidate must have shape \(4,\), got \(3,\)"):
        pr.repair(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(4,\), got \(1, 4\)"):
        repair(pr, np.zeros((1, 4), dtype=int))


def test_infeasible_hand_made(diamond: Graph, small_hw: Hardware) -> None:
    # With activation buffers s, x, y, t need 4, 7, 7, 2 bytes of 10-byte chips: s, x, y pairwise
    # do not fit together, so they take chips 0, 1, 2 (dataflow: s first) and t >= 2; but
    # neighbour-only s -> t needs t <= 1.
    hw = small_hw.with_constraints(activation_memory=True)
    assert Problem(diamond, hw).repair(np.zeros(4, dtype=int)).partition.tolist() == [0, 1, 2, 2]
    pr = Problem(diamond, hw.with_constraints(neighbor_only=True))
    assert all_valid(raw_from_graph(diamond), pr.hardware) == []
    for cfg in [*ENGINES, RepairConfig(use_solver=False)]:
        res = pr.repair(np.zeros(4, dtype=int), cfg)
        assert res.partition is None and res.changes is None and not res.valid
        assert res.status == ("infeasible" if cfg.use_solver else "unknown")
        assert res.method == ("z3" if cfg.use_solver else "greedy")  # not caught by the bounds


def test_attention_on_ring4() -> None:
    g = load_graph("tiny://attention-v1")
    hw = get_hardware("ring-4")
    pr = Problem(g, hw)
    raw = raw_from_graph(g)
    optimum: dict[bytes, int] = {}
    cands = (np.zeros(g.n, dtype=int), np.arange(g.n) % 4, np.full(g.n, 3))
    for cand, cfg in itertools.product(cands, ENGINES[:2]):
        res = pr.repair(cand, cfg)
        assert res.status == "optimal" and res.method in ("z3", "local")
        assert is_valid(raw, hw, res.partition.tolist())
        assert res.changes == changes(res.partition.tolist(), cand.tolist()) > 0
        greedy = greedy_repair(pr, cand)
        if greedy is not None:
            assert is_valid(raw, hw, greedy.tolist())
            assert res.changes <= changes(greedy.tolist(), cand.tolist())
        assert optimum.setdefault(cand.tobytes(), res.changes) == res.changes  # engines agree
        again = pr.repair(cand, cfg)
        assert np.array_equal(again.partition, res.partition)
    # memory binds: weights (12 x 8 MiB + small) exceed one 48 MiB chip, so all-on-chip-0 must move
    assert g.total_weight_bytes > hw.sram_bytes[0]


def test_certified_local_search_agrees_with_z3_on_bert_stage_jitter() -> None:
    """Stage boundaries of the DP's BERT split moved by -5..5: the local search (one change per
    lower-bound group, engine ``local``) answers most of them, each with Z3's minimal change count."""
    from mcm_gym.search.dp import DPSearch

    pr = Problem(load_graph("bert-base"), get_hardware("ring-8"))
    base = DPSearch().search(pr, budget=4, seed=0).partition
    ends = np.flatnonzero(np.diff(base)) + 1  # the graph's order is the DP's first order
    rng = np.random.default_rng(3)
    local = 0
    for _ in range(12):
        cand = np.zeros(pr.n, dtype=np.int64)
        for j, x in enumerate(np.sort(np.clip(ends + rng.integers(-5, 6, ends.size), 1, pr.n - 1))):
            cand[x:] = j + 1
        res = pr.repair(cand)
        ref = pr.repair(cand, RepairConfig(local_search_max=0))
        assert res.status == ref.status == "optimal" and res.changes == ref.changes
        assert pr.is_valid(res.partition)
        local += res.method == "local"
    assert local >= 6


def test_certified_local_takes_more_than_64_groups() -> None:
    """Regression: a far candidate with over 64 forced changes (one option each) crashed numpy's
    meshgrid (at most 64 dimensions) inside the one-change-per-group search."""
    from mcm_gym.core.repair import _certified_local  # the search the repair tries first; internal
    from mcm_gym.search.dp import best_split

    pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("ring-8"))
    valid, _ = best_split(pr, np.arange(pr.graph.n))
    assert valid is not None
    moved = np.arange(0, 280, 4)  # 70 nodes, each forced back to its chip
    cand = valid.copy()
    cand[moved] = (valid[moved] + 1) % 8
    got = _certified_local(pr, cand, valid, valid, [], [], 512)
    assert got is not None and np.array_equal(got, valid)
