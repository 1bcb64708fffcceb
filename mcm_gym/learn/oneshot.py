"""The one-shot learned partitioner's policy: one GNN pass gives every node a distribution over chips.

For ``MCMPartition-v0`` with ``mode="oneshot"`` (action ``MultiDiscrete([K_max] * max_nodes)``, the
action mask ``(max_nodes * K_max,)`` from ``env.action_masks()``), as the paper formulates it: the
whole candidate is sampled at once, the env's solver repairs it, and the reward is the repaired score.

:class:`OneShotPolicy` is an sb3-contrib ``MaskableMultiInputActorCriticPolicy``, so third parties use
it the SB3 way::

    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv
    from mcm_gym.learn.oneshot import ONESHOT_PPO, OneShotPolicy, oneshot_policy_kwargs

    env = DummyVecEnv([lambda: MCMPartitionEnv("generator://layered-dag-v0/47", "ring-4", mode="oneshot")] * 8)
    model = MaskablePPO(OneShotPolicy, env, policy_kwargs=oneshot_policy_kwargs(hidden=32, layers=2),
                        **ONESHOT_PPO).learn(1536)

The logits of node ``v`` on chip ``c`` (``c < K``, the instance's real chips) are, with ``prior="pipeline"``
(the default)::

    logit[v, c] = -beta_v * (c + 1/2 - t_v) ** 2 + u_v[c]
    t_v = K * (W_{v-1} + w_v / 2) / W_n,    W_v = w_0 + ... + w_v,    w_v = (s_v + eps / n) * exp(d_v)

where ``s_v = max(work_v, memory_v)``: node ``v``'s share of the graph's work (fastest compute
times, from the observation's ``work_before``) or of the module's SRAM (its ``weight`` over the
chips' summed ``sram``), whichever is larger, so that a node whose weights fill a chip gets a chip
(``prior="work"``: the work share alone); ``d_v``, ``log(beta_v / sharpness)`` and ``u_v`` are
outputs of a per-node head on the node's GNN embedding and the pooled graph embedding. The head's
last layer starts at zero, so the untrained policy samples pipelines: node targets ``t_v`` rise with
the topological order (the cumulative sums make them monotone whatever the network outputs), the
greedy action splits the order into ``K`` stages of equal share, and samples differ from it mostly
near stage ends. Learning moves the stage ends (through ``d_v``: a node's weight shifts every later
target), sharpens or widens the distribution (``beta_v``) and may overrule the prior per chip
(``u_v``). ``prior="none"``: the logits are ``u_v`` alone (a plain per-node softmax over chips).

``head="stages"`` (the package's own trainer only, not SB3) samples where the pipeline stages end
instead of a chip per node: first a node order ``o`` (one of its ``R`` named ``orders``: for new
policies :data:`STAGE_ORDERS_ALL`, the graph's own, depth-first, ASAP, ALAP, reverse depth-first,
fewest live bytes, critical path, earliest start; :data:`STAGE_ORDERS`, the first four, for
checkpoints written before 2026-12-08; or one of ``extra_orders`` seeded jitters of them,
:data:`STAGE_EXTRA_ORDERS`,
order ``o`` sharing the learned logit of named order ``o mod R``), then the number of stages ``m``
(chips ``0 .. m-1`` in the hardware's pipeline order, ``m <= K``), then stage ends
``e_1 < ... < e_{m-1}``, positions in that order::

    P(o) ~ exp(q_{o mod R}),   P(m) ~ exp(g_m - count_prior (K - m))  (K: the real chips; m <= K),
    P(e_k = p | e_{k-1}, m, o) ~ exp(-beta (m C_p - k) ** 2 - cut_prior relu(m L_p - 1) + s_p)

for ``e_{k-1} < p`` (leaving a node for every later stage), with ``C_p`` the prior's cumulative share
through position ``p`` of the order (on chips of different speeds, ``k`` becomes ``m`` times the first
``k`` chips' share of the ``m`` chips' summed peak FLOP/s, :func:`stage_targets`),
``beta = min(stage_sharpness, 0.5 (n / m) ** 2) * exp(b)`` (the cap keeps small graphs exploring:
one node off costs at most 0.5 nats; ``b <= max_log_sharpness``, so that the balance term cannot
drown the learned scores), ``L_p`` the transfer time of the cut after position ``p`` on the slowest
link over the graph's total compute time (``m L_p > 1``: the cut takes longer to send than an equal
stage takes to compute, so it would be the bottleneck) and ``s_p`` a "cut here" score from the
node's embedding, the pooled one, the ``cut`` feature along the order and ``C_p``;
``q_o``, ``g_m`` and ``b`` come from the pooled embedding. That is ``balance="global"``; with
``balance="rest"`` (the default for new policies; checkpoints without the key load with ``global``)
stage ``k`` aims at an equal part of what the previous stage left instead,
``-beta (m (C_p - C_{e_{k-1}} - (1 - C_{e_{k-1}}) / (m - k + 1))) ** 2`` (on chips of different speeds
the chip's share of the remaining chips' peak FLOP/s), so an end that fell short or long on a coarse
node is made up by the stages after it. With a ``speed_prior`` (the default for new
policies; checkpoints written before it load without) the order and ``m`` are drawn jointly::

    P(o, m) ~ exp(q_o + g_m - count_prior (K - m) - speed_prior log(T_{o,m} / min T))

where ``T_{o,m}`` (s) is the bottleneck that the stage DP's cost model (:class:`StageCost`: each
stage's compute time on its chip, with the send of its cut to the next chip; exact on rings and
chains, approximate on meshes) predicts for the greedy stage ends of order ``o`` split into ``m``
stages: the policy prefers the (order, m) whose own greedy pipeline is fastest, and learning shifts
that preference (``q_o``, ``g_m``) and the ends. ``T`` is a feature, not differentiated.
On chips of one SRAM size the ends whose
stage would overflow its chip, or would leave more than the later chips can hold, are masked
(:class:`StageLimits`; every split that fits keeps its probability mass, and every candidate drawn
fits where some split of the drawn order and ``m`` does), which also spares the repair; so is every
(order, m) pair none of whose splits fits (the pair is drawn jointly then, speed prior or not),
unless no pair fits. The last
layers start at zero, so the untrained policy's greedy candidate splits an order into stages of
equal share (moved off cuts too slow to send): the graph's own order into ``K`` stages without a
speed prior, the (order, m) with the fastest predicted pipeline with one. Node ``order[p]`` goes on chip
``#{k : e_k < p}``: every candidate is a contiguous split of a topological order, so dataflow holds
by construction, and a small graph can leave chips empty. A
partition's probability sums over the orders it splits. :meth:`OneShotPolicy.candidates` gives
either head's distribution over whole candidates (``sample``, ``log_prob``, ``mode``, ``entropy``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from mcm_gym.env.observation import CHIP_FEATURES, NODE_FEATURES
from mcm_gym.learn.extractor import NodeEncoder, pool_nodes

__all__ = ["OneShotExtractor", "OneShotHeads", "OneShotPolicy", "oneshot_policy_kwargs", "PRIORS", "HEADS",
           "ONESHOT_PPO", "pipeline_logits", "CandidateDist", "NodeCandidates", "StageCandidates",
           "StageLimits", "StageCost", "StageBalance", "BALANCES", "STAGE_ORDERS", "STAGE_ORDERS_ALL",
           "check_orders"]

#: Parameterisations of the per-node logits (see the module doc).
PRIORS = ("pipeline", "work", "none")


def default_prior(head: str) -> str:
    """The prior a new policy gets when none is named: ``pipeline`` for the per-node head (nothing
    else keeps its nodes within SRAM), ``work`` for the stages head, whose memory masks
    (:class:`StageLimits`) and repair handle SRAM, so its balance aims at compute time alone (a
    large embedding table's SRAM share had counted as work, and SmolLM-135M's first stage on ring-8
    got half the others' time)."""
    return "work" if head == "stages" else "pipeline"

#: Where the stages head's stage ``k`` of ``m`` aims to end: at the cumulative share ``k / m`` of the
#: whole order (``global``), or at an equal share of what the previous stage left (``rest``: the
#: previous end's share plus ``1 / (m - k + 1)`` of the remainder; on chips of different speeds, the
#: chip's share of the remaining chips' peak FLOP/s).
BALANCES = ("global", "rest")
#: What the policy outputs: a chip per node (``nodes``, SB3-compatible) or where stages end (``stages``).
HEADS = ("nodes", "stages")
#: Default logit drop (nats) per chip left empty in the stages head's prior on the number of stages
#: (``count_prior``).
STAGE_COUNT_PRIOR = 3.0
#: Default logit drop (nats) per unit by which a stage end's cut transfer time exceeds an equal stage's
#: compute time (``cut_prior``; see the module doc).
STAGE_CUT_PRIOR = 10.0
#: Default logit drop (nats) of an (order, number of stages) pair per unit of ``log(T / T_min)``, where
#: ``T`` is the bottleneck (s) that the stage DP's cost model predicts for that pair's greedy stage
#: ends and ``T_min`` the smallest over the pairs (``speed_prior``; see the module doc): 20 nats put a
#: pair whose greedy pipeline is 10% slower about 1.9 nats behind (the untrained policy's zero-shot on
#: ``suite://heldout-v1``: 0.923 of the best known at 10, 0.943 at 20 and at 30; BENCHMARKS.md).
STAGE_SPEED_PRIOR = 20.0
#: Default :data:`BALANCES` entry of new policies (files without the key load with ``global``).
STAGE_BALANCE = "rest"
#: Default upper clamp of the stages head's learned log-sharpness ``b`` (``max_log_sharpness``): above
#: about 2 the balance term outweighs every learned cut score (``pretrained-v4`` learned ``b`` of 3.5-5.7,
#: so its greedy candidate is the equal-share split whatever the graph).
STAGE_MAX_LOG_SHARPNESS = 2.0
#: The stages head's initial ``beta`` is at most this times ``(n / m) ** 2``: on a graph of few nodes
#: per stage, a stage end one node (of equal share) off its equal-share place costs at most 0.5 nats,
#: so the untrained policy still explores there.
NODE_SHARPNESS = 0.5
#: The node orders the stages head chooses among, in this order (``mcm_gym.learn.oneshot_train.stage_orders``
#: computes them): the graph's own, depth-first, ASAP level, ALAP level (the stage DP's first four).
STAGE_ORDERS = ("graph", "dfs", "asap", "alap")
#: Every named order the stages head can be built with (``orders``; functions in
#: :data:`mcm_gym.search.dp.NAMED_ORDERS`): :data:`STAGE_ORDERS`, then reverse depth-first, fewest
#: live bytes, critical path first and earliest start time.
STAGE_ORDERS_ALL = STAGE_ORDERS + ("rdfs", "live", "critical", "asap_time")
#: Default number of perturbed orders the stages head adds to its ``R`` named orders (``extra_orders``):
#: extra order ``j`` is named order ``j % R`` with its ranks jittered by Gaussian noise of
#: :data:`ORDER_JITTER` ``[(j // R) % 2]`` times ``n`` (seed ``j``; the stage DP's random orders do
#: the same around its best one), and shares that order's learned logit.
STAGE_EXTRA_ORDERS = 24
#: Relative noise scales of the perturbed orders (see :data:`STAGE_EXTRA_ORDERS`).
ORDER_JITTER = (0.02, 0.1)
#: The most ``orders x K_max^2 x nodes`` the stages head's speed prior walks through (each (order, m)
#: pair's greedy ends, one step per stage); a graph above it gets fewer extra orders (with a warning):
#: 10,000 nodes on 64 chips keep the four named ones, about 5 s for a zero-shot candidate.
#: ``mcm_gym.learn.oneshot_train.policy_orders`` reads it from this module when called.
STAGE_ORDER_BUDGET = 2e8

#: ``MaskablePPO`` settings that learn small graphs in one-shot mode (tests/test_oneshot.py), with 8
#: envs in a ``DummyVecEnv``: 128 whole candidates per update, 10 epochs, a wide clip range (the
#: ratio is that of a whole partition, a product over the nodes, so the usual 0.2 stalls learning),
#: no entropy bonus (the prior's spread explores).
ONESHOT_PPO: dict[str, Any] = {"n_steps": 16, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-3,
                               "clip_range": 0.5, "gamma": 1.0, "ent_coef": 0.0}

_WORK_BEFORE = NODE_FEATURES.index("work_before")
_WEIGHT = NODE_FEATURES.index("weight")
_EXISTS = CHIP_FEATURES.index("exists")
_SRAM = CHIP_FEATURES.index("sram")
_PEAK = CHIP_FEATURES.index("peak")


def check_orders(orders: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """``orders`` as a tuple of distinct names from :data:`STAGE_ORDERS_ALL` (a string: comma-separated,
    or ``"all"``: every one), or a ValueError naming the unknown ones."""
    if orders == "all":
        return STAGE_ORDERS_ALL
    names = tuple(x.strip() for x in orders.split(",")) if isinstance(orders, str) else tuple(orders)
    bad = [x for x in names if x not in STAGE_ORDERS_ALL]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"orders must be distinct names from {STAGE_ORDERS_ALL}, got {names!r}")
    return names


def _shape(space: spaces.Dict, key: str) -> tuple[int, ...]:
    shape = space[key].shape
    if shape is None:
        raise ValueError(f"observation key {key!r} has no shape")
    return tuple(int(x) for x in shape)


class OneShotExtractor(BaseFeaturesExtractor, NodeEncoder):
    """One GNN pass over the padded graph observation, keeping every node's embedding.

    The node pass is :class:`~mcm_gym.learn.extractor.GNNExtractor`'s (``hidden``, ``layers``,
    ``attention``, ``heads``). Output, flat so that SB3 can carry it: node embeddings ``(N * hidden)``,
    masked mean and max pooling ``(2 * hidden)``, the observation's ``work_before`` ``(N)``, each
    node's share of the summed SRAM ``(N)``, the node mask ``(N)`` and the number of real chips ``(1)``:
    ``features_dim = N * (hidden + 3) + 2 * hidden + 1`` (``N = max_nodes``). :class:`OneShotHeads`
    unpacks it (:meth:`split`). The parameters do not depend on ``N``, and :meth:`OneShotPolicy.node_logits`
    accepts observations of any padding.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, layers: int = 3,
                 attention: bool = False, heads: int = 4) -> None:
        for key in ("node_features", "edge_index", "node_mask", "edge_mask", "chip_state"):
            if key not in observation_space.spaces:
                raise ValueError(f"OneShotExtractor needs observation key {key!r} (an MCMPartition-v0 "
                                 f"observation); got {sorted(observation_space.spaces)}")
        if hidden < 1 or layers < 0:
            raise ValueError("hidden must be >= 1 and layers >= 0")
        if attention and hidden % heads:
            raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
        n_nodes, n_feat = _shape(observation_space, "node_features")
        super().__init__(observation_space, n_nodes * (hidden + 3) + 2 * hidden + 1)
        self.n_nodes = n_nodes
        self._build_encoder(n_feat, hidden, layers, attention, heads)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``obs``: batched observation tensors. Returns ``(B, features_dim)``."""
        h, node_mask = self.embed_nodes(obs)
        b = h.shape[0]
        mean, mx = pool_nodes(h, node_mask)
        work_before = obs["node_features"][:, :, _WORK_BEFORE]
        chips = obs["chip_state"]
        real = chips[:, :, _EXISTS] > 0.5
        sram = (chips[:, :, _SRAM] * real).sum(dim=1, keepdim=True).clamp(min=1e-6)  # in largest SRAMs
        memory = obs["node_features"][:, :, _WEIGHT] / sram
        k_real = real.sum(dim=1, keepdim=True).to(h.dtype)
        return torch.cat([h.reshape(b, -1), mean, mx, work_before, memory, node_mask.to(h.dtype), k_real], dim=1)

    def split(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``features`` back into ``h (B, N, H)``, ``pooled (B, 2H)``, ``work_before (B, N)``, memory
        shares ``(B, N)``, ``node_mask (B, N)`` (float) and ``k_real (B, 1)``. ``N`` is read from the
        width, so features of any padding split (one policy serves graphs padded to different sizes)."""
        hd = self.hidden
        b, width = features.shape
        n, rest = divmod(width - 2 * hd - 1, hd + 3)
        if rest or n < 1:
            raise ValueError(f"features of width {width} are not OneShotExtractor output with hidden={hd}")
        h, pooled, wb, mem, nm, k = features.split([n * hd, 2 * hd, n, n, n, 1], dim=1)
        return h.reshape(b, n, hd), pooled, wb, mem, nm, k


def node_shares(work_before: torch.Tensor, memory: torch.Tensor | None, node_mask: torch.Tensor,
                eps: float = 0.05) -> torch.Tensor:
    """Each node's share ``s_v + eps / n`` of the prior (``(B, N)``, 0 on padding): the larger of its
    work share (from ``work_before``) and its share of the summed SRAM (``memory``; None: work only)."""
    nm = node_mask
    nxt = torch.cat([work_before[:, 1:], torch.ones_like(work_before[:, :1])], dim=1)
    nxt_mask = torch.cat([nm[:, 1:], torch.zeros_like(nm[:, :1])], dim=1)
    nxt = torch.where(nxt_mask > 0.5, nxt, torch.ones_like(nxt))  # the last real node's work ends at 1
    share = (nxt - work_before).clamp(min=0.0) * nm  # (B, N) share of the work, sums to 1
    if memory is not None:
        share = torch.maximum(share, memory * nm)
    n_real = nm.sum(dim=1, keepdim=True).clamp(min=1.0)
    return (share + eps / n_real) * nm


def pipeline_logits(work_before: torch.Tensor, memory: torch.Tensor | None, node_mask: torch.Tensor,
                    k_real: torch.Tensor, k_max: int, shift: torch.Tensor, log_sharpness: torch.Tensor,
                    sharpness: float = 1.0, eps: float = 0.05) -> torch.Tensor:
    """The pipeline prior's logits ``(B, N, k_max)`` (see the module doc): ``work_before``, memory
    shares (None: work alone), ``node_mask`` ``(B, N)``, ``k_real`` ``(B, 1)`` real chips; ``shift`` (``d_v``) and
    ``log_sharpness`` (``log(beta_v / sharpness)``) ``(B, N)``, clamped to [-6, 6]. Padding nodes and
    chips get finite logits (the env's action mask removes them)."""
    nm = node_mask
    w = node_shares(work_before, memory, nm, eps) * torch.exp(shift.clamp(-6.0, 6.0)) * nm
    cum = w.cumsum(dim=1)
    total = cum[:, -1:].clamp(min=1e-12)
    target = k_real * (cum - w / 2) / total  # (B, N) in (0, K)
    centres = torch.arange(k_max, device=w.device, dtype=w.dtype) + 0.5
    beta = sharpness * torch.exp(log_sharpness.clamp(-6.0, 6.0))
    return -beta.unsqueeze(-1) * (centres.view(1, 1, -1) - target.unsqueeze(-1)) ** 2


class CandidateDist:
    """A distribution over whole candidates of one instance (``n`` real nodes): :meth:`sample`,
    :meth:`log_prob`, :meth:`mode` (the greedy candidate) and :meth:`entropy`."""

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` candidates ``(count, n)`` (chip indices, int64)."""
        raise NotImplementedError

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability ``(S,)`` of candidates ``(S, n)``."""
        raise NotImplementedError

    def mode(self) -> torch.Tensor:
        """The greedy candidate ``(n,)``."""
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        """Entropy in nats (a scalar tensor; see the subclasses)."""
        raise NotImplementedError


class NodeCandidates(CandidateDist):
    """Independent chips per node from masked logits ``(n, K)`` (the ``nodes`` head)."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.raw = logits  # as given (masked entries at -1e9), for cross-entropy and temperatures
        self.dist = torch.distributions.Categorical(logits=logits)

    @property
    def logits(self) -> torch.Tensor:
        """The normalised per-node logits ``(n, K)``."""
        return self.dist.logits

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return torch.multinomial(self.dist.probs, count, replacement=True, generator=generator).T

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(actions).sum(dim=1)

    def mode(self) -> torch.Tensor:
        return self.dist.logits.argmax(dim=1)

    def entropy(self) -> torch.Tensor:
        """Summed over the nodes (exact: they are independent)."""
        return self.dist.entropy().sum()


class StageLimits(NamedTuple):
    """What the chips' SRAM allows the stages head (``mcm_gym.learn.oneshot_train.stage_limits``), per
    order ``o`` of ``O``, ``K`` chips and ``n`` nodes, positions along the order: ``end_max``
    ``(O, K, n + 1)``: ``[o, c, i]`` the last position ``e`` such that positions ``i .. e`` fit chip
    ``c`` (``i - 1``: not even node ``i`` alone); ``rest_min`` ``(O, K, K + 1)``: ``[o, m - 1, c]`` the
    first position from which chips ``c .. m-1`` can hold the rest of the order (``n`` at ``c = m``;
    above ``n``: they cannot hold it)."""

    end_max: torch.Tensor
    rest_min: torch.Tensor


class StageCost(NamedTuple):
    """The stage DP's cost model along each order (``mcm_gym.learn.oneshot_train.stage_orders``), for
    the stages head's ``speed_prior``: ``prefix`` ``(O, n + 1, K)``, ``[o, p, c]`` the summed time (s)
    of positions ``0 .. p-1`` of order ``o`` on chip ``c``; ``cut_time`` ``(O, K, n)``, ``[o, c, p]``
    the time (s) to send the tensors crossing a cut after position ``p`` over the link ``c -> c+1``;
    ``serialize``: a stage's time is its compute time plus its send time (else the larger of the
    two). Exact for the simulator on rings and chains, approximate on meshes (as the stage DP)."""

    prefix: torch.Tensor
    cut_time: torch.Tensor
    serialize: bool


class StageBalance(NamedTuple):
    """The stages head's balance term with ``balance="rest"`` (see :data:`BALANCES`), applied per step
    since it depends on the previous end: ``frac`` ``(O, n)`` each order's cumulative share through
    each position, ``beta`` ``(K,)`` its sharpness for ``m = 1 .. K`` (nats per unit of
    ``(m * (share - target)) ** 2``), ``targets`` ``(K, K - 1)`` the stage ends' global target shares
    (:func:`stage_targets`), from which each stage's part of the rest is taken."""

    frac: torch.Tensor
    beta: torch.Tensor
    targets: torch.Tensor


class StageCandidates(CandidateDist):
    """Contiguous splits of a node order (the ``stages`` head, see the module doc): ``order_logits``
    ``(O,)`` choose one of ``orders`` ``(O, n)`` (topological orders, node indices), ``count_logits``
    ``(K,)`` the number of stages ``m = 1 .. K`` (entries for ``m > n`` are never drawn), and
    ``boundary_logits`` ``(O, K, K - 1, n)``: ``[o, m - 1, k - 1, p]`` is the logit of stage ``k`` of
    ``m`` ending after position ``p`` of order ``o``, allowed when ``e_{k-1} < p <= n - 1 - (m - k)``
    (the ``m`` or ``k`` axis may have size 1 where the logits do not depend on it: never an
    ``O x K x K x n`` tensor for autograd to fill with zeros).
    Stage ``j`` goes on chip ``j``. A partition's probability sums over every order it splits.
    With ``limits`` (chips of one SRAM size), every (order, m) pair whose ``m`` chips cannot hold the
    graph in any split of that order is left out (:attr:`unfit`), unless no pair fits."""

    def __init__(self, order_logits: torch.Tensor, orders: torch.Tensor, count_logits: torch.Tensor,
                 boundary_logits: torch.Tensor, limits: StageLimits | None = None, cost: StageCost | None = None,
                 speed_prior: float = 0.0, balance: StageBalance | None = None,
                 estimate: torch.Tensor | None = None) -> None:
        o, n = int(orders.shape[0]), int(orders.shape[1])
        k = int(count_logits.shape[0])
        bs = tuple(boundary_logits.shape)
        if order_logits.shape != (o,) or len(bs) != 4 or bs[0] != o or bs[3] != n or bs[1] not in (1, k) \
                or bs[2] not in (1, max(k - 1, 0)) or n < 1:
            raise ValueError(f"stage logits do not match: {o} orders of {n} nodes, {k} stage counts, boundary "
                             f"logits {tuple(boundary_logits.shape)}")
        if limits is not None and (limits.end_max.shape != (o, k, n + 1) or limits.rest_min.shape != (o, k, k + 1)):
            raise ValueError(f"stage limits do not match {o} orders of {n} nodes and {k} chips: end_max "
                             f"{tuple(limits.end_max.shape)}, rest_min {tuple(limits.rest_min.shape)}")
        self.o, self.k, self.n = o, k, n
        self.orders = orders.to(torch.int64)
        self.limits = limits
        too_many = torch.arange(1, k + 1) > n
        #: ``(O, K)`` pairs (order, m) whose m chips cannot hold the order's graph (an SRAM overflow in
        #: every split), left out unless every pair is such; None: none left out
        self.unfit: torch.Tensor | None = None
        if limits is not None:  # m whose chips cannot hold the graph along any order, unless every m is such
            pair_unfit = limits.rest_min[:, :, 0] > 0
            unfit = pair_unfit.all(dim=0)
            if not bool((unfit | too_many).all()):
                too_many = too_many | unfit
                if bool((pair_unfit & ~too_many[None, :]).any()):
                    self.unfit = pair_unfit & ~too_many[None, :]
        #: whether (order, m) is drawn jointly from :attr:`joint` (a speed prior, or unfit pairs left
        #: out), else order and m independently
        self.paired = self.unfit is not None
        if balance is not None and (balance.frac.shape != (o, n) or balance.beta.shape != (k,)
                                    or balance.targets.shape != (k, max(k - 1, 0))):
            raise ValueError(f"stage balance does not match {o} orders of {n} nodes and {k} chips: frac "
                             f"{tuple(balance.frac.shape)}, beta {tuple(balance.beta.shape)}, targets "
                             f"{tuple(balance.targets.shape)}")
        self.boundary = boundary_logits
        self.balance = balance
        self._given = (order_logits, count_logits, cost, float(speed_prior))  # for tempered()
        self.pos = torch.arange(n)
        #: The stage DP's predicted bottleneck (s) of each (order, m)'s greedy ends ``(O, K)``; None
        #: without a speed prior (order and m then independent, ``P(o) P(m)``, unless unfit pairs are left out).
        self.estimate: torch.Tensor | None = None
        if cost is None or speed_prior <= 0:
            self.order = torch.log_softmax(order_logits, dim=0)
            self.count = torch.log_softmax(count_logits.masked_fill(too_many, -1e9), dim=0)
            self.joint = self.order[:, None] + self.count[None, :]
            if self.unfit is not None:
                joint = self.joint.masked_fill(self.unfit, -1e9)
                self.joint = torch.log_softmax(joint.reshape(-1), dim=0).reshape(o, k)
                self.order = torch.logsumexp(self.joint, dim=1)
                self.count = torch.logsumexp(self.joint, dim=0)
            return
        self.paired = True
        if cost.prefix.shape != (o, n + 1, k) or cost.cut_time.shape != (o, k, n):
            raise ValueError(f"stage cost does not match {o} orders of {n} nodes and {k} chips: prefix "
                             f"{tuple(cost.prefix.shape)}, cut_time {tuple(cost.cut_time.shape)}")
        with torch.no_grad():
            if estimate is None:
                oo = torch.arange(o).repeat_interleave(k)
                mm = torch.arange(1, k + 1).repeat(o).clamp(max=n)
                est = self.bottleneck(cost, oo, mm, self._ends(oo, mm, _argmax, active_only=True)).reshape(o, k)
                est = torch.nan_to_num(est, nan=torch.inf).clamp(min=1e-30)
            elif estimate.shape != (o, k):
                raise ValueError(f"estimate: ({o}, {k}) expected, got {tuple(estimate.shape)}")
            else:
                est = estimate
            self.estimate = est
            fin = torch.isfinite(est) & ~too_many[None, :]
            ref = est[fin].min() if bool(fin.any()) else torch.ones(())
            slow = torch.where(fin, torch.log(est / ref), torch.full_like(est, 1e3))
        joint = order_logits[:, None] + count_logits.masked_fill(too_many, -1e9)[None, :] - speed_prior * slow
        joint = joint.masked_fill(too_many[None, :], -1e9)
        if self.unfit is not None:
            joint = joint.masked_fill(self.unfit, -1e9)
        self.joint = torch.log_softmax(joint.reshape(-1), dim=0).reshape(o, k)
        self.order = torch.logsumexp(self.joint, dim=1)
        self.count = torch.logsumexp(self.joint, dim=0)

    def _step(self, o: torch.Tensor, m: torch.Tensor, k: int, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``(S, n)`` of stage ``k``'s end position given the order ``o``, ``m`` and
        the previous end ``prev`` (all ``(S,)``), and which rows have a stage ``k`` end (``k < m``).
        With :class:`StageLimits`, ends whose stage overflows its chip's SRAM, or that leave more than
        the later chips can hold, are removed, unless that removes every end (then only order and
        non-empty stages count: the repair fixes the rest)."""
        active = k < m
        allowed = (self.pos[None, :] > prev[:, None]) & (self.pos[None, :] <= (self.n - 1 - (m - k))[:, None])
        if self.limits is not None:
            mi = (m - 1).clamp(min=0)
            hi = self.limits.end_max[o, k - 1, prev + 1]  # (S,) last end that fits chip k - 1
            lo = self.limits.rest_min[o, mi, k] - 1  # (S,) first end after which chips k .. m-1 hold the rest
            fits = allowed & (self.pos[None, :] <= hi[:, None]) & (self.pos[None, :] >= lo[:, None])
            allowed = torch.where(fits.any(dim=1, keepdim=True), fits, allowed)
        allowed = allowed | ~active[:, None]  # inactive rows: any position, ignored
        mi = (m - 1).clamp(min=0)
        b = self.boundary  # a size-1 axis: the logits do not depend on m (or k) there
        logits = b[o, mi if b.shape[1] > 1 else 0, k - 1 if b.shape[2] > 1 else 0]
        if self.balance is not None:  # an equal part of what the previous stage left
            frac = self.balance.frac[o]  # (S, n)
            done = torch.where(prev >= 0, frac.gather(1, prev.clamp(min=0)[:, None])[:, 0],
                               torch.zeros_like(frac[:, 0]))  # share through the previous end
            g = self.balance.targets[mi].to(frac.dtype)  # (S, K - 1)
            before = g[:, k - 2] if k >= 2 else torch.zeros_like(done)
            part = (g[:, k - 1] - before) / (1.0 - before).clamp(min=1e-12)
            target = done + (1.0 - done) * part
            mf = m.to(frac.dtype)[:, None]
            logits = logits - self.balance.beta[mi][:, None] * (mf * (frac - target[:, None])) ** 2
        logits = logits.masked_fill(~allowed, -1e9)
        return torch.log_softmax(logits, dim=1), active

    def _ends(self, o: torch.Tensor, m: torch.Tensor, pick: Any, active_only: bool = False) -> torch.Tensor:
        """Stage ends ``(S, K - 1)`` (positions; ``n - 1`` from stage ``m`` on) drawn by
        ``pick(log-probabilities (S, n)) -> (S,)``. ``active_only``: step ``k`` computes only the rows
        with ``m > k`` (half the work over all ``m``; for a ``pick`` whose row's result does not depend
        on the other rows, such as the argmax: a sampler's random stream would change)."""
        prev = torch.full((o.shape[0],), -1, dtype=torch.int64)
        out = torch.full((o.shape[0], max(self.k - 1, 0)), self.n - 1, dtype=torch.int64)
        for k in range(1, self.k):
            if active_only:
                rows = (m > k).nonzero()[:, 0]
                if rows.numel() == 0:
                    break
                logp, _ = self._step(o[rows], m[rows], k, prev[rows])
                e = pick(logp)
                prev[rows] = e
                out[rows, k - 1] = e
                continue
            logp, active = self._step(o, m, k, prev)
            e = pick(logp)
            prev = torch.where(active, e, prev)
            out[:, k - 1] = torch.where(active, e, out[:, k - 1])
        return out

    def tempered(self, factor: float) -> StageCandidates:
        """This distribution with every logit divided by ``factor`` (> 0), as the policy gives it at a
        temperature ``factor`` times this one's. The speed prior's greedy-pipeline estimate is
        reused, not recomputed: an argmax does not move when all logits are divided by one number."""
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        order_logits, count_logits, cost, speed_prior = self._given
        bal = self.balance._replace(beta=self.balance.beta / factor) if self.balance is not None else None
        return StageCandidates(order_logits / factor, self.orders, count_logits / factor, self.boundary / factor,
                               self.limits, cost, speed_prior / factor, bal, self.estimate)

    def _walk(self, o: torch.Tensor, m: torch.Tensor, pick: Any) -> torch.Tensor:
        """Chips ``(S, n)`` by node: stage ends drawn by ``pick(log-probabilities (S, n)) -> (S,)``."""
        ends = self._ends(o, m, pick)
        by_pos = (self.pos[None, None, :] > ends[:, :, None]).sum(dim=1)  # (S, n) stages ended before p
        chips = torch.empty_like(by_pos)
        chips.scatter_(1, self.orders[o], by_pos)  # position p of order o is node orders[o, p]
        return chips

    def bottleneck(self, cost: StageCost, o: torch.Tensor, m: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """The stage DP's predicted bottleneck (s) ``(S,)`` of splitting order ``o`` into ``m`` stages
        (``(S,)`` each) at ``ends`` ``(S, K - 1)`` (as :meth:`_ends` gives them): the slowest stage's
        compute time on its chip, with the send of its cut to the next chip."""
        s, n, k = o.shape[0], self.n, self.k
        full = torch.cat([torch.full((s, 1), -1, dtype=torch.int64), ends,
                          torch.full((s, 1), n - 1, dtype=torch.int64)], dim=1)  # (S, K + 1)
        oo, chip = o[:, None], torch.arange(k)[None, :]  # index (S, K) without copying (S, n, K) tables
        compute = cost.prefix[oo, full[:, 1:] + 1, chip] - cost.prefix[oo, full[:, :-1] + 1, chip]  # (S, K) s
        sends = chip < (m - 1)[:, None]  # stages 0 .. m-2 send on
        cut = cost.cut_time[oo, chip, full[:, 1:]]  # (S, K) s
        cut = torch.where(sends, cut, torch.zeros_like(cut))
        stage = compute + cut if cost.serialize else torch.maximum(compute, cut)
        return stage.max(dim=1).values

    def greedy_pair(self) -> tuple[int, int]:
        """The most likely order (index) and number of stages ``m``."""
        if not self.paired:
            return int(self.order.argmax()), int(self.count.argmax()) + 1
        flat = int(self.joint.reshape(-1).argmax())
        return flat // self.k, flat % self.k + 1

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            if not self.paired:
                o = torch.multinomial(self.order.exp(), count, replacement=True, generator=generator)
                m = torch.multinomial(self.count.exp(), count, replacement=True, generator=generator) + 1
            else:
                flat = torch.multinomial(self.joint.exp().reshape(-1), count, replacement=True, generator=generator)
                o, m = flat // self.k, flat % self.k + 1
            return self._walk(o, m, lambda lp: torch.multinomial(lp.exp(), 1, generator=generator)[:, 0])

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Exact: the sum over the orders that ``actions`` ``(S, n)`` splits (chips ``0 .. m-1``, each
        used, non-decreasing along the order); -1e9 for a candidate that splits none of them."""
        a = actions.to(torch.int64)
        s = a.shape[0]
        m = a.max(dim=1).values + 1
        ap = a[:, self.orders].transpose(0, 1).reshape(self.o * s, self.n)  # chips by position, order-major
        steps = ap[:, 1:] - ap[:, :-1]
        ok = (ap[:, 0] == 0) & ((steps == 0) | (steps == 1)).all(dim=1)  # (O * S,) a split of that order
        rows = ok.nonzero()[:, 0]  # only the (order, sample) pairs it splits: one walk for all of them
        ap, o, mr = ap[rows], rows // s, m.repeat(self.o)[rows]
        out = self.joint[o, mr - 1]
        prev = torch.full_like(mr, -1)
        for k in range(1, self.k):
            logp, active = self._step(o, mr, k, prev)
            e = (ap <= k - 1).sum(dim=1) - 1  # the last position on chips 0 .. k-1
            out = out + torch.where(active, logp.gather(1, e.clamp(min=0)[:, None])[:, 0], torch.zeros_like(out))
            prev = torch.where(active, e, prev)
        per_order = torch.full((self.o * s,), -torch.inf, dtype=out.dtype).index_put((rows,), out)
        total = torch.logsumexp(per_order.reshape(self.o, s), dim=0)
        return torch.where(torch.isfinite(total), total, torch.full_like(total, -1e9))

    def mode(self) -> torch.Tensor:
        """The greedy candidate: the most likely order and ``m``, then each stage's most likely end
        given the ones before. (An exact most-likely-split DP scored no better on the validation
        instances: 0.916 vs 0.920 of the stage DP with a pre-trained stages policy.)"""
        with torch.no_grad():
            oi, mi = self.greedy_pair()
            return self._walk(torch.tensor([oi]), torch.tensor([mi]), _argmax)[0]

    def entropy(self) -> torch.Tensor:
        """The order's and the number of stages' entropies (their joint one when drawn jointly; identical
        orders count once) plus each stage end's along the greedy path (a proxy: the exact entropy sums
        over every path)."""
        # identical rows (a chain has one topological order; jitters can repeat) are one choice
        _, same = torch.unique(self.orders, dim=0, return_inverse=True)
        groups = int(same.max()) + 1
        if not self.paired:
            po = torch.zeros(groups, dtype=self.order.dtype).index_add(0, same, self.order.exp())
            ent = -(po * torch.log(po.clamp(min=1e-30))).sum() - (self.count.exp() * self.count).sum()
        else:
            pj = torch.zeros(groups, self.k, dtype=self.joint.dtype).index_add(0, same, self.joint.exp())
            ent = -(pj * torch.log(pj.clamp(min=1e-30))).sum()
        oi, mi = self.greedy_pair()
        o, m = torch.tensor([oi]), torch.tensor([mi])
        prev = torch.full((1,), -1, dtype=torch.int64)
        for k in range(1, self.k):
            logp, active = self._step(o, m, k, prev)
            if not bool(active[0]):
                break
            ent = ent - (logp.exp() * logp).sum()
            prev = logp.argmax(dim=1)
        return ent


def _argmax(logp: torch.Tensor) -> torch.Tensor:
    return logp.argmax(dim=1)


def stage_targets(peaks: torch.Tensor | None, k_max: int) -> torch.Tensor:
    """Where stage ``k`` of ``m`` should end, as a cumulative share ``(k_max, k_max - 1)`` (``[m - 1, k - 1]``):
    ``k / m`` on identical chips; with ``peaks`` ``(k_max,)`` (the chips' peak FLOP/s in pipeline
    order, any unit), the share of the first ``k`` of ``m`` chips' summed peak, so a faster chip gets a
    longer stage. Entries with ``k >= m`` are unused."""
    m = torch.arange(1, k_max + 1).view(-1, 1)
    k = torch.arange(1, k_max).view(1, -1)
    if peaks is None:
        return (k / m).to(torch.float32)
    cum = torch.cumsum(peaks.clamp(min=1e-12).to(torch.float32), dim=0)  # (k_max,)
    return cum[(k - 1).clamp(max=k_max - 1)].expand(k_max, -1) / cum[m - 1]


def stage_beta(log_sharpness: torch.Tensor, n: int, k_max: int, sharpness: float,
               max_log_sharpness: float = 6.0) -> torch.Tensor:
    """The stages head's balance sharpness ``beta`` for ``m = 1 .. k_max`` ``(k_max,)``:
    ``min(sharpness, NODE_SHARPNESS (n / m) ** 2) * exp(b)``, ``b`` (``log_sharpness``) clamped to
    ``[-6, max_log_sharpness]``."""
    m = torch.arange(1, k_max + 1, dtype=log_sharpness.dtype)
    # on a graph of few nodes per stage, one node off an equal-share end costs at most NODE_SHARPNESS
    return torch.clamp(NODE_SHARPNESS * (n / m) ** 2, max=sharpness) \
        * torch.exp(log_sharpness.clamp(-6.0, max_log_sharpness))


def stage_logits(frac: torch.Tensor, cut_score: torch.Tensor, log_sharpness: torch.Tensor, n: int, k_max: int,
                 sharpness: float, targets: torch.Tensor | None = None, loads: torch.Tensor | None = None,
                 cut_prior: float = 0.0, max_log_sharpness: float = 6.0, balance: bool = True,
                 temperature: float = 1.0) -> torch.Tensor:
    """The stages head's boundary logits ``(O, k_max, k_max - 1, n)``, with size 1 on an axis they do
    not depend on (see :class:`StageCandidates`; the module doc) from each
    order's cumulative share through each position ``frac`` (``C``, ``(O, n)``), the per-position
    ``cut_score`` ``(O, n)`` (``s``), the scalar ``log_sharpness`` (``b``) and
    the stage ends' target shares (:func:`stage_targets`; None: ``k / m``): the balance term is
    ``-beta (m (C_p - target)) ** 2``, ``-beta (m C_p - k) ** 2`` on identical chips; with ``loads``
    ``(O, n)`` (:func:`~mcm_gym.learn.oneshot_train.stage_orders`: the transfer time of a cut after each
    position over the graph's total compute time, both s), minus ``cut_prior * relu(m * load_p - 1)``:
    a cut that takes longer to send than an equal stage takes to compute is penalised. ``b`` is
    clamped to ``[-6, max_log_sharpness]`` (:func:`stage_beta`). ``balance=False``: no balance term
    (``balance="rest"`` adds it per step, :class:`StageBalance`); the k axis then has size 1, and the m
    axis too without a cut prior. Every logit is divided by ``temperature``."""
    m = torch.arange(1, k_max + 1, dtype=frac.dtype).view(1, -1, 1, 1)
    k = torch.arange(1, k_max, dtype=frac.dtype).view(1, 1, -1, 1)
    target = (k / m) if targets is None else targets.to(frac.dtype).view(1, k_max, k_max - 1, 1)
    beta = stage_beta(log_sharpness, n, k_max, sharpness, max_log_sharpness).view(1, -1, 1, 1)
    out = cut_score[:, None, None, :]
    if loads is not None and cut_prior > 0:  # (O, K, 1, n): it depends on m, not on k
        out = out - cut_prior * torch.relu(m * loads.to(frac.dtype)[:, None, None, :] - 1.0)
    if balance:
        out = out - beta * (m * (frac[:, None, None, :] - target)) ** 2
    # without the balance term the k axis stays size 1: (O, K, K - 1, n) is never stored, not even as
    # a gradient (10,000 nodes on 64 chips: 40M floats per order)
    return out / temperature

class OneShotHeads(nn.Module):
    """The policy's "MLP extractor": per-node chip logits and the value latent from
    :class:`OneShotExtractor`'s features.

    ``forward(features) -> (logits (B, N * k_max), value latent (B, vf_hidden))``; the action net on
    top of the logits is the identity. The per-node head is an MLP ``[h_v, pooled] (3 * hidden) ->
    head_hidden -> 2 + k_max`` (``d_v``, ``log(beta_v / sharpness)``, ``u_v``); the critic an MLP on the
    pooled embedding ``2 * hidden -> vf_hidden``.
    """

    def __init__(self, extractor: OneShotExtractor, k_max: int, head_hidden: int = 64, vf_hidden: int = 64,
                 prior: str | None = None, sharpness: float = 1.0, head: str = "nodes",
                 stage_sharpness: float = 50.0, count_prior: float = STAGE_COUNT_PRIOR,
                 cut_prior: float = STAGE_CUT_PRIOR, max_log_sharpness: float = STAGE_MAX_LOG_SHARPNESS,
                 speed_prior: float = STAGE_SPEED_PRIOR, balance: str = STAGE_BALANCE,
                 orders: tuple[str, ...] = STAGE_ORDERS_ALL) -> None:
        super().__init__()
        orders = check_orders(orders)
        prior = default_prior(head) if prior is None else prior
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
        if head == "stages" and prior == "none":
            raise ValueError("the stages head needs a prior ('pipeline' or 'work'): its stage ends start at "
                             "equal shares")
        if sharpness <= 0 or stage_sharpness <= 0 or head_hidden < 1 or vf_hidden < 1 or count_prior < 0 \
                or cut_prior < 0 or speed_prior < 0 or not -6.0 <= max_log_sharpness <= 6.0:
            raise ValueError("sharpness and stage_sharpness must be > 0, count_prior, cut_prior and speed_prior >= 0, "
                             "max_log_sharpness in [-6, 6] and head_hidden, "
                             "vf_hidden >= 1")
        self.split = extractor.split
        self.n_nodes, self.k_max, self.prior, self.sharpness = extractor.n_nodes, k_max, prior, float(sharpness)
        self.head, self.stage_sharpness, self.count_prior = head, float(stage_sharpness), float(count_prior)
        self.cut_prior, self.max_log_sharpness = float(cut_prior), float(max_log_sharpness)
        self.speed_prior, self.balance, self.orders = float(speed_prior), balance, orders
        hd = extractor.hidden
        if head == "nodes":
            self.node_head = nn.Sequential(nn.Linear(3 * hd, head_hidden), nn.ReLU(),
                                           nn.Linear(head_hidden, 2 + k_max))
        else:  # per graph: g_m (k_max), b and the order logits
            # s per position of an order from [h_v, pooled, cut there, C there]
            self.cut_head = nn.Sequential(nn.Linear(3 * hd + 2, head_hidden), nn.ReLU(), nn.Linear(head_hidden, 1))
            self.count_head = nn.Sequential(nn.Linear(2 * hd, head_hidden), nn.ReLU(),
                                            nn.Linear(head_hidden, k_max + 1 + len(orders)))
        self.critic = nn.Sequential(nn.Linear(2 * hd, vf_hidden), nn.ReLU())
        self.latent_dim_pi = self.n_nodes * k_max
        self.latent_dim_vf = vf_hidden

    @property
    def head_output(self) -> nn.Linear:
        """The per-node head's last layer (zero at initialisation; the ``nodes`` head)."""
        if self.head != "nodes":
            raise ValueError("a stages-head policy has no per-node head: see output_layers()")
        out = self.node_head[-1]
        assert isinstance(out, nn.Linear)
        return out

    def output_layers(self) -> list[nn.Linear]:
        """The heads' last layers, zero at initialisation (the untrained policy is the prior)."""
        seqs = [self.node_head] if self.head == "nodes" else [self.cut_head, self.count_head]
        out = [seq[-1] for seq in seqs]
        assert all(isinstance(x, nn.Linear) for x in out)
        return out  # type: ignore[return-value]

    def node_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Per-node chip logits ``(B, N, k_max)`` (the ``nodes`` head)."""
        if self.head != "nodes":
            raise ValueError("a stages-head policy has no per-node chip logits: use candidates(); it runs in "
                             "the package's trainer (train_oneshot), not in MaskablePPO")
        h, pooled, wb, mem, nm, k = self.split(features)
        ctx = pooled.unsqueeze(1).expand(-1, h.shape[1], -1)
        out = self.node_head(torch.cat([h, ctx], dim=2))  # (B, N, 2 + K)
        free = out[..., 2:]
        if self.prior == "none":
            return free
        return free + pipeline_logits(wb, mem if self.prior == "pipeline" else None, nm, k, self.k_max,
                                      out[..., 0], out[..., 1], self.sharpness)

    def stage_dist(self, features: torch.Tensor, n: int, orders: torch.Tensor, order_cuts: torch.Tensor,
                   temperature: float = 1.0, peaks: torch.Tensor | None = None,
                   limits: StageLimits | None = None, loads: torch.Tensor | None = None,
                   cost: StageCost | None = None) -> StageCandidates:
        """The ``stages`` head's distribution for one instance (``features`` of a batch of one, ``n``
        real nodes) over ``orders`` ``(O, n)`` (node indices: the head's named :attr:`orders`, then
        perturbed ones, row ``i`` sharing the learned logit of row ``i % len(self.orders)``) with
        ``order_cuts`` ``(O, n)`` (the ``cut`` feature along each order, by position), the chips'
        ``peaks`` ``(k_max,)`` (their stage ends' targets, :func:`stage_targets`;
        None: identical chips), ``limits``, what SRAM allows (:class:`StageLimits`; None: no memory
        masks) and ``loads`` ``(O, n)``, each cut's transfer time over the total compute time (for the
        ``cut_prior``; None: none) and ``cost``, the stage DP's cost model along each order (for the
        ``speed_prior``; None: none). Every logit is divided by ``temperature``."""
        h, pooled, wb, mem, nm, k = self.split(features)
        if orders.shape != order_cuts.shape or orders.shape[1] != n or orders.shape[0] < len(self.orders):
            raise ValueError(f"orders and order_cuts: (O, {n}) each with O >= {len(self.orders)} (the head's named "
                             f"orders first) expected, got {tuple(orders.shape)}")
        o = orders.shape[0]
        w = node_shares(wb, mem if self.prior == "pipeline" else None, nm)[0, :n]
        ws = w[orders]  # (O, n) by position
        frac = ws.cumsum(dim=1) / ws.sum(dim=1, keepdim=True).clamp(min=1e-12)
        ho = h[0, :n][orders]  # (O, n, H)
        ctx = pooled[0].expand(o, n, -1)
        cut = self.cut_head(torch.cat([ho, ctx, order_cuts[..., None].to(h.dtype), frac[..., None]], dim=2))[..., 0]
        g = self.count_head(pooled)[0]  # (k_max + 1 + len(self.orders),)
        m = torch.arange(1, self.k_max + 1, dtype=g.dtype)
        kr = float(k[0, 0].detach())
        count = (g[: self.k_max] - self.count_prior * (kr - m).clamp(min=0.0)).masked_fill(m > kr + 0.5, -1e9)
        targets = stage_targets(peaks, self.k_max)
        rest = self.balance == "rest"
        bound = stage_logits(frac, cut, g[self.k_max], n, self.k_max, self.stage_sharpness, targets, loads,
                             self.cut_prior, self.max_log_sharpness, balance=not rest, temperature=temperature)
        balance = StageBalance(frac, stage_beta(g[self.k_max], n, self.k_max, self.stage_sharpness,
                                                self.max_log_sharpness) / temperature, targets) if rest else None
        order_logits = g[self.k_max + 1 + torch.arange(o) % len(self.orders)]  # a perturbed order shares its base's
        return StageCandidates(order_logits / temperature, orders, count / temperature, bound, limits,
                               cost, self.speed_prior / temperature, balance)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.node_logits(features).reshape(features.shape[0], -1)  # the stages head raises here

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        _, pooled, *_ = self.split(features)
        return self.critic(pooled)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class OneShotPolicy(MaskableMultiInputActorCriticPolicy):
    """sb3-contrib ``MaskablePPO`` policy for ``MCMPartition-v0`` in ``mode="oneshot"``: one pass of
    :class:`OneShotExtractor` and :class:`OneShotHeads` gives every node its chip logits.

    Keyword arguments (``policy_kwargs``; see :func:`oneshot_policy_kwargs`): ``features_extractor_kwargs``
    (``hidden``, ``layers``, ``attention``, ``heads`` of the GNN), ``prior`` (one of :data:`PRIORS`;
    None: :func:`default_prior` of the head),
    ``sharpness`` (the prior's initial ``beta``: logit drop one chip away from a node's target),
    ``head_hidden``, ``vf_hidden``, ``head`` (one of :data:`HEADS`; ``stages`` samples whole
    pipelines through :meth:`candidates` and serves :func:`~mcm_gym.learn.oneshot_train.train_oneshot`
    only: SB3's per-node distribution does not apply and raises), ``stage_sharpness`` (the stages
    head's initial ``beta``: logit drop one stage away from an equal-share end), ``count_prior`` (its
    logit drop per chip left empty), ``cut_prior`` (its logit drop per unit of a cut's excess transfer
    time), ``max_log_sharpness`` (the clamp on its learned ``b``), ``speed_prior`` (its logit drop per
    unit of log predicted bottleneck of an (order, m) pair's greedy pipeline), ``balance`` (one of
    :data:`BALANCES`: where its stage ends aim), ``orders`` (its named orders, from
    :data:`STAGE_ORDERS_ALL`, the default for new policies; checkpoints without the key load with
    :data:`STAGE_ORDERS`), ``extra_orders`` (how many perturbed orders it
    adds to them, see :data:`STAGE_EXTRA_ORDERS`), and SB3's ``ortho_init``,
    ``optimizer_class``, ``optimizer_kwargs``. ``net_arch`` and ``activation_fn`` do not apply (the heads are fixed) and
    are ignored. The action space must be ``MultiDiscrete`` with one ``K_max`` per node (``max_nodes`` entries).
    """

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Space[Any], lr_schedule: Schedule,
                 *args: Any, prior: str | None = None, sharpness: float = 1.0, head_hidden: int = 64,
                 vf_hidden: int = 64, head: str = "nodes", stage_sharpness: float = 50.0,
                 count_prior: float = STAGE_COUNT_PRIOR, cut_prior: float = STAGE_CUT_PRIOR,
                 max_log_sharpness: float = STAGE_MAX_LOG_SHARPNESS, speed_prior: float = STAGE_SPEED_PRIOR,
                 balance: str = STAGE_BALANCE, extra_orders: int = STAGE_EXTRA_ORDERS,
                 orders: tuple[str, ...] | list[str] = STAGE_ORDERS_ALL, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete) or action_space.nvec.ndim != 1 \
                or len(set(action_space.nvec.tolist())) != 1:
            raise ValueError(f"OneShotPolicy needs MCMPartition-v0's oneshot action space "
                             f"(MultiDiscrete([K_max] * max_nodes)), got {action_space}")
        n_nodes = _shape(observation_space, "node_features")[0] if isinstance(observation_space, spaces.Dict) else -1
        if int(action_space.nvec.shape[0]) != n_nodes:
            raise ValueError(f"the action space has {action_space.nvec.shape[0]} entries but the observation "
                             f"{n_nodes} nodes: use the env's oneshot mode")
        self.k_max = int(action_space.nvec[0])
        prior = default_prior(head) if prior is None else prior
        self.prior, self.sharpness, self.head_hidden, self.vf_hidden = prior, sharpness, head_hidden, vf_hidden
        self.head, self.stage_sharpness, self.count_prior = head, stage_sharpness, count_prior
        self.cut_prior, self.max_log_sharpness, self.speed_prior = cut_prior, max_log_sharpness, speed_prior
        self.balance = balance
        if int(extra_orders) < 0:
            raise ValueError(f"extra_orders must be >= 0, got {extra_orders}")
        self.extra_orders = int(extra_orders)
        self.orders = check_orders(orders)
        kwargs.setdefault("features_extractor_class", OneShotExtractor)
        kwargs.pop("net_arch", None)
        kwargs.pop("activation_fn", None)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        ext = self.features_extractor
        if not isinstance(ext, OneShotExtractor):
            raise TypeError(f"OneShotPolicy needs a OneShotExtractor, got {type(ext).__name__}")
        self.mlp_extractor = OneShotHeads(  # type: ignore[assignment]  # SB3 duck-types it
            ext, self.k_max, self.head_hidden, self.vf_hidden, self.prior, self.sharpness, self.head,
            self.stage_sharpness, self.count_prior, self.cut_prior, self.max_log_sharpness, self.speed_prior,
            self.balance, self.orders)

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        self.action_net = nn.Identity()
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            for module, gain in ((self.features_extractor, math.sqrt(2)), (self.mlp_extractor, math.sqrt(2)),
                                 (self.value_net, 1.0)):
                module.apply(partial(self.init_weights, gain=gain))
        heads = self.mlp_extractor
        assert isinstance(heads, OneShotHeads)
        for layer in heads.output_layers():  # the untrained policy is the prior
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(prior=self.prior, sharpness=self.sharpness, head_hidden=self.head_hidden,
                    vf_hidden=self.vf_hidden, head=self.head, stage_sharpness=self.stage_sharpness,
                    count_prior=self.count_prior, cut_prior=self.cut_prior,
                    max_log_sharpness=self.max_log_sharpness, speed_prior=self.speed_prior, balance=self.balance,
                    extra_orders=self.extra_orders, orders=self.orders)
        data.pop("net_arch", None)
        data.pop("activation_fn", None)
        return data

    def node_logits(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-node chip logits ``(B, max_nodes, K_max)`` of a batched observation (no mask applied)."""
        heads = self.mlp_extractor
        assert isinstance(heads, OneShotHeads)
        features = self.extract_features(obs, self.features_extractor)
        assert isinstance(features, torch.Tensor)
        return heads.node_logits(features)

    def candidates(self, obs: dict[str, torch.Tensor], masks: torch.Tensor, n: int, temperature: float = 1.0,
                   node_temperatures: torch.Tensor | None = None,
                   orders: tuple[Any, ...] | None = None) -> CandidateDist:
        """The distribution over whole candidates of one instance: ``obs`` a batch of one
        observation, ``masks`` its action mask ``(1, max_nodes, K_max)`` (bool), ``n`` its real nodes.
        Every logit is divided by ``temperature``; ``node_temperatures`` ``(n, 1)`` divide the
        ``nodes`` head's logits further (not the stages head's: ValueError). The ``nodes`` head's
        masked entries stay at -1e9; the stages head uses chips ``0 .. m-1`` of the real ones and
        leaves the rest of the mask to the repair, over ``orders``: ``(node orders (O, n), their cut
        features (O, n))`` and optionally their :class:`StageLimits`, cut loads ``(O, n)`` and :class:`StageCost`
        (``mcm_gym.learn.oneshot_train.stage_orders`` gives all four; see :meth:`OneShotHeads.stage_dist`;
        None: the graph's own order only, no limits, no cut prior)."""
        heads = self.mlp_extractor
        assert isinstance(heads, OneShotHeads)
        features = self.extract_features(obs, self.features_extractor)
        assert isinstance(features, torch.Tensor)
        if self.head == "nodes":
            logits = heads.node_logits(features)[0, :n] / temperature
            if node_temperatures is not None:
                logits = logits / node_temperatures
            return NodeCandidates(logits.masked_fill(~masks[0, :n], -1e9))
        if node_temperatures is not None:
            raise ValueError("per-node temperatures apply to the nodes head only")
        peaks = obs["chip_state"][0, :, _PEAK]  # relative peak FLOP/s, 0 on padding (never a used stage)
        if orders is None:
            cut = obs["node_features"][0, :n, NODE_FEATURES.index("cut")]
            return heads.stage_dist(features, n, torch.arange(n)[None, :], cut[None, :], temperature, peaks)
        limits = orders[2] if len(orders) > 2 else None
        loads = orders[3] if len(orders) > 3 else None
        cost = orders[4] if len(orders) > 4 else None
        assert limits is None or isinstance(limits, StageLimits)
        assert cost is None or isinstance(cost, StageCost)
        return heads.stage_dist(features, n, orders[0], orders[1], temperature, peaks, limits, loads, cost)


def oneshot_policy_kwargs(hidden: int = 64, layers: int = 3, attention: bool = False, heads: int = 4,
                          prior: str | None = None, sharpness: float = 1.0, head_hidden: int = 64,
                          vf_hidden: int = 64, head: str = "nodes", stage_sharpness: float = 50.0,
                          count_prior: float = STAGE_COUNT_PRIOR, cut_prior: float = STAGE_CUT_PRIOR,
                          max_log_sharpness: float = STAGE_MAX_LOG_SHARPNESS,
                          speed_prior: float = STAGE_SPEED_PRIOR, balance: str = STAGE_BALANCE,
                          extra_orders: int = STAGE_EXTRA_ORDERS,
                          orders: tuple[str, ...] | list[str] = STAGE_ORDERS_ALL, **extra: Any) -> dict[str, Any]:
    """``policy_kwargs`` for ``MaskablePPO(OneShotPolicy, env, policy_kwargs=...)`` on a oneshot-mode env:
    the GNN (``hidden``, ``layers``, ``attention``, ``heads``), the logit parameterisation (``prior``,
    None: :func:`default_prior` of the head; ``sharpness``), the output ``head`` (``stages``: the
    package's trainer only; ``stage_sharpness``,
    ``count_prior``, ``cut_prior``, ``max_log_sharpness``, ``speed_prior``, ``balance``,
    ``extra_orders``, ``orders``) and head widths; ``extra`` goes to the policy as is (e.g. ``ortho_init``,
    ``optimizer_kwargs``)."""
    prior = default_prior(head) if prior is None else prior
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    return {"features_extractor_class": OneShotExtractor,
            "features_extractor_kwargs": {"hidden": hidden, "layers": layers, "attention": attention,
                                          "heads": heads},
            "prior": prior, "sharpness": float(sharpness), "head_hidden": head_hidden, "vf_hidden": vf_hidden,
            "head": head, "stage_sharpness": float(stage_sharpness), "count_prior": float(count_prior),
            "cut_prior": float(cut_prior), "max_log_sharpness": float(max_log_sharpness),
            "speed_prior": float(speed_prior), "balance": str(balance), "extra_orders": int(extra_orders),
            "orders": check_orders(orders), **extra}

