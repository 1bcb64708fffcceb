"""Training callbacks: the run record (curve, sidecars, wall-clock stop), validation on held-out
pairs (sb3-contrib's ``MaskableEvalCallback``) and periodic checkpoints (stable-baselines3's
``CheckpointCallback``).

PPO learns from a rollout after collecting it, so validation and checkpoints happen at rollout
starts (the policy has then learned from every step counted), not on the steps' cadence SB3's
classes use by default:

* :class:`RunRecorder` counts finished episodes, keeps the best training partition, adds a point to
  the curve at every rollout start, writes ``train_log.json`` and the sidecars, and stops training
  after ``max_wall_time`` seconds;
* :class:`ValidationCallback` (a ``MaskableEvalCallback``) runs deterministic episodes on the
  ``eval`` pairs every ``eval.every`` timesteps with sb3-contrib's masked ``evaluate_policy``, adds
  the scores to the curve point and saves ``best.zip`` when the mean score is the best so far;
* :class:`RolloutCheckpointCallback` (a ``CheckpointCallback``) saves
  ``checkpoints/step_<timesteps>.zip`` every ``checkpoint_every`` timesteps.

:func:`make_callbacks` puts them in a ``CallbackList``; :meth:`TrainingCallbacks.finish` writes the
last point, a final evaluation and ``final.zip``. Every file is written atomically, with a sidecar.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from mcm_gym.learn.checkpoints import SIDECAR_FORMAT, save_atomic, sidecar_path, write_sidecar
from mcm_gym.learn.config import TrainConfig
from mcm_gym.learn.factories import PairSequenceEnv, make_eval_env
from mcm_gym.learn.resolution import Instances

__all__ = ["RunState", "RunRecorder", "ValidationCallback", "RolloutCheckpointCallback", "TrainingCallbacks",
           "make_callbacks", "EVAL_SEED_OFFSET"]

#: Validation episodes are seeded with ``cfg.seed + EVAL_SEED_OFFSET`` (apart from the training envs).
EVAL_SEED_OFFSET = 10_000


@dataclass
class RunState:
    """What the sidecar carries across checkpoints and resumes."""

    curve: list[dict[str, Any]] = field(default_factory=list)
    episodes: int = 0
    wall_offset: float = 0.0  # s of earlier runs (resume)
    best: dict[str, Any] = field(default_factory=lambda: {"score": 0.0})

    @classmethod
    def from_sidecar(cls, data: dict[str, Any] | None) -> RunState:
        """The state a checkpoint's sidecar recorded (a fresh one for None)."""
        if not data:
            return cls()
        return cls(curve=list(data.get("curve", [])), episodes=int(data.get("episodes", 0)),
                   wall_offset=float(data.get("wall_time", 0.0)),
                   best=dict(data.get("best") or {"score": 0.0}))

    def best_eval(self) -> float:
        """The best mean validation score on the curve (-inf if none)."""
        evals = [p["eval_mean_score"] for p in self.curve if p.get("eval_mean_score") is not None]
        return max(evals) if evals else -math.inf


class RunRecorder(BaseCallback):
    """The run's record: episodes, best training partition, the curve (a point per rollout start),
    ``train_log.json`` and the sidecars of the checkpoints it saves; stops training after
    ``max_wall_time`` seconds."""

    def __init__(self, cfg: TrainConfig, out: Path, state: RunState, meta: dict[str, Any]) -> None:
        super().__init__()
        self.cfg, self.out, self.state, self.meta = cfg, out, state, meta
        self.t0 = time.perf_counter()
        self.window: list[float] = []

    @property
    def timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def wall(self) -> float:
        """Seconds of training, earlier runs (resume) included."""
        return self.state.wall_offset + time.perf_counter() - self.t0

    def _on_step(self) -> bool:
        state = self.state
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if not done:
                continue
            state.episodes += 1
            s = float(info.get("score", 0.0))
            self.window.append(s)
            if s > state.best["score"] and info.get("partition") is not None:
                state.best = {"score": s, "graph_id": info.get("graph_id"), "hardware_id": info.get("hardware_id"),
                              "partition": np.asarray(info["partition"]).tolist(), "timesteps": self.timesteps}
        limit = self.cfg.max_wall_time
        return limit is None or time.perf_counter() - self.t0 <= limit

    def _on_rollout_start(self) -> None:
        self.point()

    def point(self) -> dict[str, Any]:
        """The curve point of the current timestep (added, with the training scores since the last
        one, unless the curve already ends there)."""
        ts, curve = self.timesteps, self.state.curve
        if curve and curve[-1]["timesteps"] == ts:
            return curve[-1]
        pt: dict[str, Any] = {
            "timesteps": ts, "wall_time": round(self.wall(), 3), "episodes": self.state.episodes,
            "train_mean_score": float(np.mean(self.window)) if self.window else None,
            "train_best_score": float(self.state.best["score"])}
        self.window = []
        if pt["train_mean_score"] is not None:
            self.logger.record("train/episode_score", pt["train_mean_score"])
        self.logger.record("train/best_score", pt["train_best_score"])
        curve.append(pt)
        self.write_log()
        return pt

    def sidecar(self) -> dict[str, Any]:
        """The JSON written beside every checkpoint (and as ``train_log.json``)."""
        return {"format": SIDECAR_FORMAT, **self.meta, "config": self.cfg.to_dict(), "timesteps": self.timesteps,
                "episodes": self.state.episodes, "wall_time": round(self.wall(), 3), "best": self.state.best,
                "curve": self.state.curve}

    def write_log(self) -> None:
        write_sidecar(self.out / "train_log.json", self.sidecar())

    def save(self, path: Path) -> Path:
        """Save the model atomically to ``path`` with its sidecar."""
        save_atomic(self.model, path)
        write_sidecar(sidecar_path(path), self.sidecar())
        return path


class ValidationCallback(MaskableEvalCallback):
    """``MaskableEvalCallback`` at rollout starts: every ``every`` timesteps (and at the first
    rollout of a run), deterministic episodes on the eval pairs (one :class:`PairSequenceEnv`, seeded
    with ``seed`` each time, so every evaluation plays the same episodes). The mean score (= mean
    episode reward: the reward is the final score) decides ``best.zip``, against the best of the
    curve so far (resumed runs included). Adds ``eval_mean_score``, ``eval_best_score`` and
    ``eval_scores`` (per ``graph@hardware``) to the recorder's curve point."""

    def __init__(self, eval_env: DummyVecEnv, recorder: RunRecorder, *, every: int, episodes: int, seed: int,
                 best_path: Path) -> None:
        seq = eval_env.envs[0]
        if not isinstance(seq, PairSequenceEnv):
            raise TypeError("ValidationCallback needs the env of make_eval_env")
        # eval_freq=1: the parent evaluates whenever its _on_step runs, which this class calls itself
        super().__init__(eval_env, n_eval_episodes=len(seq.envs) * episodes, eval_freq=1, deterministic=True,
                         verbose=0, warn=False)
        self.seq, self.recorder, self.every, self.seed, self.best_path = seq, recorder, every, seed, best_path
        self.last_eval_ts = -1
        self.best_mean_reward = recorder.state.best_eval()

    def _init_callback(self) -> None:
        with warnings.catch_warnings():  # the training envs may be a SubprocVecEnv: no harm
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
            super()._init_callback()

    def _on_step(self) -> bool:
        return True  # evaluations happen at rollout starts (see _on_rollout_start)

    def _on_rollout_start(self) -> None:
        if self.due():
            self.evaluate()

    def due(self) -> bool:
        ts, last = int(self.model.num_timesteps), self.last_eval_ts
        return self.every > 0 and (last < 0 or ts // self.every > last // self.every)

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now; update the curve point, ``train_log.json`` and (if best) ``best.zip``."""
        before = self.best_mean_reward
        self.eval_env.seed(self.seed)  # a seeded reset starts the episode sequence over
        super()._on_step()
        self.last_eval_ts = int(self.model.num_timesteps)
        names = self.seq.names
        per: dict[str, list[float]] = {}
        for pair, score in self.seq.finished:
            per.setdefault(names[pair], []).append(score)
        scores = [s for _, s in self.seq.finished]
        result = {"eval_mean_score": float(np.mean(scores)), "eval_best_score": float(np.max(scores)),
                  "eval_scores": {k: float(np.mean(v)) for k, v in per.items()}}
        self.logger.record("eval/mean_score", result["eval_mean_score"])
        self.logger.record("eval/best_score", result["eval_best_score"])
        self.recorder.point().update(result)
        self.recorder.write_log()
        if self.best_mean_reward > before:  # the checkpoint with the best validation score so far
            self.recorder.save(self.best_path)
        return result

    def finish(self) -> None:
        """A last evaluation, unless the current timestep has one."""
        if self.last_eval_ts != int(self.model.num_timesteps):
            self.evaluate()


class RolloutCheckpointCallback(CheckpointCallback):
    """``CheckpointCallback`` at rollout starts: ``<save_path>/step_<timesteps, 10 digits>.zip`` (with
    a sidecar, written atomically by the recorder) once every ``save_freq`` timesteps."""

    def __init__(self, recorder: RunRecorder, save_freq: int, save_path: Path) -> None:
        super().__init__(save_freq=save_freq, save_path=str(save_path), name_prefix="step")
        self.recorder = recorder
        self.next_ckpt = 0

    def _init_callback(self) -> None:
        super()._init_callback()
        ts = int(self.model.num_timesteps)
        self.next_ckpt = (ts // self.save_freq + 1) * self.save_freq  # not again at a resumed checkpoint

    def _on_step(self) -> bool:
        return True  # checkpoints happen at rollout starts (see _on_rollout_start)

    def checkpoint_path(self, timesteps: int) -> Path:
        return Path(self.save_path) / f"{self.name_prefix}_{timesteps:010d}.zip"

    def _on_rollout_start(self) -> None:
        ts = int(self.model.num_timesteps)
        if ts >= self.next_ckpt:
            self.next_ckpt = (ts // self.save_freq + 1) * self.save_freq
            self.recorder.save(self.checkpoint_path(ts))


@dataclass
class TrainingCallbacks:
    """The callbacks of one run; pass :attr:`callback` to ``model.learn``, then call :meth:`finish`."""

    recorder: RunRecorder
    validation: ValidationCallback | None
    checkpoints: RolloutCheckpointCallback | None
    #: All of them, in order: the record first (the curve point), then validation, then checkpoints.
    callback: CallbackList = field(init=False)

    def __post_init__(self) -> None:
        parts: list[BaseCallback] = [self.recorder]
        parts += [c for c in (self.validation, self.checkpoints) if c is not None]
        self.callback = CallbackList(parts)

    def finish(self) -> Path:
        """The last curve point and evaluation, then ``final.zip`` (returned)."""
        self.recorder.point()
        if self.validation is not None:
            self.validation.finish()
        return self.recorder.save(self.recorder.out / "final.zip")


def make_callbacks(cfg: TrainConfig, inst: Instances, out: Path, state: RunState,
                   meta: dict[str, Any]) -> TrainingCallbacks:
    """The callbacks of a run of ``cfg`` writing to ``out`` (validation only when ``cfg.eval.every``,
    checkpoints only when ``cfg.checkpoint_every``)."""
    recorder = RunRecorder(cfg, out, state, meta)
    validation = None
    if cfg.eval.every > 0:
        env = make_eval_env(inst.eval_pairs, episodes=cfg.eval.episodes, use_repair=cfg.env.use_repair,
                            max_nodes=inst.max_nodes, max_edges=inst.max_edges, k_max=inst.k_max)
        validation = ValidationCallback(env, recorder, every=cfg.eval.every, episodes=cfg.eval.episodes,
                                        seed=cfg.seed + EVAL_SEED_OFFSET, best_path=out / "best.zip")
    checkpoints = (RolloutCheckpointCallback(recorder, cfg.checkpoint_every, out / "checkpoints")
                   if cfg.checkpoint_every > 0 else None)
    return TrainingCallbacks(recorder, validation, checkpoints)
