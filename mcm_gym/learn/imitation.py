"""Behaviour-cloning warm start: teach a MaskablePPO policy a teacher search's partitions before PPO.

The paper pre-trains its policy with RL alone. Pure RL on the sparse end-of-episode score learns
slowly here (hundreds of steps per episode, one reward at the end), so pre-training can first imitate
a fast non-learned teacher (default: the stage DP, :class:`~mcm_gym.search.dp.DPSearch`) on the
*training* graphs, then go on with PPO. The graphs the policy is later evaluated on are never shown
to the teacher. The teacher's evaluations are spent on training graphs only, so they do not count
against a search budget on the target graph.

For each training (graph, hardware) pair the teacher finds a partition; the env is stepped with it in
sequential mode and every ``(observation, action mask, chip)`` becomes one example. A step whose chip
the env's mask forbids (the mask is a local judgement) is dropped. The policy is trained to maximise
the log-likelihood of the teacher's chip under the mask, and its value head to predict the teacher's
final score (the return with ``gamma = 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.search.base import get_searcher

__all__ = ["Demos", "collect_demos", "behaviour_clone"]


@dataclass
class Demos:
    """Teacher examples, each observation unpadded (padded per minibatch)."""

    obs: list[dict[str, np.ndarray]] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)  # teacher's final score of the episode
    switches: list[bool] = field(default_factory=list)  # the chip differs from the previous node's
    episodes: int = 0
    dropped: int = 0  # teacher steps the env's local mask forbids
    infeasible: int = 0  # pairs skipped: the graph does not fit the hardware
    teacher_scores: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions)


def collect_demos(pairs: Sequence[tuple[Graph, Hardware]], k_max: int, teacher: str = "dp",
                  budget: int = 16, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> Demos:
    """Run ``teacher`` (a method of :data:`~mcm_gym.search.SEARCHERS`) with ``budget`` evaluations on
    every pair and record its partition as sequential-env examples (padding ``k_max`` chips)."""
    demos = Demos()
    searcher = get_searcher(teacher)
    for i, (g, hw) in enumerate(pairs):
        try:
            problem = Problem(g, hw)
        except InfeasibleError:
            demos.infeasible += 1
            continue
        res = searcher.search(problem, budget=budget, seed=seed + i)
        if res.partition is None:
            continue
        part = np.asarray(res.partition, dtype=np.int64)
        # the teacher's partition is valid, so the env needs no repair to score it
        env = MCMPartitionEnv(g, hw, k_max=k_max, use_repair=False)
        obs, _ = env.reset(seed=seed + i)
        prev = -1
        for v in range(g.n):
            mask = env.action_masks()
            a = int(part[v])
            if mask[a]:
                demos.obs.append({k: np.array(x, copy=True) for k, x in obs.items()})
                demos.actions.append(a)
                demos.masks.append(mask.copy())
                demos.returns.append(float(res.score))
                demos.switches.append(a != prev)
            else:
                demos.dropped += 1
            prev = a
            obs, _, _, _, _ = env.step(a)
        demos.episodes += 1
        demos.teacher_scores.append(float(res.score))
        if progress:
            progress(i + 1, len(pairs))
    return demos


def _collate(items: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack observations of different padding sizes, padding nodes and edges with zeros."""
    n = max(o["node_features"].shape[0] for o in items)
    e = max(o["edge_index"].shape[1] for o in items)
    b = len(items)
    nf = np.zeros((b, n, items[0]["node_features"].shape[1]), dtype=np.float32)
    ei = np.zeros((b, 2, e), dtype=np.float32)
    nm = np.zeros((b, n), dtype=np.float32)
    em = np.zeros((b, e), dtype=np.float32)
    for j, o in enumerate(items):
        ni, ej = o["node_features"].shape[0], o["edge_index"].shape[1]
        nf[j, :ni] = o["node_features"]
        ei[j, :, :ej] = o["edge_index"]
        nm[j, :ni] = o["node_mask"]
        em[j, :ej] = o["edge_mask"]
    return {"node_features": nf, "edge_index": ei, "node_mask": nm, "edge_mask": em,
            "current_node": np.stack([o["current_node"] for o in items]).astype(np.float32),
            "chip_state": np.stack([o["chip_state"] for o in items]).astype(np.float32),
            "action_mask": np.stack([o["action_mask"] for o in items]).astype(np.float32)}


def _batches(sizes: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled minibatches of similar graph sizes (less padding): shuffle, sort chunks of 32
    batches by size, cut them into batches, shuffle the batches."""
    order = rng.permutation(len(sizes))
    chunk = 32 * batch_size
    out: list[np.ndarray] = []
    for c in range(0, len(order), chunk):
        part = order[c:c + chunk]
        part = part[np.argsort(sizes[part], kind="stable")]
        out += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def behaviour_clone(model: Any, demos: Demos, epochs: int = 10, batch_size: int = 64,
                    learning_rate: float = 1e-3, vf_coef: float = 0.5, switch_weight: float = 1.0, seed: int = 0,
                    progress: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Fit ``model.policy`` (a MaskablePPO policy over the sequential env's observation) to
    ``demos``; return per-epoch ``{"epoch", "loss", "nll", "accuracy", "value_mse"}`` (accuracy: share
    of examples where the masked argmax is the teacher's chip). ``switch_weight`` weighs the rare
    examples where the teacher moves to another chip than the previous node's (the cuts of the
    pipeline; most steps stay). Uses its own Adam optimizer, so the PPO optimizer's state is
    untouched."""
    import torch

    if len(demos) == 0:
        raise ValueError("no demonstrations to clone (the teacher found no partition, or every step was masked)")
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")
    policy = model.policy
    dev = policy.device
    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    actions = np.asarray(demos.actions, dtype=np.int64)
    masks = np.stack(demos.masks).astype(bool)
    returns = np.asarray(demos.returns, dtype=np.float32)
    weights = np.where(np.asarray(demos.switches, dtype=bool), switch_weight, 1.0).astype(np.float32)
    history: list[dict[str, float]] = []
    sizes = np.array([o["node_features"].shape[0] for o in demos.obs])
    for epoch in range(1, epochs + 1):
        tot = {"loss": 0.0, "nll": 0.0, "value_mse": 0.0, "correct": 0.0}
        for idx in _batches(sizes, batch_size, rng):
            obs = {k: torch.as_tensor(v, device=dev) for k, v in _collate([demos.obs[i] for i in idx]).items()}
            act = torch.as_tensor(actions[idx], device=dev)
            ret = torch.as_tensor(returns[idx], device=dev)
            w = torch.as_tensor(weights[idx], device=dev)
            values, log_prob, _ = policy.evaluate_actions(obs, act, action_masks=masks[idx])
            nll = -(w * log_prob).sum() / w.sum()
            vmse = torch.nn.functional.mse_loss(values.flatten(), ret)
            loss = nll + vf_coef * vmse
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            opt.step()
            with torch.no_grad():
                dist = policy.get_distribution(obs, action_masks=masks[idx])
                pred = dist.distribution.probs.argmax(dim=1)
            k = len(idx)
            tot["loss"] += loss.item() * k
            tot["nll"] += nll.item() * k
            tot["value_mse"] += vmse.item() * k
            tot["correct"] += float((pred == act).sum())
        m = len(demos)
        rec = {"epoch": float(epoch), "loss": tot["loss"] / m, "nll": tot["nll"] / m,
               "accuracy": tot["correct"] / m, "value_mse": tot["value_mse"] / m}
        history.append(rec)
        if progress:
            progress(epoch, rec)
    policy.set_training_mode(False)
    return history
