"""Training the one-shot policy by policy gradient, many repaired samples per graph per update.

:func:`train_oneshot` is the paper's loop for :class:`~mcm_gym.learn.oneshot.OneShotPolicy` without
an SB3 algorithm around it: every update draws ``instances_per_update`` of the training instances
(graph x hardware; all of them by default, else drawn without replacement by ``weights``), runs one
pass of the policy over each (each padded to its own size, with a common ``K_max``), samples
``samples_per_graph`` whole candidates from each node's chip distribution, has the solver repair each
(``Problem.repair``; a candidate seen before is answered from a cache), and takes a REINFORCE step
on ``-(A * log p(candidate))`` where the advantage
``A`` is the repaired score normalised per instance: minus the mean, over the standard deviation, of
that instance's samples in the same update (a per-graph baseline, so scores of easy and hard graphs
weigh alike); ``epochs > 1`` reuses the batch for more steps on PPO's clipped objective.
``target="repaired"`` takes the log-probability of the repaired partition instead (the partition
that earned the score). After every update the greedy candidate (each node's most likely
chip) of each drawn instance is repaired and scored too. Every repaired candidate, sampled or greedy,
counts as one sample of the budget, which is never exceeded: the last update samples only what is left
(without a gradient step if that is one per instance) and skips the greedy candidates the budget no
longer holds. ``use_repair=False`` scores an invalid candidate 0 (the solver ablation).

Seeded: the same seed, config and instances give the same samples (the repair is deterministic
under its resource limit; only its wall-clock safety net can differ on a loaded machine).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.observation import cut_bytes, cut_feature
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn import oneshot
from mcm_gym.learn.oneshot import (
    HEADS,
    ORDER_JITTER,
    PRIORS,
    STAGE_ORDERS_ALL,
    CandidateDist,
    NodeCandidates,
    OneShotPolicy,
    StageCandidates,
    StageCost,
    StageLimits,
    oneshot_policy_kwargs,
)
from mcm_gym.search.polish import polish

__all__ = ["OneShotTrainConfig", "OneShotRun", "train_oneshot", "oneshot_envs", "policy_for_envs", "greedy_scores",
           "greedy_partitions", "greedy_candidates", "split_candidates", "SPLITS", "SPLIT_FALLBACK", "imitate_oneshot",
           "obs_batch", "node_temperatures",
           "stage_orders", "policy_orders", "stage_limits", "stage_cost", "StageOrders", "orders_around",
           "extra_order_fit", "partition_order", "widen_policy", "blank_policy"]

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
    :func:`~mcm_gym.learn.oneshot.oneshot_policy_kwargs` arguments; ``instances_per_update``: how many
    instances (drawn without replacement, seeded) each update samples (None: all); ``temperature``:
    the sampled (and trained) distribution is the policy's logits over it (> 1 explores more: a
    pre-trained policy is often too sharp to find anything new; the greedy candidate does not
    change); ``node_entropy``: besides, each node's logits are divided by a temperature (>= 1, fixed
    at the start from the initial policy) that gives its distribution this entropy in nats, so a
    sharp pre-trained policy explores every node again while keeping its greedy candidate;
    ``kl_coef``: a KL pull towards the policy training starts from (the fresh policy's priors, or
    ``init``): each sample's reward is lowered by ``kl_coef * (log p(a) - log p_start(a))`` (nats;
    the usual sampled estimate of KL(p || p_start)), which keeps pre-training from unlearning what
    the priors get right on graphs it does not see; ``polish``: evaluations of local search
    (:func:`mcm_gym.search.polish.polish`) on each repaired sample, whose polished score is then its
    reward (0: none; these evaluations are not counted in ``max_samples``; needs
    ``target="candidate"``); ``adapt_orders``: for the stages head, after every update each drawn
    instance's extra orders are replaced by this many orders around its best partition so far
    (:func:`orders_around`: that partition's own order, then seeded jitters of it), so the head can
    leave the contiguous splits of its fixed orders the way the stage DP's order search does (0:
    the policy's fixed orders throughout); ``seed``."""

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
    instances_per_update: int | None = None
    temperature: float = 1.0
    node_entropy: float | None = None
    kl_coef: float = 0.0
    polish: int = 0
    adapt_orders: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.epochs < 1 or not self.clip_range > 0:
            raise ValueError("epochs must be >= 1 and clip_range > 0")
        if self.max_samples < 1 or self.samples_per_graph < 2:
            raise ValueError("max_samples must be >= 1 and samples_per_graph >= 2 (the baseline needs two)")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.node_entropy is not None and not self.node_entropy > 0:
            raise ValueError(f"node_entropy must be > 0 nats or None, got {self.node_entropy}")
        if self.instances_per_update is not None and self.instances_per_update < 1:
            raise ValueError(f"instances_per_update must be >= 1 or None, got {self.instances_per_update}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.kl_coef > 0 and self.target == "repaired":
            raise ValueError("kl_coef needs target='candidate': a repaired partition was not drawn from the policy, "
                             "so log p - log p_start of it is not a KL estimate")
        if self.polish < 0:
            raise ValueError(f"polish must be >= 0 evaluations, got {self.polish}")
        if self.adapt_orders < 0:
            raise ValueError(f"adapt_orders must be >= 0 orders, got {self.adapt_orders}")
        if self.polish and self.target == "repaired":
            raise ValueError("polish needs target='candidate': a polished partition need not be a candidate the "
                             "policy can draw")
        prior = self.policy.get("prior") or "pipeline"
        if prior not in PRIORS:
            raise ValueError(f"policy.prior must be one of {PRIORS}, got {prior!r}")
        if self.policy.get("head", "nodes") not in HEADS:
            raise ValueError(f"policy.head must be one of {HEADS}, got {self.policy.get('head')!r}")


@dataclass
class OneShotRun:
    """What :func:`train_oneshot` returns: the trained ``policy``; per instance (``instances``: graph
    id, hardware id) the ``best_score`` and ``best_partition`` over every repaired sample; ``curve``:
    one dict per update (``update``, ``samples`` so far, ``wall_time`` s, ``mean_score`` of the
    update's samples, ``kl`` their mean sampled KL to the start (nats; 0 without ``kl_coef``),
    ``greedy_score`` and ``best_score`` per instance, lists in instance order)."""

    policy: OneShotPolicy
    instances: list[tuple[str, str]]
    best_score: list[float]
    best_partition: list[np.ndarray | None]
    curve: list[dict[str, Any]]
    samples: int
    wall_time: float  # s


def oneshot_envs(instances: Sequence[tuple[Graph | str, Hardware | str]], *, use_repair: bool = True,
                 repair: RepairConfig | None = None, k_max: int | None = None,
                 common_padding: bool = True) -> list[MCMPartitionEnv]:
    """One oneshot-mode env per ``(graph, hardware)``, all with ``K_max`` chips (at least the most
    chips, and ``k_max``); ``common_padding``: all padded to the largest instance's nodes and edges
    (else each to its own)."""
    if not instances:
        raise ValueError("no instances")
    first = [MCMPartitionEnv(g, h, mode="oneshot", use_repair=use_repair, repair=repair) for g, h in instances]
    nodes, edges = max(e.max_nodes for e in first), max(e.max_edges for e in first)
    chips = max([e.k_max for e in first] + [k_max or 0])
    return [MCMPartitionEnv(e.problem.graph, e.problem.hardware, mode="oneshot", use_repair=use_repair,
                            repair=repair, max_nodes=nodes if common_padding else e.max_nodes,
                            max_edges=edges if common_padding else e.max_edges, k_max=chips) for e in first]


def policy_for_envs(envs: Sequence[MCMPartitionEnv], policy_kwargs: dict[str, Any] | None = None,
                    learning_rate: float = 3e-3, init: OneShotPolicy | None = None) -> OneShotPolicy:
    """A :class:`OneShotPolicy` for the envs' spaces: fresh (``policy_kwargs``, as
    :func:`~mcm_gym.learn.oneshot.oneshot_policy_kwargs` returns them), or with the weights of
    ``init`` (any padding with the same ``K_max``; its architecture is kept)."""
    env = envs[0]
    if init is not None:
        kw = _constructor_kwargs(init)
        if init.k_max != env.k_max:
            raise ValueError(f"the policy has K_max={init.k_max}, the instances need {env.k_max} (a policy trained "
                             f"on fewer chips runs on more once widened: widen_policy)")
    else:
        kw = dict(policy_kwargs or oneshot_policy_kwargs())
    space = env.observation_space
    assert isinstance(space, spaces.Dict)
    policy = OneShotPolicy(space, env.action_space, lambda _: learning_rate, **kw)
    if init is not None:
        policy.load_state_dict(init.state_dict())
    return policy


def obs_batch(envs: Sequence[MCMPartitionEnv]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The envs' reset observations stacked as float tensors (one padding: the envs' must agree) and
    their action masks ``(B, max_nodes, K_max)`` (bool)."""
    obs = [e.reset(seed=0)[0] for e in envs]
    batch = {k: torch.as_tensor(np.stack([o[k] for o in obs])).float() for k in obs[0]}
    masks = torch.as_tensor(np.stack([e.action_masks().reshape(e.max_nodes, e.k_max) for e in envs]))
    return batch, masks


class StageOrders(NamedTuple):
    """What the stages head needs of a problem besides the observation (:func:`stage_orders`)."""

    orders: torch.Tensor  # (O, n) node indices
    cuts: torch.Tensor  # (O, n) the observation's cut feature along each order, by position
    limits: StageLimits | None  # what SRAM allows along each order (None: the memory constraint is off)
    loads: torch.Tensor  # (O, n) a cut's transfer time (slowest link) after each position / total compute time
    cost: StageCost | None = None  # the stage DP's cost model along each order (for the speed prior)


def stage_orders(problem: Problem, k_max: int | None = None, cost: bool = True, extra_orders: int = 0,
                 around: Sequence[np.ndarray] | None = None, named: Sequence[str] = STAGE_ORDERS_ALL) -> StageOrders:
    """The ``named`` node orders (:data:`~mcm_gym.search.dp.NAMED_ORDERS`; default a new policy's,
    :data:`~mcm_gym.learn.oneshot.STAGE_ORDERS_ALL`; a policy's own: :func:`policy_orders`) for ``problem``, then
    ``extra_orders`` perturbed ones (:data:`~mcm_gym.learn.oneshot.STAGE_EXTRA_ORDERS`; deterministic),
    ``(O, n)`` (node indices), the observation's ``cut`` feature along each, by position ``(O, n)``, their
    :func:`stage_limits` for ``k_max`` chips, cut loads (the transfer time of the bytes crossing a
    cut after each position on the slowest link, over the graph's compute time on the fastest chip,
    both s; unclipped) and their :func:`stage_cost` (``cost=False``: None, for a policy without a
    speed prior): what the stages head chooses among (duplicates kept, so each row keeps its
    meaning). ``around``: given, the extra orders are these node orders (node indices) instead of the
    jitters (:func:`orders_around`)."""
    from mcm_gym.search.dp import NAMED_ORDERS, priority_order

    named = oneshot.check_orders(tuple(named))
    orders = [NAMED_ORDERS[name](problem) for name in named]
    n = problem.n
    if around is not None:
        orders.extend(np.asarray(o, dtype=np.int64) for o in around)
    for j in range(0 if around is not None else int(extra_orders)):
        rank = np.empty(n)
        rank[orders[j % len(named)]] = np.arange(n)
        noise = np.random.default_rng(j).standard_normal(n)
        scale = ORDER_JITTER[(j // len(named)) % len(ORDER_JITTER)]
        orders.append(priority_order(problem, rank + scale * n * noise))
    hw = problem.hardware
    bw = hw.link_bandwidth.min() if hw.num_links else np.inf  # bytes/s
    work = float(problem.cost.node_time.min(axis=1).sum())  # s
    loads = np.stack([cut_bytes(problem.graph, o) / bw / work if work > 0 else np.zeros(problem.n) for o in orders])
    return StageOrders(torch.as_tensor(np.stack(orders)),
                       torch.as_tensor(np.stack([cut_feature(problem, o) for o in orders]), dtype=torch.float32),
                       stage_limits(problem, orders, k_max), torch.as_tensor(loads, dtype=torch.float32),
                       stage_cost(problem, orders, k_max) if cost else None)


def partition_order(partition: np.ndarray) -> np.ndarray:
    """The node order a partition is a contiguous split of: nodes by chip, then by index (node
    indices). Topological when the partition keeps ``dataflow`` (no edge goes to a lower chip, and
    the stored node order is topological); without that constraint it need not be, and the stages
    head splits it all the same."""
    part = np.asarray(partition, dtype=np.int64)
    return np.lexsort((np.arange(part.size), part)).astype(np.int64)


def orders_around(problem: Problem, partition: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` node orders near ``partition``'s own (:func:`partition_order`, the first of them;
    topological when the partition keeps ``dataflow``): the others are topological orders that rank
    the nodes by their position in it plus Gaussian noise of a random scale (log-uniform in
    ``[0.5, max(1, n / 4)]`` positions), as the stage DP's random orders do around its best one.
    Used by fine-tuning's ``adapt_orders``."""
    from mcm_gym.search.dp import jittered_order

    base = partition_order(partition)
    return ([base] if count > 0 else []) + [jittered_order(problem, base, rng) for _ in range(count - 1)]


def stage_cost(problem: Problem, orders: Sequence[np.ndarray], k_max: int | None = None) -> StageCost:
    """:class:`~mcm_gym.learn.oneshot.StageCost` of ``orders`` (node indices) on ``problem``'s chips in
    pipeline order, padded to ``k_max`` chips (a padding chip computes in 0 s and sends nothing): the
    stage DP's model (:class:`~mcm_gym.search.dp.StageSplitter`), in float64 seconds."""
    from mcm_gym.search.dp import StageSplitter

    sp = StageSplitter(problem)
    n, k = problem.n, sp.k
    kk = k if k_max is None else int(k_max)
    if kk < k:
        raise ValueError(f"k_max={kk} is below the problem's {k} chips")
    prefix = np.zeros((len(orders), n + 1, kk))
    cut_time = np.zeros((len(orders), kk, n))
    for oi, order in enumerate(orders):
        order = np.asarray(order, dtype=np.int64)
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        prefix[oi, 1:, :k] = np.cumsum(sp.node_time[order], axis=0)
        cut = sp.cut_bytes(pos)[1:]  # (n,) bytes crossing after each position
        for c in range(k - 1):
            cut_time[oi, c] = sp.send_time(cut, c)
    return StageCost(torch.as_tensor(prefix), torch.as_tensor(cut_time), bool(sp.serialize))


def stage_limits(problem: Problem, orders: Sequence[np.ndarray], k_max: int | None = None) -> StageLimits | None:
    """:class:`~mcm_gym.learn.oneshot.StageLimits` of ``orders`` (node indices) on ``problem``'s chips
    in pipeline order (stage ``c`` on chip ``c``), for ``k_max`` chips (default: the real ones; a
    padding chip holds nothing); memory as the stage DP and the simulator count it (each node's
    demand plus each shared tensor once, bytes). Exact on chips of one SRAM size: an end is kept iff
    some split through it fits. None when the memory constraint is off or the chips' SRAM differ (a
    stage that fits one chip need not fit the next, and the greedy bound would drop valid splits)."""
    from mcm_gym.search.dp import StageSplitter

    hw = problem.hardware
    if not hw.constraints.memory or len(set(hw.sram_bytes.tolist())) > 1:
        return None
    n, k = problem.n, hw.num_chips
    kk = k if k_max is None else int(k_max)
    if kk < k:
        raise ValueError(f"k_max={kk} is below the problem's {k} chips")
    split = StageSplitter(problem)
    cap = float(hw.sram_bytes[0])  # bytes, every chip's
    end_max = np.empty((len(orders), kk, n + 1), dtype=np.int64)
    rest_min = np.full((len(orders), kk, kk + 1), n + 1, dtype=np.int64)
    starts = np.arange(n + 1)
    for oi, order in enumerate(orders):
        lo = split.stage_starts_by_memory(np.asarray(order, dtype=np.int64), cap)  # (n+1,)
        # the stage [i, j) fits a chip iff lo[j] <= i, and lo is non-decreasing in j
        end_max[oi, :k] = np.searchsorted(lo, starts, side="right") - 2
        end_max[oi, k:] = starts - 1
        for m in range(1, k + 1):
            rest_min[oi, m - 1, m] = n
            for c in range(m - 1, -1, -1):  # chips c .. m-1 each take a non-empty stage, greedily longest,
                nxt = int(rest_min[oi, m - 1, c + 1])  # leaving a node for each of chips 0 .. c-1
                start = max(int(lo[nxt]), c) if 1 <= nxt <= n else nxt
                if start >= nxt:
                    break
                rest_min[oi, m - 1, c] = start
    return StageLimits(torch.as_tensor(end_max), torch.as_tensor(rest_min))


def extra_order_fit(policy: OneShotPolicy | int, problem: Problem) -> int:
    """How many extra orders ``policy``'s stages head (or a new policy's, with that ``K_max`` and the
    default named orders) can take on ``problem`` within
    :data:`~mcm_gym.learn.oneshot.STAGE_ORDER_BUDGET` (orders x ``K_max``^2 x nodes)."""
    k, named = (policy, STAGE_ORDERS_ALL) if isinstance(policy, int) else (policy.k_max, policy.orders)
    return max(0, int(oneshot.STAGE_ORDER_BUDGET // (k ** 2 * problem.n)) - len(named))


def policy_orders(policy: OneShotPolicy, problem: Problem, around: np.ndarray | None = None, count: int = 0,
                  rng: np.random.Generator | None = None) -> StageOrders | None:
    """:func:`stage_orders` for a stages-head ``policy`` (its extra orders, fewer with a warning above
    :data:`~mcm_gym.learn.oneshot.STAGE_ORDER_BUDGET`; its stage cost only with a speed prior), None
    for a nodes head (it needs none). ``around`` (a valid partition): instead of its extra orders,
    ``count`` orders near that partition's (:func:`orders_around`, drawn with ``rng``)."""
    if policy.head != "stages":
        return None
    extra = policy.extra_orders if around is None else int(count)
    if extra:
        budget = oneshot.STAGE_ORDER_BUDGET
        fit = extra_order_fit(policy, problem)
        if fit < extra:
            warnings.warn(f"{problem.graph.id or problem.graph.name}: the stages head uses {fit} of its {extra} "
                          f"extra node orders ({len(policy.orders) + extra} orders x {policy.k_max}^2 chips x "
                          f"{problem.n} nodes is above STAGE_ORDER_BUDGET={budget:.0e})", stacklevel=3)
            extra = fit
    near = None if around is None else orders_around(problem, around, extra, rng or np.random.default_rng(0))
    return stage_orders(problem, policy.k_max, cost=policy.speed_prior > 0, extra_orders=extra, around=near,
                        named=policy.orders)


def blank_policy(k_max: int, policy_kwargs: dict[str, Any], learning_rate: float = 3e-3) -> OneShotPolicy:
    """A fresh :class:`OneShotPolicy` for ``k_max`` chips, built on a tiny placeholder instance (its
    weights do not depend on the padding), to load weights into."""
    env = MCMPartitionEnv("tiny://diamond-v1", f"ring-{min(k_max, 4)}", mode="oneshot", k_max=k_max)
    return policy_for_envs([env], policy_kwargs, learning_rate)


def _constructor_kwargs(policy: OneShotPolicy) -> dict[str, Any]:
    """The keyword arguments that build ``policy`` again, less its spaces and schedule."""
    kw = policy._get_constructor_parameters()
    for key in ("observation_space", "action_space", "lr_schedule", "squash_output"):
        kw.pop(key, None)
    return kw


def widen_policy(policy: OneShotPolicy, k_max: int) -> OneShotPolicy:
    """A copy of ``policy`` for hardware with up to ``k_max`` chips (``k_max >= policy.k_max``; the same
    object where equal). Only the heads' last layers depend on ``K_max``; the GNN, the cut scores and
    the critic carry over unchanged. The ``stages`` head's learned stage-count logits ``g_m`` keep
    their values for the trained ``m``, and every new ``m`` takes the largest trained one's (so the
    count and speed priors alone rank the new counts against it); the ``nodes`` head's per-chip
    offsets ``u_c`` of the new chips take the trained chips' mean offset (the pipeline prior places
    nodes on them). Trained on at most ``policy.k_max``
    chips, the policy has never seen more: how well it transfers is measured in BENCHMARKS.md, not
    assumed."""
    k0, k1 = int(policy.k_max), int(k_max)
    if k1 < k0:
        raise ValueError(f"widen_policy: k_max={k1} is below the policy's K_max={k0}")
    if k1 == k0:
        return policy
    with torch.random.fork_rng(devices=[]):  # its fresh weights are overwritten: leave the caller's stream be
        wide = blank_policy(k1, _constructor_kwargs(policy))
    state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    heads = policy.mlp_extractor
    assert isinstance(heads, oneshot.OneShotHeads)
    name = "mlp_extractor.node_head.2" if heads.head == "nodes" else "mlp_extractor.count_head.2"
    for part in ("weight", "bias"):
        old = state[f"{name}.{part}"]
        if heads.head == "nodes":  # rows: d, log beta, u_0 .. u_{k0-1}
            new = old[2:].mean(dim=0, keepdim=True).expand(k1 - k0, *old.shape[1:])
            state[f"{name}.{part}"] = torch.cat([old, new])
        else:  # rows: g_1 .. g_k0, b, the order logits
            new = old[k0 - 1: k0].expand(k1 - k0, *old.shape[1:])
            state[f"{name}.{part}"] = torch.cat([old[:k0], new, old[k0:]])
    wide.load_state_dict(state)
    wide.set_training_mode(policy.training)
    wide.cost_model = str(policy.__dict__.get("cost_model", ""))  # type: ignore[assignment]  # recorded, not a module
    return wide


#: How a greedy candidate of the stages head is split (:func:`greedy_candidates`).
SPLITS = ("head", "dp")
#: The warning of :func:`greedy_candidates` when ``split="dp"`` falls back to the head's candidate.
SPLIT_FALLBACK = ("split='dp': no split of the policy's order satisfies the constraints; the head's own candidate "
                  "is used")


def greedy_candidates(policy: OneShotPolicy, envs: Sequence[MCMPartitionEnv], split: str = "head") -> list[np.ndarray]:
    """``policy``'s greedy candidate on every env (the ``nodes`` head: each node's most likely
    allowed chip; ``stages``: the most likely order, number of stages and stage ends), one forward
    pass each (any padding; ``policy.k_max`` must equal the envs'). ``split="dp"`` (stages head
    only): the order of the head's greedy (order, m) pair, split by the stage DP
    (:class:`~mcm_gym.search.dp.StageSplitter`: the number of stages and the ends with the least
    bottleneck under its cost model, exact on rings and chains) instead of the head's ends; where
    no split of that order satisfies the constraints, the head's own candidate (the repair then
    decides), with a warning (:data:`SPLIT_FALLBACK`). Either way one candidate, no evaluation of
    the simulator."""
    cands, fell_back = split_candidates(policy, envs, split)
    for _ in range(sum(fell_back)):
        warnings.warn(SPLIT_FALLBACK, stacklevel=2)
    return cands


def split_candidates(policy: OneShotPolicy, envs: Sequence[MCMPartitionEnv],
                     split: str = "head") -> tuple[list[np.ndarray], list[bool]]:
    """:func:`greedy_candidates` without the warning: the candidates and, per env, whether
    ``split="dp"`` fell back to the head's own candidate (for callers that report it themselves)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "dp" and policy.head != "stages":
        raise ValueError("split='dp' needs a stages-head policy (the nodes head has no node order)")
    from mcm_gym.search.dp import StageSplitter

    out, fell_back = [], []
    with torch.no_grad():
        for e in envs:
            obs, masks = obs_batch([e])
            orders = policy_orders(policy, e.problem)
            dist = policy.candidates(obs, masks, e.problem.graph.n, orders=orders)
            part = None
            if split == "dp":
                assert isinstance(dist, StageCandidates) and orders is not None
                part, _ = StageSplitter(e.problem).split(orders.orders[dist.greedy_pair()[0]].numpy())
            fell_back.append(split == "dp" and part is None)
            out.append(part if part is not None else dist.mode().numpy().astype(np.int64))
    return out, fell_back


def greedy_partitions(policy: OneShotPolicy, instances: Sequence[tuple[Graph | str, Hardware | str]],
                      repair: RepairConfig | None = None,
                      split: str = "head") -> list[tuple[Problem, np.ndarray | None]]:
    """Zero-shot: each instance's problem and the repaired greedy candidate of ``policy`` (None where
    the repair finds no valid partition; ``split``: see :func:`greedy_candidates`), without training;
    a policy trained on fewer chips than an instance has is widened (:func:`widen_policy`)."""
    was_training = policy.training
    policy.set_training_mode(False)
    wide: dict[int, OneShotPolicy] = {policy.k_max: policy}
    out = []
    for inst in instances:  # each on its own chips, so a batch gives what each instance gives alone
        [e] = oneshot_envs([inst], repair=repair, k_max=policy.k_max, common_padding=False)
        if e.k_max not in wide:  # more chips than it was trained on: widened, as OneShotSearch does
            wide[e.k_max] = widen_policy(policy, e.k_max)
        [cand] = greedy_candidates(wide[e.k_max], [e], split)
        out.append((e.problem, e.problem.repair(cand, e.repair_config).partition))
    policy.set_training_mode(was_training)
    return out


def greedy_scores(policy: OneShotPolicy, instances: Sequence[tuple[Graph | str, Hardware | str]],
                  repair: RepairConfig | None = None, polish_budget: int = 0, split: str = "head") -> list[float]:
    """Zero-shot: the repaired score of ``policy``'s greedy candidate (:func:`greedy_candidates`,
    with ``split``) on every instance, without training (0 where the repair finds no valid partition);
    ``polish_budget``: that partition polished with up to this many evaluations first (0: not)."""
    return [0.0 if part is None else polish(pr, part, polish_budget).score if polish_budget
            else float(pr.evaluate(part).score[0])
            for pr, part in greedy_partitions(policy, instances, repair, split)]


def node_temperatures(logits: torch.Tensor, entropy: float) -> torch.Tensor:
    """Per node (rows of ``logits``, ``(n, K)``, masked entries at -1e9) the temperature ``T_v >= 1``
    at which ``softmax(logits[v] / T_v)`` has ``entropy`` nats (bisection on ``log T`` up to 1e5;
    1 where the node is already that spread)."""
    lo = torch.zeros(logits.shape[0])
    hi = torch.full((logits.shape[0],), math.log(1e5))
    for _ in range(40):
        mid = (lo + hi) / 2
        ent = torch.distributions.Categorical(logits=logits / mid.exp()[:, None]).entropy()
        lo, hi = torch.where(ent < entropy, mid, lo), torch.where(ent < entropy, hi, mid)
    return ((lo + hi) / 2).exp()


def train_oneshot(instances: Sequence[tuple[Graph | str, Hardware | str]], config: OneShotTrainConfig | None = None,
                  *, init: OneShotPolicy | None = None, repair: RepairConfig | None = None,
                  on_update: Callable[[dict[str, Any]], None] | None = None,
                  weights: Sequence[float] | None = None,
                  on_sample: Callable[[int, float, np.ndarray | None], None] | None = None,
                  start_partitions: Sequence[np.ndarray | None] | None = None) -> OneShotRun:
    """Train a one-shot policy on ``instances`` (see the module doc); ``init``: fine-tune that
    policy instead of a fresh one; ``weights``: relative chance of each instance to be drawn into
    an update (one per instance; checked and used only when ``instances_per_update`` is below the
    number of instances; default uniform); ``on_sample(instance index, score,
    repaired partition or None)``: called for every sample counted against the budget; ``on_update``:
    called with every curve row (``"policy"`` in it is the policy being trained, for a caller that
    validates or checkpoints it), and once before training with a row of update 0 (the start;
    ``mean_score`` None: nothing was sampled); ``start_partitions``: per instance a valid partition
    already found (None: none), which starts its best so far (its evaluation is not counted as a
    sample: the caller counted it) and, with ``adapt_orders``, the orders of the first update."""
    cfg = config or OneShotTrainConfig()
    head = init.head if init is not None else cfg.policy.get("head", "nodes")
    if head == "stages" and (cfg.target == "repaired" or cfg.node_entropy is not None):
        raise ValueError("the stages head trains on its own candidates (target='candidate') without node_entropy: "
                         "a repaired partition need not be a split of the order, and it has no per-node logits")
    torch.manual_seed(cfg.seed)
    envs = oneshot_envs(instances, use_repair=cfg.use_repair, repair=repair,
                        k_max=init.k_max if init is not None else None, common_padding=False)
    policy = policy_for_envs(envs, oneshot_policy_kwargs(**cfg.policy), cfg.learning_rate, init)
    for group in policy.optimizer.param_groups:
        group["lr"] = cfg.learning_rate
    batches = [obs_batch([e]) for e in envs]  # each instance at its own padding
    problems = [e.problem for e in envs]
    orders = [policy_orders(policy, p) for p in problems]
    sizes = [p.graph.n for p in problems]
    caches: list[dict[bytes, tuple[float, np.ndarray | None]]] = [{} for _ in envs]
    best = [0.0] * len(envs)
    best_part: list[np.ndarray | None] = [None] * len(envs)
    greedy_now: list[float | None] = [None] * len(envs)
    order_rng = np.random.default_rng([cfg.seed, 1])
    adapt = cfg.adapt_orders if head == "stages" else 0

    fits = [extra_order_fit(policy, p) if adapt else 0 for p in problems]

    def adapt_orders(i: int) -> None:  # none fit (e.g. 10,000 nodes on 64 chips): the fixed orders stay
        if adapt and fits[i] > 0 and best_part[i] is not None:
            orders[i] = policy_orders(policy, problems[i], around=best_part[i], count=adapt, rng=order_rng)

    if start_partitions is not None:
        if len(start_partitions) != len(envs):
            raise ValueError(f"start_partitions: {len(envs)} entries expected (one per instance), "
                             f"got {len(start_partitions)}")
        for i, part in enumerate(start_partitions):
            if part is None:
                continue
            part = np.asarray(part, dtype=np.int64)
            if part.shape != (sizes[i],) or not bool(problems[i].is_valid(part)):
                raise ValueError(f"start_partitions[{i}]: not a valid partition of instance {i}")
            best[i], best_part[i] = float(problems[i].evaluate(part).score[0]), part
            adapt_orders(i)
    samples, curve, t0 = 0, [], time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    pick_rng = np.random.default_rng(cfg.seed)
    per_update = len(envs) if cfg.instances_per_update is None else min(cfg.instances_per_update, len(envs))
    if weights is not None and len(weights) != len(envs):
        raise ValueError(f"weights: {len(envs)} numbers expected (one per instance), got {len(weights)}")
    p_pick = None
    if weights is not None and per_update < len(envs):  # only a draw uses the weights
        if min(weights) < 0 or not sum(weights) > 0:
            raise ValueError("weights: non-negative numbers with a positive sum expected")
        p_pick = np.asarray(weights, dtype=float) / float(sum(weights))
        if int((p_pick > 0).sum()) < per_update:
            raise ValueError(f"weights: fewer than instances_per_update={per_update} instances can be drawn")

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
            if part is not None and cfg.polish:
                done = polish(pr, part, cfg.polish)
                hit = (done.score, done.partition)
            else:
                hit = (float(pr.evaluate(part).score[0]) if part is not None else 0.0, part)
            caches[i][key] = hit
        if hit[0] > best[i]:
            best[i], best_part[i] = hit[0], hit[1]
        if on_sample is not None:
            on_sample(i, hit[0], hit[1])
        return hit

    temps: list[torch.Tensor | None] = [None] * len(envs)
    if cfg.node_entropy is not None:
        with torch.no_grad():
            for i, (obs, masks) in enumerate(batches):
                d = policy.candidates(obs, masks, sizes[i], cfg.temperature)
                assert isinstance(d, NodeCandidates)
                temps[i] = node_temperatures(d.raw, cfg.node_entropy)[:, None]

    def dists(chosen: Sequence[int], pol: OneShotPolicy = policy) -> list[CandidateDist]:
        # masked after the divisions, so masked entries stay at -1e9 whatever the temperatures
        return [pol.candidates(batches[i][0], batches[i][1], sizes[i], cfg.temperature, temps[i], orders[i])
                for i in chosen]

    start = None
    if cfg.kl_coef > 0:  # a frozen copy of where training starts
        start = copy.deepcopy(policy)
        start.set_training_mode(False)
        for p in start.parameters():
            p.requires_grad_(False)

    update = 0
    s_count = cfg.samples_per_graph
    if on_update is not None:  # the start, before any sample (not a curve row)
        on_update({"update": 0, "samples": 0, "wall_time": 0.0, "mean_score": None, "kl": 0.0,
                   "greedy_score": [None] * len(envs), "best_score": list(best), "policy": policy})
    while samples < cfg.max_samples and (cfg.max_wall_time is None or time.perf_counter() - t0 < cfg.max_wall_time):
        policy.set_training_mode(True)
        chosen = (list(range(len(envs))) if per_update == len(envs)
                  else sorted(pick_rng.choice(len(envs), per_update, replace=False, p=p_pick).tolist()))
        left = cfg.max_samples - samples
        chosen = chosen[:left]  # the last update: at most what is left of the budget, one sample each
        ds = dists(chosen)
        s_use = min(s_count, left // len(chosen))
        rewards = np.zeros((s_use, len(chosen)))
        actions, old_logp = [], []
        for j, (i, dist) in enumerate(zip(chosen, ds, strict=True)):
            draws = dist.sample(s_count, gen)[:s_use]  # (S, n)
            act = draws.clone()
            for s in range(s_use):
                rewards[s, j], part = score(i, draws[s].numpy().astype(np.int64))
                if cfg.target == "repaired" and part is not None:
                    act[s] = torch.as_tensor(part)
            actions.append(act)
            old_logp.append(dist.log_prob(act).detach())  # (S,)
        r = torch.as_tensor(rewards, dtype=torch.float32)
        kl = torch.zeros_like(r)
        if start is not None:
            with torch.no_grad():
                for j, d0 in enumerate(dists(chosen, start)):
                    kl[:, j] = old_logp[j] - d0.log_prob(actions[j])  # (S,) nats
            r = r - cfg.kl_coef * kl
        # per instance; one sample each (the budget's last) has no baseline: no step
        adv = (r - r.mean(dim=0)) / (r.std(dim=0) + 1e-6) if s_use >= 2 else torch.zeros_like(r)
        for epoch in range(cfg.epochs if s_use >= 2 else 0):
            if epoch:
                ds = dists(chosen)
            loss = torch.zeros(())
            for j, dist in enumerate(ds):
                ratio = torch.exp(dist.log_prob(actions[j]) - old_logp[j])
                clipped = ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)
                loss = loss - torch.minimum(ratio * adv[:, j], clipped * adv[:, j]).mean()
                if cfg.ent_coef:
                    loss = loss - cfg.ent_coef * dist.entropy()
            loss = loss / len(ds)
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            policy.optimizer.step()
        update += 1
        with torch.no_grad():
            for i, dist in zip(chosen, dists(chosen), strict=True):
                if samples >= cfg.max_samples:  # no budget left for the greedy candidate
                    break
                greedy_now[i] = score(i, dist.mode().numpy().astype(np.int64))[0]
        for i in chosen:
            adapt_orders(i)
        row = {"update": update, "samples": samples, "wall_time": time.perf_counter() - t0,
               "mean_score": float(rewards.mean()), "kl": float(kl.mean()), "greedy_score": list(greedy_now),
               "best_score": list(best)}
        curve.append(row)
        if on_update is not None:
            on_update({**row, "policy": policy})
    policy.set_training_mode(False)
    ids = [(p.graph.id or p.graph.name, p.hardware.id or p.hardware.name) for p in problems]
    return OneShotRun(policy=policy, instances=ids, best_score=list(best), best_partition=best_part, curve=curve,
                      samples=samples, wall_time=time.perf_counter() - t0)


def imitate_oneshot(instances: Sequence[tuple[Graph | str, Hardware | str]], partitions: Sequence[np.ndarray],
                    *, epochs: int = 50, learning_rate: float = 3e-3, policy: OneShotPolicy | None = None,
                    policy_kwargs: dict[str, Any] | None = None, seed: int = 0, batch: int = 16,
                    on_epoch: Callable[[int, float], None] | None = None) -> OneShotPolicy:
    """Behaviour cloning of a one-shot policy: per-node cross-entropy of the policy's chip logits
    against a teacher's partition of every instance (e.g. the stage DP's), Adam, ``batch``
    instances per step, ``epochs`` passes in a seeded order (the ``stages`` head: the teacher's
    negative log-probability per stage; a teacher must then be non-decreasing along one of the
    head's orders, :func:`stage_orders`, and its used chips are renumbered ``0 .. m-1``). No repair
    is called. ``policy``: start from it (else a fresh one from ``policy_kwargs``); ``on_epoch(epoch,
    mean loss)``."""
    if len(instances) != len(partitions) or not instances:
        raise ValueError("one teacher partition per instance expected")
    torch.manual_seed(seed)
    envs = oneshot_envs(instances, common_padding=False, k_max=policy.k_max if policy is not None else None)
    pol = policy_for_envs(envs, policy_kwargs or oneshot_policy_kwargs(), learning_rate, policy)
    opt = torch.optim.Adam(pol.parameters(), lr=learning_rate)
    data = []
    for e, part in zip(envs, partitions, strict=True):
        target = torch.as_tensor(np.asarray(part, dtype=np.int64))
        if target.shape != (e.problem.graph.n,):
            raise ValueError(f"{e.problem.graph.id}: teacher partition has shape {tuple(target.shape)}, "
                             f"expected ({e.problem.graph.n},)")
        orders = policy_orders(pol, e.problem)
        if orders is not None:  # stages: a split of one of the orders, its used chips renumbered 0 .. m-1
            by_pos = target[orders[0]]  # (O, n)
            fits = ((by_pos[:, 1:] - by_pos[:, :-1]) >= 0).all(dim=1)
            if not bool(fits.any()):
                raise ValueError(f"{e.problem.graph.id}: the stages head clones splits of a node order "
                                 f"({', '.join(pol.orders)} and their jitters); the teacher's chips go "
                                 f"down along each")
            first = int(fits.nonzero()[0, 0])
            row = by_pos[first]
            renum = torch.cat([torch.zeros(1, dtype=torch.int64), (row[1:] > row[:-1]).to(torch.int64).cumsum(0)])
            if not torch.equal(renum, row):
                skipped = sorted(set(range(int(row.max()) + 1)) - set(row.tolist()))
                warnings.warn(f"{e.problem.graph.id or e.problem.graph.name}: the teacher leaves chips {skipped} "
                              f"empty; the stages head clones it with its used chips renumbered 0 .. "
                              f"{int(renum.max())}", stacklevel=2)
            target = torch.empty_like(target).scatter_(0, orders[0][first], renum)
        data.append((*obs_batch([e]), target, orders))
    rng = np.random.default_rng(seed)
    pol.set_training_mode(True)
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        total = 0.0
        for start in range(0, len(order), batch):
            loss = torch.zeros(())
            for i in order[start:start + batch]:
                obs, masks, target, ords = data[i]
                dist = pol.candidates(obs, masks, len(target), orders=ords)
                if isinstance(dist, NodeCandidates):
                    loss = loss + torch.nn.functional.cross_entropy(dist.raw, target)
                else:
                    loss = loss - dist.log_prob(target[None])[0] / (int(target.max()) + 1)
            loss = loss / len(order[start:start + batch])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(order[start:start + batch])
        if on_epoch is not None:
            on_epoch(epoch + 1, total / len(order))
    pol.set_training_mode(False)
    return pol
