"""Non-learned search methods behind one interface.

Every :class:`Searcher` gets a :class:`~mcm_gym.problem.Problem`, a budget of *evaluated partitions*
(each candidate it repairs and scores counts once) and a seed, and returns the best valid partition
it found with a trace of the best score after each evaluation. The same seed gives the same result.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .problem import Problem
from .repair import RepairConfig

__all__ = ["SearchResult", "Searcher", "BalancedSplit", "RandomSearch", "SimulatedAnnealing",
           "GreedyBalancer", "SEARCHERS", "get_searcher", "parse_method", "check_method",
           "split_by_work"]

Progress = Callable[[int, float], None]  # (evaluations so far, best score so far)


@dataclass
class SearchResult:
    method: str
    graph_id: str
    hardware_id: str
    seed: int
    partition: np.ndarray | None
    score: float  # normalised, 0 if nothing valid was found
    throughput: float  # samples/s
    bottleneck: float  # s
    lower_bound: float  # s
    evaluations: int
    wall_time: float  # s
    trace: list[float] = field(default_factory=list)  # best score after each evaluation
    trace_time: list[float] = field(default_factory=list)  # s since the start, at each evaluation
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, problem: Problem, method: str, seed: int, partition: np.ndarray | None, score: float,
           trace: list[float], wall_time: float, trace_time: list[float] | None = None) -> SearchResult:
        """A result for ``problem``: throughput and bottleneck of ``partition`` from the simulator."""
        g, hw = problem.graph, problem.hardware
        row = problem.evaluate(partition).row() if partition is not None else None
        return cls(method=method, graph_id=g.id or g.name, hardware_id=hw.id or hw.name, seed=seed,
                   partition=partition, score=score, throughput=row["throughput"] if row else 0.0,
                   bottleneck=row["bottleneck"] if row else float("inf"), lower_bound=problem.lower_bound,
                   evaluations=len(trace), wall_time=wall_time, trace=trace, trace_time=list(trace_time or []))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "graph_id": self.graph_id, "hardware_id": self.hardware_id,
                "seed": self.seed, "score": self.score, "throughput": self.throughput,
                "bottleneck": self.bottleneck, "lower_bound": self.lower_bound,
                "evaluations": self.evaluations, "wall_time": self.wall_time,
                "partition": None if self.partition is None else self.partition.tolist(),
                "trace": self.trace, **({"extra": self.extra} if self.extra else {})}


class _Tracker:
    """Counts evaluations against the budget and keeps the best valid partition."""

    def __init__(self, problem: Problem, budget: int, progress: Progress | None) -> None:
        self.problem, self.budget, self.progress = problem, budget, progress
        self.best: np.ndarray | None = None
        self.best_score = 0.0
        self.trace: list[float] = []
        self.times: list[float] = []  # s since the tracker was made, at each evaluation
        self._t0 = time.perf_counter()

    @property
    def left(self) -> int:
        return self.budget - len(self.trace)

    def add(self, partitions: np.ndarray) -> np.ndarray:
        """Score (0 where invalid) a batch of partitions, within the remaining budget."""
        p = np.atleast_2d(partitions)[: max(self.left, 0)]
        if len(p) == 0:
            return np.zeros(0)
        scores = self.problem.scores(p)
        now = time.perf_counter() - self._t0
        for i, s in enumerate(scores):
            if s > self.best_score:
                self.best_score, self.best = float(s), p[i].copy()
            self.trace.append(self.best_score)
            self.times.append(now)
        if self.progress:
            self.progress(len(self.trace), self.best_score)
        return scores

    def fail(self) -> None:
        """Count an evaluation that produced no valid partition (e.g. repair failed)."""
        if self.left > 0:
            self.trace.append(self.best_score)
            self.times.append(time.perf_counter() - self._t0)
            if self.progress:
                self.progress(len(self.trace), self.best_score)


class Searcher(ABC):
    """A search method. Subclasses implement :meth:`_run` using ``tracker.add``."""

    name: str = "searcher"

    def __init__(self, repair: RepairConfig | None = None) -> None:
        self.repair_config = repair or RepairConfig()

    def search(self, problem: Problem, budget: int, seed: int = 0,
               progress: Progress | None = None) -> SearchResult:
        if budget < 1:
            raise ValueError(f"budget must be >= 1 evaluated partition, got {budget}")
        t0 = time.perf_counter()
        tr = _Tracker(problem, budget, progress)
        self._run(problem, tr, np.random.default_rng(seed))
        return SearchResult.of(problem, self.name, seed, tr.best, tr.best_score, tr.trace,
                               time.perf_counter() - t0, tr.times)

    def _repair(self, problem: Problem, candidate: np.ndarray) -> np.ndarray | None:
        return problem.repair(candidate, self.repair_config).partition

    @abstractmethod
    def _run(self, problem: Problem, tr: _Tracker, rng: np.random.Generator) -> None: ...


def split_by_work(problem: Problem, cuts: np.ndarray | None = None) -> np.ndarray:
    """Chip per node from cutting the topological order into stages: at the work fractions ``cuts``
    (sorted, in (0, 1), K-1 of them), or into equal shares of the total work if None."""
    k = problem.num_chips
    t = problem.cost.node_time.min(axis=1)
    frac = (np.cumsum(t) - t / 2) / max(t.sum(), 1e-300)
    if cuts is None:
        cuts = np.arange(1, k) / k
    return np.searchsorted(np.asarray(cuts), frac, side="right").astype(np.int64)


class BalancedSplit(Searcher):
    """Cut the topological order into K stages of equal work, then repair. One evaluation."""

    name = "balanced"

    def _run(self, problem, tr, rng):
        p = self._repair(problem, split_by_work(problem))
        tr.add(p) if p is not None else tr.fail()


class RandomSearch(Searcher):
    """Random search over repaired partitions (the paper's first baseline).

    ``proposal="uniform"`` (default, as in the paper): every node gets a uniformly random chip and
    the Z3 repair makes the candidate valid. ``proposal="cuts"``: the topological order is cut into
    K stages at uniformly random work fractions, then repaired (a stronger, structured proposal).
    """

    name = "random"

    def __init__(self, proposal: str = "uniform", repair: RepairConfig | None = None) -> None:
        super().__init__(repair)
        if proposal not in ("uniform", "cuts"):
            raise ValueError(f"proposal must be 'uniform' or 'cuts', got {proposal!r}")
        self.proposal = proposal

    def _run(self, problem, tr, rng):
        k = problem.num_chips
        while tr.left > 0:
            if self.proposal == "uniform":
                cand = rng.integers(0, k, problem.n)
            else:
                cand = split_by_work(problem, np.sort(rng.random(k - 1)))
            p = self._repair(problem, cand)
            tr.add(p) if p is not None else tr.fail()


class SimulatedAnnealing(Searcher):
    """Simulated annealing over valid partitions (the paper's second baseline).

    Start: the repaired equal-work split. Move: pick a node uniformly and shift it one chip up or
    down; to keep dataflow, its descendants (moving up) or ancestors (moving down) that would end
    up behind it move along. If the result breaks a constraint (memory, contiguity, ...) it is
    repaired. Every proposal evaluated counts against the budget. Acceptance: Metropolis on the score,
    ``exp((new - current) / T)``, with ``T`` decaying geometrically from ``t_start`` to ``t_end``
    (score units) over the budget.
    """

    name = "sa"

    def __init__(self, t_start: float = 0.02, t_end: float = 0.0005,
                 repair: RepairConfig | None = None) -> None:
        super().__init__(repair)
        if not (t_start > 0 and t_end > 0):
            raise ValueError("temperatures must be > 0")
        self.t_start, self.t_end = t_start, t_end

    def _run(self, problem, tr, rng):
        k = problem.num_chips
        reach = problem.graph.reach
        cur = self._repair(problem, split_by_work(problem))
        if cur is None:
            tr.fail()
            return
        cur_score = float(tr.add(cur)[0])
        steps = max(tr.left, 1)
        for i in range(steps):
            if tr.left <= 0:
                break
            temp = self.t_start * (self.t_end / self.t_start) ** (i / max(steps - 1, 1))
            v = int(rng.integers(problem.n))
            up = bool(rng.random() < 0.5)
            c = cur[v] + (1 if up else -1)
            if not 0 <= c < k:
                up, c = not up, cur[v] + (-1 if up else 1)
                if not 0 <= c < k:
                    continue
            cand = cur.copy()
            if up:  # descendants still before chip c come along
                mask = reach[v] & (cand < c)
            else:  # ancestors still after chip c come along
                mask = reach[:, v] & (cand > c)
            cand[mask] = c
            cand[v] = c
            if not problem.is_valid(cand):
                cand = self._repair(problem, cand)
                if cand is None:
                    tr.fail()
                    continue
            score = float(tr.add(cand)[0])
            if score >= cur_score or rng.random() < np.exp((score - cur_score) / temp):
                cur, cur_score = cand, score


class GreedyBalancer(Searcher):
    """Greedy balancer: the equal-work split, then hill climbing on stage boundaries.

    Each round scores every valid one-node move to a neighbouring chip (only nodes at stage
    boundaries can move without breaking dataflow, so there are few), takes the best if it improves,
    and stops at a local optimum or when the budget is spent. Every scored move is an evaluation.
    """

    name = "greedy"

    def _run(self, problem, tr, rng):
        cur = self._repair(problem, split_by_work(problem))
        if cur is None:
            tr.fail()
            return
        cur_score = float(tr.add(cur)[0])
        while tr.left > 0:
            moves = []
            for v in range(problem.n):
                for d in (-1, 1):
                    c = cur[v] + d
                    if not 0 <= c < problem.num_chips:
                        continue
                    cand = cur.copy()
                    cand[v] = c
                    moves.append(cand)
            moves_arr = np.array(moves)
            moves_arr = moves_arr[problem.is_valid(moves_arr)]  # validity checks are not evaluations
            if len(moves_arr) == 0:
                break
            scores = tr.add(moves_arr)  # every scored move counts against the budget
            if len(scores) == 0:
                break
            best = int(np.argmax(scores))
            if scores[best] <= cur_score + 1e-12:
                break
            cur, cur_score = moves_arr[best], float(scores[best])


#: Method name -> class, or "module:Class" for methods loaded on first use.
SEARCHERS: dict[str, type[Searcher] | str] = {
    "balanced": BalancedSplit, "random": RandomSearch, "sa": SimulatedAnnealing, "greedy": GreedyBalancer,
    "dp": "mcm_gym.search_dp:DPSearch", "exact": "mcm_gym.search_exact:ExactSearch",
    "rl": "mcm_gym.search_rl:RLSearch",
}


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"rl:checkpoint=pretrained,ent_coef=0.02"`` -> ``("rl", {"checkpoint": "pretrained",
    "ent_coef": 0.02})``: a method name, then ``key=value`` options after a colon, comma-separated;
    values are read as YAML scalars (ints, floats, booleans, null, else strings)."""
    import yaml

    name, _, rest = spec.partition(":")
    name = name.strip()
    opts: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"method {spec!r}: option {item!r} is not key=value")
        try:
            opts[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            opts[key.strip()] = value
    return name, opts


def check_method(spec: str) -> tuple[str, dict[str, Any]]:
    """:func:`parse_method`, plus a ``ValueError`` naming the known methods if the name is unknown."""
    name, opts = parse_method(spec)
    if name not in SEARCHERS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(SEARCHERS))}")
    return name, opts


def get_searcher(name: str, **kwargs: Any) -> Searcher:
    """A searcher by name (see ``SEARCHERS``), built with ``kwargs``. ``name`` may carry options,
    ``"sa:t0=0.1"`` (see :func:`parse_method`); the searcher's ``name`` (the method column of the
    benchmark tables) is then the whole spec."""
    base, opts = check_method(name)
    cls = SEARCHERS[base]
    if isinstance(cls, str):
        import importlib

        mod, _, attr = cls.partition(":")
        cls = getattr(importlib.import_module(mod), attr)
    opts.update(kwargs)
    try:
        searcher = cls(**opts)  # type: ignore[operator]
    except TypeError as e:
        raise ValueError(f"method {name!r}: bad option ({e})") from None
    if opts and name != base:
        searcher.name = name.strip()
    return searcher
