"""Train or fine-tune the MaskablePPO + GNN partitioner: the ``mcm-gym train`` / ``finetune`` commands.

Run: ``python agents/train_ppo.py agents/configs/pretrain_layered.yaml --out runs/pre``
(same options as ``mcm-gym train``), or
``python agents/train_ppo.py finetune runs/pre/final.zip --graph zoo://bert-base-v1``.
"""

from __future__ import annotations

import sys

from mcm_gym.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    raise SystemExit(main(argv if argv[:1] == ["finetune"] else ["train", *argv]))
