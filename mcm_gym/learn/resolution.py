"""Instance resolution: a :class:`~mcm_gym.learn.config.TrainConfig`'s graph and hardware specs to
loaded graphs, hardware, evaluation pairs and the common padding.

Graph lists are expanded here: ``split://train`` / ``split://heldout`` become
:func:`mcm_gym.instances.zoo.split_ids`, ranges become their single ids
(:func:`mcm_gym.core.ids.expand_ids`); a section's ``split`` is checked against its graphs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.core.ids import expand_ids
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.instances.zoo import SPLITS, split_ids
from mcm_gym.learn.config import TrainConfig, spec_name

__all__ = ["Instances", "SPLIT_SCHEME", "expand_graph_specs", "check_split", "trained_graph_ids",
           "resolve_instances"]

SPLIT_SCHEME = "split://"


def expand_graph_specs(specs: Iterable[Any]) -> list[Any]:
    """``split://<name>`` -> the ids of that split, ranges -> their single ids; other entries (ids,
    short names, files, Graph objects) stay as they are."""
    out: list[Any] = []
    for s in specs:
        if isinstance(s, str) and s.startswith(SPLIT_SCHEME):
            name = s[len(SPLIT_SCHEME):]
            if name not in SPLITS:
                raise ValueError(f"unknown split {s!r}; use one of {', '.join(SPLIT_SCHEME + x for x in SPLITS)}")
            out += split_ids(name)
        else:
            out += expand_ids([s])
    return out


def _section_specs(graphs: Sequence[Any], split: str | None) -> list[Any]:
    return expand_graph_specs(graphs if graphs else [SPLIT_SCHEME + split] if split else [])


def check_split(where: str, graphs: Iterable[Graph], split: str | None) -> None:
    """``ValueError`` naming the graphs that are not in ``split`` (nothing to check without one)."""
    if split is None:
        return
    members = set(split_ids(split))
    outside = [spec_name(g) for g in graphs if (g.id or "") not in members]
    if outside:
        raise ValueError(f"{where}: {len(outside)} graph(s) are not in the {split!r} split: "
                         f"{', '.join(outside[:5])}{' ...' if len(outside) > 5 else ''}")


def trained_graph_ids(cfg: TrainConfig) -> set[str]:
    """The ids (and specs as written) of every graph the config trains on: ``instances`` and ``bc``."""
    specs = _section_specs(cfg.instances.graphs, cfg.instances.split) + expand_graph_specs(cfg.bc.graphs)
    return {spec_name(s) for s in specs}


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
        """``max_nodes``, ``max_edges``, ``k_max``: keyword arguments of ``MCMPartitionEnv``."""
        return {"max_nodes": self.max_nodes, "max_edges": self.max_edges, "k_max": self.k_max}


def resolve_instances(cfg: TrainConfig) -> Instances:
    """Load graphs and hardware, check the declared splits, drop training graphs that some hardware
    cannot hold (with a warning), and size the padding to the largest instance unless ``cfg.env``
    fixes it."""
    ins, ev = cfg.instances, cfg.eval
    hws = [get_hardware(h) for h in ins.hardware]
    loaded = [load_graph(s) for s in _section_specs(ins.graphs, ins.split)]
    check_split("instances", loaded, ins.split)
    graphs: list[Graph] = []
    dropped = []
    for g in loaded:
        try:
            for hw in hws:
                Problem(g, hw)
        except InfeasibleError:
            dropped.append(spec_name(g))
            continue
        graphs.append(g)
    if dropped:
        warnings.warn(f"{len(dropped)} training graph(s) do not fit every hardware and were dropped: "
                      f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}", stacklevel=2)
    if not graphs:
        raise ValueError("no training graph fits the hardware")
    eval_hws = [get_hardware(h) for h in ev.hardware] if ev.hardware else hws
    eval_graphs = [load_graph(s) for s in _section_specs(ev.graphs, ev.split)]
    check_split("eval", eval_graphs, ev.split)
    eval_graphs = eval_graphs or graphs[:8]
    pairs = [(g, hw) for g in eval_graphs for hw in eval_hws]
    for g, hw in pairs:
        Problem(g, hw)  # raises InfeasibleError with a clear message
    everything = graphs + eval_graphs
    env = cfg.env
    max_nodes = env.max_nodes or max(g.n for g in everything)
    max_edges = env.max_edges or max(max(g.num_edges, 1) for g in everything)
    k_max = env.k_max or max(hw.num_chips for hw in hws + eval_hws)
    return Instances(graphs, hws, pairs, int(max_nodes), int(max_edges), int(k_max))
