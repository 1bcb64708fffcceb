"""Shared parameters (tied or reused weights) and per-op weight reads (gathers).

A tensor read by nodes on two chips needs its bytes on both; the checker, the env's masks, the
repair, the stage DP and both exact backends must agree on that, against brute force.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_search_strong import brute_force

from mcm_gym.core.cost import op_kind, weight_read_bytes
from mcm_gym.core.graph import Graph, GraphError, Node
from mcm_gym.core.hardware import uniform
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.core.repair import greedy_repair
from mcm_gym.search.cpsat import available as cpsat_available
from mcm_gym.search.dp import DPSearch
from mcm_gym.search.exact import ExactSearch

MB = 1_000_000


def albert_like(layers: int = 6, shared_mb: int = 10) -> Graph:
    """An embedding, then ``layers`` layers that all read one shared tensor, then a head."""
    nodes = [Node("emb", "aten.embedding", 0, 4 * MB, 1000)]
    nodes += [Node(f"layer{i}", "aten.linear", 1e9, 1 * MB, 1000) for i in range(layers)]
    nodes.append(Node("head", "aten.linear", 1e8, 2 * MB, 10))
    names = [nd.name for nd in nodes]
    edges = list(zip(names[:-1], names[1:], strict=True))
    shared = [{"name": "layer.weight", "bytes": shared_mb * MB, "users": [f"layer{i}" for i in range(layers)]}]
    return Graph(nodes, edges, name="albert-like", shared=shared)


def hw(k: int, sram_mb: float, **switches: bool):  # noqa: ANN201 - a Hardware
    return uniform(k, peak_flops=1e12, sram_bytes=sram_mb * MB, link_bandwidth=1e9, link_latency=0.0,
                   mem_bw=1e11, topology="ring").with_constraints(**switches)


def test_shared_tensor_counts_once_per_chip_that_uses_it() -> None:
    g = albert_like()
    assert g.total_weight_bytes == (4 + 6 * 1 + 2 + 10) * MB  # the shared tensor once
    pr = Problem(g, hw(2, 30))
    one_chip = np.zeros(g.n, dtype=np.int64)
    split = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # layers 0-2 on chip 0, layers 3-5 on chip 1
    mem1 = pr.evaluate(one_chip).memory[0]
    mem2 = pr.evaluate(split).memory[0]
    assert mem1.tolist() == [22 * MB, 0]
    assert mem2.tolist() == [(4 + 3 + 10) * MB, (3 + 2 + 10) * MB]  # 10 MB on both chips
    # 20 MB chips hold the split only if the shared tensor is not needed twice... it is: invalid
    tight = Problem(g, hw(2, 16))
    assert not tight.is_valid(split)
    assert any("chip 0 holds" in str(v) for v in tight.check(split))
    # the head alone on chip 1: no shared tensor there
    head_only = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    assert tight.evaluate(head_only).memory[0].tolist() == [20 * MB, 2 * MB]


def test_infeasible_when_a_node_and_its_shared_tensor_exceed_every_chip() -> None:
    with pytest.raises(InfeasibleError, match="layer0"):
        Problem(albert_like(shared_mb=12), hw(4, 12.5))


def test_repair_dp_exact_and_masks_agree_with_brute_force() -> None:
    """On SRAM tight enough that the shared tensor decides where stages can end, every method's
    partitions are valid, the DP and both exact backends reach the brute-force optimum, and the
    repair's minimal change count is the brute-force minimum."""
    g = albert_like(layers=6, shared_mb=8)
    backends = ["z3"] + (["cpsat"] if cpsat_available() else [])
    optima = set()
    for sram in (13.5, 14.5, 40):
        pr = Problem(g, hw(3, sram))
        opt, best = brute_force(pr)
        assert best is not None
        optima.add(round(opt, 12))
        dp = DPSearch().search(pr, budget=8, seed=0)
        assert pr.is_valid(dp.partition)
        assert dp.bottleneck == pytest.approx(opt, rel=1e-9)  # a chain on a ring: the DP is exact
        for backend in backends:
            ex = ExactSearch(rel_tol=1e-6, backend=backend).search(pr, budget=200, seed=0)
            assert pr.is_valid(ex.partition) and ex.extra["gap"] <= 1e-6, (backend, ex.extra)
            assert ex.extra["proven_lower_bound"] <= opt * (1 + 1e-9), backend
            assert ex.bottleneck == pytest.approx(opt, rel=1e-6), backend
        # repair: a candidate that puts every layer on its own chip (overflows once SRAM is tight)
        allp = np.array(list(itertools.product(range(3), repeat=g.n)), dtype=np.int64)
        valid = allp[pr.is_valid(allp)]
        rng = np.random.default_rng(int(sram * 10))
        for _ in range(4):
            cand = rng.integers(0, 3, g.n)
            res = pr.repair(cand)
            assert res.status == "optimal" and pr.is_valid(res.partition)
            assert res.changes == int((valid != cand).sum(axis=1).min())
            p = greedy_repair(pr, cand)
            assert p is None or pr.is_valid(p)
    assert len(optima) == 2  # 13.5 MB chips: the first stage cannot take two layers beside the table


def test_env_masks_count_shared_bytes_on_each_chip() -> None:
    """Masked random episodes never overflow a chip because of a shared tensor."""
    from mcm_gym.env.partition_env import MCMPartitionEnv

    g = albert_like(layers=5, shared_mb=8)
    env = MCMPartitionEnv(graph=g, hardware=hw(3, 19), use_repair=False)
    rng = np.random.default_rng(0)
    clean = 0
    for ep in range(30):
        env.reset(seed=ep)
        done = False
        info: dict = {}
        while not done:
            mask = env.action_masks()
            _, _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            done = term or trunc
        if info["mask_fallbacks"] == 0:
            clean += 1
            assert info["violations"]["memory"] == 0, info
    assert clean >= 10
    # emb (4) + layer0 (1 + 8 shared) on chip 0: layer1 needs 1 MB more there, 9 MB elsewhere
    from mcm_gym.core.constraints import PlacementState

    st = PlacementState(g, env.problem.hardware, env.problem.mem_demand)
    st.place(0, 0)
    st.place(1, 0)
    assert st.mem_used.tolist() == [13 * MB, 0, 0]
    assert st.extra_shared(2).tolist() == [0, 8 * MB, 8 * MB]


def test_shared_tensors_round_trip_and_bad_input(tmp_path) -> None:  # noqa: ANN001
    g = albert_like()
    path = tmp_path / "g.json"
    g.save(path)
    back = Graph.load(path)
    assert back.shared == g.shared and back.to_dict() == g.to_dict()
    assert Graph.from_networkx(g.to_networkx()).shared == g.shared
    doc = g.to_dict()
    for bad, msg in [({"name": "w", "bytes": 1, "users": ["nope"]}, "unknown node 'nope'"),
                     ({"name": "w", "bytes": -1, "users": ["head"]}, "must be >= 0"),
                     ({"name": "w", "bytes": 1, "users": []}, "non-empty list"),
                     ({"name": "w", "bytes": 1, "users": ["head", "head"]}, "lists a user twice"),
                     ({"name": "w", "bytes": 1}, "missing field 'users'"),
                     ({"name": "w", "bytes": 1, "users": ["head"], "size": 2}, "unknown field")]:
        with pytest.raises(GraphError, match=msg):
            Graph.from_dict({**doc, "shared": [bad]}, source="bad.json")
    with pytest.raises(GraphError, match="duplicate shared tensor"):
        Graph.from_dict({**doc, "shared": doc["shared"] * 2})


def test_coarsening_keeps_per_chip_memory_with_shared_tensors() -> None:
    from mcm_gym.instances.coarsen import coarsen

    g = albert_like(layers=8)
    c = coarsen(g, 4)
    assert c.graph.n <= 4 + 1 and c.graph.total_weight_bytes == g.total_weight_bytes
    assert any(nd.op == "aten.embedding" and nd.name == "emb" for nd in c.graph.nodes)  # never merged
    fine, coarse = Problem(g, hw(4, 40)), Problem(c.graph, hw(4, 40))
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = np.sort(rng.integers(0, 4, c.graph.n))
        assert np.allclose(coarse.evaluate(p).memory, fine.evaluate(c.expand(p)).memory)


def test_gather_reads_the_rows_it_outputs() -> None:
    assert op_kind("aten.embedding.default") == op_kind("aten::embedding") == op_kind("Embedding") == "embedding"
    assert op_kind("Gather") == "gather" and op_kind("aten.add_") == "add"
    nodes = [Node("ids", "input", 0, 0, 8), Node("emb", "aten.embedding", 0, 1000, 64),
             Node("mm", "aten.linear", 10, 1000, 64)]
    g = Graph(nodes, [("ids", "emb"), ("emb", "mm")])
    assert weight_read_bytes(g).tolist() == [0, 64, 1000]
    pr = Problem(g, uniform(1, peak_flops=1e9, sram_bytes=1e6, link_bandwidth=1.0, mem_bw=1.0))
    # node time (s) at 1 B/s: the gather moves 8 in + 64 rows + 64 out, the linear 64 + 1000 + 64
    assert pr.cost.node_time[:, 0].tolist() == [8, 8 + 64 + 64, 64 + 1000 + 64]
