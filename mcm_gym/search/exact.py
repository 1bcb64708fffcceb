"""Exact bottleneck minimisation with Z3, on graphs of up to ``max_nodes`` (3000) nodes.

Decision problem, for an integer cap ``C`` in time units ``u`` (seconds): is there a valid partition
whose chip times (and link times) are all ``<= C * u``? It reuses the pseudo-Boolean order encoding
of :class:`mcm_gym.core.encoding.Encoding` (every enabled constraint encodes itself) and adds

* per chip ``c``: ``PbLe(sum_v t[v, c] * x[v][c] <= C)``; with ``serialize_comm`` the terms of the
  links the chip drives join the same sum;
* link loads with multicast: as in :mod:`mcm_gym.core.cost`, a producer's edges are grouped by byte level
  (``b1 > b2 > ...``, group ``j`` = edges carrying ``>= b_j``, weight ``b_j - b_{j+1}``); a literal
  ``carry[g][l]`` is implied by every route of the group that crosses link ``l``
  (``x[u][a] and x[w][b] and routes[a, b, l] -> carry[g][l]``; only this direction is needed, since
  the caps only bound loads from above), and ``used[l]`` (paying the latency) by every carry;
  per link ``PbLe(sum_g weight_g / bandwidth_l * carry[g][l] + latency_l * used[l] <= C)``.

Routes come from ``hardware.routes``, so unlike the stage DP this is exact on any topology (mesh
included). Times become integers in two directions: to *find* solutions, node and link times are
rounded up and memory sizes conservatively (so a solution really has bottleneck ``<= C * u`` and is
valid); to *prove* a lower bound, times are rounded down and memory relaxed (so "unsat" proves
that every partition has bottleneck ``>= (C + 1) * u``). When every time is an integer multiple of
one unit ``u`` with ``bottleneck / u <= 2^24`` (e.g. power-of-two speeds), both directions coincide
and the result is exact. All arithmetic on the rounding is done with :class:`fractions.Fraction`.

Search: bisection on ``C`` between the proven lower bound (initially ``problem.lower_bound``) and
the best bottleneck found (initially the best stage-DP split of a few topological orders, see
:mod:`mcm_gym.search.dp`), until ``best / bound - 1 <= rel_tol``, the time limit, the per-call Z3
``rlimit`` (deterministic), the rounding precision or the evaluation budget stops it. Every solution
the solver finds is scored with the simulator and counts one evaluation. Each Z3 call uses a fresh
``z3.Context`` (deterministic results, see :mod:`mcm_gym.core.repair`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from mcm_gym.core.encoding import Encoding, interruptible, node_bounds
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.search.base import Progress, Searcher, SearchResult, Tracker
from mcm_gym.search.cpsat import available as cpsat_available
from mcm_gym.search.cpsat import multicast_groups, solve_cpsat
from mcm_gym.search.dp import StageSplitter, alap_order, dfs_order, level_order

__all__ = ["ExactSearch", "BACKENDS"]

BACKENDS = ("auto", "z3", "cpsat")

_UNKNOWN, _SAT, _UNSAT = 0, 1, -1
#: Relative gap treated as zero: the simulator's float sums and exact bounds differ by a few ulps.
_FLOAT_TOL = 1e-12


class _Model:
    """The Z3 formula of one problem: constraint encodings and time coefficients (Fractions, s)."""

    def __init__(self, problem: Problem, pb_units: int) -> None:
        self.problem = problem
        hw = problem.hardware
        self.k, self.nl = hw.num_chips, hw.num_links
        self.lo, self.hi = node_bounds(problem.graph, problem.hardware, problem.mem_demand)
        self.feasible_bounds = bool(np.all(self.lo <= self.hi))
        self.encodings: dict[bool, Encoding] = {}
        self.base_text: dict[bool, str] = {}
        if not self.feasible_bounds:
            return
        groups = multicast_groups(problem)
        self.node_time = [[Fraction(float(t)) for t in row] for row in problem.cost.node_time]
        bw = [Fraction(float(x)) for x in hw.link_bandwidth]
        self.latency = [Fraction(float(x)) for x in hw.link_latency]
        # carry[g][l] literals that some route can force, with their clauses.
        routes = hw.routes
        carry_clauses: list[str] = []
        self.carry: dict[int, list[tuple[str, Fraction]]] = {lk: [] for lk in range(self.nl)}
        for gi, (u, consumers, weight) in enumerate(groups):
            for lk in range(self.nl):
                pairs = [(a, w, b) for w in consumers
                         for a in range(int(self.lo[u]), int(self.hi[u]) + 1)
                         for b in range(int(self.lo[w]), int(self.hi[w]) + 1)
                         if a != b and routes[a, b, lk]]
                if not pairs:
                    continue
                name = f"carry{gi}_{lk}"
                carry_clauses.append(f"(declare-const {name} Bool)")
                carry_clauses += [f"(assert (or (not x{u}_{a}) (not x{w}_{b}) {name}))"
                                  for a, w, b in pairs]
                self.carry[lk].append((name, Fraction(weight) / bw[lk]))
        self.used: dict[int, str] = {}
        for lk in range(self.nl):
            if self.carry[lk] and self.latency[lk] > 0:
                self.used[lk] = f"used_l{lk}"
                carry_clauses.append(f"(declare-const used_l{lk} Bool)")
                carry_clauses += [f"(assert (or (not {c}) used_l{lk}))" for c, _ in self.carry[lk]]
        for relaxed in (False, True):
            enc = Encoding(problem.graph, problem.hardware, problem.mem_demand, self.lo, self.hi, pb_units,
                           relaxed=relaxed)
            for c in problem.constraints:
                c.encode(enc)
            self.encodings[relaxed] = enc
            self.base_text[relaxed] = enc.text() + "\n" + "\n".join(carry_clauses)
        self.exact_memory = self.encodings[False].exact_memory

    def all_times(self) -> list[Fraction]:
        out = [t for row in self.node_time for t in row if t > 0]
        out += [w for terms in self.carry.values() for _, w in terms if w > 0]
        out += [lat for lk, lat in enumerate(self.latency) if lk in self.used]
        return out

    def constraints(self) -> list[list[tuple[str, Fraction]]]:
        """Every capped sum: a list of (literal, seconds) terms."""
        hw = self.problem.hardware
        chip_terms: list[list[tuple[str, Fraction]]] = []
        for c in range(self.k):
            chip_terms.append([(f"x{v}_{c}", self.node_time[v][c]) for v in range(self.problem.n)
                               if self.lo[v] <= c <= self.hi[v] and self.node_time[v][c] > 0])
        link_terms = []
        for lk in range(self.nl):
            terms = list(self.carry[lk])
            if lk in self.used:
                terms.append((self.used[lk], self.latency[lk]))
            link_terms.append(terms)
        if hw.serialize_comm:
            for lk, terms in enumerate(link_terms):
                chip_terms[int(hw.link_driver[lk])] += terms
            return chip_terms
        return chip_terms + link_terms

    def text(self, relaxed: bool, cap: int | None, unit: Fraction) -> str:
        """The formula with all sums capped at ``cap * unit`` seconds (no caps if None); times
        rounded down (``relaxed``, for proofs) or up (for solutions)."""
        lines = [self.base_text[relaxed]]
        if cap is None:
            return lines[0]
        for terms in self.constraints():
            coef = []
            for lit, t in terms:
                q = t / unit
                k = math.floor(q) if relaxed else math.ceil(q)
                if k > 0:
                    coef.append((lit, min(k, cap + 1)))
            if sum(k for _, k in coef) <= cap:
                continue
            lines.append(f"(assert ((_ pble {cap} {' '.join(str(k) for _, k in coef)}) "
                         f"{' '.join(lit for lit, _ in coef)}))")
        return "\n".join(lines)


def _gap(best: float, bound: float) -> float:
    """``best / bound - 1`` (0 when best <= bound, inf when nothing was found or bound is 0)."""
    if not math.isfinite(best):
        return math.inf
    if best <= bound:
        return 0.0
    return best / bound - 1.0 if bound > 0 else math.inf


class ExactSearch(Searcher):
    """Bottleneck minimisation with a proof: an optimum (within ``rel_tol``), or on a limit the best
    partition found and a proven lower bound.

    ``backend``: ``"z3"`` (bisection on the bottleneck with Z3; proves the standard full-size
    instances, BERT-base, ResNet-50, MobileNet-v2, SmolLM-135M on 8-16 chips, within ``rel_tol`` in
    3-30 s; refuses graphs above ``max_nodes`` (3000) nodes with a ``ValueError``, as its formula
    grows with nodes x chips), ``"cpsat"`` (one OR-Tools CP-SAT model, :mod:`mcm_gym.search.cpsat`:
    full-size graphs, ``pip install 'mcm-gym[cpsat]'``; ``workers`` search workers, 1 by default), or
    ``"auto"`` (CP-SAT where installed, else Z3). Both start from the stage DP's best split.

    ``SearchResult.extra``: ``proven_optimal`` (gap <= rel_tol; exactly optimal when ``gap == 0``),
    ``proven_lower_bound`` (s; no valid partition has a smaller bottleneck), ``gap``
    (best bottleneck / proven bound - 1), ``exact_times`` (times are exact multiples of the unit),
    ``stop`` (why the search ended), ``solver_calls``, ``infeasible`` (proven: no valid partition),
    ``backend`` (the one used).

    ``time_limit``: seconds for the whole search (wall clock; default 600). With Z3 it bounds the
    solver calls and is checked between them; building the formula (Python) and Z3 parsing each
    call's text are not interrupted by it, so on a large graph the search can overrun it;
    ``rlimit``: Z3 resource units per call (deterministic); ``time_units``: resolution of rounded times
    with Z3 (the initial best bottleneck spans this many units; relative rounding error about terms
    per sum / time_units).
    """

    name = "exact"

    def __init__(self, repair: RepairConfig | None = None, *, time_limit: float | None = None,
                 rel_tol: float = 1e-3, rlimit: int = 50_000_000, max_nodes: int = 3000,
                 initial_orders: int = 4, time_units: int = 1 << 22, backend: str = "auto",
                 workers: int = 1) -> None:
        super().__init__(repair)
        if rel_tol < 0 or (time_limit is not None and time_limit <= 0):
            raise ValueError("rel_tol must be >= 0 and time_limit > 0")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "cpsat" and not cpsat_available():
            raise ImportError("the cpsat backend needs OR-Tools: pip install 'mcm-gym[cpsat]'")
        self.backend = "cpsat" if backend == "cpsat" or (backend == "auto" and cpsat_available()) else "z3"
        self.time_limit = float(time_limit if time_limit is not None else 600.0)
        self.workers = workers
        self.rel_tol = rel_tol
        self.rlimit = rlimit
        self.max_nodes = max_nodes
        self.initial_orders = initial_orders
        self.time_units = time_units
        self._extra: dict[str, Any] = {}

    def search(self, problem: Problem, budget: int, seed: int = 0,
               progress: Progress | None = None) -> SearchResult:
        if self.backend == "z3" and problem.n > self.max_nodes:
            raise ValueError(f"the Z3 exact search refuses large graphs: {problem.graph.name!r} has "
                             f"{problem.n} nodes > max_nodes={self.max_nodes} (install the CP-SAT "
                             f"backend, pip install 'mcm-gym[cpsat]', or use the 'dp' searcher)")
        self._extra = {}
        res = super().search(problem, budget, seed, progress)
        res.extra = dict(self._extra)
        return res

    # ------------------------------------------------------------------ solver calls
    def _solve(self, text: str, deadline: float) -> tuple[int, Any]:
        import z3

        left = deadline - time.perf_counter()
        if left <= 0:
            return _UNKNOWN, None
        ctx = z3.Context()
        s = z3.SolverFor("QF_FD", ctx=ctx)
        s.set("rlimit", int(self.rlimit))
        s.set("timeout", max(1, int(left * 1000)))
        s.set("ctrl_c", False)  # a Ctrl-C must propagate, not end the call as "unknown"
        s.from_string(text)
        r = interruptible(ctx, s.check)
        if r == z3.sat:
            return _SAT, s.model()
        return (_UNSAT, None) if r == z3.unsat else (_UNKNOWN, None)

    # ------------------------------------------------------------------ search
    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None:
        t0 = time.perf_counter()
        deadline = t0 + self.time_limit
        extra = self._extra
        lower = Fraction(problem.lower_bound)  # proven: no partition has a smaller bottleneck
        best = math.inf

        def add(part: np.ndarray) -> float:
            tr.add(part)
            return float(problem.evaluate(part).bottleneck[0])

        # Heuristic start: stage DP over a few topological orders.
        splitter = StageSplitter(problem)
        seen: set[bytes] = set()
        orders = [np.arange(problem.n), dfs_order(problem), level_order(problem),
                  alap_order(problem)]
        for order in orders[: self.initial_orders]:
            part, _ = splitter.split(order)
            if part is None or part.tobytes() in seen or tr.left <= 0 or not problem.is_valid(part):
                continue
            seen.add(part.tobytes())
            best = min(best, add(part))

        if self.backend == "cpsat":
            self._run_cpsat(problem, tr, rng, deadline, lower, best, add)
            return
        model = _Model(problem, self.repair_config.pb_units)
        calls = 0
        stop = "gap"
        exact = False
        if not model.feasible_bounds:
            stop, extra["infeasible"] = "infeasible", True
        else:
            times = model.all_times()
            ref = Fraction(best) if math.isfinite(best) else sum(times, Fraction(0)) or Fraction(1)
            unit = ref / self.time_units
            if times:
                den = math.lcm(*(t.denominator for t in times))
                g = math.gcd(*(t.numerator * (den // t.denominator) for t in times))
                if ref / Fraction(g, den) <= 4 * self.time_units:
                    unit, exact = Fraction(g, den), True
            # The largest number of terms in one sum bounds the rounding error of a cap.
            slack_terms = max((len(t) for t in model.constraints()), default=0) + 1
            strict_is_proof = exact and model.exact_memory
            tol = max(self.rel_tol, _FLOAT_TOL)
            while True:
                if math.isfinite(best) and best <= float(lower) * (1 + tol):
                    stop = "gap"
                    break
                if time.perf_counter() >= deadline:
                    stop = "time_limit"
                    break
                if tr.left <= 0:
                    stop = "budget"
                    break
                if math.isfinite(best):
                    hi = Fraction(best)
                    cap = math.floor((lower + hi) / 2 / unit)
                    cap = min(cap, math.ceil(hi / unit) - 1)
                    if cap + 1 <= lower / unit:
                        stop = "precision"
                        break
                else:
                    cap = None
                calls += 1
                r, m = self._solve(model.text(False, cap, unit), deadline)
                if r == _SAT:
                    part = model.encodings[False].decode(m)
                    if not problem.is_valid(part):
                        raise AssertionError("exact search produced an invalid partition; "
                                             "please report")
                    seen.add(part.tobytes())
                    b = add(part)
                    if b >= best:  # the simulator disagrees with the rounded sums
                        stop = "precision"
                        break
                    best = b
                    continue
                if r == _UNKNOWN:
                    stop = "time_limit" if time.perf_counter() >= deadline else "rlimit"
                    break
                # unsat with conservative rounding: prove with the relaxed formula unless exact.
                if not strict_is_proof:
                    calls += 1
                    r, m = self._solve(model.text(True, cap, unit), deadline)
                    if r == _UNKNOWN:
                        stop = "time_limit" if time.perf_counter() >= deadline else "rlimit"
                        break
                    if r == _SAT:  # the optimum lies within the rounding error of the cap
                        # The strict formula's unsat still bounds the optimum when only the times
                        # were rounded (with rounded memory it may have excluded the optimum).
                        progressed = False
                        bound = (cap + 1 - slack_terms) * unit if cap is not None else lower
                        if model.exact_memory and bound > lower:
                            lower, progressed = bound, True
                        part = model.encodings[True].decode(m)
                        if problem.is_valid(part) and tr.left > 0 and part.tobytes() not in seen:
                            seen.add(part.tobytes())
                            b = add(part)
                            if b < best:
                                best, progressed = b, True
                        if not progressed:
                            stop = "precision"
                            break
                        continue
                if cap is None:
                    stop, extra["infeasible"] = "infeasible", True
                    break
                lower = max(lower, (cap + 1) * unit)
        lb = float(lower)
        extra.update({
            "proven_lower_bound": lb,
            "gap": _gap(best, lb),
            "exact_times": exact,
            "solver_calls": calls,
            "stop": stop,
        })
        extra["proven_optimal"] = bool(math.isfinite(best)
                                       and extra["gap"] <= max(self.rel_tol, _FLOAT_TOL))
        extra.setdefault("infeasible", False)
        extra["backend"] = "z3"

    def _run_cpsat(self, problem: Problem, tr: Tracker, rng: np.random.Generator, deadline: float,
                   lower: Fraction, best: float, add: Callable[[np.ndarray], float]) -> None:
        """One CP-SAT solve warm-started from the best split so far (the tracker's best)."""
        sol = solve_cpsat(problem, time_limit=max(deadline - time.perf_counter(), 0.1),
                          seed=int(rng.integers(2**31 - 1)), hint=tr.best, workers=self.workers)
        if sol.partition is not None and tr.left > 0:
            if not problem.is_valid(sol.partition):
                raise AssertionError("the CP-SAT exact search produced an invalid partition; please report")
            best = min(best, add(sol.partition))
        infeasible = sol.status == "INFEASIBLE" and sol.exact_memory
        lb = float(lower) if not (sol.exact_memory and math.isfinite(sol.bound)) else max(float(lower), sol.bound)
        stop = {"OPTIMAL": "gap", "INFEASIBLE": "infeasible"}.get(sol.status, "time_limit")
        if tr.left <= 0 and sol.status != "OPTIMAL":
            stop = "budget"
        self._extra.update({"proven_lower_bound": lb, "gap": _gap(best, lb), "exact_times": sol.exact_times,
                            "solver_calls": 1, "stop": stop, "infeasible": infeasible, "backend": "cpsat",
                            "cpsat_status": sol.status})
        self._extra["proven_optimal"] = bool(math.isfinite(best)
                                             and self._extra["gap"] <= max(self.rel_tol, _FLOAT_TOL))
