"""Pre-training the one-shot policy on the training split, by reinforcement learning.

:func:`pretrain_oneshot` trains one :class:`~mcm_gym.learn.oneshot.OneShotPolicy` over many instances
(generator seeds and the zoo's train graphs, each on every hardware that holds it) with
:func:`~mcm_gym.learn.oneshot_train.train_oneshot`: each update draws ``instances_per_update``
instances (zoo graphs with total probability ``zoo_share``), samples candidates from each, repairs
them and takes a policy-gradient step on the per-instance normalised repaired score. Optionally
(``bc_epochs > 0``) it first clones a teacher: the stage DP's best split of each graph's own node
order (the split the policy's pipeline prior can express; :func:`~mcm_gym.search.dp.best_split`).

Every ``val_every`` updates the greedy candidate (+ repair, + polish when ``rl["polish"]`` is set) is
scored on validation instances that are in the train split but never trained on (generator seeds
``val_seeds``), as a ratio to the
stage DP's score there; the policy with the best mean ratio is kept (``best.pt``) beside the last
(``final.pt``), each with a JSON sidecar naming every training instance, the settings and the curve.
Validation instances the stage DP scores 0 are dropped (logged); when no validation point was taken
(no update ran), the final policy is returned, with ``"selected": None``. The held-out split is not
used at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym._io import atomic_write_text
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.instances.zoo import TRAIN_SEEDS, split_ids
from mcm_gym.learn.oneshot import STAGE_ORDERS, OneShotPolicy, oneshot_policy_kwargs
from mcm_gym.learn.oneshot_search import save_oneshot
from mcm_gym.learn.oneshot_train import OneShotTrainConfig, greedy_scores, imitate_oneshot, train_oneshot

__all__ = ["PretrainConfig", "pretrain_oneshot", "training_instances"]


@dataclass
class PretrainConfig:
    """Settings of :func:`pretrain_oneshot`. ``hardware``: presets every graph is placed on (where
    its weights fit); ``generator_seeds``: ``generator://layered-dag-v0`` seeds (train split);
    ``zoo``: add the zoo's train graphs with at most ``max_nodes`` nodes; ``zoo_share``: their total
    chance per draw; ``val_seeds``: validation generator seeds (train split, not trained on);
    ``val_zoo``: zoo graphs of the train split held out of training and validated on, on every
    hardware that holds them (the generator seeds alone reward layered-DAG habits);
    ``bc_epochs``: teacher-cloning epochs before RL (0: RL only); ``wall_time``: seconds of RL;
    ``rl``: :class:`~mcm_gym.learn.oneshot_train.OneShotTrainConfig` fields (``max_samples`` and
    ``max_wall_time`` are set from ``samples`` and ``wall_time``); ``val_every``: updates (>= 1);
    the start (update 0) and update 1 are validated too, so a run that never beats its start on
    validation returns the start."""

    hardware: list[str] = field(default_factory=lambda: ["ring-4", "ring-8", "mesh-2x2"])
    generator_seeds: list[int] = field(default_factory=lambda: list(range(300)))
    zoo: bool = True
    max_nodes: int = 500
    zoo_share: float = 0.4
    val_seeds: list[int] = field(default_factory=lambda: list(range(950, 962)))
    val_zoo: list[str] = field(default_factory=list)
    bc_epochs: int = 0
    bc_learning_rate: float = 3e-3
    samples: int = 10**9
    wall_time: float = 1800.0
    val_every: int = 10
    policy: dict[str, Any] = field(default_factory=lambda: {"hidden": 64, "layers": 3, "sharpness": 3.0})
    rl: dict[str, Any] = field(default_factory=lambda: {"samples_per_graph": 32, "learning_rate": 5e-4,
                                                         "epochs": 4, "instances_per_update": 16})
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [s for s in self.generator_seeds + self.val_seeds if s not in TRAIN_SEEDS]
        if bad:
            raise ValueError(f"generator seeds {bad[:5]} are not in the train split ({TRAIN_SEEDS})")
        if set(self.generator_seeds) & set(self.val_seeds):
            raise ValueError("val_seeds overlap generator_seeds")
        if not 0 <= self.zoo_share < 1:
            raise ValueError(f"zoo_share must be in [0, 1), got {self.zoo_share}")
        bad_zoo = [g for g in self.val_zoo if g not in split_ids("train", generators=False)]
        if bad_zoo:
            raise ValueError(f"val_zoo {bad_zoo} are not zoo graphs of the train split")
        if not self.val_seeds:
            raise ValueError("val_seeds must name at least one validation seed (the best policy is selected on them)")
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1 update, got {self.val_every}")


def _fits(graph: str, hardware: str) -> bool:
    try:
        Problem(load_graph(graph), get_hardware(hardware))
    except InfeasibleError:
        return False
    return True


def training_instances(cfg: PretrainConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(zoo instances, generator instances)`` of ``cfg``: every graph on every hardware that holds it."""
    zoo = [(g, h) for g in (split_ids("train", generators=False) if cfg.zoo else [])
           if g not in cfg.val_zoo and load_graph(g).n <= cfg.max_nodes for h in cfg.hardware if _fits(g, h)]
    gen = [(f"generator://layered-dag-v0/{s}", h) for s in cfg.generator_seeds for h in cfg.hardware
           if _fits(f"generator://layered-dag-v0/{s}", h)]
    return zoo, gen


def _teacher(instances: Sequence[tuple[str, str]], all_orders: bool = False, named: Sequence[str] = STAGE_ORDERS
             ) -> tuple[list[tuple[str, str]], list[np.ndarray]]:
    """The stage DP's best split of each graph's own order (``all_orders``: the best-scoring split of
    the stages head's ``named`` orders), for the instances where one is valid."""
    from mcm_gym.learn.oneshot_train import stage_orders
    from mcm_gym.search.dp import best_split

    keep, parts = [], []
    for g, h in instances:
        pr = Problem(load_graph(g), get_hardware(h))
        orders = stage_orders(pr, cost=False, named=named)[0].numpy() if all_orders else [np.arange(pr.graph.n)]
        found = [p for p in (best_split(pr, o)[0] for o in orders) if p is not None]
        if found:
            keep.append((g, h))
            parts.append(max(found, key=lambda p: float(pr.evaluate(p).score[0])))
    return keep, parts


def _reference(instances: Sequence[tuple[str, str]]) -> list[float]:
    from mcm_gym.search import get_searcher

    return [get_searcher("dp").search(Problem(load_graph(g), get_hardware(h)), budget=100, seed=0).score
            for g, h in instances]


def pretrain_oneshot(cfg: PretrainConfig, out: str | Path,
                     log: Callable[[str], None] = print) -> tuple[OneShotPolicy, dict[str, Any]]:
    """Pre-train (see the module doc); writes ``out/best.pt``, ``out/final.pt`` (+ sidecars) and
    ``out/curve.json``; returns the best policy and its sidecar info."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    zoo, gen = training_instances(cfg)
    # every instance is kept: one whose candidates never repair to a valid partition scores 0 on every
    # sample, so its advantage is 0 and it adds no gradient
    instances = zoo + gen
    if not instances:
        raise ValueError("no training instance fits the hardware")
    val = [(f"generator://layered-dag-v0/{s}", h) for s in cfg.val_seeds for h in cfg.hardware
           if _fits(f"generator://layered-dag-v0/{s}", h)] + [(g, h) for g in cfg.val_zoo for h in cfg.hardware
                                                             if _fits(g, h)]
    ref_all = _reference(val)
    dropped = [v for v, r in zip(val, ref_all, strict=True) if not r > 0]
    if dropped:  # no ratio to a reference that found nothing valid
        log(f"validation: dropped {len(dropped)} instances the stage DP scores 0: {dropped[:5]}")
    val = [v for v, r in zip(val, ref_all, strict=True) if r > 0]
    ref = np.asarray([r for r in ref_all if r > 0])
    if not val:
        raise ValueError(f"no validation instance (val_seeds {cfg.val_seeds} on {cfg.hardware}) fits the hardware "
                         f"with a positive stage-DP score")
    log(f"{len(zoo)} zoo + {len(gen)} generator training instances, {len(val)} validation instances")
    torch.manual_seed(cfg.seed)
    init: OneShotPolicy | None = None
    bc_info: dict[str, Any] = {}
    if cfg.bc_epochs > 0:
        t0 = time.perf_counter()
        stages = cfg.policy.get("head", "nodes") == "stages"
        keep, parts = _teacher(instances, all_orders=stages, named=oneshot_policy_kwargs(**cfg.policy)["orders"])
        losses: list[float] = []
        init = imitate_oneshot(keep, parts, epochs=cfg.bc_epochs, learning_rate=cfg.bc_learning_rate,
                               policy_kwargs=oneshot_policy_kwargs(**cfg.policy), seed=cfg.seed,
                               on_epoch=lambda e, loss: losses.append(loss))
        teacher = "dp best_split of the " + ("best of the stage orders" if stages else "node order")
        bc_info = {"teacher": teacher, "instances": len(keep), "epochs": cfg.bc_epochs,
                   "losses": losses, "seconds": time.perf_counter() - t0}
        log(f"cloned the teacher on {len(keep)} instances in {bc_info['seconds']:.0f} s, loss {losses[-1]:.3f}")
    w_zoo = cfg.zoo_share / max(len(zoo), 1)
    w_gen = (1 - cfg.zoo_share) / max(len(gen), 1) if zoo else 1.0
    weights = [w_zoo] * len(zoo) + [w_gen] * len(gen)
    rl = OneShotTrainConfig(**{**cfg.rl, "max_samples": cfg.samples, "max_wall_time": cfg.wall_time,
                               "policy": cfg.policy, "seed": cfg.seed})
    curve: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_mean": -1.0}

    def info(extra: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "oneshot-pretrain", "method": "RL (policy gradient on repaired scores)"
                + (" after cloning the stage-DP teacher" if cfg.bc_epochs else ""),
                "settings": asdict(cfg), "instances": [list(i) for i in instances],
                "validation": [list(i) for i in val], "bc": bc_info, **extra}

    def validate(row: dict[str, Any]) -> None:
        if row["update"] % cfg.val_every and row["update"] != 1:
            return
        pol = row["policy"]
        steps = rl.polish  # validate what training rewards: with polish, the greedy partition polished
        ratio = np.asarray(greedy_scores(pol, val, polish_budget=steps)) / ref
        point = {"update": row["update"], "samples": row["samples"], "wall_time": row["wall_time"],
                 "mean_score": row["mean_score"], "kl": row["kl"], "val_mean": float(ratio.mean()),
                 "val_min": float(ratio.min()), "val_polish": steps}
        curve.append(point)
        sampled = float("nan") if row["mean_score"] is None else row["mean_score"]
        polished = f" + polish {steps}" if steps else ""
        log(f"update {row['update']}: {row['samples']} samples, {row['wall_time']:.0f} s, sampled mean "
            f"{sampled:.3f}, KL to start {row['kl']:.2f} nats, validation greedy{polished} / dp: mean "
            f"{ratio.mean():.4f} min {ratio.min():.3f}")
        if point["val_mean"] > best["val_mean"]:
            best.update(point)
            save_oneshot(pol, out / "best.pt", info({"selected": point, "curve": curve}))
        atomic_write_text(out / "curve.json", json.dumps(curve, indent=1))

    run = train_oneshot(instances, rl, init=init, on_update=validate, weights=weights)
    final = {"update": len(run.curve), "samples": run.samples, "wall_time": run.wall_time}
    save_oneshot(run.policy, out / "final.pt", info({"final": final, "curve": curve}))
    log(f"done in {time.perf_counter() - t_start:.0f} s; best validation mean {best['val_mean']:.4f} at update "
        f"{best.get('update')}")
    from mcm_gym.learn.oneshot_search import load_oneshot

    side = json.loads((out / "best.json").read_text())
    return load_oneshot(out / "best.pt"), side
