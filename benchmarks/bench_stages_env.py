"""Sequential env for third-party agents: per-node chips vs stage ends (issue 14).

sb3-contrib ``MaskablePPO`` as a third party runs it, on ``MCMPartition-v0`` in ``mode="sequential"``
(one step per node) and ``mode="stages"`` (one step per chip: where its stage ends), with two
policies: ``gnn`` = the package's documented settings (``policy_kwargs()`` from
:mod:`mcm_gym.learn.extractor`, PPO settings :data:`mcm_gym.learn.model.DEFAULT_PPO`) and ``mlp`` =
``MaskablePPO("MultiInputPolicy", env)`` with every default. Each run trains for ``--steps`` env steps
(20,480 on the DAG, 10,240 on BERT) and records every episode's score; it reports the mean of the last 100 episodes, the
greedy (deterministic) policy's score, and, for stages runs, both again at the number of episodes a
sequential run completes in the same steps (``steps // n``: equal episodes). The ``dp`` searcher
(budget 64) is the reference.

Run one cell: ``python benchmarks/bench_stages_env.py run --instance dag --mode stages --policy gnn
--reward shaped --seed 0`` (appends to ``benchmarks/results/stages_env.json``); everything:
``python benchmarks/bench_stages_env.py all`` (3 seeds on the DAG, 2 on BERT: about 35 min on 2 cores); the table:
``python benchmarks/bench_stages_env.py table``. Seeded: the same cell gives the same scores.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

INSTANCES = {"dag": ("generator://layered-dag-v0/1001", "ring-4"), "bert": ("zoo://bert-base-v1", "ring-8")}
#: env steps per training run and seeds: BERT's sequential GNN run takes ~4 min for 10,240 steps on 2 cores
STEPS = {"dag": 20_480, "bert": 10_240}
SEEDS = {"dag": 3, "bert": 2}
OUT = Path(__file__).resolve().parent / "results" / "stages_env.json"
CELLS = [("sequential", "final"), ("stages", "final"), ("stages", "shaped")]


def _greedy(model: Any, env: Any) -> float:
    """Score of one deterministic episode from ``env.reset(seed=0)``."""
    obs, _ = env.reset(seed=0)
    done, info = False, dict[str, Any]()
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, info = env.step(int(action))
    return float(info["score"])


def run_cell(instance: str, mode: str, policy: str, reward: str, seed: int, steps: int) -> dict[str, Any]:
    """Train one MaskablePPO and return its row (scores, seconds)."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    from mcm_gym.env.partition_env import MCMPartitionEnv
    from mcm_gym.learn.extractor import policy_kwargs
    from mcm_gym.learn.model import DEFAULT_PPO

    torch.set_num_threads(1)
    graph, hw = INSTANCES[instance]
    env = MCMPartitionEnv(graph, hw, mode=mode, reward=reward)
    probe = MCMPartitionEnv(graph, hw, mode=mode, reward=reward)  # greedy episodes, apart from training
    n = env.problem.graph.n
    equal_eps = steps // n  # episodes a sequential run completes in `steps`
    scores: list[float] = []
    at_equal: dict[str, float] = {}

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done:
                    scores.append(float(info["score"]))
                    if mode == "stages" and len(scores) == equal_eps:
                        at_equal["last100"] = float(np.mean(scores[-100:]))
                        at_equal["greedy"] = _greedy(self.model, probe)
            return True

    if policy == "gnn":
        model = MaskablePPO("MultiInputPolicy", env, policy_kwargs=policy_kwargs(), seed=seed, verbose=0,
                            **DEFAULT_PPO)
    else:
        model = MaskablePPO("MultiInputPolicy", env, seed=seed, verbose=0)
    t = time.perf_counter()
    model.learn(steps, callback=Record())
    wall = time.perf_counter() - t
    row: dict[str, Any] = {"instance": instance, "graph": graph, "hardware": hw, "mode": mode, "policy": policy,
                           "reward": reward, "seed": seed, "steps": steps, "episodes": len(scores),
                           "last100": float(np.mean(scores[-100:])), "greedy": _greedy(model, probe),
                           "train_s": round(wall, 2), "load_average_1min": os.getloadavg()[0]}
    if at_equal:
        row.update(equal_episodes=equal_eps, equal_last100=at_equal["last100"], equal_greedy=at_equal["greedy"])
    return row


def run_dp(instance: str) -> dict[str, Any]:
    """The ``dp`` searcher's score (budget 64, seed 0) and wall time (s)."""
    from mcm_gym import Problem, get_hardware, load_graph
    from mcm_gym.search import get_searcher
    from mcm_gym.search.dp import StageSplitter

    graph, hw = INSTANCES[instance]
    pr = Problem(load_graph(graph), get_hardware(hw))
    t = time.perf_counter()
    res = get_searcher("dp").search(pr, 64, seed=0)
    wall = time.perf_counter() - t
    part, _ = StageSplitter(pr).split(np.arange(pr.n))  # the best split of the order stages mode uses
    ceiling = float(pr.scores(part[None])[0]) if part is not None else 0.0
    return {"instance": instance, "graph": graph, "hardware": hw, "mode": "dp", "policy": "-", "reward": "-",
            "seed": 0, "score": res.score, "wall_s": round(wall, 3), "stored_order_split": ceiling}


def run_random(instance: str, mode: str, episodes: int = 100) -> dict[str, Any]:
    """The random masked policy's mean score over ``episodes`` episodes (episode ``i``: reset seed and
    action stream ``i``)."""
    from mcm_gym.env.partition_env import MCMPartitionEnv

    graph, hw = INSTANCES[instance]
    env = MCMPartitionEnv(graph, hw, mode=mode)
    scores = []
    t = time.perf_counter()
    for i in range(episodes):
        env.reset(seed=i)
        rng = np.random.default_rng(i)
        done, info = False, dict[str, Any]()
        while not done:
            _, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        scores.append(float(info["score"]))
    return {"instance": instance, "graph": graph, "hardware": hw, "mode": mode, "policy": "random", "reward": "-",
            "seed": 0, "episodes": episodes, "score": float(np.mean(scores)),
            "wall_s": round(time.perf_counter() - t, 2)}


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["instance"], r["mode"], r["policy"], r["reward"], r["seed"], r.get("steps"))


def _save(row: dict[str, Any], out: Path) -> None:
    rows = json.loads(out.read_text()) if out.exists() else []
    rows = [r for r in rows if _key(r) != _key(row)] + [row]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(row))


def _cell(ref: float, x: float) -> str:
    """``x`` and its gap below ``ref`` in % (negative: above it)."""
    return f"{x:.3f} ({(ref - x) / ref:.1%})"


def table(out: Path) -> str:
    """The markdown table: per instance, cell and policy the mean over seeds (score, gap to dp's score
    in %, training seconds)."""
    rows = json.loads(out.read_text())
    lines = ["| instance | agent | seeds | episodes | last 100 episodes (gap to dp) | greedy (gap to dp) "
             "| s (train / search / play) |", "|---|---|---:|---:|---:|---:|---:|"]
    for inst, (graph, hw) in INSTANCES.items():
        dp = [r for r in rows if r["instance"] == inst and r["mode"] == "dp"]
        if not dp:
            continue
        ref = dp[0]["score"]
        lines.append(f"| {graph} / {hw} | dp (budget 64) | 1 | - | {ref:.3f} (0.0%) | - | {dp[0]['wall_s']:.2f} |")
        if "stored_order_split" in dp[0]:
            lines.append(f"| | best split of the stored order (stages mode's ceiling) | 1 | - | "
                         f"{_cell(ref, dp[0]['stored_order_split'])} | - | - |")
        for r in rows:
            if r["instance"] == inst and r["policy"] == "random":
                lines.append(f"| | {r['mode']}, random masked policy | 1 | {r['episodes']} | {_cell(ref, r['score'])} "
                             f"| - | {r['wall_s']:.1f} (play) |")
        groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
        for r in rows:
            if r["instance"] == inst and r["mode"] != "dp" and r["policy"] != "random":
                groups.setdefault((r["mode"], r["policy"], r["reward"], r["steps"]), []).append(r)
        for (mode, policy, reward, steps), rs in sorted(groups.items()):
            name = f"{mode}{', ' + reward if mode == 'stages' else ''}, {policy}"
            eps = int(np.mean([r["episodes"] for r in rs]))
            lines.append(f"| | {name}, {steps:,} steps | {len(rs)} | {eps:,} | "
                         f"{_cell(ref, float(np.mean([r['last100'] for r in rs])))} | "
                         f"{_cell(ref, float(np.mean([r['greedy'] for r in rs])))} | "
                         f"{np.mean([r['train_s'] for r in rs]):.0f} |")
            if all("equal_last100" in r for r in rs):
                lines.append(f"| | {name}, at {rs[0]['equal_episodes']:,} episodes | {len(rs)} | "
                             f"{rs[0]['equal_episodes']:,} | "
                             f"{_cell(ref, float(np.mean([r['equal_last100'] for r in rs])))} | "
                             f"{_cell(ref, float(np.mean([r['equal_greedy'] for r in rs])))} | - |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["run", "dp", "random", "all", "table"])
    ap.add_argument("--instance", choices=sorted(INSTANCES), default="dag")
    ap.add_argument("--mode", choices=["sequential", "stages"], default="stages")
    ap.add_argument("--policy", choices=["gnn", "mlp"], default="gnn")
    ap.add_argument("--reward", choices=["final", "shaped"], default="final")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (all; default 3 on dag, 2 on bert)")
    ap.add_argument("--steps", type=int, default=None, help="env steps per run (default 20,480 on dag, 10,240 on bert)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.what == "table":
        print(table(args.out))
    elif args.what == "dp":
        _save(run_dp(args.instance), args.out)
    elif args.what == "random":
        _save(run_random(args.instance, args.mode), args.out)
    elif args.what == "run":
        steps = args.steps or STEPS[args.instance]
        _save(run_cell(args.instance, args.mode, args.policy, args.reward, args.seed, steps), args.out)
    else:
        for inst in INSTANCES:
            _save(run_dp(inst), args.out)
            for mode in ("sequential", "stages"):
                _save(run_random(inst, mode), args.out)
            for mode, reward in CELLS:
                for policy in ("gnn", "mlp"):
                    for seed in range(args.seeds or SEEDS[inst]):
                        _save(run_cell(inst, mode, policy, reward, seed, args.steps or STEPS[inst]), args.out)
        print(table(args.out))


if __name__ == "__main__":
    main()
