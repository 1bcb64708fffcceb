"""RLlib support (experimental): PPO with action masking on ``MCMPartition-v0``.

RLlib's action-masking convention is a ``Dict`` observation ``{"action_mask", "observations"}``
and an RLModule that adds ``log(mask)`` to the action logits (RLlib's own
``ray.rllib.examples.rl_modules.classes.action_masking_rlm.ActionMaskingTorchRLModule``).
:class:`RLlibMaskedObs` turns the env's observation into that form: ``action_mask`` as float32 and
every other key flattened into one float32 vector ``observations`` in [0, 1] (integer entries, the
edge list and the current node, are divided by ``max_nodes - 1``). The MLP policy this gives does
not see the graph structure the way :mod:`mcm_gym.learn.extractor`'s GNN does; it is a working example of
the interface, sized for small graphs.

Install: ``pip install "mcm-gym[rllib]"`` (also part of ``mcm-gym[test]``, so CI runs RLlib's PPO).
``ray[rllib]`` 2.60 pins ``gymnasium==1.2.2``, so this extra downgrades gymnasium to that release;
the rest of mcm-gym works with any gymnasium >= 1.0. Checked with ray 2.60.0 on gymnasium 1.2.2
(the pinned release) and on 1.4.0 reinstalled over the pin.

Example::

    from mcm_gym.learn.rllib import train_rllib_ppo
    returns = train_rllib_ppo("tiny://attention-v1", "ring-4", iterations=3)  # mean episode return per iteration
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["RLlibMaskedObs", "MCMRLlibEnv", "train_rllib_ppo"]

_INSTALL_HINT = "RLlib is not installed: pip install 'ray[rllib]' (see mcm_gym.learn.rllib's docstring)"


Obs = dict[str, np.ndarray]


class RLlibMaskedObs(gym.ObservationWrapper[Obs, Any, Obs]):
    """``{"action_mask": float32 (K,), "observations": float32 (D,) in [0, 1]}`` from the env's Dict."""

    def __init__(self, env: gym.Env[Obs, Any]) -> None:
        super().__init__(env)
        base = env.observation_space
        if not isinstance(base, spaces.Dict) or "action_mask" not in base.spaces:
            raise ValueError(f"RLlibMaskedObs needs a Dict observation space with an action_mask, got {base}")
        boxes: dict[str, spaces.Box] = {}
        for k, sp in base.spaces.items():
            if not isinstance(sp, spaces.Box):
                raise ValueError(f"RLlibMaskedObs: observation key {k!r} is not a Box ({sp})")
            boxes[k] = sp
        self._keys: list[str] = [k for k in boxes if k != "action_mask"]
        self._scale: dict[str, float] = {}
        for k in self._keys:
            sp = boxes[k]
            hi = float(np.max(sp.high)) if np.issubdtype(sp.dtype, np.integer) else 1.0
            self._scale[k] = 1.0 / max(hi, 1.0)
        dim = sum(int(np.prod(boxes[k].shape)) for k in self._keys)
        self.observation_space = spaces.Dict({
            "action_mask": spaces.Box(0.0, 1.0, boxes["action_mask"].shape, np.float32),
            "observations": spaces.Box(0.0, 1.0, (dim,), np.float32),
        })

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        flat = np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() * self._scale[k] for k in self._keys])
        return {"action_mask": obs["action_mask"].astype(np.float32),
                "observations": np.clip(flat, 0.0, 1.0).astype(np.float32)}


class MCMRLlibEnv(RLlibMaskedObs):
    """``MCMPartition-v0`` for RLlib: built from an ``env_config`` dict of ``gym.make`` keyword
    arguments (``graph``, ``hardware``, ``mode``, ...)."""

    def __init__(self, env_config: dict[str, Any] | None = None) -> None:
        import mcm_gym  # noqa: F401  (registers MCMPartition-v0)

        super().__init__(gym.make("MCMPartition-v0", **dict(env_config or {})))


def train_rllib_ppo(graph: str = "tiny://attention-v1", hardware: str = "ring-4", iterations: int = 3,
                    seed: int = 0, *, train_batch_size: int = 240, hidden: int = 64,
                    lr: float = 3e-4) -> list[float]:
    """Train RLlib PPO (new API stack, action-masking RLModule, sampling in the driver process) on
    ``graph`` x ``hardware`` for ``iterations`` training iterations of ``train_batch_size`` env steps
    each; return the mean episode return (= mean repaired score, in [0, 1]) of each iteration (NaN
    where no episode finished). Starts a local Ray session (2 CPUs) if none is up."""
    try:
        import ray
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc

    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    config = (
        PPOConfig()
        .environment(env=MCMRLlibEnv, env_config={"graph": graph, "hardware": hardware})
        .framework("torch")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=train_batch_size, minibatch_size=min(60, train_batch_size),
                  num_epochs=2, lr=lr)
        .rl_module(rl_module_spec=RLModuleSpec(
            module_class=ActionMaskingTorchRLModule,
            model_config={"head_fcnet_hiddens": [hidden, hidden], "fcnet_hiddens": [hidden, hidden]}))
        .debugging(seed=seed)
    )
    algo = config.build_algo() if hasattr(config, "build_algo") else config.build()
    out: list[float] = []
    try:
        for _ in range(iterations):
            res = algo.train()
            r = res.get("env_runners", {}).get("episode_return_mean", math.nan)
            out.append(float(r) if r is not None else math.nan)
    finally:
        algo.stop()
        if started:
            ray.shutdown()
    return out
