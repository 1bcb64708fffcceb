"""Checkpoint I/O: the shipped checkpoints by name, atomic saving, loading, JSON sidecars, and moving
weights between paddings.

Checkpoints are sb3-contrib ``MaskablePPO`` zip files, each with a JSON sidecar (same name,
``.json``) holding the config, the training curve and the best partition seen; both are written
atomically (:func:`mcm_gym._io.atomic_write`: a temporary file in the same folder, then
``os.replace``). The policy's weights do not depend on the padding sizes ``max_nodes`` /
``max_edges``, only on ``K_max``, so a checkpoint moves to graphs of any size on hardware with at most
``K_max`` chips (:func:`policy_for_env`, :func:`transplant`).

This module imports torch and stable-baselines3 only inside the functions that need them, so the
command line can name the shipped checkpoints without loading them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcm_gym._io import atomic_write, atomic_write_text

if TYPE_CHECKING:
    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = ["PRETRAINED", "SIDECAR_FORMAT", "resolve_checkpoint", "shipped_dir", "is_shipped", "save_atomic",
           "load_model", "load_weights_only", "sidecar_path",
           "read_sidecar", "write_sidecar", "curve_table", "k_max_of", "check_transferable", "policy_for_env",
           "transplant"]

#: Names of the checkpoints shipped in mcm_gym/learn/shipped: ``pretrained`` is the current one (the
#: one-shot policy with the stages head and eight named orders, pre-trained by RL with a KL pull
#: towards its priors on seven hardware profiles for 40 minutes, a ``.pt``; see
#: :mod:`mcm_gym.learn.oneshot_search`), older ones keep their versioned names (``pretrained-v8``: four
#: orders, 90 minutes, the ``pretrained`` of 2026-12-08 until the afternoon; ``pretrained-v7``: the
#: same for 20 minutes, the ``pretrained`` until 2026-12-08; ``pretrained-v6``: trained on ring-4,
#: ring-8 and mesh-2x2 only, the
#: ``pretrained`` of 2026-12-07 evening; ``pretrained-v5``:
#: the stages head with the speed prior and rest balance on SRAM-or-time shares, four orders, the
#: ``pretrained`` of before 2026-12-07 evening; ``pretrained-v4``: without those priors;
#: ``pretrained-v3``: the per-node head; ``pretrained-v2``: the sequential MaskablePPO + GNN policy,
#: trained under cost model v1). ``priors`` is not trained at all: the stages head's priors alone
#: (``agents/make_priors.py``) with its eight named orders (``priors-v2``; ``priors-v1``: the first
#: four, the ``priors`` until 2026-12-08).
PRETRAINED = {"pretrained": "pretrained-v9.pt", "pretrained-v9": "pretrained-v9.pt",
              "pretrained-v8": "pretrained-v8.pt",
              "pretrained-v7": "pretrained-v7.pt",
              "pretrained-v6": "pretrained-v6.pt",
              "pretrained-v5": "pretrained-v5.pt",
              "pretrained-v4": "pretrained-v4.pt", "pretrained-v3": "pretrained-v3.pt",
              "pretrained-v2": "pretrained-v2.zip", "priors": "priors-v2.pt", "priors-v2": "priors-v2.pt",
              "priors-v1": "priors-v1.pt"}
#: Sidecars written now: ``config`` in sections (``mcm-gym-train/1``: the flat config of before).
SIDECAR_FORMAT = "mcm-gym-train/2"


def shipped_dir() -> Path:
    """Folder of the checkpoints shipped with the package."""
    from importlib import resources

    return Path(str(resources.files("mcm_gym.learn") / "shipped"))


def resolve_checkpoint(spec: str) -> str:
    """A checkpoint path, or the name of one shipped with the package (``pretrained``)."""
    if spec in PRETRAINED:
        path = shipped_dir() / PRETRAINED[spec]
        if not path.exists():
            raise FileNotFoundError(f"the shipped checkpoint {spec!r} is missing from this install ({path})")
        return str(path)
    if not Path(spec).exists():
        raise FileNotFoundError(f"checkpoint not found: {spec} (or use one of: {', '.join(PRETRAINED)})")
    if Path(spec).is_dir():
        raise ValueError(f"{spec} is a directory; give a checkpoint .zip (e.g. {Path(spec) / 'best.zip'}) "
                         f"or one of: {', '.join(PRETRAINED)}")
    return spec


def versioned_name(spec: str) -> str:
    """The versioned shipped name that an alias such as ``pretrained`` stands for now
    (``pretrained-v6``), so that results keyed by it stay valid when the alias moves; anything else
    unchanged."""
    if spec not in PRETRAINED or re.search(r"-v\d+$", spec):
        return spec
    same = [k for k, v in PRETRAINED.items() if v == PRETRAINED[spec] and re.search(r"-v\d+$", k)]
    return same[0] if same else spec


def is_shipped(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is one of the checkpoints shipped with the package."""
    p = Path(path).resolve()
    return p.parent == shipped_dir().resolve() and p.name in PRETRAINED.values()


def save_atomic(model: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` to ``path`` (a ``.zip``) via a temporary file in the same folder + ``os.replace``,
    so a reader never sees a partial checkpoint."""
    return atomic_write(path, model.save)


def load_model(path: str | os.PathLike[str], env: Any = None, device: str = "cpu",
               weights_only: bool | None = None) -> MaskablePPO:
    """Load a ``MaskablePPO`` checkpoint (optionally bound to ``env``, whose spaces must match).

    SB3's own loader unpickles parts of the zip, and a crafted file runs code when unpickled: load
    only checkpoints you trust that way. ``weights_only`` (default: True for the shipped checkpoints,
    False for others) loads without unpickling instead (:func:`load_weights_only`)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} not found")
    if p.is_dir():
        raise ValueError(f"{p} is a directory; give a checkpoint .zip")
    if p.suffix == ".pt":
        raise ValueError(f"{p} is a one-shot policy, not a MaskablePPO checkpoint: run it with "
                         f"oneshot:checkpoint={p} (mcm-gym partition --policy takes both); the sequential "
                         f"shipped policy is pretrained-v2")
    if weights_only if weights_only is not None else is_shipped(p):
        return load_weights_only(p, env=env, device=device)
    from sb3_contrib import MaskablePPO

    return MaskablePPO.load(p, env=env, device=device)


def load_weights_only(path: str | os.PathLike[str], env: Any = None, device: str = "cpu") -> MaskablePPO:
    """Load a checkpoint without unpickling anything: the architecture and PPO settings from its JSON
    sidecar, the policy weights and optimizer state from the zip's ``policy.pth`` and
    ``policy.optimizer.pth`` with ``torch.load(weights_only=True)``. Without ``env``, the model is
    bound to a small ``tiny://attention-v1`` env with the checkpoint's ``k_max`` (the weights do not
    depend on the padding; :func:`policy_for_env` moves them to any env). The timestep count starts
    at 0."""
    import io
    import zipfile

    import torch

    from mcm_gym.learn.config import TrainConfig
    from mcm_gym.learn.factories import make_env
    from mcm_gym.learn.model import build_model

    p = Path(path)
    side = read_sidecar(p)
    cfg = TrainConfig.from_sidecar(side) if side else None
    if cfg is None:
        raise ValueError(f"{p}: no JSON sidecar ({sidecar_path(p).name}) with the architecture; load it with "
                         f"weights_only=False if you trust the file")
    if env is None:
        k_max = int(cfg.env.k_max or 8)
        env = make_env(["tiny://attention-v1"], [f"ring-{min(k_max, 8)}"], max_nodes=16, max_edges=32, k_max=k_max)
    model = build_model(env, ppo=cfg.ppo, policy=cfg.policy, seed=cfg.seed, device=device)
    with zipfile.ZipFile(p) as z:
        names = set(z.namelist())
        if "policy.pth" not in names:
            raise ValueError(f"{p}: not a stable-baselines3 checkpoint (no policy.pth)")
        state = torch.load(io.BytesIO(z.read("policy.pth")), map_location=device, weights_only=True)
        model.policy.load_state_dict(state)
        if "policy.optimizer.pth" in names:
            opt = torch.load(io.BytesIO(z.read("policy.optimizer.pth")), map_location=device, weights_only=True)
            model.policy.optimizer.load_state_dict(opt)
    return model


def sidecar_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of a checkpoint: same name, ``.json``."""
    return Path(checkpoint).with_suffix(".json")


def read_sidecar(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A checkpoint's sidecar (config, curve, best partition), or None if it has none."""
    p = sidecar_path(checkpoint)
    if not p.exists():
        return None
    with open(p, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def write_sidecar(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Atomically write ``data`` as JSON to ``path`` (a sidecar, or ``train_log.json``)."""
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def curve_table(curve: list[dict[str, Any]], fmt: Callable[[Any], str] | None = None) -> str:
    """A plain-text table of a sidecar's training curve (timesteps, wall s, episodes, train/eval scores)."""
    f = fmt or (lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v))
    cols = ["timesteps", "wall_time", "episodes", "train_mean_score", "train_best_score",
            "eval_mean_score", "eval_best_score"]
    lines = ["  ".join(f"{c:>16}" for c in cols)]
    for pt in curve:
        lines.append("  ".join(f"{f(pt.get(c)):>16}" for c in cols))
    return "\n".join(lines)


def _shape(space: gym.spaces.Space[Any]) -> tuple[int, ...]:
    if space.shape is None:
        raise ValueError(f"space {space} has no shape")
    return space.shape


def k_max_of(space: gym.spaces.Space[Any]) -> int:
    """The ``K_max`` of an ``MCMPartition-v0`` observation space (rows of ``chip_state``)."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Dict) or "chip_state" not in space.spaces:
        raise ValueError(f"not an MCMPartition-v0 observation space: {space}")
    return _shape(space["chip_state"])[0]


def check_transferable(src: gym.spaces.Space[Any], dst: gym.spaces.Space[Any]) -> None:
    """``ValueError`` unless a policy for observation space ``src`` can run on ``dst``: the same
    feature widths, ``K_max`` and mode; the padding may differ."""
    from gymnasium import spaces

    if not isinstance(src, spaces.Dict) or not isinstance(dst, spaces.Dict):
        raise ValueError("both observation spaces must be Dict spaces of MCMPartition-v0")
    for key in ("node_features", "chip_state"):
        if _shape(src[key])[-1] != _shape(dst[key])[-1]:
            raise ValueError(f"policy was trained on {key} with {_shape(src[key])[-1]} features, "
                             f"the env has {_shape(dst[key])[-1]}")
    k_src, k_dst = k_max_of(src), k_max_of(dst)
    if k_src != k_dst:
        raise ValueError(f"policy was trained with k_max={k_src}, the env has k_max={k_dst}; "
                         f"build the env with k_max={k_src}")
    mask_src, mask_dst = _shape(src["action_mask"]), _shape(dst["action_mask"])
    if mask_src != mask_dst and mask_src[0] == k_src:
        raise ValueError("policy and env differ in mode (sequential vs oneshot)")


def policy_for_env(model: MaskablePPO, env: gym.Env[Any, Any]) -> MaskableActorCriticPolicy:
    """``model``'s policy for ``env``'s observation space: the policy itself when the spaces match,
    else a copy built for ``env``'s padding with the same weights (same ``K_max`` required)."""
    if model.observation_space == env.observation_space and model.action_space == env.action_space:
        return model.policy
    check_transferable(model.observation_space, env.observation_space)
    pol = type(model.policy)(env.observation_space, env.action_space, lambda _: 0.0, **model.policy_kwargs)
    pol.load_state_dict(model.policy.state_dict())
    pol.to(model.device)
    pol.set_training_mode(False)
    return pol


def transplant(source: MaskablePPO, target: MaskablePPO) -> None:
    """Copy ``source``'s policy weights (and optimizer state) into ``target`` (same architecture,
    any padding, same ``K_max``)."""
    check_transferable(source.observation_space, target.observation_space)
    target.policy.load_state_dict(source.policy.state_dict())
    try:
        target.policy.optimizer.load_state_dict(source.policy.optimizer.state_dict())
    except (ValueError, KeyError):  # pragma: no cover - different optimizer; keep the fresh one
        pass
