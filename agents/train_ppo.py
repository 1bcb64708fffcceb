"""Train or fine-tune the MaskablePPO + GNN partitioner: the ``mcm-gym train`` / ``finetune`` commands.

Run: ``python agents/train_ppo.py agents/configs/pretrain_bc.yaml --out runs/pre`` (behaviour cloning
then PPO; ``pretrain_layered.yaml`` is the RL-only recipe; same options as ``mcm-gym train``), or
``python agents/train_ppo.py finetune runs/pre/best.zip --graph zoo://bert-base-v1``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mcm_gym import cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return cli.main(args if args[:1] == ["finetune"] else ["train", *args])


if __name__ == "__main__":
    raise SystemExit(main())
