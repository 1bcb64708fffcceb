"""Write the course notebooks from the cells below (``python notebooks/make_notebooks.py``).

Keeping the source here makes reviews readable; the tests execute the written ``.ipynb`` files.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

NB01 = [
    new_markdown_cell("""# 1. The problem and the environment, by hand

A model is a graph of operations. A multi-chip module (MCM) runs it as a **pipeline**: chip 0 runs
the first operations and streams tensors to chip 1, and so on. A **partition** gives every node a
chip. Its throughput is set by the slowest chip or link (the *bottleneck*); a partition is only
usable if it satisfies the hardware's constraints (tensors flow forward, weights fit in SRAM, no
empty chip inside the pipeline).

We work on a tiny graph: one transformer encoder layer (15 nodes) on a 4-chip ring."""),
    new_code_cell("""import numpy as np
import mcm_gym

graph = mcm_gym.load_graph("tiny://attention-v1")
hw = mcm_gym.get_hardware("ring-4")
problem = mcm_gym.Problem(graph, hw)
print(graph)
print(hw)
for i, node in enumerate(graph.nodes):
    print(f"{i:2d} {node.name:8s} {node.op:11s} {node.flops / 1e9:6.2f} GFLOP  "
          f"{node.weight_bytes / 2**20:5.1f} MiB weights")"""),
    new_markdown_cell("""## Scoring a partition

`problem.evaluate` simulates the pipeline. The **score** is `lower_bound / bottleneck`: 1 would mean
the chips are perfectly balanced and nothing else slows them down. Times are in seconds."""),
    new_code_cell("""everything_on_chip0 = np.zeros(graph.n, dtype=int)
row = problem.evaluate(everything_on_chip0).row()
print("score", round(row["score"], 3), " bottleneck", row["bottleneck"], "s")
print("violations:")
for v in problem.check(everything_on_chip0):
    print("  ", v)"""),
    new_markdown_cell("""Everything on one chip overflows its SRAM. Let us spread the nodes by hand, in
topological order, a few per chip."""),
    new_code_cell("""by_hand = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
row = problem.evaluate(by_hand).row()
print("valid:", problem.is_valid(by_hand), " score:", round(row["score"], 3))
print("chip times (us):", np.round(np.array(row["chip_time"]) * 1e6, 1))
print("SRAM used (%):  ", np.round(100 * np.array(row["memory"]) / hw.sram_bytes))"""),
    new_markdown_cell("""## Valid partitions are sparse

Draw partitions uniformly at random: almost none is valid, even on 15 nodes. On BERT (311
nodes, 8 chips) essentially none is."""),
    new_code_cell("""rng = np.random.default_rng(0)
samples = rng.integers(0, hw.num_chips, size=(100_000, graph.n))
valid = problem.is_valid(samples)
print(f"{valid.mean():.5%} of random partitions are valid")"""),
    new_markdown_cell("""## Repair

The Z3 solver turns any candidate into the valid partition that changes the fewest nodes."""),
    new_code_cell("""candidate = samples[0]
result = problem.repair(candidate)
print(result.status, "-", result.changes, "nodes moved")
print("candidate:", candidate)
print("repaired: ", result.partition)
print("score:", round(problem.evaluate(result.partition).score[0], 3))"""),
    new_markdown_cell("""## The environment

`MCMPartition-v0` asks for one node's chip per step, in topological order. The action mask says
which chips the constraints still allow. At the end the candidate is repaired and the reward is the
score."""),
    new_code_cell("""import gymnasium as gym

env = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4", render_mode="ansi")
obs, info = env.reset(seed=0)
print({k: v.shape for k, v in obs.items()})
done = False
while not done:
    allowed = np.flatnonzero(obs["action_mask"])
    action = allowed[-1]  # greedy: always the last allowed chip
    obs, reward, done, truncated, info = env.step(action)
print(env.render())
print("reward", round(reward, 3), "| repair:", info["repair_status"], info["changes"], "changes")"""),
    new_code_cell("""import matplotlib.pyplot as plt

img = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4",
               render_mode="rgb_array")
img.reset(seed=0)
for a in [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3]:
    img.step(a)
plt.imshow(img.render())
plt.axis("off")
plt.show()"""),
]


def main() -> None:
    nb = new_notebook(cells=NB01, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.write(nb, HERE / "01_problem_and_env.ipynb")
    print("wrote 01_problem_and_env.ipynb")


if __name__ == "__main__":
    main()
