"""Train the one-shot policy from scratch on one instance, for several seeds, and write the curves.

    python agents/train_oneshot.py --graph zoo://bert-base-v1 --hardware ring-8 --samples 2000 \
        --seeds 0 1 2 3 4 --out benchmarks/results/oneshot/bert_ring8.json

Every repaired candidate (sampled or greedy) counts as one sample; the JSON holds each run's curve
(samples, wall time, best and greedy score per update) and its settings. All logic is in
:mod:`mcm_gym.learn.oneshot_train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcm_gym.learn.oneshot_train import OneShotTrainConfig, greedy_scores, train_oneshot


def _sb3_run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One MaskablePPO run; a curve row per rollout (the greedy candidate is scored outside the budget)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from mcm_gym.env.partition_env import MCMPartitionEnv
    from mcm_gym.learn.oneshot import ONESHOT_PPO, OneShotPolicy, oneshot_policy_kwargs

    def make() -> MCMPartitionEnv:
        return MCMPartitionEnv(args.graph, args.hardware, mode="oneshot", use_repair=not args.no_repair)

    env = DummyVecEnv([make] * 8)
    pk = oneshot_policy_kwargs(hidden=args.hidden, layers=args.layers, prior=args.prior, sharpness=args.sharpness)
    model = MaskablePPO(OneShotPolicy, env, policy_kwargs=pk, seed=seed, **ONESHOT_PPO)
    probe = make()
    t0 = time.perf_counter()
    scores: list[float] = []
    curve: list[dict[str, Any]] = []

    class Curve(BaseCallback):
        def _on_step(self) -> bool:
            scores.extend(float(i["score"]) for i in self.locals["infos"] if "score" in i)
            return True

        def _on_rollout_end(self) -> None:
            obs, _ = probe.reset(seed=0)
            action, _ = model.predict(obs, deterministic=True, action_masks=probe.action_masks())
            curve.append({"samples": len(scores), "wall_time": round(time.perf_counter() - t0, 3),
                          "mean_score": float(np.mean(scores[-128:])), "greedy_score": float(probe.step(action)[1]),
                          "best_score": max(scores)})

    model.learn(args.samples, callback=Curve())
    return {"seed": seed, "best_score": max(scores), "samples": len(scores), "wall_time": time.perf_counter() - t0,
            "curve": curve}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default="zoo://bert-base-v1")
    ap.add_argument("--hardware", default="ring-8")
    ap.add_argument("--samples", type=int, default=2000, help="repaired samples per run (the budget)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--samples-per-graph", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=3e-3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--target", choices=["candidate", "repaired"], default="candidate")
    ap.add_argument("--prior", default=None, help="pipeline, work or none (default: the head's, default_prior)")
    ap.add_argument("--sharpness", type=float, default=3.0)
    ap.add_argument("--head", choices=["nodes", "stages"], default="nodes",
                    help="a chip per node, or where pipeline stages end (the package's trainer only)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--no-repair", action="store_true", help="invalid candidates score 0 (the solver ablation)")
    ap.add_argument("--sb3", action="store_true",
                    help="train with sb3-contrib MaskablePPO + OneShotPolicy (ONESHOT_PPO, 8 envs) instead")
    ap.add_argument("--pretrain", nargs="+", default=[],
                    help="graphs (on --hardware) to train on first, from scratch; then fine-tune on --graph")
    ap.add_argument("--pretrain-samples", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.sb3 and args.head != "nodes":
        ap.error("--sb3 takes the nodes head only (MaskablePPO samples a chip per node)")
    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        cfg = OneShotTrainConfig(max_samples=args.samples, samples_per_graph=args.samples_per_graph,
                                 learning_rate=args.learning_rate, epochs=args.epochs, target=args.target,
                                 use_repair=not args.no_repair,
                                 policy={"prior": args.prior, "sharpness": args.sharpness, "hidden": args.hidden,
                                         "layers": args.layers, "head": args.head}, seed=seed)
        if args.sb3:
            runs.append(_sb3_run(args, seed))
        else:
            init, pre = None, {}
            if args.pretrain:
                pre_cfg = dataclasses.replace(cfg, max_samples=args.pretrain_samples)
                pre_run = train_oneshot([(g, args.hardware) for g in args.pretrain], pre_cfg)
                init = pre_run.policy
                zero_shot = greedy_scores(init, [(args.graph, args.hardware)])[0]
                pre = {"pretrain": {"graphs": args.pretrain, "samples": pre_run.samples,
                                    "wall_time": pre_run.wall_time, "best_score": pre_run.best_score,
                                    "zero_shot_greedy": zero_shot}}
                print(f"seed {seed}: pre-trained on {len(args.pretrain)} graphs ({pre_run.samples} samples, "
                      f"{pre_run.wall_time:.0f} s); zero-shot greedy on {args.graph}: {zero_shot:.4f}", flush=True)
            run = train_oneshot([(args.graph, args.hardware)], cfg, init=init)
            runs.append({"seed": seed, "best_score": run.best_score[0], "samples": run.samples,
                         "wall_time": run.wall_time, **pre,
                         "curve": [{"samples": r["samples"], "wall_time": round(r["wall_time"], 3),
                                    "mean_score": r["mean_score"], "greedy_score": r["greedy_score"][0],
                                    "best_score": r["best_score"][0]} for r in run.curve]})
        last = runs[-1]
        print(f"seed {seed}: best {last['best_score']:.4f}, greedy {last['curve'][-1]['greedy_score']:.4f}, "
              f"{last['samples']} samples, {last['wall_time']:.0f} s", flush=True)
    best = np.array([r["best_score"] for r in runs])
    print(f"best over seeds: mean {best.mean():.4f} std {best.std():.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
