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


NB02 = [
    new_markdown_cell("""# 2. Baselines, and why valid partitions are sparse

BERT-base (311 operations from `torch.export` of the real model) on the paper-like 8-chip ring.
First: how rare are valid partitions? Then: how do search methods compare at an equal budget of
evaluated partitions?"""),
    new_code_cell("""import numpy as np
import mcm_gym

problem = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
rng = np.random.default_rng(0)
uniform = rng.integers(0, 8, size=(200_000, problem.n))
print("uniformly random partitions valid:", problem.is_valid(uniform).sum(), "of", len(uniform))
counts = problem.violation_counts(uniform[:1000])
for name, c in counts.items():
    print(f"  {name:10s} violated by {np.mean(c > 0):.1%} of them (mean {c.mean():.1f} violations)")"""),
    new_markdown_cell("""Even partitions that respect the order of the graph (chips never decrease along a
topological order) often break the memory constraint: BERT's 47 MB word-embedding table nearly
fills a chip on its own."""),
    new_code_cell("""from mcm_gym.search import split_by_work

cuts = np.sort(rng.random((2000, 7)), axis=1)
monotone = np.stack([split_by_work(problem, c) for c in cuts])
print("random stage splits valid:", f"{problem.is_valid(monotone).mean():.1%}")"""),
    new_markdown_cell("""## Methods at an equal budget

`random` and `sa` are the paper's baselines (each candidate is repaired by Z3); `greedy` and `dp`
are what a compiler engineer would try (`dp` is PipeDream/Alpa-style stage construction). Every
partition a method scores counts against the same budget."""),
    new_code_cell("""from mcm_gym.bench import format_table, run_bench, summarize

rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], ["random", "sa", "greedy", "dp"], seeds=[0, 1],
                 budget=12)
print(format_table(summarize(rows)))"""),
    new_code_cell("""import json
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.5))
for method in ["random", "sa", "greedy", "dp"]:
    traces = [json.loads(r["trace"]) for r in rows if r["method"] == method]
    n = max(len(t) for t in traces)
    mean = np.mean([t + [t[-1]] * (n - len(t)) for t in traces], axis=0)
    ax.step(np.arange(1, n + 1), mean, where="post", label=method)
ax.set_xlabel("evaluated partitions")
ax.set_ylabel("best score (mean of 2 seeds)")
ax.legend()
plt.show()"""),
    new_markdown_cell("""The score is `lower_bound / bottleneck`: 1 would be a perfectly balanced pipeline
with free links. The stage DP gets close to 0.9; a learned policy has to beat that, not just random
search, to be worth its training time (see notebook 3)."""),
]

NB04 = [
    new_markdown_cell("""# 4. Bring your own model and your own hardware

Any PyTorch model that `torch.export` can trace becomes a graph: FLOPs per node from torch's flop
counter, bytes from the traced shapes, parameters as weights. Hardware is a dict, or a YAML/JSON
file with the same fields (`mcm_gym.Hardware.load`)."""),
    new_code_cell("""import torch
from torch import nn

import mcm_gym
from mcm_gym.instances.coarsen import coarsen
from mcm_gym.instances.importers import from_torch

torch.manual_seed(0)
torch.set_num_threads(1)


class TinyTransformer(nn.Module):
    def __init__(self, d=256, layers=4):
        super().__init__()
        self.embed = nn.Embedding(1000, d)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True)
                                    for _ in range(layers))
        self.head = nn.Linear(d, 1000)

    def forward(self, ids):
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


graph = from_torch(TinyTransformer().eval(), (torch.randint(0, 1000, (1, 64)),), name="tiny-transformer")
print(graph)"""),
    new_markdown_cell("""Coarsening is explicit and reversible: merge chains of small ops down to a target size,
partition the small graph, then map the partition back."""),
    new_code_cell("""co = coarsen(graph, 40)
print(graph.n, "->", co.graph.n, "nodes; FLOPs kept:", co.graph.total_flops == graph.total_flops)"""),
    new_markdown_cell("""Our own hardware: four chips on a chain, one twice as fast, small SRAM so memory
matters. Sizes in bytes, speeds in FLOP/s and bytes/s, latency in seconds."""),
    new_code_cell("""slow = {"peak_flops": 4.0e12, "sram_bytes": 3.0e6, "mem_bw": 2.0e11}
fast = {"peak_flops": 8.0e12, "sram_bytes": 3.0e6, "mem_bw": 4.0e11}
hw = mcm_gym.Hardware.from_dict({"name": "my-chain-4", "topology": "chain", "chips": [slow, fast, slow, slow],
                                 "link_bandwidth": 1.0e10, "link_latency": 1.0e-6})
problem = mcm_gym.Problem(co.graph, hw)
print(hw, " weights fill", round(co.graph.total_weight_bytes / hw.total_sram_bytes, 2), "of SRAM")"""),
    new_code_cell("""from mcm_gym.search import get_searcher

res = get_searcher("dp").search(problem, budget=20, seed=0)
print("dp score", round(res.score, 3))
full = co.expand(res.partition)  # back to every node of the original graph
print("valid on the original graph:", mcm_gym.Problem(graph, hw).is_valid(full))"""),
    new_code_cell("""import io

from IPython.display import Image, display

from mcm_gym.viz import partition_figure

buf = io.BytesIO()
partition_figure(problem, res.partition).savefig(buf, format="png")
display(Image(buf.getvalue()))"""),
]

NB05 = [
    new_markdown_cell("""# 5. Plug in your own agent or search

Three ways in: a `Searcher` subclass (then the benchmark harness compares it at an equal budget), the
environment's batch API, and any Gymnasium RL library."""),
    new_code_cell("""import numpy as np

import mcm_gym
from mcm_gym.bench import format_table, run_bench, summarize
from mcm_gym.search import Searcher, split_by_work


class JitterSearch(Searcher):
    \"\"\"Perturb the equal-work stage cuts at random; keep the best (a toy third-party method).\"\"\"

    name = "jitter"

    def _run(self, problem, tr, rng):
        k = problem.num_chips
        base = np.arange(1, k) / k
        while tr.left > 0:
            cuts = np.sort(np.clip(base + rng.normal(0, 0.03, k - 1), 0.01, 0.99))
            p = self._repair(problem, split_by_work(problem, cuts))
            tr.add(p) if p is not None else tr.fail()


rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], [JitterSearch(), "greedy"], seeds=[0, 1], budget=10)
print(format_table(summarize(rows)))"""),
    new_markdown_cell("""The batch API, for optimisers that bring their own loop: `evaluate` scores many
partitions at once (0 where invalid), `repair` makes one valid."""),
    new_code_cell("""import gymnasium as gym

env = gym.make("MCMPartition-v0")  # BERT-base on ring-8
env.reset(seed=0)
u = env.unwrapped
batch = np.stack([split_by_work(u.problem, np.sort(np.random.default_rng(i).random(7))) for i in range(256)])
out = u.evaluate(batch)
print("valid:", out["valid"].sum(), "of", len(batch), " best score:", out["score"].max().round(3))
print("after repair of the first:", u.repair(batch[0]).status)"""),
    new_markdown_cell("""Any Gymnasium-compatible RL library works; masks come from `action_masks()` (sb3-contrib)
or `obs["action_mask"]` (RLlib and others). Here sb3-contrib's MaskablePPO with its default MLP
policy on a tiny graph; notebook 3 uses the graph neural network policy."""),
    new_code_cell("""import torch
from sb3_contrib import MaskablePPO

torch.set_num_threads(1)
env = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4", render_mode="rgb_array")
model = MaskablePPO("MultiInputPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0).learn(1024)
obs, _ = env.reset(seed=0)
done = False
while not done:
    action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
    obs, reward, done, _, info = env.step(int(action))
print("score", round(reward, 3), "| repair", info["repair_status"], info["changes"], "changes")"""),
    new_code_cell("""import matplotlib.pyplot as plt

plt.figure(figsize=(10, 5))
plt.imshow(env.render())
plt.axis("off")
plt.show()"""),
]

NB03 = [
    new_markdown_cell("""# 3. Train a policy, use it zero-shot, fine-tune it

The paper's recipe: a graph neural network policy (here `mcm_gym.learn.extractor.GNNExtractor` inside
sb3-contrib's MaskablePPO) proposes a chip per node, the Z3 solver repairs the proposal, and the
reward is the repaired partition's score. Pre-trained on many graphs, the policy is used zero-shot on
a graph it never saw, then fine-tuned on it.

Pre-training here has two stages: the policy first imitates a fast search (the stage DP) on the
training graphs (behaviour cloning, the `bc` section), then PPO improves it with the repaired score as
reward. Kept small so that it runs on a laptop CPU in a couple of minutes: random layered DAGs of the
`train` split on a 4-chip ring, validated on graphs of the `heldout` split. The config has the
sections of a YAML training config (`instances`, `env`, `ppo` with MaskablePPO's own argument names,
`policy`, `bc`, `eval`); the same code, with `agents/configs/pretrain_bc.yaml`, pre-trains the shipped
policy on hundreds of graphs."""),
    new_code_cell("""import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from mcm_gym.learn.config import TrainConfig
from mcm_gym.learn.evaluation import evaluate_policy_on
from mcm_gym.learn.train import finetune, train

torch.set_num_threads(1)
out = Path(tempfile.mkdtemp()) / "pretrain"
cfg = TrainConfig.from_dict({
    "instances": {"split": "train", "graphs": ["generator://layered-dag-v0/0:40"],  # 40 random training graphs
                  "hardware": ["ring-4"]},
    "env": {"k_max": 4, "max_nodes": 64, "max_edges": 128},
    "bc": {"teacher": "dp", "epochs": 5},  # stage 1: imitate the stage DP's partitions of the training graphs
    "ppo": {"n_steps": 512, "batch_size": 128, "n_epochs": 4},  # passed to MaskablePPO as they are
    "policy": {"extractor": {"hidden": 32, "layers": 2}},
    "eval": {"split": "heldout", "graphs": ["generator://layered-dag-v0/1000:1003"], "every": 2000},
    "total_timesteps": 6000, "checkpoint_every": 0, "seed": 0, "out_dir": str(out),
})
ckpt = train(cfg, progress=False)
curve = json.loads((out / "train_log.json").read_text())["curve"]
for point in curve:
    print({k: point[k] for k in point if k in ("timesteps", "eval_mean_score", "train_mean_score")})"""),
    new_markdown_cell("""## Zero-shot on a graph it never saw

`tiny://attention-v1` is one transformer encoder layer; the policy was trained on random DAGs only."""),
    new_code_cell("""zero = evaluate_policy_on(ckpt, "tiny://attention-v1", "ring-4")
print("zero-shot score:", round(zero["mean_score"], 3), "| repair:", zero["repair"])"""),
    new_markdown_cell("""## Fine-tune on it

Fine-tuning starts from the pre-trained weights; the first point of its curve is the zero-shot
score."""),
    new_code_cell("""ft = finetune(ckpt, "tiny://attention-v1", "ring-4", total_timesteps=1500,
              ppo={"n_steps": 256, "batch_size": 64}, eval={"every": 500},
              out_dir=str(out.parent / "finetune"), progress=False)
ft_curve = json.loads((out.parent / "finetune" / "train_log.json").read_text())["curve"]
after = evaluate_policy_on(ft, "tiny://attention-v1", "ring-4")
print("after fine-tuning:", round(after["mean_score"], 3))"""),
    new_code_cell("""import matplotlib.pyplot as plt

fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].plot([p["timesteps"] for p in curve], [p.get("train_mean_score") for p in curve], label="training episodes")
ev = [p for p in curve if p.get("eval_mean_score") is not None]
ax[0].plot([p["timesteps"] for p in ev], [p["eval_mean_score"] for p in ev], marker="o", label="held-out graphs")
ax[0].legend(fontsize=7)
ax[0].set_title("pre-training: mean score")
ax[0].set_xlabel("timesteps")
ax[1].plot([p["timesteps"] for p in ft_curve], [p.get("eval_mean_score") for p in ft_curve], marker="o")
ax[1].set_title("fine-tuning on attention-v1")
ax[1].set_xlabel("timesteps")
plt.tight_layout()
plt.show()"""),
    new_markdown_cell("""## The shipped policy on BERT-base

Six thousand steps on 40 small graphs is a demonstration. The policy shipped with the package was
pre-trained the same way on 300 layered DAGs and ten zoo models (about 20 minutes on 2 cores), and
never saw BERT-base. One greedy episode plus repair:"""),
    new_code_cell("""from mcm_gym.learn.checkpoints import resolve_checkpoint

bert = evaluate_policy_on(resolve_checkpoint("pretrained"), "zoo://bert-base-v1", "ring-8")
print("zero-shot on BERT-base / ring-8:", round(bert["mean_score"], 3))"""),
    new_markdown_cell("""Compare it with the searches of notebook 2 (random search, simulated annealing, the stage DP);
BENCHMARKS.md has the paper's experiments (`mcm-gym experiment ...`) with this policy."""),
]

NOTEBOOKS = {
    "01_problem_and_env.ipynb": NB01,
    "02_baselines_and_sparsity.ipynb": NB02,
    "03_train_and_finetune.ipynb": NB03,
    "04_bring_your_own_model_and_hardware.ipynb": NB04,
    "05_plug_in_your_agent.ipynb": NB05,
}


def main() -> None:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for name, cells in NOTEBOOKS.items():
        nbformat.write(new_notebook(cells=cells, metadata=meta), HERE / name)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
