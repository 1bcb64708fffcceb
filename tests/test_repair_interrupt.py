"""Ctrl-C during a repair propagates as KeyboardInterrupt (it is never taken for an exhausted budget),
and a repair that does run out of a budget says which one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sigint import interrupt_child

from mcm_gym import Problem, RepairConfig, get_hardware, load_graph
from mcm_gym.core.repair import BUDGET_REASONS

ROOT = Path(__file__).resolve().parent.parent

# A repair that runs for tens of seconds: a uniformly random BERT-base candidate on mesh-6x6 (the
# bisection works towards the optimum, or MaxRes grows towards its memory cap) with no rlimit (and
# far_rlimit lifted: by default the order DP answers such candidates without the bisection).
CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may inherit SIG_IGN
import numpy as np
from mcm_gym import Problem, RepairConfig, get_hardware, load_graph
pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("mesh-6x6"))
cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
cfg = RepairConfig(rlimit=10**12, far_rlimit=10**12, timeout=120.0, **eval(sys.argv[1]))
print("started", flush=True)
res = pr.repair(cand, cfg)
print("RESULT", res.status, res.changes, res.info.get("reason"), flush=True)
"""


@pytest.mark.parametrize("options,delay", [
    ("{}", 1.5),  # in the bisection on the SAT solver
    ("dict(msu3_max_calls=0, maxres_max_literals=10**9, maxres_memory_mb=2048)", 0.5),  # in MaxRes
], ids=["bisection", "maxres"])
def test_ctrl_c_propagates(options: str, delay: float) -> None:
    """SIGINT ``delay`` seconds into the repair: the child stops within seconds with a
    KeyboardInterrupt, and prints no (fallback) result."""
    returncode, out, err, stopped = interrupt_child(CHILD, options, delay=delay)
    assert returncode != 0, (out, err)
    assert "KeyboardInterrupt" in err, err
    assert "RESULT" not in out, out
    assert stopped < 10, f"took {stopped:.1f} s to stop after Ctrl-C"


def _bert(hw: str) -> Problem:
    return Problem(load_graph("zoo://bert-base-v1"), get_hardware(hw))


def _moved(pr: Problem, frac: float, seed: int) -> np.ndarray:
    """A valid partition (the repaired equal-work split) with ``frac`` of its nodes moved 1-2 chips."""
    from mcm_gym.search import split_by_work

    base = pr.repair(split_by_work(pr)).partition
    assert base is not None
    rng = np.random.default_rng(seed)
    c = base.copy()
    idx = rng.choice(c.size, max(1, int(frac * c.size)), replace=False)
    c[idx] = np.clip(c[idx] + rng.choice([-2, -1, 1, 2], idx.size), 0, pr.num_chips - 1)
    return c


def test_reason_names_the_budget() -> None:
    pr = _bert("ring-8")
    cand = _moved(pr, 0.1, 0)
    full = pr.repair(cand)
    assert full.status == "optimal" and "reason" not in full.info
    for cfg, reason in [(RepairConfig(rlimit=1000), "rlimit"), (RepairConfig(timeout=1e-4), "time"),
                        (RepairConfig(max_literals=100), "formula too large")]:
        res = pr.repair(cand, cfg)
        assert res.info["reason"] == reason, (cfg, res.info)
        assert reason in BUDGET_REASONS
        # the better of the order DP's and the greedy repair's partitions answers
        assert res.status == "feasible" and res.method in ("order", "greedy") and pr.is_valid(res.partition)
        assert res.changes is not None and res.changes >= full.changes
        if reason != "time":  # the timeout is for the whole repair: no order DP after it
            assert res.info["order_dp"]["orders"] >= 1
        assert res.info["message"]
    # rlimit is deterministic: the same budget gives the same answer
    a, b = pr.repair(cand, RepairConfig(rlimit=300_000)), pr.repair(cand, RepairConfig(rlimit=300_000))
    assert (a.status, a.changes, a.info.get("reason")) == (b.status, b.changes, b.info.get("reason"))


def test_memory_cap_is_named() -> None:
    """MaxRes (uniformly random candidate, MaxRes first) under a tiny memory cap: the cap is named,
    and the bisection on the SAT solver still proves the optimum that MaxRes finds without it."""
    pr = _bert("ring-8")
    cand = np.random.default_rng(0).integers(0, pr.num_chips, pr.n)
    free = pr.repair(cand, RepairConfig(msu3_max_calls=0))
    assert free.status == "optimal" and free.info["engine"] == "maxres"
    capped = pr.repair(cand, RepairConfig(msu3_max_calls=0, maxres_memory_mb=1, timeout=60, rlimit=10**9))
    assert capped.info["maxres_reason"] == "memory", capped.info
    assert capped.info["engine"] == "bisection"
    assert capped.status == "optimal" and capped.changes == free.changes


def test_timeout_is_total() -> None:
    """The wall-clock timeout bounds the whole repair, not each solver call."""
    pr = _bert("mesh-6x6")
    cand = np.random.default_rng(1).integers(0, pr.num_chips, pr.n)
    t = time.perf_counter()
    res = pr.repair(cand, RepairConfig(rlimit=10**12, far_rlimit=10**12, timeout=1.5))
    took = time.perf_counter() - t
    assert res.info["reason"] == "time" and res.status == "feasible", res.info
    assert took < 1.5 + 1.0, took  # the greedy comparison and Python around the calls


EXACT_CHILD = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
from mcm_gym import Problem, get_hardware, load_graph
from mcm_gym.search.exact import ExactSearch
pr = Problem(load_graph("zoo://bert-base-v1"), get_hardware("mesh-6x6"))
search = ExactSearch(backend="cpsat", time_limit=120)
print("started", flush=True)
res = search.search(pr, budget=64)
print("RESULT", res.score, res.extra["stop"], flush=True)
"""


def test_ctrl_c_stops_the_cpsat_exact_search() -> None:
    """SIGINT during a CP-SAT solve (BERT-base on mesh-6x6 runs for minutes) stops it at once with a
    KeyboardInterrupt, never a result cut short."""
    pytest.importorskip("ortools")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", EXACT_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        time.sleep(6.0)  # the DP start and the model build take a few seconds; then CP-SAT searches
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.perf_counter() - t0 < 30
    assert proc.returncode != 0 and "KeyboardInterrupt" in err and "RESULT" not in out, (out, err[-500:])


def test_a_stop_that_comes_before_the_solver_starts_is_repeated() -> None:
    """Ctrl-C while the helper thread has not yet entered the solver: a solver that ignores a stop
    before it runs (as Z3 and CP-SAT do) still stops within a fraction of a second, not at its end."""
    import threading

    from mcm_gym.core.encoding import run_interruptible

    started, stopped = threading.Event(), threading.Event()

    def call() -> str:  # Ctrl-C comes 50 ms after the helper thread starts, before it enters the solver
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()  # a real signal wakes the wait
        time.sleep(0.3)
        started.set()
        stopped.wait(10.0)  # the "solver": runs until stopped, or 10 s
        return "finished"

    def stop() -> None:
        if started.is_set():  # a stop before the call has started does nothing
            stopped.set()

    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job inherits SIG_IGN
    try:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_interruptible(call, stop)
    finally:
        signal.signal(signal.SIGINT, old)
    assert time.monotonic() - t0 < 2.0 and stopped.is_set()
