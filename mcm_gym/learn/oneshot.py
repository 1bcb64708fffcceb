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
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from mcm_gym.env.observation import CHIP_FEATURES, NODE_FEATURES
from mcm_gym.learn.extractor import NodeEncoder, pool_nodes

__all__ = ["OneShotExtractor", "OneShotHeads", "OneShotPolicy", "oneshot_policy_kwargs", "PRIORS", "ONESHOT_PPO",
           "pipeline_logits"]

#: Parameterisations of the per-node logits (see the module doc).
PRIORS = ("pipeline", "work", "none")

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


def pipeline_logits(work_before: torch.Tensor, memory: torch.Tensor | None, node_mask: torch.Tensor,
                    k_real: torch.Tensor, k_max: int, shift: torch.Tensor, log_sharpness: torch.Tensor,
                    sharpness: float = 1.0, eps: float = 0.05) -> torch.Tensor:
    """The pipeline prior's logits ``(B, N, k_max)`` (see the module doc): ``work_before``, memory
    shares (None: work alone), ``node_mask`` ``(B, N)``, ``k_real`` ``(B, 1)`` real chips; ``shift`` (``d_v``) and
    ``log_sharpness`` (``log(beta_v / sharpness)``) ``(B, N)``, clamped to [-6, 6]. Padding nodes and
    chips get finite logits (the env's action mask removes them)."""
    nm = node_mask
    nxt = torch.cat([work_before[:, 1:], torch.ones_like(work_before[:, :1])], dim=1)
    nxt_mask = torch.cat([nm[:, 1:], torch.zeros_like(nm[:, :1])], dim=1)
    nxt = torch.where(nxt_mask > 0.5, nxt, torch.ones_like(nxt))  # the last real node's work ends at 1
    share = (nxt - work_before).clamp(min=0.0) * nm  # (B, N) share of the work, sums to 1
    if memory is not None:
        share = torch.maximum(share, memory * nm)
    n_real = nm.sum(dim=1, keepdim=True).clamp(min=1.0)
    w = (share + eps / n_real) * torch.exp(shift.clamp(-6.0, 6.0)) * nm
    cum = w.cumsum(dim=1)
    total = cum[:, -1:].clamp(min=1e-12)
    target = k_real * (cum - w / 2) / total  # (B, N) in (0, K)
    centres = torch.arange(k_max, device=w.device, dtype=w.dtype) + 0.5
    beta = sharpness * torch.exp(log_sharpness.clamp(-6.0, 6.0))
    return -beta.unsqueeze(-1) * (centres.view(1, 1, -1) - target.unsqueeze(-1)) ** 2


class OneShotHeads(nn.Module):
    """The policy's "MLP extractor": per-node chip logits and the value latent from
    :class:`OneShotExtractor`'s features.

    ``forward(features) -> (logits (B, N * k_max), value latent (B, vf_hidden))``; the action net on
    top of the logits is the identity. The per-node head is an MLP ``[h_v, pooled] (3 * hidden) ->
    head_hidden -> 2 + k_max`` (``d_v``, ``log(beta_v / sharpness)``, ``u_v``); the critic an MLP on the
    pooled embedding ``2 * hidden -> vf_hidden``.
    """

    def __init__(self, extractor: OneShotExtractor, k_max: int, head_hidden: int = 64, vf_hidden: int = 64,
                 prior: str = "pipeline", sharpness: float = 1.0) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        if sharpness <= 0 or head_hidden < 1 or vf_hidden < 1:
            raise ValueError("sharpness must be > 0 and head_hidden, vf_hidden >= 1")
        self.split = extractor.split
        self.n_nodes, self.k_max, self.prior, self.sharpness = extractor.n_nodes, k_max, prior, float(sharpness)
        hd = extractor.hidden
        self.node_head = nn.Sequential(nn.Linear(3 * hd, head_hidden), nn.ReLU(), nn.Linear(head_hidden, 2 + k_max))
        self.critic = nn.Sequential(nn.Linear(2 * hd, vf_hidden), nn.ReLU())
        self.latent_dim_pi = self.n_nodes * k_max
        self.latent_dim_vf = vf_hidden

    @property
    def head_output(self) -> nn.Linear:
        """The per-node head's last layer (zero at initialisation)."""
        out = self.node_head[-1]
        assert isinstance(out, nn.Linear)
        return out

    def node_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Per-node chip logits ``(B, N, k_max)``."""
        h, pooled, wb, mem, nm, k = self.split(features)
        ctx = pooled.unsqueeze(1).expand(-1, h.shape[1], -1)
        out = self.node_head(torch.cat([h, ctx], dim=2))  # (B, N, 2 + K)
        free = out[..., 2:]
        if self.prior == "none":
            return free
        return free + pipeline_logits(wb, mem if self.prior == "pipeline" else None, nm, k, self.k_max,
                                      out[..., 0], out[..., 1], self.sharpness)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.node_logits(features).reshape(features.shape[0], -1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        _, pooled, *_ = self.split(features)
        return self.critic(pooled)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class OneShotPolicy(MaskableMultiInputActorCriticPolicy):
    """sb3-contrib ``MaskablePPO`` policy for ``MCMPartition-v0`` in ``mode="oneshot"``: one pass of
    :class:`OneShotExtractor` and :class:`OneShotHeads` gives every node its chip logits.

    Keyword arguments (``policy_kwargs``; see :func:`oneshot_policy_kwargs`): ``features_extractor_kwargs``
    (``hidden``, ``layers``, ``attention``, ``heads`` of the GNN), ``prior`` (one of :data:`PRIORS`),
    ``sharpness`` (the prior's initial ``beta``: logit drop one chip away from a node's target),
    ``head_hidden``, ``vf_hidden``, and SB3's ``ortho_init``, ``optimizer_class``, ``optimizer_kwargs``.
    ``net_arch`` and ``activation_fn`` do not apply (the heads are fixed) and are ignored. The action
    space must be ``MultiDiscrete`` with one ``K_max`` per node (``max_nodes`` entries).
    """

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Space[Any], lr_schedule: Schedule,
                 *args: Any, prior: str = "pipeline", sharpness: float = 1.0, head_hidden: int = 64,
                 vf_hidden: int = 64, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete) or action_space.nvec.ndim != 1 \
                or len(set(action_space.nvec.tolist())) != 1:
            raise ValueError(f"OneShotPolicy needs MCMPartition-v0's oneshot action space "
                             f"(MultiDiscrete([K_max] * max_nodes)), got {action_space}")
        n_nodes = _shape(observation_space, "node_features")[0] if isinstance(observation_space, spaces.Dict) else -1
        if int(action_space.nvec.shape[0]) != n_nodes:
            raise ValueError(f"the action space has {action_space.nvec.shape[0]} entries but the observation "
                             f"{n_nodes} nodes: use the env's oneshot mode")
        self.k_max = int(action_space.nvec[0])
        self.prior, self.sharpness, self.head_hidden, self.vf_hidden = prior, sharpness, head_hidden, vf_hidden
        kwargs.setdefault("features_extractor_class", OneShotExtractor)
        kwargs.pop("net_arch", None)
        kwargs.pop("activation_fn", None)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        ext = self.features_extractor
        if not isinstance(ext, OneShotExtractor):
            raise TypeError(f"OneShotPolicy needs a OneShotExtractor, got {type(ext).__name__}")
        self.mlp_extractor = OneShotHeads(  # type: ignore[assignment]  # SB3 duck-types it
            ext, self.k_max, self.head_hidden, self.vf_hidden, self.prior, self.sharpness)

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
        nn.init.zeros_(heads.head_output.weight)  # the untrained policy is the prior
        nn.init.zeros_(heads.head_output.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(prior=self.prior, sharpness=self.sharpness, head_hidden=self.head_hidden,
                    vf_hidden=self.vf_hidden)
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


def oneshot_policy_kwargs(hidden: int = 64, layers: int = 3, attention: bool = False, heads: int = 4,
                          prior: str = "pipeline", sharpness: float = 1.0, head_hidden: int = 64,
                          vf_hidden: int = 64, **extra: Any) -> dict[str, Any]:
    """``policy_kwargs`` for ``MaskablePPO(OneShotPolicy, env, policy_kwargs=...)`` on a oneshot-mode env:
    the GNN (``hidden``, ``layers``, ``attention``, ``heads``), the logit parameterisation (``prior``,
    ``sharpness``) and head widths; ``extra`` goes to the policy as is (e.g. ``ortho_init``,
    ``optimizer_kwargs``)."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    return {"features_extractor_class": OneShotExtractor,
            "features_extractor_kwargs": {"hidden": hidden, "layers": layers, "attention": attention,
                                          "heads": heads},
            "prior": prior, "sharpness": float(sharpness), "head_hidden": head_hidden, "vf_hidden": vf_hidden,
            **extra}

