"""The training config: :class:`TrainConfig`, its sections, and reading it from YAML.

A config is a mapping of sections plus a few top-level run keys::

    instances:                 # what to train on (each episode draws a graph and a hardware)
      split: train             # optional: every graph must be in mcm_gym.instances.zoo.split_ids("train");
      graphs: [generator://layered-dag-v0/0:300, zoo://vit-base-v1]   # no graphs = the whole split
      hardware: [ring-4, ring-8]
    env: {k_max: 8, use_repair: true, n_envs: 1, vec_env: dummy}      # padding max_nodes/max_edges/k_max
    ppo: {learning_rate: 1.0e-4, n_steps: 2048, batch_size: 256, n_epochs: 4, gamma: 1.0, ent_coef: 0.0}
    policy: {extractor: {hidden: 64, layers: 3}, net_arch: {pi: [128, 128], vf: [128, 128]}}
    bc: {teacher: dp, graphs: [zoo://gpt2-v1], budget: 16, epochs: 15}  # behaviour-cloning warm start
    eval: {split: heldout, graphs: [generator://layered-dag-v0/1050:1058], every: 2048, episodes: 1}
    total_timesteps: 30000
    seed: 0
    out_dir: runs/pretrain

``ppo`` holds ``MaskablePPO`` keyword arguments under their own names, merged over
:data:`~mcm_gym.learn.model.DEFAULT_PPO` and passed verbatim; ``policy`` holds the policy's
(``policy_kwargs``) settings, see :mod:`mcm_gym.learn.model`. Graph lists take ids, short names,
files, ranges (``generator://layered-dag-v0/A:B``, the seeds ``A..B-1``) and whole splits
(``split://train``, ``split://heldout``). An unknown key anywhere raises ``ValueError`` naming it
(and the file, from :meth:`TrainConfig.from_yaml`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.instances.zoo import SPLITS
from mcm_gym.learn.model import DEFAULT_PPO, check_policy, check_ppo

__all__ = ["TrainConfig", "InstancesConfig", "EnvConfig", "BCConfig", "EvalConfig", "SECTIONS", "LEGACY_KEYS",
           "upgrade_flat_config", "spec_name"]

_S = TypeVar("_S", bound="_Section")


def spec_name(x: Any) -> str:
    """The id of a Graph or Hardware (else its name), or the text of a spec."""
    if isinstance(x, (Graph, Hardware)):
        return x.id or x.name
    return str(x)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, Graph, Hardware)):
        return [value]
    return list(value)


def _coerce(where: str, value: Any, annotation: str) -> Any:
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
            raise ValueError(f"{where} must be a number, got {value!r}") from None
    if numeric == "int" and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return int(value)
    return value


def _unknown_keys(where: str, bad: list[str], known: list[str], moved: Mapping[str, str] | None = None) -> ValueError:
    hints = []
    for k in bad:
        if moved and k in moved:
            hints.append(f"{k!r} (now {moved[k]})")
            continue
        close = difflib.get_close_matches(str(k), known, n=1)
        hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ValueError(f"unknown key(s) in {where}: {', '.join(hints)}; known: {', '.join(known)}")


def _check_split(where: str, split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"{where} must be one of {', '.join(SPLITS)}, got {split!r}")


def _at_least(where: str, value: int, low: int) -> None:
    if int(value) < low:
        raise ValueError(f"{where} must be >= {low}, got {value}")


@dataclass
class _Section:
    """A config section: a dataclass whose fields are the section's keys."""

    NAME: ClassVar[str] = ""

    @classmethod
    def from_dict(cls: type[_S], data: Mapping[str, Any] | None) -> _S:
        """Build from a mapping of the section's keys (unknown ones raise ``ValueError``)."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"section {cls.NAME!r} must be a mapping, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = [str(k) for k in data if k not in fields]
        if bad:
            raise _unknown_keys(f"section {cls.NAME!r}", bad, list(fields))
        return cls(**{k: _coerce(f"{cls.NAME}.{k}", v, str(fields[k].type)) for k, v in data.items()})

    def updated(self: _S, changes: Mapping[str, Any]) -> _S:
        """A copy with the keys ``changes`` names replaced (checked like :meth:`from_dict`)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        bad = [str(k) for k in changes if k not in fields]
        if bad:
            raise _unknown_keys(f"section {self.NAME!r}", bad, list(fields))
        return dataclasses.replace(self, **{k: _coerce(f"{self.NAME}.{k}", v, str(fields[k].type))
                                            for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Graph / Hardware objects become their ids)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("graphs", "hardware") and v is not None:
                v = [spec_name(x) for x in v]
            out[f.name] = copy.deepcopy(v)
        return out


@dataclass
class InstancesConfig(_Section):
    """``instances``: training ``graphs`` on ``hardware`` (each reset draws one of each). ``split``
    (``train`` / ``heldout``): every graph must belong to that split of
    :func:`mcm_gym.instances.zoo.split_ids`; without ``graphs``, the whole split."""

    NAME: ClassVar[str] = "instances"
    graphs: list[Any] = field(default_factory=list)
    hardware: list[Any] = field(default_factory=lambda: ["ring-8"])
    split: str | None = None

    def __post_init__(self) -> None:
        self.graphs, self.hardware = _as_list(self.graphs), _as_list(self.hardware)
        _check_split("instances.split", self.split)
        if not self.graphs and self.split is None:
            raise ValueError("instances.graphs is empty: list training graphs or name a split "
                             "(instances.split: train)")
        if not self.hardware:
            raise ValueError("instances.hardware is empty")


@dataclass
class EnvConfig(_Section):
    """``env``: the padding (``max_nodes``, ``max_edges``, ``k_max``; default: the largest instance,
    training and evaluation), ``use_repair``, and ``n_envs`` training envs in a ``vec_env``
    (``dummy`` or ``subproc``)."""

    NAME: ClassVar[str] = "env"
    max_nodes: int | None = None
    max_edges: int | None = None
    k_max: int | None = None
    use_repair: bool = True
    n_envs: int = 1
    vec_env: str = "dummy"

    def __post_init__(self) -> None:
        _at_least("env.n_envs", self.n_envs, 1)
        for k in ("max_nodes", "max_edges", "k_max"):
            v = getattr(self, k)
            if v is not None:
                _at_least(f"env.{k}", v, 1)
        if self.vec_env not in ("dummy", "subproc"):
            raise ValueError(f"env.vec_env must be 'dummy' or 'subproc', got {self.vec_env!r}")


@dataclass
class BCConfig(_Section):
    """``bc``: behaviour-cloning warm start (see :mod:`mcm_gym.learn.imitation`). With a ``teacher``
    (a method spec such as ``dp``), before PPO the policy imitates that search's partitions
    (``budget`` evaluations each) of every training graph x hardware, plus ``graphs`` on the hardware
    they fit, for ``epochs`` epochs (``batch_size``, ``learning_rate``, ``switch_weight`` for the
    steps that move to another chip). No teacher: no warm start."""

    NAME: ClassVar[str] = "bc"
    teacher: str | None = None
    graphs: list[Any] = field(default_factory=list)
    budget: int = 16
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    switch_weight: float = 4.0

    def __post_init__(self) -> None:
        self.graphs = _as_list(self.graphs)
        for k in ("budget", "epochs", "batch_size"):
            _at_least(f"bc.{k}", getattr(self, k), 1)
        if not self.learning_rate > 0:
            raise ValueError(f"bc.learning_rate must be > 0, got {self.learning_rate}")
        if self.teacher is not None:
            from mcm_gym.search.base import check_method

            try:
                check_method(str(self.teacher))
            except ValueError as e:
                raise ValueError(f"bc.teacher {self.teacher!r} is not a search method ({e})") from None


@dataclass
class EvalConfig(_Section):
    """``eval``: every ``every`` timesteps (0: never), ``episodes`` deterministic episodes on every
    pair of ``graphs`` (default: the first 8 training graphs) x ``hardware`` (default: the training
    hardware); the best mean score picks ``best.zip``. ``split``: every graph must belong to it
    (``heldout`` for validation apart from training)."""

    NAME: ClassVar[str] = "eval"
    graphs: list[Any] = field(default_factory=list)
    hardware: list[Any] | None = None
    every: int = 10_000
    episodes: int = 1
    split: str | None = None

    def __post_init__(self) -> None:
        self.graphs = _as_list(self.graphs)
        self.hardware = None if self.hardware is None else _as_list(self.hardware)
        _check_split("eval.split", self.split)
        _at_least("eval.every", self.every, 0)
        _at_least("eval.episodes", self.episodes, 1)


#: Section name -> section class (``ppo`` and ``policy`` are plain dicts, see :mod:`mcm_gym.learn.model`).
SECTIONS: dict[str, type[_Section]] = {c.NAME: c for c in (InstancesConfig, EnvConfig, BCConfig, EvalConfig)}

#: Keys of the flat config of earlier releases (sidecar format ``mcm-gym-train/1``) -> their place now.
LEGACY_KEYS: dict[str, str] = {
    "graphs": "instances.graphs", "hardware": "instances.hardware",
    **{k: f"env.{k}" for k in ("max_nodes", "max_edges", "k_max", "use_repair", "n_envs", "vec_env")},
    **{k: f"ppo.{k}" for k in DEFAULT_PPO},
    "extractor": "policy.extractor", "net_arch": "policy.net_arch",
    **{f"bc_{k}": f"bc.{k}" for k in ("teacher", "graphs", "budget", "epochs", "batch_size", "learning_rate",
                                      "switch_weight")},
    "eval_graphs": "eval.graphs", "eval_hardware": "eval.hardware", "eval_every": "eval.every",
    "eval_episodes": "eval.episodes",
}


def upgrade_flat_config(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A flat (``mcm-gym-train/1``) config dict in sections; top-level run keys stay where they are."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if k in LEGACY_KEYS:
            sec, _, key = LEGACY_KEYS[k].partition(".")
            out.setdefault(sec, {})[key] = v
        else:
            out[k] = v
    return out


@dataclass
class TrainConfig:
    """Everything a training run needs, in sections (see the module doc); the top-level keys are
    ``total_timesteps``, ``seed``, ``out_dir`` (checkpoints, sidecars, ``train_log.json``),
    ``checkpoint_every`` (timesteps; 0: only ``final.zip``), ``max_wall_time`` (s; stops training
    early, then a final evaluation and ``final.zip``), ``log_dir`` (TensorBoard, when installed),
    ``device`` and ``torch_threads``.

    Build it with :meth:`from_yaml` or :meth:`from_dict` (sections as mappings), or directly with
    section objects (``ppo`` and ``policy`` are dicts). ``ppo`` is stored merged over
    :data:`~mcm_gym.learn.model.DEFAULT_PPO`, so it shows the settings in effect.
    """

    instances: InstancesConfig
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    bc: BCConfig = field(default_factory=BCConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    total_timesteps: int = 100_000
    checkpoint_every: int = 50_000
    seed: int = 0
    out_dir: str = "runs/ppo"
    max_wall_time: float | None = None
    log_dir: str | None = None
    device: str = "cpu"
    torch_threads: int = 1

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if not isinstance(value, cls):  # a mapping (from Python): check it like the YAML
                setattr(self, name, cls.from_dict(value))
        self.ppo = check_ppo(self.ppo)
        self.policy = check_policy(self.policy)
        _at_least("total_timesteps", self.total_timesteps, 0)
        _at_least("checkpoint_every", self.checkpoint_every, 0)
        _at_least("torch_threads", self.torch_threads, 1)
        if self.max_wall_time is not None and not self.max_wall_time > 0:
            raise ValueError(f"max_wall_time must be > 0 (or null), got {self.max_wall_time}")

    # -- (de)serialisation
    @classmethod
    def _top_level(cls) -> dict[str, dataclasses.Field[Any]]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping of sections and top-level keys; unknown keys (in any section) and a
        missing ``instances`` raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"train config must be a mapping, got {type(data).__name__}")
        fields = cls._top_level()
        bad = [str(k) for k in data if k not in fields]
        if bad:
            raise _unknown_keys("train config", bad, list(fields), LEGACY_KEYS)
        if "instances" not in data:
            raise ValueError("train config is missing the section 'instances' (graphs, hardware)")
        kw: dict[str, Any] = {}
        for k, v in data.items():
            if k in SECTIONS:
                kw[k] = SECTIONS[k].from_dict(v)
            elif k in ("ppo", "policy"):
                if v is not None and not isinstance(v, Mapping):
                    raise ValueError(f"section {k!r} must be a mapping, got {type(v).__name__}")
                kw[k] = dict(v or {})
            else:
                kw[k] = _coerce(k, v, str(fields[k].type))
        return cls(**kw)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a YAML file of sections and top-level keys (see the module doc); errors name the file."""
        import yaml

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        try:
            return cls.from_dict(data if data is not None else {})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_sidecar(cls, sidecar: Mapping[str, Any]) -> TrainConfig | None:
        """The config a checkpoint's sidecar records (either sidecar format), or None without one."""
        conf = sidecar.get("config")
        if not conf:
            return None
        if "instances" not in conf:  # mcm-gym-train/1: flat
            conf = upgrade_flat_config(conf)
        return cls.from_dict(conf)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (Graph / Hardware objects become their ids); ``from_dict`` reads it back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, _Section) else copy.deepcopy(v)
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``: top-level keys are replaced; a section given as a mapping is
        updated key by key (``cfg.replace(ppo={"n_steps": 64}, eval={"every": 0})``), a section
        object replaces the section. Unknown names raise ``ValueError``."""
        fields = self._top_level()
        bad = [k for k in changes if k not in fields]
        if bad:
            raise _unknown_keys("train config", bad, list(fields), LEGACY_KEYS)
        kw: dict[str, Any] = {}
        for k, v in changes.items():
            cur = getattr(self, k)
            if k in SECTIONS and isinstance(v, Mapping):
                kw[k] = cur.updated(v)
            elif k in ("ppo", "policy") and isinstance(v, Mapping):
                kw[k] = {**cur, **v}
            else:
                kw[k] = v
        return dataclasses.replace(self, **kw)
