"""Env factories for training and validation: :func:`make_env` (one training env),
:class:`HardwareMixEnv` (several hardware in one env), :func:`make_train_env` (the vectorised
training envs of a config) and :func:`make_eval_env` (the validation episodes as one env).

:func:`make_train_env` is not stable-baselines3's ``make_vec_env`` (which takes an env id or
callable): it builds the envs a :class:`~mcm_gym.learn.config.TrainConfig` describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.config import TrainConfig, spec_name
from mcm_gym.learn.resolution import Instances, resolve_instances

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

__all__ = ["HardwareMixEnv", "PairSequenceEnv", "make_env", "make_train_env", "make_eval_env"]

Obs = dict[str, np.ndarray]


def _same_spaces(envs: Sequence[gym.Env[Obs, Any]], who: str) -> None:
    first = envs[0]
    for e in envs[1:]:
        if e.observation_space != first.observation_space or e.action_space != first.action_space:
            raise ValueError(f"{who}: all envs need the same padding (max_nodes, max_edges, k_max) and mode")


class HardwareMixEnv(gym.Env[Obs, Any]):
    """Several :class:`MCMPartitionEnv` with the same padding (one per hardware); each reset draws
    one with ``self.np_random`` and delegates to it. ``action_masks()`` delegates too."""

    metadata = {"render_modes": []}

    def __init__(self, envs: Sequence[MCMPartitionEnv]) -> None:
        if not envs:
            raise ValueError("HardwareMixEnv needs at least one env")
        self.envs = list(envs)
        _same_spaces(self.envs, "HardwareMixEnv")
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.active = self.envs[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self.active = self.envs[int(self.np_random.integers(len(self.envs)))]
        return self.active.reset(seed=int(self.np_random.integers(2**31 - 1)), options=options)

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        return self.active.step(action)

    def action_masks(self) -> np.ndarray:
        return self.active.action_masks()

    @property
    def problem(self) -> Problem:
        return self.active.problem


class PairSequenceEnv(gym.Env[Obs, Any]):
    """The validation episodes in a fixed order, for an evaluation loop that only resets and steps
    (sb3-contrib's ``evaluate_policy``): a reset with a seed ``s`` starts over; reset number ``j``
    then plays pair ``j // episodes`` with seed ``s + j % episodes``. Finished episodes are recorded
    in ``finished`` (pair index, score) since the last seeded reset."""

    metadata = {"render_modes": []}

    def __init__(self, envs: Sequence[MCMPartitionEnv], episodes: int = 1) -> None:
        if not envs:
            raise ValueError("PairSequenceEnv needs at least one env")
        self.envs, self.episodes = list(envs), int(episodes)
        _same_spaces(self.envs, "PairSequenceEnv")
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.base_seed, self.count, self.pair = 0, 0, 0
        self.finished: list[tuple[int, float]] = []

    @property
    def names(self) -> list[str]:
        """``graph@hardware`` of every pair."""
        return [f"{spec_name(e.problem.graph)}@{spec_name(e.problem.hardware)}" for e in self.envs]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        if seed is not None:
            self.base_seed, self.count, self.finished = int(seed), 0, []
        j = self.count
        self.count += 1
        self.pair = (j // self.episodes) % len(self.envs)
        return self.envs[self.pair].reset(seed=self.base_seed + j % self.episodes, options=options)

    def step(self, action: Any) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.envs[self.pair].step(action)
        if terminated or truncated:
            self.finished.append((self.pair, float(info.get("score", reward))))
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return self.envs[self.pair].action_masks()


def make_env(graphs: Sequence[Graph | str], hardware: Sequence[Hardware | str], *, max_nodes: int,
             max_edges: int, k_max: int, use_repair: bool = True, repair: RepairConfig | None = None,
             monitor: bool = True) -> gym.Env[Obs, Any]:
    """One training env: every reset draws a graph from ``graphs`` and a hardware from ``hardware``;
    wrapped in SB3's ``Monitor`` (episode statistics) unless ``monitor=False``."""
    envs = [MCMPartitionEnv(graphs=list(graphs), hardware=hw, max_nodes=max_nodes, max_edges=max_edges,
                            k_max=k_max, use_repair=use_repair, repair=repair) for hw in hardware]
    env: gym.Env[Obs, Any] = envs[0] if len(envs) == 1 else HardwareMixEnv(envs)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def make_train_env(cfg: TrainConfig, instances: Instances | None = None, *, n_envs: int | None = None,
                   seed: int | None = None) -> VecEnv:
    """``n_envs`` (default ``cfg.env.n_envs``) training envs in a ``DummyVecEnv``, or a
    ``SubprocVecEnv`` when ``cfg.env.vec_env == "subproc"`` (worker processes are started by
    forkserver/spawn: call this under ``if __name__ == "__main__":`` in scripts), seeded with
    ``seed + i`` (default ``cfg.seed``). MaskablePPO reads the masks through the envs' ``action_masks()``."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    inst = instances or resolve_instances(cfg)
    n = int(n_envs or cfg.env.n_envs)
    factory = partial(make_env, inst.graphs, inst.hardware, use_repair=cfg.env.use_repair,
                      max_nodes=inst.max_nodes, max_edges=inst.max_edges, k_max=inst.k_max)
    venv: VecEnv = SubprocVecEnv([factory] * n) if cfg.env.vec_env == "subproc" else DummyVecEnv([factory] * n)
    venv.seed(cfg.seed if seed is None else seed)
    return venv


def make_eval_env(pairs: Sequence[tuple[Graph, Hardware]], *, max_nodes: int, max_edges: int, k_max: int,
                  episodes: int = 1, use_repair: bool = True) -> DummyVecEnv:
    """The validation pairs as one :class:`PairSequenceEnv` in a ``DummyVecEnv`` (padded like the
    training envs): ``len(pairs) * episodes`` episodes, in order, from each seeded reset."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    envs = [MCMPartitionEnv(g, hw, use_repair=use_repair, max_nodes=max_nodes, max_edges=max_edges, k_max=k_max)
            for g, hw in pairs]
    seq = PairSequenceEnv(envs, episodes)
    return DummyVecEnv([lambda: seq])
