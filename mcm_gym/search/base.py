"""The search interface: :class:`Searcher`, its budget :class:`Tracker`, :class:`SearchResult`, the registry.

Every :class:`Searcher` gets a :class:`~mcm_gym.core.problem.Problem`, a budget of *evaluated partitions*
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

from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig, explain_infeasible

__all__ = ["SearchResult", "Searcher", "Tracker", "Progress", "SEARCHERS", "register_searcher", "get_searcher",
           "known_searchers", "parse_method", "check_method",
           "format_result"]

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


def format_result(problem: Problem, res: SearchResult) -> str:
    """A human-readable report of a search result: score, throughput, per-chip compute time (us), SRAM use
    and out-link time (us)."""
    g, hw = problem.graph, problem.hardware
    lines = [f"graph     {res.graph_id}  ({g.n} nodes, {g.total_flops / 1e9:.2f} GFLOP, "
             f"{g.total_weight_bytes / 1e6:.1f} MB weights)",
             f"hardware  {res.hardware_id}  ({hw.num_chips} chips, {hw.total_sram_bytes / 1e6:.0f} MB SRAM, "
             f"constraints: {', '.join(hw.constraints.enabled())})",
             f"method    {res.method}  (seed {res.seed}, {res.evaluations} evaluations, {res.wall_time:.2f} s)"]
    if res.partition is None:
        lines.append(f"result    no valid partition found: {explain_infeasible(problem)}")
        return "\n".join(lines)
    ev = problem.evaluate(res.partition).row()
    lines += [f"score     {res.score:.4f}  (lower bound / bottleneck; 1 = physical limit)",
              *([f"proof     {proof_line(res)}"] if "proven_lower_bound" in res.extra else []),
              f"throughput {res.throughput:,.1f} samples/s   bottleneck {res.bottleneck * 1e6:.2f} us   "
              f"lower bound {res.lower_bound * 1e6:.2f} us   latency {ev['latency'] * 1e6:.2f} us",
              f"{'chip':>4} {'nodes':>6} {'compute us':>11} {'SRAM used':>10} {'out-link us':>12}"]
    counts = np.bincount(res.partition, minlength=hw.num_chips)
    link_out = np.zeros(hw.num_chips)  # time of the links each chip drives
    np.add.at(link_out, hw.link_driver, ev["link_time"])
    for c in range(hw.num_chips):
        lines.append(f"{c:>4} {counts[c]:>6} {ev['chip_time'][c] * 1e6:>11.2f} "
                     f"{ev['memory'][c] / hw.sram_bytes[c]:>9.0%} {link_out[c] * 1e6:>12.2f}")
    return "\n".join(lines)



def proof_line(res: SearchResult) -> str:
    """``optimal`` or the gap to the proven bound, for a result that carries one (``exact``)."""
    ex = res.extra
    bound_score = res.lower_bound / ex["proven_lower_bound"] if ex["proven_lower_bound"] > 0 else 1.0
    how = f"{ex.get('backend', 'z3')}, {ex.get('stop', '?')}"
    if ex.get("proven_optimal"):
        return f"optimal: no valid partition scores above {bound_score:.4f} ({how})"
    return (f"gap {100 * ex['gap']:.2f}% to the proven bound: no valid partition scores above "
            f"{bound_score:.4f} ({how})")


class Tracker:
    """Counts evaluations against the budget and keeps the best valid partition; a searcher's
    :meth:`Searcher._run` scores every partition through :meth:`add` (or counts a failure with
    :meth:`fail`), so every method is held to the same budget."""

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

    def add(self, partitions: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Score (0 where invalid) a batch of partitions, within the remaining budget; ``scores``: their
        scores, already computed by the caller (valid partitions only; not evaluated again)."""
        p = np.atleast_2d(partitions)[: max(self.left, 0)]
        if len(p) == 0:
            return np.zeros(0)
        scores = self.problem.scores(p) if scores is None else np.asarray(scores, dtype=float)[: len(p)]
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
        tr = Tracker(problem, budget, progress)
        self._run(problem, tr, np.random.default_rng(seed))
        return SearchResult.of(problem, self.name, seed, tr.best, tr.best_score, tr.trace,
                               time.perf_counter() - t0, tr.times)

    def _repair(self, problem: Problem, candidate: np.ndarray) -> np.ndarray | None:
        return problem.repair(candidate, self.repair_config).partition

    @abstractmethod
    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None: ...


#: Method name -> searcher class, or ``"module:Class"`` for a class imported on first use. Filled by
#: :func:`register_searcher` (the built-in methods register in :mod:`mcm_gym.search`) and by the
#: ``mcm_gym.searchers`` entry-point group of installed packages (read on the first unknown name).
SEARCHERS: dict[str, type[Searcher] | str] = {}
ENTRY_POINT_GROUP = "mcm_gym.searchers"
_entry_points_read = False


def register_searcher(name: str, cls: type[Searcher] | str, *, replace: bool = False) -> None:
    """Make ``cls`` (a :class:`Searcher` subclass, or ``"module:Class"`` imported on first use)
    available as method ``name`` to :func:`get_searcher`, ``mcm-gym partition --method`` and
    ``mcm-gym bench --methods``. A package can also declare it in its metadata, without being
    imported first: ``[project.entry-points."mcm_gym.searchers"] name = "module:Class"``."""
    if not name or any(ch in name for ch in ":,= "):
        raise ValueError(f"searcher name {name!r} must be non-empty, without ':', ',', '=' or spaces")
    if isinstance(cls, str):
        if ":" not in cls:
            raise ValueError(f"searcher {name!r}: {cls!r} is not of the form 'module:Class'")
    elif not (isinstance(cls, type) and issubclass(cls, Searcher)):
        raise TypeError(f"searcher {name!r}: {cls!r} is not a Searcher subclass")
    if name in SEARCHERS and not replace and SEARCHERS[name] != cls:
        raise ValueError(f"searcher {name!r} is already registered ({SEARCHERS[name]!r}); pass replace=True")
    SEARCHERS[name] = cls


def _read_entry_points() -> None:
    """Register the searchers that installed packages declare (once per process)."""
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        SEARCHERS.setdefault(ep.name, ep.value)


def known_searchers() -> list[str]:
    """Names of every registered method, entry points included."""
    _read_entry_points()
    return sorted(SEARCHERS)


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"rl:checkpoint=pretrained-v2,ent_coef=0.02"`` -> ``("rl", {"checkpoint": "pretrained-v2",
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
        _read_entry_points()
    if name not in SEARCHERS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(SEARCHERS))}")
    return name, opts


def get_searcher(name: str, **kwargs: Any) -> Searcher:
    """A searcher by name (see ``SEARCHERS``), built with ``kwargs``. ``name`` may carry options,
    ``"sa:t_start=0.1"`` (see :func:`parse_method`); the searcher's ``name`` (the method column of the
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
