"""Solutions to the exercises of notebook 4 (``python notebooks/solutions/04_train_zero_shot_finetune.py``).

Exercises 4.2 and 4.3 train (about a minute each on a 2-core CPU)."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import torch

import mcm_gym
from mcm_gym.bench import leaderboard as lb
from mcm_gym.learn.config import TrainConfig
from mcm_gym.learn.oneshot_search import OneShotSearch
from mcm_gym.learn.train import finetune, train
from mcm_gym.search import get_searcher

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="IProgress not found")


def gap(problem, score):
    g = lb.gaps(problem, score)
    return g["gap_to_best"] if g else float("nan")


# Exercise 4.1 -------------------------------------------------------------------------------------
for graph, hardware in (("zoo://resnet-50-v1", "mesh-2x2"), ("zoo://swin-tiny-v1", "mesh-2x2")):
    problem = mcm_gym.Problem(mcm_gym.load_graph(graph), mcm_gym.get_hardware(hardware))
    policy = OneShotSearch("pretrained", train=False).search(problem, budget=1, seed=0).score
    dp = get_searcher("dp").search(problem, budget=32, seed=0).score
    print(f"4.1  {graph} / {hardware}: shipped policy {policy:.4f} (gap {gap(problem, policy):.2%}), "
          f"dp {dp:.4f} (gap {gap(problem, dp):.2%})")


# Exercise 4.2 -------------------------------------------------------------------------------------
def config(out: Path, bc: bool) -> TrainConfig:
    d = {"instances": {"split": "train", "graphs": ["generator://layered-dag-v0/0:40"], "hardware": ["ring-4"]},
         "env": {"k_max": 4, "max_nodes": 64, "max_edges": 128},
         "ppo": {"n_steps": 512, "batch_size": 128, "n_epochs": 4},
         "policy": {"extractor": {"hidden": 32, "layers": 2}},
         "eval": {"split": "heldout", "graphs": ["generator://layered-dag-v0/1000:1003"], "every": 2000},
         "total_timesteps": 6000, "checkpoint_every": 0, "seed": 0, "out_dir": str(out)}
    if bc:
        d["bc"] = {"teacher": "dp", "epochs": 5}
    return TrainConfig.from_dict(d)


tmp = Path(tempfile.mkdtemp())
curves = {}
for bc in (True, False):
    out = tmp / ("bc" if bc else "no-bc")
    ckpt = train(config(out, bc), progress=False)
    curves[bc] = json.loads((out / "train_log.json").read_text())["curve"]
    if bc:
        with_bc = ckpt
for bc, curve in curves.items():
    ev = [round(p["eval_mean_score"], 4) for p in curve if p.get("eval_mean_score") is not None]
    print(f"4.2  {'with' if bc else 'without'} behaviour cloning: held-out scores along training {ev}")
# Behaviour cloning starts PPO from a policy that already proposes DP-like stages, so the first
# held-out score is far higher; from random weights PPO needs many more steps to get there.

# Exercise 4.3 -------------------------------------------------------------------------------------
ft = finetune(with_bc, "tiny://attention-v1", "ring-4", total_timesteps=4500,
              ppo={"n_steps": 256, "batch_size": 64}, eval={"every": 500},
              out_dir=str(tmp / "finetune-4500"), progress=False)
ft_curve = json.loads((tmp / "finetune-4500" / "train_log.json").read_text())["curve"]
print("4.3  fine-tuning curve (steps, score):",
      [(p["timesteps"], round(p["eval_mean_score"], 4)) for p in ft_curve if p.get("eval_mean_score") is not None])
tiny = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
print(f"     the exact optimum: {get_searcher('exact', time_limit=60).search(tiny, budget=64, seed=0).score:.4f}")
# Once the greedy episode's repaired partition reaches the optimum, more steps cannot raise it; before
# that, more steps help only as long as PPO's samples still find better partitions.
