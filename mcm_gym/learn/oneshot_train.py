"""Training the one-shot policy by policy gradient, many repaired samples per graph per update.

:func:`train_oneshot` is the paper's loop for :class:`~mcm_gym.learn.oneshot.OneShotPolicy` without
an SB3 algorithm around it: every update runs one pass of the policy over every training instance
(graph x hardware, padded to common sizes), samples ``samples_per_graph`` whole candidates from each
node's chip distribution, has the solver repair each (``Problem.repair``; a candidate seen before is
answered from a cache), and takes a REINFORCE step on ``-(A * log p(candidate))`` where the advantage
``A`` is the repaired score normalised per instance: minus the mean, over the standard deviation, of
that instance's samples in the same update (a per-graph baseline, so scores of easy and hard graphs
weigh alike); ``epochs > 1`` reuses the batch for more steps on PPO's clipped objective.
``target="repaired"`` takes the log-probability of the repaired partition instead (the partition
that earned the score). After every update the greedy candidate (each node's most likely
chip) is repaired and scored too. Every repaired candidate, sampled or greedy, counts as one sample
of the budget. ``use_repair=False`` scores an invalid candidate 0 (the solver ablation).

Seeded: the same seed, config and instances give the same samples (the repair is deterministic
under its resource limit; only its wall-clock safety net can differ on a loaded machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.oneshot import PRIORS, OneShotPolicy, oneshot_policy_kwargs

__all__ = ["OneShotTrainConfig", "OneShotRun", "train_oneshot", "oneshot_envs", "policy_for_envs", "greedy_scores"]

TARGETS = ("candidate", "repaired")


@dataclass
class OneShotTrainConfig:
    """Settings of :func:`train_oneshot`. ``max_samples``: repaired candidates over all instances,
    greedy ones included (the budget); ``max_wall_time``: seconds (None: no limit);
    ``samples_per_graph``: candidates per instance per update; ``learning_rate`` (Adam);
    ``target``: ``"candidate"`` or ``"repaired"`` (see the module doc); ``ent_coef``: entropy bonus
    (summed over nodes); ``epochs``: gradient steps per batch of samples, the later ones on PPO's
    clipped ratio (``clip_range``; the ratio of a whole candidate's probabilities); ``max_grad_norm``;
    ``use_repair`` (False: invalid candidates score 0); ``policy``:
    :func:`~mcm_gym.learn.oneshot.oneshot_policy_kwargs` arguments; ``seed``."""

    max_samples: int = 2000
    max_wall_time: float | None = None
    samples_per_graph: int = 64
    learning_rate: float = 3e-3
    target: str = "candidate"
    ent_coef: float = 0.0
    epochs: int = 4
    clip_range: float = 0.5
    max_grad_norm: float = 1.0
    use_repair: bool = True
    policy: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.epochs < 1 or not self.clip_range > 0:
            raise ValueError("epochs must be >= 1 and clip_range > 0")
        if self.max_samples < 1 or self.samples_per_graph < 2:
            raise ValueError("max_samples must be >= 1 and samples_per_graph >= 2 (the baseline needs two)")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        prior = self.policy.get("prior", "pipeline")
        if prior not in PRIORS:
            raise ValueError(f"policy.prior must be one of {PRIORS}, got {prior!r}")


@dataclass
class OneShotRun:
    """What :func:`train_oneshot` returns: the trained ``policy``; per instance (``instances``: graph
    id, hardware id) the ``best_score`` and ``best_partition`` over every repaired sample; ``curve``:
    one dict per update (``update``, ``samples`` so far, ``wall_time`` s, ``mean_score`` of the
    update's samples, ``greedy_score`` and ``best_score`` per instance, lists in instance order)."""

    policy: OneShotPolicy
    instances: list[tuple[str, str]]
    best_score: list[float]
    best_partition: list[np.ndarray | None]
    curve: list[dict[str, Any]]
    samples: int
    wall_time: float  # s


def oneshot_envs(instances: Sequence[tuple[Graph | str, Hardware | str]], *, use_repair: bool = True,
                 repair: RepairConfig | None = None, k_max: int | None = None) -> list[MCMPartitionEnv]:
    """One oneshot-mode env per ``(graph, hardware)``, all padded to the same sizes (the largest
    instance; ``k_max`` at least the most chips)."""
    if not instances:
        raise ValueError("no instances")
    first = [MCMPartitionEnv(g, h, mode="oneshot", use_repair=use_repair, repair=repair) for g, h in instances]
    nodes, edges = max(e.max_nodes for e in first), max(e.max_edges for e in first)
    chips = max([e.k_max for e in first] + [k_max or 0])
    return [MCMPartitionEnv(e.problem.graph, e.problem.hardware, mode="oneshot", use_repair=use_repair,
                            repair=repair, max_nodes=nodes, max_edges=edges, k_max=chips) for e in first]


def policy_for_envs(envs: Sequence[MCMPartitionEnv], policy_kwargs: dict[str, Any] | None = None,
                    learning_rate: float = 3e-3, init: OneShotPolicy | None = None) -> OneShotPolicy:
    """A :class:`OneShotPolicy` for the envs' spaces: fresh (``policy_kwargs``, as
    :func:`~mcm_gym.learn.oneshot.oneshot_policy_kwargs` returns them), or with the weights of
    ``init`` (any padding with the same ``K_max``; its architecture is kept)."""
    env = envs[0]
    if init is not None:
        kw = init._get_constructor_parameters()
        for key in ("observation_space", "action_space", "lr_schedule", "squash_output"):
            kw.pop(key, None)
        if init.k_max != env.k_max:
            raise ValueError(f"the policy has K_max={init.k_max}, the instances need {env.k_max}")
    else:
        kw = dict(policy_kwargs or oneshot_policy_kwargs())
    space = env.observation_space
    assert isinstance(space, spaces.Dict)
    policy = OneShotPolicy(space, env.action_space, lambda _: learning_rate, **kw)
    if init is not None:
        policy.load_state_dict(init.state_dict())
    return policy


def _obs_batch(envs: Sequence[MCMPartitionEnv]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    obs = [e.reset(seed=0)[0] for e in envs]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])).float() for k in obs[0]}
    masks = torch.as_tensor(np.stack([e.action_masks().reshape(e.max_nodes, e.k_max) for e in envs]))
    return batch, masks


def greedy_scores(policy: OneShotPolicy, instances: Sequence[tuple[Graph | str, Hardware | str]],
                  repair: RepairConfig | None = None) -> list[float]:
    """Zero-shot: the repaired score of ``policy``'s greedy candidate (each node's most likely chip)
    on every instance, without training (0 where the repair finds no valid partition)."""
    envs = oneshot_envs(instances, repair=repair, k_max=policy.k_max)
    moved = policy_for_envs(envs, init=policy)
    moved.set_training_mode(False)
    obs, masks = _obs_batch(envs)
    with torch.no_grad():
        greedy = moved.node_logits(obs).masked_fill(~masks, -1e9).argmax(dim=2).numpy().astype(np.int64)
    out = []
    for i, e in enumerate(envs):
        part = e.problem.repair(greedy[i, : e.problem.graph.n], e.repair_config).partition
        out.append(float(e.problem.evaluate(part).score[0]) if part is not None else 0.0)
    return out


def train_oneshot(instances: Sequence[tuple[Graph | str, Hardware | str]], config: OneShotTrainConfig | None = None,
                  *, init: OneShotPolicy | None = None, repair: RepairConfig | None = None,
                  on_update: Callable[[dict[str, Any]], None] | None = None) -> OneShotRun:
    """Train a one-shot policy on ``instances`` (see the module doc); ``init``: fine-tune that
    policy instead of a fresh one; ``on_update``: called with every curve row."""
    cfg = config or OneShotTrainConfig()
    torch.manual_seed(cfg.seed)
    envs = oneshot_envs(instances, use_repair=cfg.use_repair, repair=repair,
                        k_max=init.k_max if init is not None else None)
    policy = policy_for_envs(envs, oneshot_policy_kwargs(**cfg.policy), cfg.learning_rate, init)
    for group in policy.optimizer.param_groups:
        group["lr"] = cfg.learning_rate
    obs, masks = _obs_batch(envs)
    problems = [e.problem for e in envs]
    sizes = [p.graph.n for p in problems]
    caches: list[dict[bytes, tuple[float, np.ndarray | None]]] = [{} for _ in envs]
    best = [0.0] * len(envs)
    best_part: list[np.ndarray | None] = [None] * len(envs)
    samples, curve, t0 = 0, [], time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)

    def score(i: int, cand: np.ndarray) -> tuple[float, np.ndarray | None]:
        nonlocal samples
        samples += 1
        key = cand.tobytes()
        hit = caches[i].get(key)
        if hit is None:
            pr = problems[i]
            if cfg.use_repair:
                part = pr.repair(cand, envs[i].repair_config).partition
            else:
                part = cand if bool(pr.is_valid(cand)) else None
            hit = (float(pr.evaluate(part).score[0]) if part is not None else 0.0, part)
            caches[i][key] = hit
        if hit[0] > best[i]:
            best[i], best_part[i] = hit[0], hit[1]
        return hit

    update = 0
    s_count = cfg.samples_per_graph
    while samples < cfg.max_samples and (cfg.max_wall_time is None or time.perf_counter() - t0 < cfg.max_wall_time):
        policy.set_training_mode(True)
        logits = policy.node_logits(obs).masked_fill(~masks, -1e9)  # (G, N, K)
        dist = torch.distributions.Categorical(logits=logits)
        with torch.no_grad():
            probs = dist.probs.reshape(-1, logits.shape[-1])
            draws = torch.multinomial(probs, s_count, replacement=True, generator=gen)  # (G*N, S)
            draws = draws.T.reshape(s_count, *logits.shape[:2])  # (S, G, N)
        s_use = min(s_count, max(2, (cfg.max_samples - samples) // len(envs)))
        rewards = np.zeros((s_use, len(envs)))
        actions = draws[:s_use].clone()
        for s in range(s_use):
            for i, n in enumerate(sizes):
                cand = draws[s, i, :n].numpy().astype(np.int64)
                rewards[s, i], part = score(i, cand)
                if cfg.target == "repaired" and part is not None:
                    actions[s, i, :n] = torch.as_tensor(part)
        r = torch.as_tensor(rewards, dtype=torch.float32)
        adv = (r - r.mean(dim=0)) / (r.std(dim=0) + 1e-6)  # per instance
        old_logp = dist.log_prob(actions).sum(dim=2).detach()  # (S, G); padding nodes add 0
        for epoch in range(cfg.epochs):
            if epoch:
                dist = torch.distributions.Categorical(logits=policy.node_logits(obs).masked_fill(~masks, -1e9))
            ratio = torch.exp(dist.log_prob(actions).sum(dim=2) - old_logp)
            clipped = ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)
            loss = -torch.minimum(ratio * adv, clipped * adv).mean()
            if cfg.ent_coef:
                loss = loss - cfg.ent_coef * dist.entropy().sum(dim=1).mean()
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            policy.optimizer.step()
        update += 1
        with torch.no_grad():
            greedy = policy.node_logits(obs).masked_fill(~masks, -1e9).argmax(dim=2)
        greedy_scores = [score(i, greedy[i, :n].numpy().astype(np.int64))[0] for i, n in enumerate(sizes)]
        row = {"update": update, "samples": samples, "wall_time": time.perf_counter() - t0,
               "mean_score": float(rewards.mean()), "greedy_score": greedy_scores, "best_score": list(best)}
        curve.append(row)
        if on_update is not None:
            on_update(row)
    policy.set_training_mode(False)
    ids = [(p.graph.id or p.graph.name, p.hardware.id or p.hardware.name) for p in problems]
    return OneShotRun(policy=policy, instances=ids, best_score=list(best), best_partition=best_part, curve=curve,
                      samples=samples, wall_time=time.perf_counter() - t0)
