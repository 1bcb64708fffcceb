"""The CP-SAT backend of the exact search (OR-Tools, optional: ``pip install 'mcm-gym[cpsat]'``).

One CP-SAT model of the simulator's cost model (:mod:`mcm_gym.core.cost`) minimises the bottleneck:

* a one-hot ``eq[v][c]`` per node and chip inside the node's chip bounds
  (:func:`mcm_gym.core.encoding.node_bounds`), and the chip ``x[v] = sum_c c * eq[v][c]``;
* every enabled constraint: ``dataflow`` (``x[u] <= x[v]``), ``memory`` (bytes per chip, exact when
  the sizes are integers, else demands rounded up and capacities down), ``contiguous``,
  ``neighbor_only`` (``x[v] - x[u] <= 1``), ``triangle`` (``x[u] >= x[v]`` or ``x[v] >= x[w]``);
* chip times ``sum_v t[v, c] * eq[v][c] <= T`` and link times with multicast: a producer's edges are
  grouped by byte level as in the Z3 model (:mod:`mcm_gym.search.exact`); ``carry[g][l]`` is implied
  by every pair of chips ``(a, b)`` whose route crosses link ``l``; a used link pays its latency;
  with ``serialize_comm`` a chip's time includes the links it drives.

Times are integers in units of ``reference / resolution`` seconds, every coefficient rounded *down*:
the model is a relaxation, so its proven objective bound times the unit is a proven lower bound on
the true optimum (seconds), while every partition it finds is valid and is scored by the simulator
itself. The gap left by the rounding is at most (terms per sum) / ``resolution`` of the reference.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mcm_gym.core.encoding import node_bounds, run_interruptible
from mcm_gym.core.problem import Problem

__all__ = ["available", "CPSATSolution", "multicast_groups", "solve_cpsat"]


def available() -> bool:
    """Whether OR-Tools (CP-SAT) is installed."""
    try:
        import ortools.sat.python.cp_model  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class CPSATSolution:
    """What one CP-SAT run proved and found. ``bound``: seconds, no valid partition has a smaller
    bottleneck; ``partition``: the best valid partition found (None if none); ``status``: CP-SAT's
    (``OPTIMAL``, ``FEASIBLE``, ``INFEASIBLE``, ``UNKNOWN``); ``wall_time`` in seconds;
    ``exact_times``: every time is an integer multiple of the unit (then ``OPTIMAL`` means the
    bound equals the optimum exactly)."""

    partition: np.ndarray | None
    bound: float
    status: str
    wall_time: float
    exact_memory: bool
    exact_times: bool = False


def multicast_groups(problem: Problem) -> list[tuple[int, list[int], float]]:
    """A producer's edges grouped by byte level, as the simulator multicasts them (both exact
    backends encode link loads from these): ``(producer, consumers whose edge carries at least this
    level, weight in bytes)``; levels ``b1 > b2 > ...`` give weights ``b_j - b_{j+1}``, so a link's
    load is the sum of the weights of the groups routed over it."""
    g = problem.graph
    src, dst, byt = g.edge_src, g.edge_dst, g.edge_bytes
    out: list[tuple[int, list[int], float]] = []
    if not src.size:
        return out
    cuts = np.flatnonzero(np.r_[True, src[1:] != src[:-1], True])
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        levels = np.unique(byt[a:b])[::-1]
        for j, level in enumerate(levels.tolist()):
            if level <= 0:
                continue
            nxt = float(levels[j + 1]) if j + 1 < len(levels) and levels[j + 1] > 0 else 0.0
            out.append((int(src[a]), [int(dst[e]) for e in range(a, b) if byt[e] >= level], level - nxt))
    return out


def _unit(problem: Problem, lo: np.ndarray, hi: np.ndarray, groups: list[tuple[int, list[int], float]],
          reference: float, resolution: int) -> tuple[Fraction, bool]:
    """The time unit (seconds, exact): the largest common divisor of every time coefficient when it
    splits ``reference`` into at most ``2**40`` units (exact times), else ``reference / resolution``."""
    hw = problem.hardware
    times = {Fraction(float(problem.cost.node_time[v, c])) for v in range(problem.n)
             for c in range(int(lo[v]), int(hi[v]) + 1)}
    times |= {Fraction(w) / Fraction(float(bw)) for _, _, w in groups for bw in hw.link_bandwidth}
    times |= {Fraction(float(x)) for x in hw.link_latency}
    times.discard(Fraction(0))
    if times:
        den = math.lcm(*(t.denominator for t in times))
        g = math.gcd(*(t.numerator * (den // t.denominator) for t in times))
        if Fraction(reference) / Fraction(g, den) <= 1 << 40:
            return Fraction(g, den), True
    return Fraction(reference) / resolution, False


def solve_cpsat(problem: Problem, *, time_limit: float = 60.0, seed: int = 0, hint: np.ndarray | None = None,
                reference: float | None = None, resolution: int = 1 << 30, workers: int = 1) -> CPSATSolution:
    """Minimise the bottleneck of ``problem`` with CP-SAT within ``time_limit`` seconds.

    ``hint``: a valid partition to start from (e.g. the stage DP's); ``reference``: the time scale
    (seconds; default: the hint's bottleneck, else the sum of the fastest node times) divided into
    ``resolution`` units; ``workers``: CP-SAT search workers (1 is deterministic for a seed; more
    use CP-SAT's deterministic interleaved search, also reproducible for a seed)."""
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    g, hw = problem.graph, problem.hardware
    cons = hw.constraints
    k, n, nl = hw.num_chips, g.n, hw.num_links
    lo, hi = node_bounds(g, hw, problem.mem_demand)
    if np.any(lo > hi):
        return CPSATSolution(None, math.inf, "INFEASIBLE", time.perf_counter() - t0, True)
    node_time = problem.cost.node_time  # (n, K) s
    if reference is None:
        reference = (float(problem.evaluate(hint).bottleneck[0]) if hint is not None
                     else float(node_time.min(axis=1).sum()) or 1.0)
    groups = multicast_groups(problem)
    unit, exact_times = _unit(problem, lo, hi, groups, reference, resolution)

    def units(t: float) -> int:  # rounded down: the model is a relaxation (exact when exact_times)
        return int(math.floor(Fraction(t) / unit))

    m = cp_model.CpModel()
    eq = [{c: m.new_bool_var(f"eq{v}_{c}") for c in range(int(lo[v]), int(hi[v]) + 1)} for v in range(n)]
    x = [m.new_int_var(int(lo[v]), int(hi[v]), f"x{v}") for v in range(n)]
    for v in range(n):
        m.add_exactly_one(eq[v].values())
        m.add(x[v] == sum(c * b for c, b in eq[v].items()))
    edges = list(zip(g.edge_src.tolist(), g.edge_dst.tolist(), strict=True))
    if cons.dataflow:
        for u, v in edges:
            m.add(x[u] <= x[v])
    if cons.neighbor_only:
        for u, v in edges:
            m.add(x[v] - x[u] <= 1)
    if cons.triangle:
        for u, v, w in g.triangles.tolist():
            z = m.new_bool_var("")
            m.add(x[u] >= x[v]).only_enforce_if(z)
            m.add(x[v] >= x[w]).only_enforce_if(z.negated())
    exact_memory = True
    if cons.memory:
        dem, cap = np.concatenate([problem.mem_demand, g.shared_bytes]), hw.sram_bytes
        if np.all(dem == np.round(dem)) and np.all(cap == np.round(cap)):
            dem_i, cap_i = [int(d) for d in dem], [int(c) for c in cap]
        else:  # rounded so that every partition found is valid
            exact_memory = False
            dem_i, cap_i = [math.ceil(d) for d in dem], [math.floor(c) for c in cap]
        for c in range(k):
            terms = [(dem_i[v], eq[v][c]) for v in range(n) if c in eq[v] and dem_i[v] > 0]
            for s_, us in enumerate(g.shared_users):  # shared tensor s_ is on chip c if one of its users is
                on_c = [eq[v][c] for v in us if c in eq[v]]
                if not on_c or dem_i[n + s_] <= 0:
                    continue
                held = m.new_bool_var(f"shared{s_}_{c}")
                for b in on_c:
                    m.add_implication(b, held)
                terms.append((dem_i[n + s_], held))
            if terms and sum(d for d, _ in terms) > cap_i[c]:
                m.add(sum(d * b for d, b in terms) <= cap_i[c])
    on_chip = [[eq[v][c] for v in range(n) if c in eq[v]] for c in range(k)]
    if cons.contiguous:
        used = [m.new_bool_var(f"used{c}") for c in range(k)]
        for c in range(k):
            for b in on_chip[c]:
                m.add_implication(b, used[c])
            if on_chip[c]:
                m.add_bool_or(on_chip[c]).only_enforce_if(used[c])
            else:
                m.add(used[c] == 0)
            if c + 1 < k:
                m.add_implication(used[c + 1], used[c])

    coef = [{c: units(float(node_time[v, c])) for c in eq[v]} for v in range(n)]
    chip_sum: list[Any] = [sum(coef[v][c] * eq[v][c] for v in range(n) if c in eq[v]) for c in range(k)]
    horizon = sum(max(cv.values()) for cv in coef) + 1  # no chip sum can exceed it
    link_sum: list[Any] = [0] * nl
    if nl:
        routes = hw.routes  # (K, K, L) bool
        carries: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(nl)]
        for gi, (u, consumers, weight) in enumerate(groups):
            for lk in range(nl):
                pairs = [(a, w, b) for w in consumers for a in eq[u] for b in eq[w]
                         if a != b and routes[a, b, lk] and not (cons.dataflow and a > b)]
                if not pairs:
                    continue
                carry = m.new_bool_var(f"carry{gi}_{lk}")
                for a, w, c_w in pairs:
                    m.add_bool_or([eq[u][a].negated(), eq[w][c_w].negated(), carry])
                carries[lk].append((units(weight / float(hw.link_bandwidth[lk])), carry))
        for lk in range(nl):
            if not carries[lk]:
                continue
            expr = sum(cf * b for cf, b in carries[lk])
            lat = units(float(hw.link_latency[lk]))
            horizon += sum(cf for cf, _ in carries[lk]) + lat
            if lat > 0:
                link_used = m.new_bool_var(f"link_used{lk}")
                for _, lit in carries[lk]:
                    m.add_implication(lit, link_used)
                expr = expr + lat * link_used
            link_sum[lk] = expr
    big_t = m.new_int_var(0, horizon, "T")
    if hw.serialize_comm:
        for c in range(k):
            driven = [link_sum[lk] for lk in range(nl) if int(hw.link_driver[lk]) == c]
            m.add(chip_sum[c] + sum(driven) <= big_t)
    else:
        for c in range(k):
            m.add(chip_sum[c] <= big_t)
        for lk in range(nl):
            m.add(link_sum[lk] <= big_t)
    m.add(big_t >= units(problem.lower_bound))
    m.minimize(big_t)
    if hint is not None:
        for v in range(n):
            for c, b in eq[v].items():
                m.add_hint(b, int(hint[v]) == c)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit - (time.perf_counter() - t0), 0.1)
    solver.parameters.random_seed = int(seed)
    solver.parameters.num_workers = max(int(workers), 1)
    solver.parameters.catch_sigint_signal = False  # Ctrl-C is ours: it must propagate, not end the search
    if workers > 1:
        solver.parameters.interleave_search = True
    status = run_interruptible(lambda: solver.solve(m), solver.stop_search)  # Ctrl-C propagates
    name = solver.status_name(status)
    part = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        part = np.array([next(c for c, b in eq[v].items() if solver.boolean_value(b)) for v in range(n)],
                        dtype=np.int64)
    if status == cp_model.INFEASIBLE:
        bound = math.inf
    elif status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        raw = solver.best_objective_bound
        bound = float(Fraction(math.floor(raw + 1e-9)) * unit) if math.isfinite(raw) else 0.0
    else:  # MODEL_INVALID: a bug in this model
        raise AssertionError(f"CP-SAT rejected the model ({name}): please report")
    return CPSATSolution(part, bound, name, time.perf_counter() - t0, exact_memory, exact_times)
