"""Running a trained policy: episodes (:func:`run_episodes`), zero-shot inference plus repair on one
instance (:func:`evaluate_policy_on`), and the policy as a searcher at a budget of evaluated
partitions (:class:`PolicySearch`, :func:`policy_search`; ``mcm-gym partition --policy``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.checkpoints import k_max_of, load_model, policy_for_env, resolve_checkpoint
from mcm_gym.search.base import Searcher, SearchResult, Tracker

if TYPE_CHECKING:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

__all__ = ["run_episodes", "summarize_episodes", "evaluate_policy_on", "PolicySearch", "policy_search"]


def run_episodes(policy: MaskableActorCriticPolicy, env: MCMPartitionEnv, episodes: int = 1,
                 deterministic: bool = True, seed: int = 0) -> list[dict[str, Any]]:
    """Play ``episodes`` masked episodes of ``policy`` (a MaskablePPO policy for ``env``'s spaces),
    the ``i``-th from ``env.reset(seed=seed + i)``; return each episode's final ``info`` plus
    ``repair_time`` (s)."""
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


def summarize_episodes(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores, the best partition and repair statistics of :func:`run_episodes`' infos."""
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


def _model(checkpoint_or_model: str | os.PathLike[str] | MaskablePPO) -> MaskablePPO:
    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        return load_model(checkpoint_or_model)
    return checkpoint_or_model


def evaluate_policy_on(checkpoint_or_model: str | os.PathLike[str] | MaskablePPO, graph: Graph | str,
                       hardware: Hardware | str | None = None, episodes: int = 1, deterministic: bool = True,
                       seed: int = 0, use_repair: bool = True, repair: RepairConfig | None = None) -> dict[str, Any]:
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
    model = _model(checkpoint_or_model)
    env = MCMPartitionEnv(graph, hardware, k_max=k_max_of(model.observation_space), use_repair=use_repair,
                          repair=repair)
    infos = run_episodes(policy_for_env(model, env), env, episodes, deterministic, seed)
    g, hw = env.problem.graph, env.problem.hardware
    return {"graph_id": g.id or g.name, "hardware_id": hw.id or hw.name, **summarize_episodes(infos),
            "wall_time": time.perf_counter() - t0}


class PolicySearch(Searcher):
    """A trained policy as a search method: one deterministic (greedy) episode, then sampled ones
    until the budget is spent; every episode's repaired partition is one evaluation (a failed repair
    counts too). No training. ``checkpoint``: a MaskablePPO ``.zip`` path, a shipped name
    (``pretrained-v2``, the default; ``pretrained`` is the one-shot policy, run by ``oneshot``) or a
    loaded ``MaskablePPO``; ``torch_threads`` sets torch's global thread count (1 is fastest for these small
    networks). The seed of :meth:`search` seeds the episodes and the sampling (torch's random
    stream is forked, so the caller's is untouched). Named ``policy:<checkpoint file stem>``."""

    name = "policy"

    def __init__(self, checkpoint: str | os.PathLike[str] | MaskablePPO = "pretrained-v2", *,
                 use_repair: bool = True, torch_threads: int = 1, repair: RepairConfig | None = None) -> None:
        super().__init__(repair)
        self.torch_threads = torch_threads
        if isinstance(checkpoint, (str, os.PathLike)):
            path = resolve_checkpoint(str(checkpoint))
            self.model = load_model(path)
            self.name = f"policy:{Path(path).stem}"
        else:
            self.model = checkpoint
        self.use_repair = use_repair

    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)
        seed = int(rng.integers(2**31 - 1))
        env = MCMPartitionEnv(problem.graph, problem.hardware, k_max=k_max_of(self.model.observation_space),
                              use_repair=self.use_repair, repair=self.repair_config)
        policy = policy_for_env(self.model, env)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for ep in range(tr.budget):
                info = run_episodes(policy, env, 1, deterministic=ep == 0, seed=seed + ep)[0]
                part = info.get("partition")
                if part is not None:
                    tr.add(np.asarray(part))
                else:
                    tr.fail()


def policy_search(problem: Problem, checkpoint: str | os.PathLike[str] | MaskablePPO, budget: int,
                  seed: int = 0) -> SearchResult:
    """:class:`PolicySearch` of ``checkpoint`` on ``problem`` with ``budget`` episodes; the
    :class:`~mcm_gym.search.base.SearchResult` keeps the best."""
    return PolicySearch(checkpoint).search(problem, budget=budget, seed=seed)
