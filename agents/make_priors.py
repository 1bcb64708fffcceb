"""Write the shipped ``priors`` checkpoint: an untrained stages-head one-shot policy (torch seed 0).

    python agents/make_priors.py --out mcm_gym/learn/shipped/priors-v1.pt

Its output layers are zero, so its candidates come from the priors alone (speed prior over (order,
m), rest balance on compute time, 24 perturbed orders); the GNN is as ``pretrained`` builds it
(hidden 64, 3 layers), so fine-tuning from it is training from scratch at that size. K_max 8.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mcm_gym.learn.oneshot import oneshot_policy_kwargs
from mcm_gym.learn.oneshot_search import save_oneshot
from mcm_gym.learn.oneshot_train import oneshot_envs, policy_for_envs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k-max", type=int, default=8)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    envs = oneshot_envs([("tiny://diamond-v1", f"ring-{args.k_max}")], k_max=args.k_max)
    policy = policy_for_envs(envs, oneshot_policy_kwargs(hidden=64, layers=3, head="stages"))
    save_oneshot(policy, args.out, {"kind": "priors", "method": "untrained (output layers zero: the priors alone)",
                                    "instances": [], "validation": []})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
