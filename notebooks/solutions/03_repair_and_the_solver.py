"""Solutions to the exercises of notebook 3 (``python notebooks/solutions/03_repair_and_the_solver.py``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import mcm_gym
from mcm_gym.search import get_searcher

# Exercise 3.1 -------------------------------------------------------------------------------------
bert = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
base = get_searcher("dp").search(bert, budget=32, seed=0).partition
rng = np.random.default_rng(0)
for m in (5, 20, 40):
    z3_changes, greedy_changes, z3_scores, greedy_scores = [], [], [], []
    for _ in range(4):
        cand = base.copy()
        nodes = rng.choice(bert.n, m, replace=False)
        cand[nodes] = rng.integers(0, 8, m)
        z3 = bert.repair(cand)
        greedy = mcm_gym.greedy_repair(bert, cand)
        z3_changes.append(z3.changes)
        z3_scores.append(bert.evaluate(z3.partition).score[0])
        if greedy is not None:
            greedy_changes.append(int((greedy != cand).sum()))
            greedy_scores.append(bert.evaluate(greedy).score[0])
    print(f"3.1  {m:2d} perturbed: Z3 moves {np.mean(z3_changes):5.1f} (score {np.mean(z3_scores):.4f}), "
          f"greedy moves {np.mean(greedy_changes):5.1f} (score {np.mean(greedy_scores):.4f})")
# The greedy fallback is always valid but not minimal: it moves more nodes, and the extra moves tend
# to unbalance the pipeline. Fewer changes keep more of what the policy proposed.


# Exercise 3.2 -------------------------------------------------------------------------------------
def valid_without_repair(graph: str, hardware: str, episodes: int = 20) -> float:
    env = gym.make("MCMPartition-v0", graph=graph, hardware=hardware, use_repair=False)
    rng = np.random.default_rng(0)
    valid = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            obs, reward, done, _, _ = env.step(int(rng.choice(np.flatnonzero(obs["action_mask"]))))
        valid += reward > 0
    return valid / episodes


for graph, hardware in (("tiny://attention-v1", "ring-4"), ("zoo://mlp-mixer-b16-v1", "ring-8")):
    print(f"3.2  {graph} / {hardware}: {valid_without_repair(graph, hardware):.0%} of masked random "
          "episodes valid without repair")
# The masks judge each node locally (given the nodes placed before it), which is enough for dataflow
# and contiguity on many graphs, but not for memory: a chip filled early can leave later nodes no
# room. Masks raise the share of valid candidates; only the solver guarantees one.

# Exercise 3.3 -------------------------------------------------------------------------------------
tiny = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
n, k = tiny.n, tiny.num_chips
rng = np.random.default_rng(0)
theta = np.zeros((n, k))
found, mean_violations = None, []
for it in range(200):
    prob = np.exp(theta - theta.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    samples = (prob.cumsum(axis=1)[None] < rng.random((16, n, 1))).sum(axis=2)
    violations = sum(c for c in tiny.violation_counts(samples).values())
    valid = violations == 0
    rewards = np.where(valid, tiny.evaluate(samples).score, -violations / n)  # a dense penalty when invalid
    if valid.any() and found is None:
        found = it
    mean_violations.append(violations.mean())
    adv = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
    theta += 1.0 * np.mean(adv[:, None, None] * (np.eye(k)[samples] - prob), axis=0)
print(f"3.3  violations per candidate: {mean_violations[0]:.2f} at first, {mean_violations[39]:.2f} after 40 "
      f"iterations, {mean_violations[-1]:.2f} after 200; first valid candidate at iteration {found}")
# With a penalty that counts violations the gradient is no longer zero, so the violations fall. Whether
# a valid candidate appears within 40 iterations depends on the instance and the step size (print
# `found`); shaping only points the learner towards validity, while the repair hands it a valid
# partition, and its score, from the first sample.
