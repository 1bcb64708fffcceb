"""Write the shipped ``priors`` checkpoint: an untrained stages-head one-shot policy (torch seed 0).

    python agents/make_priors.py --out mcm_gym/learn/shipped/priors-v2.pt
    python agents/make_priors.py --orders graph,dfs,asap,alap --out priors-v1.pt   # the four orders of v1

Its output layers are zero, so its candidates come from the priors alone (speed prior over (order,
m), rest balance on compute time, the eight named orders and 24 perturbed ones; ``priors-v1`` had
the first four named orders); the GNN is as ``pretrained`` builds it
(hidden 64, 3 layers), so fine-tuning from it is training from scratch at that size. K_max 8.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mcm_gym.learn.oneshot import STAGE_ORDERS_ALL, check_orders, oneshot_policy_kwargs
from mcm_gym.learn.oneshot_search import save_oneshot
from mcm_gym.learn.oneshot_train import oneshot_envs, policy_for_envs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k-max", type=int, default=8)
    ap.add_argument("--orders", default="all",
                    help=f"its named node orders, comma-separated, from {','.join(STAGE_ORDERS_ALL)}, or 'all'")
    args = ap.parse_args(argv)
    try:
        orders = check_orders(args.orders)
    except ValueError as e:
        ap.error(f"--orders: {e}")
    torch.manual_seed(0)
    envs = oneshot_envs([("tiny://diamond-v1", f"ring-{args.k_max}")], k_max=args.k_max)
    policy = policy_for_envs(envs, oneshot_policy_kwargs(hidden=64, layers=3, head="stages", orders=orders))
    save_oneshot(policy, args.out, {"kind": "priors", "method": "untrained (output layers zero: the priors alone)",
                                    "instances": [], "validation": []})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
