"""A third-party search plugged into mcm-gym through its public API only.

Two ways in, both shown here:

* as a :class:`mcm_gym.search.Searcher` (then ``mcm_gym.bench.run_bench`` compares it with the
  built-in methods at the same budget of evaluated partitions);
* against the environment's batch API (``env.unwrapped.evaluate`` and ``env.unwrapped.repair``),
  as any external optimiser would.

The method: a small (mu + lambda) evolution strategy over valid partitions. Children move a random
stage boundary of their parent by a few nodes along the topological order, and are repaired.

Run: ``python agents/evolution_search.py --budget 60`` (BERT-base on ring-8).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import mcm_gym  # noqa: F401  (registers MCMPartition-v0)
from mcm_gym.bench import format_table, run_bench, summarize
from mcm_gym.search import Searcher, split_by_work


def mutate(parent: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """Shift one stage boundary of ``parent`` (chips non-decreasing along the node order)."""
    child = parent.copy()
    c = int(rng.integers(1, k))  # boundary between chip c-1 and chip c
    idx = np.flatnonzero(child == c)
    if idx.size == 0:
        return child
    first = int(idx[0])
    step = int(rng.integers(1, 6))
    if rng.random() < 0.5:  # chip c starts earlier: take nodes from chip c-1
        child[max(first - step, 0):first][child[max(first - step, 0):first] == c - 1] = c
    else:  # chip c starts later: give its first nodes to chip c-1
        child[first:first + step][child[first:first + step] == c] = c - 1
    return child


class EvolutionSearch(Searcher):
    """(mu + lambda) evolution over repaired partitions; every child scored counts once."""

    name = "evolution"

    def __init__(self, mu: int = 4, lam: int = 8) -> None:
        super().__init__()
        self.mu, self.lam = mu, lam

    def _run(self, problem, tr, rng):
        start = self._repair(problem, split_by_work(problem))
        if start is None:
            tr.fail()
            return
        pop = [(float(tr.add(start)[0]), start)]
        while tr.left > 0:
            children = []
            for _ in range(min(self.lam, tr.left)):
                parent = pop[int(rng.integers(len(pop)))][1]
                child = mutate(parent, rng, problem.num_chips)
                if not problem.is_valid(child):
                    child = self._repair(problem, child)
                if child is not None:
                    children.append(child)
            if not children:
                tr.fail()
                continue
            scores = tr.add(np.array(children))
            pop += list(zip(scores.tolist(), children, strict=False))
            pop = sorted(pop, key=lambda x: -x[0])[: self.mu]


def with_env_batch_api(budget: int, seed: int) -> float:
    """The same idea driven only through the environment's batch API."""
    env = gym.make("MCMPartition-v0", graph="zoo://bert-base-v1", hardware="ring-8")
    env.reset(seed=seed)
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    k = u.problem.num_chips
    best = u.repair(split_by_work(u.problem)).partition
    best_score = float(u.evaluate(best)["score"][0])
    for _ in range(budget - 1):
        child = mutate(best, rng, k)
        if not u.evaluate(child)["valid"][0]:
            child = u.repair(child).partition
        if child is None:
            continue
        score = float(u.evaluate(child)["score"][0])
        if score > best_score:
            best, best_score = child, score
    return best_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], [EvolutionSearch(), "greedy", "sa"], args.seeds,
                     args.budget)
    print(format_table(summarize(rows)))
    print(f"through the env batch API: best score {with_env_batch_api(args.budget, args.seeds[0]):.4f}")


if __name__ == "__main__":
    main()
