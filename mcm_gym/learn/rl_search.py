"""The learned partitioner as a :class:`~mcm_gym.search.Searcher`, at the same budget as the others.

:class:`RLSearch` (``"rl"``) trains MaskablePPO with the GNN policy on the problem itself, from
scratch or fine-tuning a pre-trained checkpoint. Every finished episode (training or inference)
produced one repaired partition, so it counts as one evaluation: ``tr.add(partition)``, or
``tr.fail()`` when the repair found none. Training stops as soon as the budget is spent; by default
the last evaluation is kept for one deterministic (greedy) episode of the trained policy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.checkpoints import k_max_of, load_model, policy_for_env, resolve_checkpoint, transplant
from mcm_gym.learn.evaluation import run_episodes
from mcm_gym.learn.model import build_model, check_policy, check_ppo, ppo_keys
from mcm_gym.search.base import Progress, Searcher, SearchResult, Tracker

if TYPE_CHECKING:
    from sb3_contrib import MaskablePPO

__all__ = ["RLSearch", "rollout_size"]


def rollout_size(n_nodes: int, budget: int, episodes_per_rollout: int | None = None) -> tuple[int, int]:
    """``(n_steps, batch_size)`` for one env: whole episodes per rollout (4 when the budget is below
    80 episodes, 8 below 400, else 16, unless given), 4 minibatches per epoch."""
    e = episodes_per_rollout or (4 if budget < 80 else 8 if budget < 400 else 16)
    n_steps = max(e, 1) * n_nodes
    return n_steps, max(n_steps // 4, 1)


class RLSearch(Searcher):
    """MaskablePPO + GNN on one problem; every repaired episode is one evaluation.

    Options: ``checkpoint`` (None: from scratch; a MaskablePPO ``.zip`` path or a shipped name such
    as ``pretrained-v2``, not the one-shot ``pretrained``, which ``oneshot`` runs: fine-tune that
    pre-trained policy, whose ``K_max`` must cover the hardware; its architecture is kept), ``ppo``
    (``MaskablePPO`` keyword arguments under their own names, merged over
    :data:`~mcm_gym.learn.model.DEFAULT_PPO`; any other keyword option that ``MaskablePPO`` takes,
    e.g. ``ent_coef`` in ``rl:ent_coef=0.02``, goes there too), ``episodes_per_rollout`` (unless
    ``ppo`` sets ``n_steps``, a rollout is that many whole episodes; default sized for the budget,
    see :func:`rollout_size`), ``extractor`` (GNNExtractor kwargs), ``net_arch`` and ``policy`` (the
    other policy settings, see :mod:`mcm_gym.learn.model`), ``final_deterministic`` (keep the last
    evaluation for a greedy episode), ``greedy_each_update`` (one greedy episode of the current
    policy before training and after every PPO update, each counted as an evaluation: on long graphs
    sampled episodes are much worse than the greedy one, so this is where a pre-trained policy's
    quality shows), ``use_repair`` (False: score the raw candidate, invalid = failed evaluation; the
    solver ablation), ``device``, ``torch_threads`` (this sets torch's global thread count; 1 is
    fastest for these small networks on few cores). The seed of :meth:`search` seeds torch, numpy
    and the env. ``last_model`` keeps the trained model for inspection or saving.
    """

    name = "rl"

    def __init__(self, checkpoint: str | os.PathLike[str] | None = None, *, ppo: dict[str, Any] | None = None,
                 episodes_per_rollout: int | None = None, extractor: dict[str, Any] | None = None,
                 net_arch: Any = None, policy: dict[str, Any] | None = None, final_deterministic: bool = True,
                 greedy_each_update: bool = True, use_repair: bool = True, device: str = "cpu",
                 torch_threads: int = 1, repair: RepairConfig | None = None, **ppo_options: Any) -> None:
        super().__init__(repair)
        unknown = sorted(k for k in ppo_options if k not in ppo_keys())
        if unknown:  # a TypeError, as for any unknown keyword: get_searcher reports it as a bad option
            raise TypeError(f"RLSearch got unknown option(s) {', '.join(unknown)}; PPO options are "
                            f"MaskablePPO's keyword arguments: {', '.join(sorted(ppo_keys()))}")
        self.checkpoint = None if checkpoint is None else str(checkpoint)  # a path or a shipped name
        self.ppo = check_ppo({**dict(ppo or {}), **ppo_options}, base={})  # only what was asked for
        self.episodes_per_rollout = episodes_per_rollout
        self.policy = check_policy({**dict(policy or {}),
                                    **({"extractor": extractor} if extractor is not None else {}),
                                    **({"net_arch": net_arch} if net_arch is not None else {})})
        self.final_deterministic = final_deterministic
        self.greedy_each_update = greedy_each_update
        self.use_repair = use_repair
        self.device, self.torch_threads = device, torch_threads
        self.last_model: MaskablePPO | None = None
        self._extra: dict[str, Any] = {}

    def search(self, problem: Problem, budget: int, seed: int = 0,
               progress: Progress | None = None) -> SearchResult:
        res = super().search(problem, budget, seed, progress)
        res.extra = dict(self._extra)
        return res

    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None:
        import torch
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.vec_env import DummyVecEnv

        torch.set_num_threads(self.torch_threads)
        seed = int(rng.integers(2**31 - 1))
        base = load_model(resolve_checkpoint(self.checkpoint), device=self.device) if self.checkpoint else None
        k_max = k_max_of(base.observation_space) if base is not None else problem.num_chips
        if problem.num_chips > k_max:
            raise ValueError(f"checkpoint {self.checkpoint} was trained with k_max={k_max}, the hardware "
                             f"has {problem.num_chips} chips")
        env = MCMPartitionEnv(problem.graph, problem.hardware, k_max=k_max, repair=self.repair_config,
                              use_repair=self.use_repair)
        venv = DummyVecEnv([lambda: env])
        n_steps, batch_size = rollout_size(problem.n, tr.budget, self.episodes_per_rollout)
        ppo = {"n_steps": n_steps, "batch_size": batch_size, **self.ppo}
        n_steps = int(ppo["n_steps"])
        model = build_model(venv, ppo=ppo, policy=self.policy, seed=seed, device=self.device,
                            policy_kw=base.policy_kwargs if base is not None else None)
        if base is not None:
            transplant(base, model)
        reserve = 1 if self.final_deterministic and tr.budget >= 2 else 0

        greedy_env = MCMPartitionEnv(problem.graph, problem.hardware, k_max=k_max, repair=self.repair_config,
                                     use_repair=self.use_repair)
        greedy_scores: list[float] = []
        each = self.greedy_each_update

        def greedy() -> float:
            info = run_episodes(policy_for_env(model, greedy_env), greedy_env, 1, deterministic=True, seed=seed)[0]
            p = info.get("partition")
            if p is not None:
                tr.add(np.asarray(p))
            else:
                tr.fail()
            return float(info["score"])

        class _Budget(BaseCallback):
            """Reports every finished episode's repaired partition to the tracker (and, with
            ``greedy_each_update``, a greedy episode at every rollout start, i.e. before training and
            after each update); stops training when only the reserved evaluations are left."""

            def _on_rollout_start(self) -> None:
                if each and tr.left > reserve:
                    greedy_scores.append(greedy())

            def _on_step(self) -> bool:
                for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                    if done and tr.left > reserve:
                        p = info.get("partition")
                        if p is not None:
                            tr.add(np.asarray(p))
                        else:
                            tr.fail()
                return tr.left > reserve

        train_episodes = tr.budget - reserve
        if train_episodes > 0:
            model.learn(total_timesteps=(train_episodes + 1) * problem.n + n_steps, callback=_Budget())
        final_score = None
        if reserve and tr.left > 0:
            final_score = greedy()
        self.last_model = model
        self._extra = {"timesteps": int(model.num_timesteps), "n_steps": n_steps,
                       "deterministic_score": final_score, "greedy_scores": greedy_scores,
                       "checkpoint": self.checkpoint, "use_repair": self.use_repair}
        venv.close()
