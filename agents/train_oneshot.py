"""Train the one-shot policy from scratch on one instance, for several seeds, and write the curves.

    python agents/train_oneshot.py --graph zoo://bert-base-v1 --hardware ring-8 --samples 2000 \
        --seeds 0 1 2 3 4 --out benchmarks/results/oneshot/bert_ring8.json

Every repaired candidate (sampled or greedy) counts as one sample; the JSON holds each run's curve
(samples, wall time, best and greedy score per update) and its settings. All logic is in
:mod:`mcm_gym.learn.oneshot_train`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mcm_gym.learn.oneshot_train import OneShotTrainConfig, train_oneshot


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
    ap.add_argument("--prior", default="pipeline")
    ap.add_argument("--sharpness", type=float, default=3.0)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--no-repair", action="store_true", help="invalid candidates score 0 (the solver ablation)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    for seed in args.seeds:
        cfg = OneShotTrainConfig(max_samples=args.samples, samples_per_graph=args.samples_per_graph,
                                 learning_rate=args.learning_rate, epochs=args.epochs, target=args.target,
                                 use_repair=not args.no_repair,
                                 policy={"prior": args.prior, "sharpness": args.sharpness, "hidden": args.hidden,
                                         "layers": args.layers}, seed=seed)
        run = train_oneshot([(args.graph, args.hardware)], cfg)
        last = run.curve[-1]
        print(f"seed {seed}: best {run.best_score[0]:.4f}, greedy {last['greedy_score'][0]:.4f}, "
              f"{run.samples} samples, {run.wall_time:.0f} s", flush=True)
        runs.append({"seed": seed, "best_score": run.best_score[0], "samples": run.samples,
                     "wall_time": run.wall_time,
                     "curve": [{"samples": r["samples"], "wall_time": round(r["wall_time"], 3),
                                "mean_score": r["mean_score"], "greedy_score": r["greedy_score"][0],
                                "best_score": r["best_score"][0]} for r in run.curve]})
    best = np.array([r["best_score"] for r in runs])
    print(f"best over seeds: mean {best.mean():.4f} std {best.std():.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
