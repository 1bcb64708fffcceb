"""Training runs of the learned partitioner (MaskablePPO + :class:`~mcm_gym.learn.extractor.GNNExtractor`):
pre-training (:func:`train`), its behaviour-cloning warm start (:func:`warm_start`) and fine-tuning
(:func:`finetune`).

The learned method of Xie et al. (MLSys 2022): a GNN policy proposes a chip per node, the Z3 repair
makes the candidate valid, the reward is the repaired partition's score. Pre-train on many graphs,
evaluate zero-shot on new ones (:func:`~mcm_gym.learn.evaluation.evaluate_policy_on`), fine-tune.
The command line is a thin layer over these functions. The pieces live in their own modules:
:mod:`~mcm_gym.learn.config` (the config), :mod:`~mcm_gym.learn.resolution` (its instances),
:mod:`~mcm_gym.learn.factories` (envs), :mod:`~mcm_gym.learn.model` (the model builder),
:mod:`~mcm_gym.learn.callbacks` (curve, validation, checkpoints), :mod:`~mcm_gym.learn.checkpoints`
(checkpoint I/O) and :mod:`~mcm_gym.learn.evaluation` (running a policy); the names callers used
from here before the split are re-exported.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.instances.catalog import load_graph
from mcm_gym.learn.callbacks import RunState, make_callbacks
from mcm_gym.learn.checkpoints import (
    curve_table,
    k_max_of,
    load_model,
    policy_for_env,
    read_sidecar,
    save_atomic,
    sidecar_path,
    transplant,
)
from mcm_gym.learn.config import BCConfig, InstancesConfig, TrainConfig
from mcm_gym.learn.evaluation import evaluate_policy_on, run_episodes
from mcm_gym.learn.factories import HardwareMixEnv, make_env, make_train_env
from mcm_gym.learn.model import build_model, tensorboard_dir
from mcm_gym.learn.resolution import Instances, expand_graph_specs, resolve_instances

if TYPE_CHECKING:
    from sb3_contrib import MaskablePPO

__all__ = ["train", "finetune", "warm_start", "TrainingInterrupted",
           # re-exported from the modules train.py was split into
           "TrainConfig", "Instances", "resolve_instances", "HardwareMixEnv", "make_env", "make_train_env",
           "build_model", "load_model", "save_atomic", "sidecar_path", "read_sidecar", "curve_table",
           "policy_for_env", "transplant", "run_episodes", "evaluate_policy_on"]


def _progress_ok(progress: bool) -> bool:
    if not progress:
        return False
    try:
        import rich  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError:
        warnings.warn("no progress bar: it needs the tqdm and rich packages", stacklevel=3)
        return False
    return True


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the run was saved to :attr:`checkpoint` (resumable with
    ``train(cfg, resume_from=checkpoint)``) before the interrupt propagates."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"training interrupted; saved {checkpoint}")
        self.checkpoint = checkpoint


def _fit(model: MaskablePPO, cfg: TrainConfig, inst: Instances, out: Path, state: RunState, progress: bool,
         reset: bool, meta: dict[str, Any]) -> Path:
    cbs = make_callbacks(cfg, inst, out, state, meta)
    remaining = cfg.total_timesteps - (0 if reset else model.num_timesteps)
    if remaining > 0:
        try:
            model.learn(total_timesteps=remaining, callback=cbs.callback, reset_num_timesteps=reset,
                        progress_bar=_progress_ok(progress), tb_log_name="ppo")
        except KeyboardInterrupt:  # keep what was learned (the weights of the last update), then stop
            if getattr(cbs.recorder, "model", None) is None:  # interrupted before learning began: nothing to keep
                raise
            raise TrainingInterrupted(cbs.recorder.save(out / "interrupted.zip")) from None
    else:  # nothing left to learn (e.g. resuming a finished run): still write final.zip
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
        cbs.callback.init_callback(model)
    return cbs.finish()


def warm_start(model: MaskablePPO, cfg: TrainConfig, inst: Instances, progress: bool = True) -> dict[str, Any]:
    """Behaviour cloning of ``cfg.bc.teacher`` on every training graph x hardware, plus ``cfg.bc.graphs``
    (see :mod:`mcm_gym.learn.imitation`); returns what it did (examples, teacher scores, per-epoch
    losses, s)."""
    from mcm_gym.learn.imitation import behaviour_clone, collect_demos

    bc = cfg.bc
    t0 = time.perf_counter()
    pairs = [(g, hw) for g in inst.graphs for hw in inst.hardware]
    pairs += [(load_graph(x), hw) for x in expand_graph_specs(bc.graphs) for hw in inst.hardware]
    show = _progress_ok(progress)

    def say(msg: str) -> None:
        if show:
            print(msg)

    demos = collect_demos(pairs, inst.k_max, teacher=str(bc.teacher), budget=bc.budget, seed=cfg.seed)
    say(f"behaviour cloning: {len(demos)} steps of {demos.episodes} {bc.teacher} partitions "
        f"(mean teacher score {np.mean(demos.teacher_scores or [0]):.4f}; {demos.dropped} masked steps dropped)")
    hist = behaviour_clone(model, demos, epochs=bc.epochs, batch_size=bc.batch_size, learning_rate=bc.learning_rate,
                           switch_weight=bc.switch_weight, seed=cfg.seed,
                           progress=lambda e, r: say(f"  epoch {e}: nll {r['nll']:.4f}, accuracy {r['accuracy']:.3f}"))
    return {"teacher": bc.teacher, "examples": len(demos), "episodes": demos.episodes,
            "dropped": demos.dropped, "infeasible": demos.infeasible,
            "teacher_mean_score": float(np.mean(demos.teacher_scores)) if demos.teacher_scores else None,
            "epochs": hist, "wall_time": time.perf_counter() - t0}


def train(cfg: TrainConfig, resume_from: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Train a MaskablePPO + GNN policy on ``cfg``'s instances; return the path of ``final.zip``.

    Writes to ``cfg.out_dir``: ``checkpoints/step_<timesteps>.zip`` every ``checkpoint_every``
    timesteps, ``best.zip`` (the one with the best mean ``eval`` score so far; choose validation
    graphs apart from the ones you report on, e.g. ``eval.split: heldout``), ``final.zip``, a
    ``.json`` sidecar beside each (config, curve, best partition) and ``train_log.json`` (the live
    curve). With ``cfg.bc.teacher``, behaviour cloning first (:func:`warm_start`). ``resume_from`` a
    checkpoint continues its timestep count and curve up to ``cfg.total_timesteps`` (the random
    streams restart from ``seed + timesteps``, so a resumed run is reproducible but not
    bit-identical to an uninterrupted one).
    """
    import torch

    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inst = resolve_instances(cfg)
    venv = make_train_env(cfg, inst)
    meta: dict[str, Any] = {"kind": "train", "parent": None}
    try:
        if resume_from is not None:
            model = load_model(resume_from, env=venv, device=cfg.device)
            model.set_random_seed(cfg.seed + model.num_timesteps)
            state = RunState.from_sidecar(read_sidecar(resume_from))
            meta["parent"] = str(resume_from)
            model.tensorboard_log = tensorboard_dir(cfg.log_dir)
        else:
            model = build_model(venv, ppo=cfg.ppo, policy=cfg.policy, seed=cfg.seed, device=cfg.device,
                                log_dir=cfg.log_dir)
            state = RunState()
            if cfg.bc.teacher:
                meta["bc"] = warm_start(model, cfg, inst, progress)
        return _fit(model, cfg, inst, out, state, progress, reset=resume_from is None, meta=meta)
    finally:
        venv.close()


def finetune(checkpoint: str | os.PathLike[str], graph: Graph | str, hardware: Hardware | str | None = None,
             total_timesteps: int = 20_000, *, out_dir: str | os.PathLike[str] | None = None,
             seed: int = 0, progress: bool = True, **overrides: Any) -> Path:
    """Fine-tune a pre-trained policy on one instance; return the path of the new ``final.zip``.

    The new run reuses the checkpoint's config (from its sidecar, either format; else the defaults)
    with ``instances`` = ``graph`` on ``hardware`` (default: the graph's ``default_hardware``, else
    ring-8), evaluation on that instance, padding sized to the graph and the checkpoint's ``K_max``,
    and no warm start. ``overrides`` go to :meth:`TrainConfig.replace` (e.g.
    ``ppo={"n_steps": 64, "learning_rate": 1e-4}``, ``eval={"every": 500}``, ``checkpoint_every=0``);
    unless ``ppo`` sets ``n_steps``, it is cut to ``total_timesteps`` (per env) where the
    checkpoint's is larger, so a short fine-tune stops where asked. The weights and optimizer state
    come from the checkpoint; the timestep count starts at 0 and the first curve point is the
    zero-shot score. ``out_dir`` defaults to ``<checkpoint folder>/finetune-<graph>``.
    """
    import torch

    base_model = load_model(checkpoint)
    side = read_sidecar(checkpoint)
    g = load_graph(graph)
    hw = get_hardware(hardware if hardware is not None else g.metadata.get("default_hardware") or "ring-8")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", (g.id or g.name).split("://")[-1])
    instances = InstancesConfig(graphs=[g], hardware=[hw])
    base = (TrainConfig.from_sidecar(side) if side else None) or TrainConfig(instances=instances)
    cfg = base.replace(
        instances=instances, bc=BCConfig(),
        env={"max_nodes": None, "max_edges": None, "k_max": k_max_of(base_model.observation_space)},
        eval={"graphs": [g], "hardware": None, "split": None}, total_timesteps=int(total_timesteps), seed=seed,
        out_dir=str(out_dir or Path(checkpoint).parent / f"finetune-{name}"))
    cfg = cfg.replace(**overrides)
    per_env = max(cfg.total_timesteps // cfg.env.n_envs, 1)
    if "n_steps" not in (overrides.get("ppo") or {}) and 0 < per_env < cfg.ppo["n_steps"]:
        # a short fine-tune: one rollout of the checkpoint's n_steps would overshoot total_timesteps
        cfg = cfg.replace(ppo={"n_steps": per_env, "batch_size": min(cfg.ppo["batch_size"], per_env * cfg.env.n_envs)})
    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inst = resolve_instances(cfg)
    venv = make_train_env(cfg, inst)
    try:
        model = build_model(venv, ppo=cfg.ppo, policy_kw=base_model.policy_kwargs, seed=cfg.seed, device=cfg.device,
                            log_dir=cfg.log_dir)
        transplant(base_model, model)
        meta = {"kind": "finetune", "parent": str(checkpoint)}
        return _fit(model, cfg, inst, out, RunState(), progress, reset=True, meta=meta)
    finally:
        venv.close()
