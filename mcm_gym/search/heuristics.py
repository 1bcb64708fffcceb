"""Simple searches: the equal-work split, random search and simulated annealing (the paper's
baselines), and a greedy boundary hill-climber."""

from __future__ import annotations

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, HardwareError, get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig, greedy_repair
from mcm_gym.search.base import Searcher

__all__ = ["BalancedSplit", "RandomSearch", "SimulatedAnnealing", "GreedyBalancer", "split_by_work", "fits"]


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


def fits(graph: Graph, hardware: Hardware | str) -> bool:
    """Whether a valid partition of ``graph`` on ``hardware`` was found: the repair of an
    equal-work split (:func:`mcm_gym.search.split_by_work`), greedy first, then the solver."""
    try:
        problem = Problem(graph, get_hardware(hardware))
    except HardwareError:  # includes InfeasibleError
        return False
    cand = split_by_work(problem)
    p = greedy_repair(problem, cand)
    if p is not None and problem.is_valid(p):
        return True
    res = problem.repair(cand)
    return res.partition is not None and bool(problem.is_valid(res.partition))
