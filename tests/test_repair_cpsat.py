"""CP-SAT minimal-change repair (mcm_gym.core.repair_cpsat) vs brute force, the Z3 repair and BERT-base."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ortools.sat.python.cp_model")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from oracle import is_valid, raw_from_spec  # noqa: E402
from sigint import interrupt_child
from strategies import GraphSpec, graph_specs, hardwares  # noqa: E402

from mcm_gym.core.hardware import ConstraintSwitches, Hardware, get_hardware, uniform  # noqa: E402
from mcm_gym.core.problem import InfeasibleError, Problem  # noqa: E402
from mcm_gym.core.repair import RepairConfig, RepairResult, greedy_repair, repair  # noqa: E402
from mcm_gym.core.repair_cpsat import available, repair_cpsat  # noqa: E402
from mcm_gym.instances.catalog import load_graph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ALL_ON = ConstraintSwitches(dataflow=True, memory=True, contiguous=True, neighbor_only=True, triangle=True)


def brute_force(pr: Problem, cand: np.ndarray) -> int | None:
    """Fewest changes over every partition ``Problem.is_valid`` accepts (None: none is valid)."""
    k = pr.num_chips
    allp = np.array(list(itertools.product(range(k), repeat=pr.n)), dtype=np.int64)
    ok = pr.is_valid(allp)
    if not ok.any():
        return None
    return int((allp[ok] != cand[None, :]).sum(axis=1).min())


def problem_of(spec: GraphSpec, hw: Hardware) -> Problem | None:
    try:
        return Problem(spec.graph(), hw)
    except InfeasibleError:
        return None


def candidates(n: int, k: int) -> st.SearchStrategy[list[int]]:
    """Mostly in range, sometimes a chip that does not exist (k, k+1) or a negative one."""
    return st.lists(st.integers(0, k - 1) | st.sampled_from([-1, k, k + 1]), min_size=n, max_size=n)


def check(pr: Problem, spec: GraphSpec, cand: list[int], res: RepairResult) -> int | None:
    """The result is consistent, optimal or infeasible as brute force says; returns the optimum."""
    best = brute_force(pr, np.array(cand))
    if best is None:
        assert res.status == "infeasible" and res.partition is None and res.changes is None, res
        return None
    assert res.status == "optimal", res
    assert res.partition is not None and pr.is_valid(res.partition)
    assert is_valid(raw_from_spec(spec), pr.hardware, res.partition.tolist())  # the independent checker
    assert res.changes == int((res.partition != np.array(cand)).sum()) == best
    if res.method == "cpsat":
        assert res.info["engine"] == "cpsat" and res.info["lower_bound"] == best
        assert res.info["wall_s"] >= 0 and res.info["solutions"]
    return best


@given(graph_specs(max_nodes=7), hardwares(min_chips=2, max_chips=3), st.data())
def test_matches_brute_force_and_z3(spec: GraphSpec, hw: Hardware, data: st.DataObject) -> None:
    """Rings and chains of 2-3 chips, every constraint switch at random, shared tensors: CP-SAT's
    change count is the brute-force optimum, and the Z3 repair's whenever that one is optimal."""
    pr = problem_of(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, hw.num_chips))
    res = repair_cpsat(pr, np.array(cand), time_limit=10.0)
    best = check(pr, spec, cand, res)
    z3 = repair(pr, np.array(cand), RepairConfig())
    if z3.status == "optimal":
        assert z3.changes == best
    if z3.status == "infeasible":
        assert best is None


@given(graph_specs(max_nodes=5), st.sampled_from([(2, 2), (1, 4), (4, 1)]), st.booleans(), st.data())
def test_meshes_all_constraints(spec: GraphSpec, grid: tuple[int, int], all_on: bool, data: st.DataObject) -> None:
    """4 chips on a mesh (XY routes, snake order), every constraint family on or each at random."""
    b = st.booleans()
    switches = ALL_ON if all_on else ConstraintSwitches(
        dataflow=data.draw(b), memory=data.draw(b), contiguous=data.draw(b), neighbor_only=data.draw(b),
        triangle=data.draw(b), activation_memory=data.draw(b))
    hw = uniform(4, peak_flops=1, sram_bytes=data.draw(st.integers(1, 20)), link_bandwidth=1, topology="mesh",
                 grid=grid, constraints=switches)
    pr = problem_of(spec, hw)
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, 4))
    best = check(pr, spec, cand, repair_cpsat(pr, np.array(cand), time_limit=10.0))
    z3 = repair(pr, np.array(cand))
    if z3.status == "optimal":
        assert z3.changes == best


@settings(max_examples=30)
@given(graph_specs(max_nodes=6), st.integers(2, 3), st.sampled_from([4, 8, 16]), st.booleans(), st.data())
def test_fractional_sizes_rounded(spec: GraphSpec, k: int, sram: int, all_on: bool, data: st.DataObject) -> None:
    """Half-byte weights: memory is rounded (exact_memory False), here to units that divide every size
    (the SRAM is a power of two), so the optimum is kept."""
    spec = replace(spec, weight=tuple(w + 0.5 for w in spec.weight))
    switches = ALL_ON if all_on else ConstraintSwitches(memory=True, neighbor_only=data.draw(st.booleans()))
    pr = problem_of(spec, uniform(k, peak_flops=1, sram_bytes=sram, link_bandwidth=1, constraints=switches))
    if pr is None:
        return
    cand = data.draw(candidates(spec.n, k))
    res = repair_cpsat(pr, np.array(cand), time_limit=10.0)
    check(pr, spec, cand, res)
    if res.method == "cpsat":
        assert not res.exact_memory


def test_rounding_that_loses_the_optimum_says_so() -> None:
    """4.5 + 5.5 bytes on a 10-byte chip: the rounded sizes (weights up) no longer fit, the
    over-approximation does, so the answer is ``unknown`` with that reason, not ``infeasible``; three
    nodes of 5.5 bytes on 2 such chips are infeasible either way."""
    hw = uniform(1, peak_flops=1, sram_bytes=10, link_bandwidth=1)
    two = GraphSpec((0, 0), (4.5, 5.5), (0, 0), ())  # type: ignore[arg-type]
    res = repair_cpsat(Problem(two.graph(), hw), np.array([0, 1]))
    assert res.status == "unknown" and res.partition is None and not res.exact_memory
    assert res.info["reason"] == "unsatisfiable only with memory sizes rounded"
    three = GraphSpec((0, 0, 0), (5.5, 5.5, 5.5), (0, 0, 0), ())  # type: ignore[arg-type]
    res = repair_cpsat(Problem(three.graph(), uniform(2, peak_flops=1, sram_bytes=10, link_bandwidth=1)),
                       np.array([0, 0, 0]))
    assert res.status == "infeasible" and not res.exact_memory


def test_infeasible_and_trivial_cases() -> None:
    """A valid candidate is returned as is; empty chip bounds and an infeasible model are reported."""
    spec = GraphSpec((1, 1, 1), (3, 3, 3), (1, 1, 1), ((0, 1, None), (1, 2, None)))
    hw = uniform(2, peak_flops=1, sram_bytes=5, link_bandwidth=1, constraints=ConstraintSwitches())
    pr = Problem(spec.graph(), hw)  # 9 bytes fit 10 in total, but no chip holds two nodes
    res = repair_cpsat(pr, np.array([0, 0, 1]))
    assert res.status == "infeasible" and res.partition is None and res.method in ("bounds", "cpsat")
    skip = GraphSpec((1, 1, 1), (3, 3, 3), (1, 1, 1), ((0, 1, None), (1, 2, None), (0, 2, None)))
    hw3 = uniform(3, peak_flops=1, sram_bytes=3, link_bandwidth=1,
                  constraints=ConstraintSwitches(neighbor_only=True))  # one node per chip, in order
    res = repair_cpsat(Problem(skip.graph(), hw3), np.array([0, 0, 1]))
    assert res.status == "infeasible" and res.method == "cpsat" and res.info["engine"] == "cpsat"
    fine = Problem(spec.graph(), uniform(3, peak_flops=1, sram_bytes=5, link_bandwidth=1))
    res = repair_cpsat(fine, np.array([0, 1, 2]))
    assert res.status == "optimal" and res.changes == 0 and res.method == "none"
    res = repair_cpsat(fine, np.array([2, 1, 0]))
    assert res.status == "optimal" and res.changes == 2 and res.partition.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="shape"):
        repair_cpsat(fine, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        repair_cpsat(fine, np.array([0.5, 1, 2]))


@pytest.fixture(scope="module")
def bert_ring() -> Problem:
    return Problem(load_graph("zoo://bert-base-v1"), get_hardware("ring-8"))


def test_bert_ring8_uniform_random(bert_ring: Problem) -> None:
    """BERT-base on ring-8, a uniformly random candidate: valid, no more changes than the Z3 repair,
    proven optimal; deterministic for a seed; a valid hint gives the same count."""
    pr = bert_ring
    cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
    res = repair_cpsat(pr, cand, time_limit=20.0)
    assert res.partition is not None and pr.is_valid(res.partition)
    assert res.changes == int((res.partition != cand).sum())
    z3 = repair(pr, cand, RepairConfig(timeout=20.0))
    assert z3.changes is not None and res.changes <= z3.changes, (res.changes, z3.changes, z3.status)
    assert res.status == "optimal" and res.info["lower_bound"] == res.changes and res.exact_memory
    again = repair_cpsat(pr, cand, time_limit=20.0)
    assert again.status == "optimal" and np.array_equal(again.partition, res.partition)
    hint = greedy_repair(pr, cand)
    assert hint is not None
    hinted = repair_cpsat(pr, cand, time_limit=20.0, hint=hint)
    assert hinted.status == "optimal" and hinted.changes == res.changes


def test_time_limit_gives_best_found(bert_ring: Problem) -> None:
    """A time limit too short to prove anything: a valid partition (at worst the greedy repair's),
    ``feasible`` with reason ``time`` and a lower bound no larger than its changes."""
    pr = Problem(bert_ring.graph, get_hardware("mesh-6x6"))
    cand = np.random.default_rng(1).integers(0, pr.num_chips, pr.n)
    res = repair_cpsat(pr, cand, time_limit=0.5)
    assert res.status == "feasible" and res.info["reason"] == "time"
    assert res.partition is not None and pr.is_valid(res.partition) and res.method in ("cpsat", "greedy")
    assert 0 <= res.info["lower_bound"] <= res.changes


def test_second_phase(bert_ring: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """No time for the core-based search: the interleaved search (2 workers here) from the greedy
    repair answers, valid and between CP-SAT's bound and the greedy repair's changes."""
    import mcm_gym.core.repair_cpsat as rc

    monkeypatch.setattr(rc, "CORE_SHARE", 0.0)
    pr = bert_ring
    cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
    res = repair_cpsat(pr, cand, time_limit=4.0, workers=2)
    greedy = greedy_repair(pr, cand)
    assert greedy is not None and res.partition is not None and pr.is_valid(res.partition)
    assert res.info["cpsat_status"].startswith("UNKNOWN, then ")
    assert res.info["lower_bound"] <= res.changes <= int((greedy != cand).sum())
    assert res.status in ("optimal", "feasible")


CHILD = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may inherit SIG_IGN
import numpy as np
from mcm_gym import Problem, get_hardware, load_graph
from mcm_gym.core.repair_cpsat import repair_cpsat
pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("mesh-8x8"))  # proven in about 14 s
cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
print("started", flush=True)
res = repair_cpsat(pr, cand, time_limit=120.0)
print("RESULT", res.status, res.changes, flush=True)
"""


def test_ctrl_c_propagates() -> None:
    """SIGINT during the solve: the child stops within seconds with a KeyboardInterrupt, no result."""
    returncode, out, err, stopped = interrupt_child(CHILD, delay=1.5)
    assert returncode != 0, (out, err)
    assert "KeyboardInterrupt" in err, err
    assert "RESULT" not in out, out
    assert stopped < 10, f"took {stopped:.1f} s to stop after Ctrl-C"


def test_imports_without_ortools() -> None:
    """The module imports without OR-Tools (imported lazily) and says it is unavailable."""
    code = ("import sys; sys.modules['ortools'] = None\n"
            "import mcm_gym, mcm_gym.core.repair_cpsat as r\n"
            "assert not r.available()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=60)
    assert available()


def test_backend_option_dispatches_through_problem_repair() -> None:
    """``RepairConfig(backend="cpsat")`` through Problem.repair (what the env and the searches call)
    gives CP-SAT's answer; the Z3 function refuses the option; an unknown backend is an error."""
    pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("ring-8"))
    cand = np.random.default_rng(5).integers(0, pr.num_chips, pr.n)
    res = pr.repair(cand, RepairConfig(backend="cpsat", timeout=30.0))
    assert res.method == "cpsat" and res.info["engine"] == "cpsat" and pr.is_valid(res.partition)
    z3 = pr.repair(cand)
    assert res.status == z3.status == "optimal" and res.changes == z3.changes
    with pytest.raises(ValueError, match="Problem.repair"):
        repair(pr, cand, RepairConfig(backend="cpsat"))
    with pytest.raises(ValueError, match="backend"):
        RepairConfig(backend="gurobi")
