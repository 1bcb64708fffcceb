"""Train the learned partitioner (MaskablePPO + GNN) from a YAML config, using only ``mcm_gym.train``.

Run: ``python agents/train_ppo.py agents/configs/pretrain_layered.yaml``
     ``python agents/train_ppo.py agents/configs/bert_ring8.yaml --max-wall-time 900 --out runs/bert``
     ``python agents/train_ppo.py CONFIG --resume runs/x/checkpoints/step_0000100000.zip``
     ``python agents/train_ppo.py agents/configs/bert_ring8.yaml --finetune runs/pre/final.zip``
       (fine-tunes the checkpoint on the config's first graph and hardware with the config's PPO
       settings; the architecture comes from the checkpoint)
"""

from __future__ import annotations

import argparse

from mcm_gym.train import TrainConfig, curve_table, evaluate_policy_on, finetune, read_sidecar, train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="YAML file with TrainConfig fields")
    ap.add_argument("--out", help="override out_dir")
    ap.add_argument("--timesteps", type=int, help="override total_timesteps")
    ap.add_argument("--seed", type=int, help="override seed")
    ap.add_argument("--max-wall-time", type=float, help="stop training after this many seconds")
    ap.add_argument("--resume", help="continue from this checkpoint")
    ap.add_argument("--finetune", metavar="CKPT", help="fine-tune this checkpoint on --graph")
    ap.add_argument("--graph", help="graph to fine-tune on (default: the config's first) or to "
                    "evaluate the final policy on zero-shot")
    ap.add_argument("--hardware", help="hardware for --graph (default: the config's first)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    cfg = TrainConfig.from_yaml(args.config)
    changes = {k: v for k, v in {"out_dir": args.out, "total_timesteps": args.timesteps, "seed": args.seed,
                                 "max_wall_time": args.max_wall_time}.items() if v is not None}
    cfg = cfg.replace(**changes)
    if args.finetune:
        keep = ("graphs", "hardware", "eval_graphs", "eval_hardware", "max_nodes", "max_edges", "k_max",
                "extractor", "net_arch", "total_timesteps", "seed", "out_dir")
        settings = {k: v for k, v in cfg.to_dict().items() if k not in keep}
        final = finetune(args.finetune, args.graph or cfg.graphs[0], args.hardware or cfg.hardware[0],
                         cfg.total_timesteps, seed=cfg.seed, out_dir=args.out,
                         progress=not args.no_progress, **settings)
    else:
        final = train(cfg, resume_from=args.resume, progress=not args.no_progress)
    side = read_sidecar(final) or {}
    print(curve_table(side.get("curve", [])))
    print(f"best training score {side.get('best', {}).get('score', 0.0):.4f}; wrote {final}")
    if args.graph and not args.finetune:
        res = evaluate_policy_on(final, args.graph, args.hardware)
        print(f"zero-shot on {res['graph_id']} / {res['hardware_id']}: score {res['mean_score']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
