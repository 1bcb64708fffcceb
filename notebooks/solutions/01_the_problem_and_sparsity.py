"""Solutions to the exercises of notebook 1 (``python notebooks/solutions/01_the_problem_and_sparsity.py``)."""

from __future__ import annotations

import itertools
from math import comb

import gymnasium as gym
import numpy as np

import mcm_gym

# Exercise 1.1 -------------------------------------------------------------------------------------
# 4**6 = 4096 partitions: few enough to score every one of them in a single batch.
chain = mcm_gym.Problem(mcm_gym.load_graph("tiny://chain-v1"), mcm_gym.get_hardware("ring-4"))
every = np.array(list(itertools.product(range(chain.num_chips), repeat=chain.n)))
valid = chain.is_valid(every)
print(f"1.1  {valid.sum()} of {len(every)} partitions of the chain are valid")
for name, c in chain.violation_counts(every).items():
    print(f"     {name:10s} alone is satisfied by {np.sum(c == 0)}")
print(f"     the formula C(n + K - 1, n) gives {comb(chain.n + chain.num_chips - 1, chain.n)} for dataflow")
# The constraint with the smallest count removes the most; on a chain it is dataflow, by far.

# Exercise 1.2 -------------------------------------------------------------------------------------
scores = np.where(valid, chain.evaluate(every).score, 0.0)
best = every[int(np.argmax(scores))]
row = chain.evaluate(best).row()
chip_max, link_max = float(np.max(row["chip_time"])), float(np.max(row["link_time"]))
print(f"1.2  best partition {best}, score {row['score']:.4f}")
print(f"     bottleneck {row['bottleneck'] * 1e6:.2f} us: the slowest {'chip' if chip_max >= link_max else 'link'} "
      f"(slowest chip {chip_max * 1e6:.2f} us, slowest link {link_max * 1e6:.2f} us)")


# Exercise 1.3 -------------------------------------------------------------------------------------
def play(policy: str, graph: str, hardware: str) -> float:
    """One episode of the sequential env; ``policy`` is ``"last"`` or ``"fair-share"``."""
    env = gym.make("MCMPartition-v0", graph=graph, hardware=hardware)
    obs, _ = env.reset(seed=0)
    problem = env.unwrapped.problem
    k = problem.num_chips
    fair = problem.cost.node_time[:, 0].sum() / k  # s of compute per chip if shared equally (equal chips)
    load = np.zeros(k)  # compute placed on each chip so far, s
    current, done, reward = 0, False, 0.0
    while not done:
        v = int(obs["current_node"][0])
        allowed = np.flatnonzero(obs["action_mask"][:k])
        if policy == "last":
            chip = int(allowed[-1])
        elif current in allowed and load[current] < fair:
            chip = current  # the current chip still has room for its share
        else:
            later = allowed[allowed > current]
            chip = int(later[0]) if len(later) else int(allowed[-1])
        current = max(current, chip)
        load[chip] += problem.cost.node_time[v, chip]
        obs, reward, done, _, _ = env.step(chip)
    return float(reward)


for graph, hardware in (("tiny://attention-v1", "ring-4"), ("zoo://bert-base-v1", "ring-8")):
    print(f"1.3  {graph} / {hardware}: last allowed chip {play('last', graph, hardware):.4f}, "
          f"fair share {play('fair-share', graph, hardware):.4f}")
# "Last allowed" jumps to a new chip at every node it can, so the first few nodes take a chip each and
# everything else piles up on the last one (the repair then moves what it must). Filling each chip
# to its fair share first is the idea behind the balanced split and the stage DP of notebook 2; it
# ignores memory and links, so it is not optimal either.
