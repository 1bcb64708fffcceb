"""Pre-train the one-shot policy on the training split by RL (the shipped ``pretrained`` comes from this).

    python agents/pretrain_oneshot.py --out runs/pretrain_oneshot --wall-time 1500

writes ``best.pt`` (the update with the best validation score; the shipped file), ``final.pt``, their
JSON sidecars (every training instance, settings, the curve) and ``curve.json``. All logic is in
:mod:`mcm_gym.learn.oneshot_pretrain`; ``--bc-epochs N`` clones the stage-DP teacher first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mcm_gym.cli import evaluation_count
from mcm_gym.core.hardware import HardwareError, get_hardware
from mcm_gym.learn.oneshot import STAGE_EXTRA_ORDERS, STAGE_ORDERS, STAGE_ORDERS_ALL, check_orders
from mcm_gym.learn.oneshot_pretrain import PretrainConfig, pretrain_oneshot


def _orders(text: str) -> tuple[str, ...]:
    try:
        return check_orders(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--wall-time", type=float, default=1500.0, help="seconds of RL")
    ap.add_argument("--generator-seeds", type=int, default=300, help="seeds 0..N-1 of layered-dag-v0")
    ap.add_argument("--bc-epochs", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--sharpness", type=float, default=3.0)
    ap.add_argument("--ent-coef", type=float, default=0.0)
    ap.add_argument("--head", choices=["nodes", "stages"], default="nodes",
                    help="a chip per node, or where pipeline stages end")
    ap.add_argument("--stage-sharpness", type=float, default=50.0)
    ap.add_argument("--count-prior", type=float, default=3.0, help="stages head: nats per chip left empty")
    ap.add_argument("--cut-prior", type=float, default=10.0,
                    help="stages head: nats per unit of a cut's transfer time above an equal stage's compute time")
    ap.add_argument("--max-log-sharpness", type=float, default=2.0, help="stages head: clamp on the learned b")
    ap.add_argument("--speed-prior", type=float, default=20.0,
                    help="stages head: nats per unit of log predicted bottleneck of an (order, m) pair's greedy ends")
    ap.add_argument("--balance", choices=["global", "rest"], default="rest",
                    help="stages head: stage k of m aims at share k/m, or at an equal part of what is left")
    ap.add_argument("--extra-orders", type=int, default=STAGE_EXTRA_ORDERS,
                    help="stages head: perturbed node orders added to its named ones")
    ap.add_argument("--orders", type=_orders, default=STAGE_ORDERS_ALL,
                    help=f"stages head: its named node orders, comma-separated, from {','.join(STAGE_ORDERS_ALL)} "
                         f"(default 'all': every one; {','.join(STAGE_ORDERS)}: the four of v8 and before)")
    ap.add_argument("--val-zoo", nargs="*", default=[],
                    help="zoo graphs of the train split held out of training and validated on")
    ap.add_argument("--zoo-share", type=float, default=0.4, help="the zoo graphs' total chance per draw")
    ap.add_argument("--kl-coef", type=float, default=0.0,
                    help="KL pull towards where RL starts: the untrained priors, or the cloned policy with "
                         "--bc-epochs (reward units per nat; 0: off)")
    ap.add_argument("--polish", type=evaluation_count, default=0,
                    help="evaluations of local polish on each repaired sample (and the validated greedy one): "
                         "the polished score is the reward (0: off)")
    ap.add_argument("--hardware", nargs="+", default=PretrainConfig().hardware,
                    help="presets every training graph is placed on, with ?switch=on suffixes "
                         "(e.g. 'ring-4?neighbor_only=on&triangle=on'); validation uses the same")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in args.hardware:  # a typo would otherwise only drop that hardware's instances
        try:
            get_hardware(name)
        except (HardwareError, ValueError) as e:
            ap.error(f"--hardware {name}: {e}")
    torch.set_num_threads(1)
    cfg = PretrainConfig(generator_seeds=list(range(args.generator_seeds)), bc_epochs=args.bc_epochs,
                         wall_time=args.wall_time, seed=args.seed, val_zoo=list(args.val_zoo),
                         zoo_share=args.zoo_share, hardware=list(args.hardware),
                         policy={"hidden": 64, "layers": 3, "sharpness": args.sharpness, "head": args.head,
                                 "stage_sharpness": args.stage_sharpness, "count_prior": args.count_prior,
                                 "cut_prior": args.cut_prior, "max_log_sharpness": args.max_log_sharpness,
                                 "speed_prior": args.speed_prior, "balance": args.balance,
                                 "extra_orders": args.extra_orders, "orders": list(args.orders)},
                         rl={"samples_per_graph": 32, "learning_rate": args.learning_rate, "epochs": 4,
                             "instances_per_update": 16, "ent_coef": args.ent_coef,
                             "kl_coef": args.kl_coef, "polish": args.polish})
    pretrain_oneshot(cfg, args.out, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
