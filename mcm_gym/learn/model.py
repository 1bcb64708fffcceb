"""The model builder: one ``MaskablePPO`` + :class:`~mcm_gym.learn.extractor.GNNExtractor` factory.

:func:`build_model` is the only place that constructs a ``MaskablePPO``; training
(:mod:`mcm_gym.learn.train`) and the ``rl`` searcher (:mod:`mcm_gym.learn.rl_search`) both call it.
PPO hyper-parameters travel as one dict under the names ``MaskablePPO`` itself takes (the names of
stable-baselines3 and the RL Zoo: ``learning_rate``, ``n_steps``, ``batch_size``, ``n_epochs``,
``gamma``, ``gae_lambda``, ``clip_range``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``,
``target_kl``, ...), merged over :data:`DEFAULT_PPO` and passed verbatim. The policy's settings
(``policy_kwargs`` level) are a second dict: ``extractor`` (GNNExtractor keyword arguments),
``net_arch`` and any other keyword of sb3-contrib's ``MaskableMultiInputActorCriticPolicy``
(``activation_fn`` may be a ``torch.nn`` class name such as ``"ReLU"``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecEnv

__all__ = ["DEFAULT_PPO", "NOT_PPO", "ppo_keys", "policy_keys", "extractor_keys", "check_ppo", "check_policy",
           "model_policy_kwargs", "build_model", "tensorboard_dir"]

#: PPO settings used where a config or searcher does not set them (``gamma = 1``: the only reward is
#: the final score of the episode).
DEFAULT_PPO: dict[str, Any] = {
    "learning_rate": 3e-4, "n_steps": 512, "batch_size": 128, "n_epochs": 4, "gamma": 1.0, "gae_lambda": 0.95,
    "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "target_kl": None,
}

# MaskablePPO arguments that are not hyper-parameters: they come from elsewhere (the policy section,
# the run's seed / device / log_dir), so a ``ppo`` dict may not set them.
NOT_PPO: dict[str, str] = {
    "policy": "it is always 'MultiInputPolicy'", "env": "the env section builds the envs",
    "policy_kwargs": "use the policy section (extractor, net_arch, ...)", "seed": "use the top-level seed",
    "device": "use the top-level device", "tensorboard_log": "use the top-level log_dir",
    "_init_setup_model": "it is internal"}
_NOT_POLICY = {"self", "observation_space", "action_space", "lr_schedule", "features_extractor_class",
               "features_extractor_kwargs"}


@lru_cache(maxsize=1)
def _ppo_signature() -> inspect.Signature:
    from sb3_contrib import MaskablePPO

    return inspect.signature(MaskablePPO.__init__)


@lru_cache(maxsize=1)
def ppo_keys() -> frozenset[str]:
    """The keyword arguments of ``MaskablePPO`` a ``ppo`` dict may set."""
    return frozenset(_ppo_signature().parameters) - set(NOT_PPO) - {"self"}


@lru_cache(maxsize=1)
def policy_keys() -> frozenset[str]:
    """The keys of a policy dict: ``extractor``, plus the keyword arguments of sb3-contrib's
    ``MaskableMultiInputActorCriticPolicy`` (``net_arch``, ``activation_fn``, ``ortho_init``, ...)."""
    from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy

    sig = inspect.signature(MaskableMultiInputActorCriticPolicy.__init__)
    return (frozenset(sig.parameters) - _NOT_POLICY) | {"extractor"}


@lru_cache(maxsize=1)
def extractor_keys() -> frozenset[str]:
    """:class:`~mcm_gym.learn.extractor.GNNExtractor` keyword arguments (a policy dict's ``extractor``)."""
    from mcm_gym.learn.extractor import GNNExtractor

    return frozenset(inspect.signature(GNNExtractor.__init__).parameters) - {"self", "observation_space"}


def _unknown(kind: str, bad: list[str], known: frozenset[str]) -> ValueError:
    import difflib

    hints = []
    for k in bad:
        close = difflib.get_close_matches(k, sorted(known), n=1)
        hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ValueError(f"unknown {kind} key(s) {', '.join(hints)}; known: {', '.join(sorted(known))}")


def _number(key: str, value: Any, integer: bool) -> Any:
    """YAML reads ``3e-4`` as a string: numbers given as strings become floats; integral floats
    become ints where ``MaskablePPO``'s default is an int."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if integer and isinstance(value, float) and value.is_integer():
        return int(value)
    if integer and isinstance(value, float):
        raise ValueError(f"ppo.{key} must be an integer, got {value!r}")
    return value


def check_ppo(ppo: Mapping[str, Any] | None, *, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``ppo`` merged over ``base`` (default :data:`DEFAULT_PPO`), checked: every key must be a
    ``MaskablePPO`` keyword argument (``ValueError`` naming it otherwise, with the nearest name),
    numbers given as strings are converted, and the usual ranges are enforced."""
    given = dict(ppo or {})
    for key, why in NOT_PPO.items():
        if key in given:
            raise ValueError(f"ppo key {key!r} is not a PPO hyper-parameter here: {why}")
    bad = sorted(str(k) for k in given if k not in ppo_keys())
    if bad:
        raise _unknown("ppo (MaskablePPO)", bad, ppo_keys())
    sig = _ppo_signature()
    for k, v in given.items():
        default = sig.parameters[k].default
        if v is not None and not isinstance(v, bool):
            given[k] = _number(k, v, isinstance(default, int) and not isinstance(default, bool))
    out = {**(DEFAULT_PPO if base is None else base), **given}
    for k in ("n_steps", "batch_size", "n_epochs"):
        v = out.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 1:
            raise ValueError(f"ppo.{k} must be >= 1, got {v}")
    for k in ("gamma", "gae_lambda"):
        v = out.get(k)
        if isinstance(v, (int, float)) and not 0.0 <= v <= 1.0:
            raise ValueError(f"ppo.{k} must lie in [0, 1], got {v}")
    lr = out.get("learning_rate")
    if isinstance(lr, (int, float)) and not lr > 0:
        raise ValueError(f"ppo.learning_rate must be > 0, got {lr}")
    return out


def check_policy(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """A policy dict checked: keys among :func:`policy_keys`, ``extractor`` keys among
    :func:`extractor_keys` (``ValueError`` naming the unknown ones)."""
    out = dict(policy or {})
    bad = sorted(str(k) for k in out if k not in policy_keys())
    if bad:
        raise _unknown("policy", bad, policy_keys())
    ext = out.get("extractor")
    if ext is not None and not isinstance(ext, Mapping):
        raise ValueError(f"policy.extractor must be a mapping of GNNExtractor options, got {ext!r}")
    bad = sorted(str(k) for k in (ext or {}) if k not in extractor_keys())
    if bad:
        raise _unknown("extractor", bad, extractor_keys())
    out["extractor"] = dict(ext or {})
    return out


def _torch_class(value: Any, module: str) -> Any:
    """``"ReLU"``, ``"nn.ReLU"`` or ``"torch.nn.ReLU"`` -> ``torch.nn.ReLU`` (classes pass through)."""
    if not isinstance(value, str):
        return value
    import importlib

    mod = importlib.import_module(module)
    name = value.rsplit(".", 1)[-1]
    if not hasattr(mod, name):
        raise ValueError(f"{value!r} is not a class of {module}")
    return getattr(mod, name)


def model_policy_kwargs(policy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``policy_kwargs`` for ``MaskablePPO`` from a policy dict (see :func:`check_policy`)."""
    from mcm_gym.learn.extractor import policy_kwargs

    p = check_policy(policy)
    ext = p.pop("extractor")
    if "activation_fn" in p:
        p["activation_fn"] = _torch_class(p["activation_fn"], "torch.nn")
    if "optimizer_class" in p:
        p["optimizer_class"] = _torch_class(p["optimizer_class"], "torch.optim")
    return policy_kwargs(**ext, **p)


def tensorboard_dir(log_dir: str | None) -> str | None:
    """``log_dir`` when the tensorboard package is installed, else None (with a warning if set)."""
    if not log_dir:
        return None
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        warnings.warn("log_dir is set but the tensorboard package is not installed; no TensorBoard "
                      "logs (pip install tensorboard)", stacklevel=3)
        return None
    return str(log_dir)


def build_model(env: gym.Env[Any, Any] | VecEnv, *, ppo: Mapping[str, Any] | None = None,
                policy: Mapping[str, Any] | None = None, extractor: Mapping[str, Any] | None = None,
                net_arch: Any = None, policy_kw: dict[str, Any] | None = None, seed: int | None = 0,
                device: str = "cpu", log_dir: str | None = None, verbose: int = 0) -> MaskablePPO:
    """A fresh ``MaskablePPO("MultiInputPolicy", env)`` with the GNN extractor.

    ``ppo``: hyper-parameters under ``MaskablePPO``'s own names, merged over :data:`DEFAULT_PPO` and
    passed as they are. The policy: ``policy_kw`` (ready ``policy_kwargs``, e.g. a checkpoint's, to
    build the same architecture), else ``policy`` (a policy dict: ``extractor``, ``net_arch``, other
    policy keywords) with ``extractor`` / ``net_arch`` given here on top. ``log_dir``: TensorBoard
    folder (ignored without the tensorboard package)."""
    from sb3_contrib import MaskablePPO

    if policy_kw is None:
        pol = dict(policy or {})
        if extractor is not None:
            pol["extractor"] = {**dict(pol.get("extractor") or {}), **extractor}
        if net_arch is not None:
            pol["net_arch"] = net_arch
        policy_kw = model_policy_kwargs(pol)
    hyper = {"verbose": verbose, **check_ppo(ppo)}  # a ppo dict may set verbose too
    return MaskablePPO("MultiInputPolicy", env, policy_kwargs=policy_kw, seed=seed, device=device,
                       tensorboard_log=tensorboard_dir(log_dir), **hyper)
