"""Training, fine-tuning and evaluation of the learned partitioner (MaskablePPO + :class:`GNNExtractor`).

The learned method of Xie et al. (MLSys 2022): a GNN policy proposes a chip per node, the Z3 repair
makes the candidate valid, the reward is the repaired partition's score. Pre-train on many graphs
(:func:`train`), evaluate zero-shot on new ones (:func:`evaluate_policy_on`), fine-tune
(:func:`finetune`). The command line is a thin layer over these functions.

Checkpoints are sb3-contrib ``MaskablePPO`` zip files, each with a JSON sidecar (same name, ``.json``)
holding the config, the training curve (scores vs timesteps and wall-clock seconds) and the best
partition seen; both are written atomically (temporary file in the same folder, then ``os.replace``).
The policy's weights do not depend on the padding sizes ``max_nodes``/``max_edges``, only on
``K_max``, so a checkpoint moves to graphs of any size on hardware with at most ``K_max`` chips
(:func:`policy_for_env`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mcm_gym._io import atomic_write, atomic_write_text
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.instances.catalog import load_graph

__all__ = ["TrainConfig", "expand_graph_ids", "Instances", "resolve_instances", "HardwareMixEnv",
           "make_env", "make_vec_env", "build_model", "load_model", "policy_for_env", "transplant",
           "run_episodes", "train", "finetune", "evaluate_policy_on", "save_atomic", "sidecar_path",
           "read_sidecar", "curve_table"]

SIDECAR_FORMAT = "mcm-gym-train/1"
_GEN_RANGE = re.compile(r"^generator://layered-dag-v0/(\d+):(\d+)$")


# ------------------------------------------------------------------------------ config
@dataclass
class TrainConfig:
    """Everything a training run needs; ``TrainConfig.from_yaml(path)`` reads the same fields.

    Instances: ``graphs`` (ids, short names or files; Graph objects in Python;
    ``generator://layered-dag-v0/A:B`` stands for the seeds ``A..B-1``) on ``hardware`` (presets or
    files; each episode draws a graph and a hardware). Evaluation: every ``eval_every`` timesteps,
    ``eval_episodes`` deterministic episodes on every pair of ``eval_graphs`` (held-out; default: the
    first 8 training graphs) x ``eval_hardware`` (default: ``hardware``); 0 turns it off. Padding:
    ``max_nodes``, ``max_edges``, ``k_max`` (default: the largest instance, training and evaluation).
    PPO: the usual ``MaskablePPO`` hyper-parameters (``n_steps`` per env; ``gamma=1``: the only
    reward is the final score). ``extractor``: :class:`~mcm_gym.learn.extractor.GNNExtractor` keyword
    arguments; ``net_arch``: the policy/value heads. Checkpoints every ``checkpoint_every``
    timesteps (0: only ``final.zip``) in ``out_dir``; ``max_wall_time`` (s) stops training early
    (the run then ends with fewer timesteps, a final evaluation and ``final.zip``); TensorBoard
    logs go to ``log_dir`` when the ``tensorboard`` package is installed.
    Warm start (see :mod:`mcm_gym.learn.imitation`): with ``bc_teacher`` (a method spec such as ``dp``),
    before PPO the policy imitates that search's partitions (``bc_budget`` evaluations each) of every
    training graph x hardware, plus ``bc_graphs`` on the hardware they fit (e.g. graphs too large for
    one of the training presets), for ``bc_epochs`` epochs (``bc_batch_size``, ``bc_learning_rate``,
    ``bc_switch_weight`` for the steps that move to another chip).
    """

    graphs: list[Any]
    hardware: list[Any] = field(default_factory=lambda: ["ring-8"])
    eval_graphs: list[Any] = field(default_factory=list)
    eval_hardware: list[Any] | None = None
    max_nodes: int | None = None
    max_edges: int | None = None
    k_max: int | None = None
    total_timesteps: int = 100_000
    n_envs: int = 1
    vec_env: str = "dummy"
    learning_rate: float = 3e-4
    n_steps: int = 512
    batch_size: int = 128
    n_epochs: int = 4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    extractor: dict[str, Any] = field(default_factory=dict)
    net_arch: Any = None
    eval_every: int = 10_000
    eval_episodes: int = 1
    checkpoint_every: int = 50_000
    seed: int = 0
    device: str = "cpu"
    torch_threads: int = 1
    use_repair: bool = True
    max_wall_time: float | None = None
    log_dir: str | None = None
    out_dir: str = "runs/ppo"
    bc_teacher: str | None = None
    bc_graphs: list[Any] = field(default_factory=list)
    bc_budget: int = 16
    bc_epochs: int = 10
    bc_batch_size: int = 64
    bc_learning_rate: float = 1e-3
    bc_switch_weight: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.graphs, (str, Graph)):
            self.graphs = [self.graphs]
        if isinstance(self.hardware, (str, Hardware)):
            self.hardware = [self.hardware]
        if isinstance(self.eval_graphs, (str, Graph)):
            self.eval_graphs = [self.eval_graphs]
        if isinstance(self.eval_hardware, (str, Hardware)):
            self.eval_hardware = [self.eval_hardware]
        self.graphs, self.hardware = list(self.graphs), list(self.hardware)
        self.eval_graphs = list(self.eval_graphs or [])
        if isinstance(self.bc_graphs, (str, Graph)):
            self.bc_graphs = [self.bc_graphs]
        self.bc_graphs = list(self.bc_graphs or [])
        if not self.graphs:
            raise ValueError("train config: graphs is empty")
        if not self.hardware:
            raise ValueError("train config: hardware is empty")
        for name in ("total_timesteps", "eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"train config: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("n_envs", "n_steps", "batch_size", "n_epochs", "eval_episodes", "torch_threads", "bc_budget",
                     "bc_epochs", "bc_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        if self.vec_env not in ("dummy", "subproc"):
            raise ValueError(f"train config: vec_env must be 'dummy' or 'subproc', got {self.vec_env!r}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("train config: gamma and gae_lambda must lie in [0, 1]")
        if self.bc_teacher is not None:
            from mcm_gym.search.base import check_method

            try:
                check_method(str(self.bc_teacher))
            except ValueError as e:
                raise ValueError(f"train config: bc_teacher {self.bc_teacher!r} is not a search method ({e})") from None
        if not self.learning_rate > 0:
            raise ValueError(f"train config: learning_rate must be > 0, got {self.learning_rate}")
        import inspect

        from mcm_gym.learn.extractor import GNNExtractor

        known = set(inspect.signature(GNNExtractor.__init__).parameters) - {"self", "observation_space"}
        bad = sorted(set(self.extractor) - known)
        if bad:
            raise ValueError(f"train config: unknown extractor option(s) {', '.join(bad)}; "
                             f"known: {', '.join(sorted(known))}")

    # -- (de)serialisation
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict; unknown or missing fields raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"train config must be a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in fields]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), list(fields), n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown field(s) in train config: {', '.join(hints)}")
        required = [f.name for f in fields.values()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"train config is missing required field(s): {', '.join(missing)}")
        return cls(**{k: _coerce(k, v, str(fields[k].type)) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a YAML file whose top level is a mapping of the fields above."""
        import yaml

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        try:
            return cls.from_dict(data if data is not None else {})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (Graph/Hardware objects become their ids)."""
        import copy

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("graphs", "hardware", "eval_graphs", "eval_hardware", "bc_graphs")}
        d = copy.deepcopy(d)
        d["graphs"] = [_spec_name(g) for g in self.graphs]
        d["hardware"] = [_spec_name(h) for h in self.hardware]
        d["eval_graphs"] = [_spec_name(g) for g in self.eval_graphs]
        d["bc_graphs"] = [_spec_name(g) for g in self.bc_graphs]
        d["eval_hardware"] = (None if self.eval_hardware is None
                              else [_spec_name(h) for h in self.eval_hardware])
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (unknown names raise ``ValueError``)."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ValueError(f"unknown train config field(s): {', '.join(bad)}")
        return dataclasses.replace(self, **changes)


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """YAML reads ``3e-4`` as a string: convert numbers given as strings (or integral floats) for
    numeric fields, judged by the field's type annotation."""
    if value is None or isinstance(value, bool) or annotation.startswith("bool"):
        return value
    numeric = annotation.split(" | ")[0]
    if numeric not in ("int", "float"):
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"train config field {name!r} must be a number, got {value!r}") from None
    if numeric == "int" and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"train config field {name!r} must be an integer, got {value!r}")
        return int(value)
    return value


def _spec_name(x: Any) -> str:
    if isinstance(x, Graph):
        return x.id or x.name
    if isinstance(x, Hardware):
        return x.id or x.name
    return str(x)


def expand_graph_ids(specs: Sequence[Any]) -> list[Any]:
    """Expand ``generator://layered-dag-v0/A:B`` into the ids of seeds ``A..B-1``; keep the rest."""
    out: list[Any] = []
    for s in specs:
        m = _GEN_RANGE.match(s) if isinstance(s, str) else None
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b <= a:
                raise ValueError(f"empty generator range {s!r}")
            out += [f"generator://layered-dag-v0/{i}" for i in range(a, b)]
        else:
            out.append(s)
    return out


# ------------------------------------------------------------------------------ instances
@dataclass
class Instances:
    """Resolved training and evaluation instances with the common padding sizes."""

    graphs: list[Graph]
    hardware: list[Hardware]
    eval_pairs: list[tuple[Graph, Hardware]]
    max_nodes: int
    max_edges: int
    k_max: int

    @property
    def padding(self) -> dict[str, int]:
        return {"max_nodes": self.max_nodes, "max_edges": self.max_edges, "k_max": self.k_max}


def resolve_instances(cfg: TrainConfig) -> Instances:
    """Load graphs and hardware, drop training graphs that no hardware can hold (with a warning),
    and size the padding to the largest instance unless the config fixes it."""
    hws = [get_hardware(h) for h in cfg.hardware]
    graphs: list[Graph] = []
    dropped = []
    for spec in expand_graph_ids(cfg.graphs):
        g = load_graph(spec)
        try:
            for hw in hws:
                Problem(g, hw)
        except InfeasibleError:
            dropped.append(g.id or g.name)
            continue
        graphs.append(g)
    if dropped:
        warnings.warn(f"{len(dropped)} training graph(s) do not fit every hardware and were dropped: "
                      f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}", stacklevel=2)
    if not graphs:
        raise ValueError("no training graph fits the hardware")
    eval_hws = [get_hardware(h) for h in cfg.eval_hardware] if cfg.eval_hardware else hws
    eval_graphs = [load_graph(s) for s in expand_graph_ids(cfg.eval_graphs)] or graphs[:8]
    pairs = [(g, hw) for g in eval_graphs for hw in eval_hws]
    for g, hw in pairs:
        Problem(g, hw)  # raises InfeasibleError with a clear message
    everything = graphs + eval_graphs
    max_nodes = cfg.max_nodes or max(g.n for g in everything)
    max_edges = cfg.max_edges or max(max(g.num_edges, 1) for g in everything)
    k_max = cfg.k_max or max(hw.num_chips for hw in hws + eval_hws)
    return Instances(graphs, hws, pairs, int(max_nodes), int(max_edges), int(k_max))


class HardwareMixEnv(gym.Env):
    """Several :class:`MCMPartitionEnv` with the same padding (one per hardware); each reset draws
    one with ``self.np_random`` and delegates to it. ``action_masks()`` delegates too."""

    metadata = {"render_modes": []}

    def __init__(self, envs: Sequence[MCMPartitionEnv]) -> None:
        if not envs:
            raise ValueError("HardwareMixEnv needs at least one env")
        self.envs = list(envs)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        for e in self.envs[1:]:
            if e.observation_space != self.observation_space or e.action_space != self.action_space:
                raise ValueError("HardwareMixEnv: all envs need the same padding (max_nodes, max_edges, "
                                 "k_max) and mode")
        self.active = self.envs[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.active = self.envs[int(self.np_random.integers(len(self.envs)))]
        return self.active.reset(seed=int(self.np_random.integers(2**31 - 1)), options=options)

    def step(self, action: Any):
        return self.active.step(action)

    def action_masks(self) -> np.ndarray:
        return self.active.action_masks()

    @property
    def problem(self) -> Problem:
        return self.active.problem


def make_env(graphs: Sequence[Graph | str], hardware: Sequence[Hardware | str], *, max_nodes: int,
             max_edges: int, k_max: int, use_repair: bool = True, repair: RepairConfig | None = None,
             monitor: bool = True) -> gym.Env:
    """One training env: every reset draws a graph from ``graphs`` and a hardware from ``hardware``;
    wrapped in SB3's ``Monitor`` (episode statistics) unless ``monitor=False``."""
    envs = [MCMPartitionEnv(graphs=list(graphs), hardware=hw, max_nodes=max_nodes, max_edges=max_edges,
                            k_max=k_max, use_repair=use_repair, repair=repair) for hw in hardware]
    env: gym.Env = envs[0] if len(envs) == 1 else HardwareMixEnv(envs)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def make_vec_env(cfg: TrainConfig, n_envs: int | None = None, seed: int | None = None,
                 instances: Instances | None = None):
    """``n_envs`` (default ``cfg.n_envs``) training envs in a ``DummyVecEnv``, or a ``SubprocVecEnv``
    when ``cfg.vec_env == "subproc"`` (worker processes are started by forkserver/spawn: call this
    under ``if __name__ == "__main__":`` in scripts), seeded with ``seed + i`` (default
    ``cfg.seed``). MaskablePPO reads the masks through the envs' ``action_masks()``."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    inst = instances or resolve_instances(cfg)
    n = int(n_envs or cfg.n_envs)
    factory = partial(make_env, inst.graphs, inst.hardware, use_repair=cfg.use_repair, **inst.padding)
    venv = SubprocVecEnv([factory] * n) if cfg.vec_env == "subproc" else DummyVecEnv([factory] * n)
    venv.seed(cfg.seed if seed is None else seed)
    return venv


# ------------------------------------------------------------------------------ models
def _ppo_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    return {"learning_rate": cfg.learning_rate, "n_steps": cfg.n_steps, "batch_size": cfg.batch_size,
            "n_epochs": cfg.n_epochs, "gamma": cfg.gamma, "gae_lambda": cfg.gae_lambda,
            "clip_range": cfg.clip_range, "ent_coef": cfg.ent_coef, "vf_coef": cfg.vf_coef,
            "max_grad_norm": cfg.max_grad_norm, "target_kl": cfg.target_kl}


def _tensorboard_dir(log_dir: str | None) -> str | None:
    if not log_dir:
        return None
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        warnings.warn("log_dir is set but the tensorboard package is not installed; no TensorBoard "
                      "logs (pip install tensorboard)", stacklevel=3)
        return None
    return str(log_dir)


def build_model(cfg: TrainConfig, env: Any, policy_kw: dict[str, Any] | None = None):
    """A fresh ``MaskablePPO("MultiInputPolicy", env)`` with the GNN extractor and ``cfg``'s
    hyper-parameters, seeded with ``cfg.seed``."""
    from sb3_contrib import MaskablePPO

    from mcm_gym.learn.extractor import policy_kwargs

    pk = policy_kw if policy_kw is not None else policy_kwargs(net_arch=cfg.net_arch, **cfg.extractor)
    return MaskablePPO("MultiInputPolicy", env, policy_kwargs=pk, seed=cfg.seed, device=cfg.device,
                       verbose=0, tensorboard_log=_tensorboard_dir(cfg.log_dir), **_ppo_kwargs(cfg))


def load_model(path: str | os.PathLike[str], env: Any = None, device: str = "cpu"):
    """Load a ``MaskablePPO`` checkpoint (optionally bound to ``env``, whose spaces must match)."""
    from sb3_contrib import MaskablePPO

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} not found")
    return MaskablePPO.load(p, env=env, device=device)


def _k_max(space: gym.spaces.Dict) -> int:
    return int(space["chip_state"].shape[0])


def _check_transferable(src: gym.spaces.Dict, dst: gym.spaces.Dict) -> None:
    for key in ("node_features", "chip_state"):
        if src[key].shape[-1] != dst[key].shape[-1]:
            raise ValueError(f"policy was trained on {key} with {src[key].shape[-1]} features, "
                             f"the env has {dst[key].shape[-1]}")
    if _k_max(src) != _k_max(dst):
        raise ValueError(f"policy was trained with k_max={_k_max(src)}, the env has k_max={_k_max(dst)}; "
                         f"build the env with k_max={_k_max(src)}")
    if src["action_mask"].shape != dst["action_mask"].shape and src["action_mask"].shape[0] == _k_max(src):
        raise ValueError("policy and env differ in mode (sequential vs oneshot)")


def policy_for_env(model: Any, env: gym.Env):
    """``model``'s policy for ``env``'s observation space: the policy itself when the spaces match,
    else a copy built for ``env``'s padding with the same weights (same ``K_max`` required)."""
    if model.observation_space == env.observation_space and model.action_space == env.action_space:
        return model.policy
    _check_transferable(model.observation_space, env.observation_space)
    pol = type(model.policy)(env.observation_space, env.action_space, lambda _: 0.0, **model.policy_kwargs)
    pol.load_state_dict(model.policy.state_dict())
    pol.to(model.device)
    pol.set_training_mode(False)
    return pol


def transplant(source: Any, target: Any) -> None:
    """Copy ``source``'s policy weights (and optimizer state) into ``target`` (same architecture,
    any padding, same ``K_max``)."""
    _check_transferable(source.observation_space, target.observation_space)
    target.policy.load_state_dict(source.policy.state_dict())
    try:
        target.policy.optimizer.load_state_dict(source.policy.optimizer.state_dict())
    except (ValueError, KeyError):  # pragma: no cover - different optimizer; keep the fresh one
        pass


def save_atomic(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` to ``path`` (a ``.zip``) via a temporary file in the same folder + ``os.replace``,
    so a reader never sees a partial checkpoint."""
    return atomic_write(path, model.save)


def sidecar_path(checkpoint: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of a checkpoint: same name, ``.json``."""
    return Path(checkpoint).with_suffix(".json")


def read_sidecar(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A checkpoint's sidecar (config, curve, best partition), or None if it has none."""
    p = sidecar_path(checkpoint)
    if not p.exists():
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------------ episodes
def run_episodes(policy: Any, env: MCMPartitionEnv, episodes: int = 1, deterministic: bool = True,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Play ``episodes`` masked episodes of ``policy`` (a MaskablePPO policy for ``env``'s spaces);
    return each episode's final ``info`` plus ``repair_time`` (s)."""
    out = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        done = False
        while not done:
            action, _ = policy.predict(obs, deterministic=deterministic, action_masks=env.action_masks())
            obs, _, done, _, info = env.step(int(np.asarray(action).ravel()[0]))
        info = dict(info)
        info["repair_time"] = env.last_repair_time
        out.append(info)
    return out


def _summarize(infos: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [float(i["score"]) for i in infos]
    best = int(np.argmax(scores)) if scores else 0
    changes = [i["changes"] for i in infos if i.get("changes") is not None]
    return {
        "episodes": len(infos), "scores": scores,
        "mean_score": float(np.mean(scores)) if scores else 0.0,
        "best_score": float(max(scores)) if scores else 0.0,
        "best_partition": None if not infos or infos[best].get("partition") is None
        else np.asarray(infos[best]["partition"]).tolist(),
        "partitions": [None if i.get("partition") is None else np.asarray(i["partition"]).tolist()
                       for i in infos],
        "repair": {
            "status": dict(Counter(str(i.get("repair_status")) for i in infos)),
            "method": dict(Counter(str(i.get("repair_method")) for i in infos)),
            "mean_changes": float(np.mean(changes)) if changes else None,
            "mean_time_s": float(np.mean([i["repair_time"] for i in infos])) if infos else 0.0,
            "mean_invalid_actions": float(np.mean([i.get("invalid_actions", 0) for i in infos]))
            if infos else 0.0,
        },
    }


def evaluate_policy_on(checkpoint_or_model: Any, graph: Graph | str, hardware: Hardware | str | None = None,
                       episodes: int = 1, deterministic: bool = True, seed: int = 0,
                       use_repair: bool = True, repair: RepairConfig | None = None) -> dict[str, Any]:
    """Zero-shot inference plus repair of a policy on one instance.

    ``checkpoint_or_model``: a checkpoint path or a ``MaskablePPO``. The env is padded to the graph's
    own size with the policy's ``K_max`` (the weights do not depend on the padding). Returns
    ``graph_id``, ``hardware_id``, ``episodes``, ``scores``, ``mean_score``, ``best_score``,
    ``best_partition``, ``partitions`` (repaired, None where no valid one), ``repair`` (status and
    method counts, mean changes, mean solve time in s, mean invalid actions) and ``wall_time`` (s).
    """
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = load_model(checkpoint_or_model) if isinstance(checkpoint_or_model, (str, os.PathLike)) \
        else checkpoint_or_model
    k_max = _k_max(model.observation_space)
    env = MCMPartitionEnv(graph, hardware, k_max=k_max, use_repair=use_repair, repair=repair)
    policy = policy_for_env(model, env)
    infos = run_episodes(policy, env, episodes, deterministic, seed)
    g, hw = env.problem.graph, env.problem.hardware
    return {"graph_id": g.id or g.name, "hardware_id": hw.id or hw.name, **_summarize(infos),
            "wall_time": time.perf_counter() - t0}


# ------------------------------------------------------------------------------ training loop
@dataclass
class _RunState:
    """What the sidecar carries across checkpoints and resumes."""

    curve: list[dict[str, Any]] = field(default_factory=list)
    episodes: int = 0
    wall_offset: float = 0.0  # s of earlier runs (resume)
    best: dict[str, Any] = field(default_factory=lambda: {"score": 0.0})

    @classmethod
    def from_sidecar(cls, data: dict[str, Any] | None) -> _RunState:
        if not data:
            return cls()
        return cls(curve=list(data.get("curve", [])), episodes=int(data.get("episodes", 0)),
                   wall_offset=float(data.get("wall_time", 0.0)),
                   best=dict(data.get("best") or {"score": 0.0}))


class _Evaluator:
    """Deterministic episodes on fixed (graph, hardware) pairs, padded like the training envs."""

    def __init__(self, pairs: list[tuple[Graph, Hardware]], padding: dict[str, int], episodes: int,
                 seed: int, use_repair: bool) -> None:
        self.envs = [MCMPartitionEnv(g, hw, use_repair=use_repair, **padding) for g, hw in pairs]
        self.episodes, self.seed = episodes, seed

    def __call__(self, model: Any) -> dict[str, Any]:
        per: dict[str, float] = {}
        scores = []
        for env in self.envs:
            infos = run_episodes(model.policy, env, self.episodes, True, self.seed)
            s = [float(i["score"]) for i in infos]
            scores += s
            pr = env.problem
            per[f"{pr.graph.id or pr.graph.name}@{pr.hardware.id or pr.hardware.name}"] = float(np.mean(s))
        return {"eval_mean_score": float(np.mean(scores)), "eval_best_score": float(np.max(scores)),
                "eval_scores": per}


def _make_callback(cfg: TrainConfig, out: Path, state: _RunState, evaluator: _Evaluator | None,
                   meta: dict[str, Any]):
    from stable_baselines3.common.callbacks import BaseCallback

    class _TrainCallback(BaseCallback):
        """Tracks finished episodes; at rollout starts (the policy has learned from every step counted)
        logs a curve point, evaluates and checkpoints when due."""

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()
            self.window: list[float] = []
            self.last_eval_ts = -1
            self.next_ckpt = 0

        def _init_callback(self) -> None:
            ts = self.model.num_timesteps
            every = cfg.checkpoint_every
            self.next_ckpt = (ts // every + 1) * every if every else math.inf

        def wall(self) -> float:
            return state.wall_offset + time.perf_counter() - self.t0

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if not done:
                    continue
                state.episodes += 1
                s = float(info.get("score", 0.0))
                self.window.append(s)
                if s > state.best["score"] and info.get("partition") is not None:
                    state.best = {"score": s, "graph_id": info.get("graph_id"),
                                  "hardware_id": info.get("hardware_id"),
                                  "partition": np.asarray(info["partition"]).tolist(),
                                  "timesteps": int(self.num_timesteps)}
            if cfg.max_wall_time is not None and time.perf_counter() - self.t0 > cfg.max_wall_time:
                return False
            return True

        def _on_rollout_start(self) -> None:
            self.point(eval_due=self._eval_due())
            if self.num_timesteps >= self.next_ckpt:
                every = cfg.checkpoint_every
                self.next_ckpt = (self.num_timesteps // every + 1) * every
                self.save(out / "checkpoints" / f"step_{self.num_timesteps:010d}.zip")

        def _eval_due(self) -> bool:
            if evaluator is None or not cfg.eval_every:
                return False
            last = self.last_eval_ts
            return last < 0 or self.num_timesteps // cfg.eval_every > last // cfg.eval_every

        def point(self, eval_due: bool) -> None:
            ts = int(self.num_timesteps)
            if state.curve and state.curve[-1]["timesteps"] == ts and not eval_due:
                return
            pt: dict[str, Any] = {
                "timesteps": ts, "wall_time": round(self.wall(), 3), "episodes": state.episodes,
                "train_mean_score": float(np.mean(self.window)) if self.window else None,
                "train_best_score": float(state.best["score"])}
            self.window = []
            is_best = False
            if eval_due and evaluator is not None:
                pt.update(evaluator(self.model))
                self.last_eval_ts = ts
                evals = [p["eval_mean_score"] for p in state.curve if p.get("eval_mean_score") is not None]
                is_best = not evals or pt["eval_mean_score"] > max(evals)
                self.logger.record("eval/mean_score", pt["eval_mean_score"])
                self.logger.record("eval/best_score", pt["eval_best_score"])
            if pt["train_mean_score"] is not None:
                self.logger.record("train/episode_score", pt["train_mean_score"])
            self.logger.record("train/best_score", pt["train_best_score"])
            if state.curve and state.curve[-1]["timesteps"] == ts:
                state.curve[-1].update({k: v for k, v in pt.items() if v is not None})
            else:
                state.curve.append(pt)
            self.write_json(out / "train_log.json")
            if is_best:  # the checkpoint with the best held-out (eval_graphs) score so far
                self.save(out / "best.zip")

        def sidecar(self) -> dict[str, Any]:
            return {"format": SIDECAR_FORMAT, **meta, "config": cfg.to_dict(),
                    "timesteps": int(self.num_timesteps), "episodes": state.episodes,
                    "wall_time": round(self.wall(), 3), "best": state.best, "curve": state.curve}

        def write_json(self, path: Path) -> None:
            atomic_write_text(path, json.dumps(self.sidecar(), indent=1) + "\n")

        def save(self, path: Path) -> None:
            save_atomic(self.model, path)
            self.write_json(sidecar_path(path))

        def finish(self) -> Path:
            self.point(eval_due=evaluator is not None and self.last_eval_ts != self.num_timesteps)
            final = out / "final.zip"
            self.save(final)
            return final

    return _TrainCallback()


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


def _fit(model: Any, cfg: TrainConfig, inst: Instances, out: Path, state: _RunState, progress: bool,
         reset: bool, meta: dict[str, Any]) -> Path:
    evaluator = (_Evaluator(inst.eval_pairs, inst.padding, cfg.eval_episodes, cfg.seed + 10_000,
                            cfg.use_repair) if cfg.eval_every > 0 else None)
    cb = _make_callback(cfg, out, state, evaluator, meta)
    remaining = cfg.total_timesteps - (0 if reset else model.num_timesteps)
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=reset,
                    progress_bar=_progress_ok(progress), tb_log_name="ppo")
    else:  # nothing left to learn (e.g. resuming a finished run): still write final.zip
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
        cb.init_callback(model)
    return cb.finish()


def warm_start(model: Any, cfg: TrainConfig, inst: Instances, progress: bool = True) -> dict[str, Any]:
    """Behaviour cloning of ``cfg.bc_teacher`` on every training graph x hardware (see
    :mod:`mcm_gym.learn.imitation`); returns what it did (examples, teacher scores, per-epoch losses, s)."""
    from mcm_gym.learn.imitation import behaviour_clone, collect_demos

    t0 = time.perf_counter()
    pairs = [(g, hw) for g in inst.graphs for hw in inst.hardware]
    pairs += [(load_graph(x), hw) for x in expand_graph_ids(cfg.bc_graphs) for hw in inst.hardware]
    say = print if _progress_ok(progress) else (lambda *a, **k: None)
    demos = collect_demos(pairs, inst.k_max, teacher=str(cfg.bc_teacher), budget=cfg.bc_budget, seed=cfg.seed)
    say(f"behaviour cloning: {len(demos)} steps of {demos.episodes} {cfg.bc_teacher} partitions "
        f"(mean teacher score {np.mean(demos.teacher_scores or [0]):.4f}; {demos.dropped} masked steps dropped)")
    hist = behaviour_clone(model, demos, epochs=cfg.bc_epochs, batch_size=cfg.bc_batch_size,
                           learning_rate=cfg.bc_learning_rate, switch_weight=cfg.bc_switch_weight, seed=cfg.seed,
                           progress=lambda e, r: say(f"  epoch {e}: nll {r['nll']:.4f}, accuracy {r['accuracy']:.3f}"))
    return {"teacher": cfg.bc_teacher, "examples": len(demos), "episodes": demos.episodes,
            "dropped": demos.dropped, "infeasible": demos.infeasible,
            "teacher_mean_score": float(np.mean(demos.teacher_scores)) if demos.teacher_scores else None,
            "epochs": hist, "wall_time": time.perf_counter() - t0}


def train(cfg: TrainConfig, resume_from: str | os.PathLike[str] | None = None,
          progress: bool = True) -> Path:
    """Train a MaskablePPO + GNN policy on ``cfg``'s instances; return the path of ``final.zip``.

    Writes to ``cfg.out_dir``: ``checkpoints/step_<timesteps>.zip`` every ``checkpoint_every``
    timesteps, ``best.zip`` (the one with the best mean ``eval_graphs`` score so far; choose
    validation graphs apart from the ones you report on), ``final.zip``, a ``.json`` sidecar beside
    each (config, curve, best partition) and ``train_log.json`` (the live curve). ``resume_from`` a
    checkpoint continues its timestep count and curve up to ``cfg.total_timesteps`` (the random
    streams restart from ``seed + timesteps``, so a resumed run is reproducible but not
    bit-identical to an uninterrupted one).
    """
    import torch

    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inst = resolve_instances(cfg)
    venv = make_vec_env(cfg, instances=inst)
    meta: dict[str, Any] = {"kind": "train", "parent": None}
    if resume_from is not None:
        model = load_model(resume_from, env=venv, device=cfg.device)
        model.set_random_seed(cfg.seed + model.num_timesteps)
        side = read_sidecar(resume_from)
        state = _RunState.from_sidecar(side)
        meta["parent"] = str(resume_from)
        model.tensorboard_log = _tensorboard_dir(cfg.log_dir)
    else:
        model = build_model(cfg, venv)
        state = _RunState()
        if cfg.bc_teacher:
            meta["bc"] = warm_start(model, cfg, inst, progress)
    try:
        return _fit(model, cfg, inst, out, state, progress, reset=resume_from is None, meta=meta)
    finally:
        venv.close()


def finetune(checkpoint: str | os.PathLike[str], graph: Graph | str, hardware: Hardware | str | None = None,
             total_timesteps: int = 20_000, *, out_dir: str | os.PathLike[str] | None = None,
             seed: int = 0, progress: bool = True, **overrides: Any) -> Path:
    """Fine-tune a pre-trained policy on one instance; return the path of the new ``final.zip``.

    The new run reuses the checkpoint's config (from its sidecar, else the defaults) with
    ``graphs=[graph]``, ``hardware=[hardware]`` (default: the graph's ``default_hardware``, else
    ring-8), evaluation on that instance, padding sized to the graph and the checkpoint's ``K_max``;
    ``overrides`` change any other :class:`TrainConfig` field (e.g. ``n_steps``, ``learning_rate``);
    unless ``n_steps`` is given, it is cut to ``total_timesteps`` (per env) where the checkpoint's is
    larger, so a short fine-tune stops where asked.
    The weights and optimizer state come from the checkpoint; the timestep count starts at 0 and the
    first curve point is the zero-shot score. ``out_dir`` defaults to
    ``<checkpoint folder>/finetune-<graph>``.
    """
    import torch

    base_model = load_model(checkpoint)
    side = read_sidecar(checkpoint)
    g = load_graph(graph)
    hw = get_hardware(hardware if hardware is not None
                      else g.metadata.get("default_hardware") or "ring-8")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", (g.id or g.name).split("://")[-1])
    base = {k: v for k, v in (side or {}).get("config", {}).items()
            if k not in ("max_nodes", "max_edges", "eval_graphs", "eval_hardware")}
    base.update(graphs=[g], hardware=[hw], eval_graphs=[g], eval_hardware=None,
                k_max=_k_max(base_model.observation_space), total_timesteps=int(total_timesteps),
                seed=seed, out_dir=str(out_dir or Path(checkpoint).parent / f"finetune-{name}"))
    base.update(overrides)
    cfg = TrainConfig.from_dict(base)
    per_env = max(cfg.total_timesteps // cfg.n_envs, 1)
    if "n_steps" not in overrides and 0 < per_env < cfg.n_steps:
        # a short fine-tune: one rollout of the checkpoint's n_steps would overshoot total_timesteps
        cfg = cfg.replace(n_steps=per_env, batch_size=min(cfg.batch_size, per_env * cfg.n_envs))
    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inst = resolve_instances(cfg)
    venv = make_vec_env(cfg, instances=inst)
    model = build_model(cfg, venv, policy_kw=base_model.policy_kwargs)
    transplant(base_model, model)
    meta = {"kind": "finetune", "parent": str(checkpoint)}
    try:
        return _fit(model, cfg, inst, out, _RunState(), progress, reset=True, meta=meta)
    finally:
        venv.close()


def curve_table(curve: list[dict[str, Any]], fmt: Callable[[Any], str] | None = None) -> str:
    """A plain-text table of a training curve (timesteps, wall s, episodes, train/eval scores)."""
    f = fmt or (lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v))
    cols = ["timesteps", "wall_time", "episodes", "train_mean_score", "train_best_score",
            "eval_mean_score", "eval_best_score"]
    lines = ["  ".join(f"{c:>16}" for c in cols)]
    for pt in curve:
        lines.append("  ".join(f"{f(pt.get(c)):>16}" for c in cols))
    return "\n".join(lines)
