"""A graph neural network features extractor for ``MCMPartition-v0`` (plain torch, no torch-geometric).

:class:`GNNExtractor` reads the environment's padded ``Dict`` observation (see
:mod:`mcm_gym.env`) and returns a fixed-width feature vector for sb3-contrib ``MaskablePPO``'s
policy and value heads. Its parameters do not depend on ``max_nodes`` or ``max_edges``, only on the
number of node and chip features and on ``K_max`` (through the chip-state and action-mask parts of
the output), so a policy trained with one padding can be moved to any other padding with the same
``K_max`` (see :func:`mcm_gym.learn.checkpoints.policy_for_env`).
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["GNNExtractor", "NodeEncoder", "pool_nodes", "policy_kwargs", "DEFAULT_NET_ARCH"]

#: Hidden layers of the policy and value heads on top of the extractor.
DEFAULT_NET_ARCH: dict[str, list[int]] = {"pi": [128, 128], "vf": [128, 128]}


def _shape(space: spaces.Dict, key: str) -> tuple[int, ...]:
    shape = space[key].shape
    if shape is None:
        raise ValueError(f"observation key {key!r} has no shape")
    return tuple(int(x) for x in shape)


class _SageLayer(nn.Module):
    """One round of message passing: ``LayerNorm(h + relu(W_s h + mean_in(W_in h) + mean_out(W_out h)))``,
    ``mean_in`` over predecessors, ``mean_out`` over successors (a linear map commutes with the
    mean, so the three maps are one matmul ``H -> 3H`` before the aggregation)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.lin = nn.Linear(hidden, 3 * hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                inv_in: torch.Tensor, inv_out: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B*N, H)``; ``src``/``dst`` ``(E',)`` flat node ids of the real edges;
        ``inv_in``/``inv_out`` ``(B*N, 1)`` reciprocal in-/out-degrees (1 where the degree is 0)."""
        z_self, z_in, z_out = self.lin(h).split(self.hidden, dim=1)
        agg = z_self.index_add(0, dst, z_in.index_select(0, src) * inv_in.index_select(0, dst))
        agg = agg.index_add_(0, src, z_out.index_select(0, dst) * inv_out.index_select(0, src))
        return self.norm(h + torch.relu(agg))


class NodeEncoder(nn.Module):
    """The node-embedding pass shared by :class:`GNNExtractor` and the one-shot policy's extractor
    (:mod:`mcm_gym.learn.oneshot`): an MLP encoder ``F -> hidden -> hidden``, ``layers`` rounds of
    :class:`_SageLayer` and optional masked self-attention. A mixin: the modules are attributes of
    the class that inherits it (``encoder``, ``layers``, ``attention``, ``att_norm``), so the state
    dicts of existing checkpoints keep their keys."""

    hidden: int
    encoder: nn.Sequential
    layers: nn.ModuleList
    attention: nn.MultiheadAttention | None

    def _build_encoder(self, n_feat: int, hidden: int, layers: int, attention: bool, heads: int) -> None:
        self.hidden = hidden
        self.encoder = nn.Sequential(nn.Linear(n_feat, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU())
        self.layers = nn.ModuleList(_SageLayer(hidden) for _ in range(layers))
        self.attention = None
        if attention:
            self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.att_norm = nn.LayerNorm(hidden)

    def embed_nodes(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Node embeddings ``(B, N, hidden)`` (zero on padding nodes) and the node mask ``(B, N)``
        (bool) of a batched observation."""
        x = obs["node_features"]
        b, n, _ = x.shape
        dev = x.device
        node_mask = obs["node_mask"].reshape(b, n) > 0.5  # (B, N)
        nm = node_mask.unsqueeze(-1).to(x.dtype)  # (B, N, 1)
        h = self.encoder(x) * nm  # (B, N, H)

        if len(self.layers):
            ei = obs["edge_index"].reshape(b, 2, -1).round().long().clamp_(0, n - 1)  # (B, 2, E)
            emask = obs["edge_mask"].reshape(b, -1) > 0.5  # (B, E)
            offset = (torch.arange(b, device=dev) * n).unsqueeze(1)  # (B, 1)
            src = (ei[:, 0] + offset)[emask]  # (E',) flat ids of the real edges
            dst = (ei[:, 1] + offset)[emask]
            ones = torch.ones(src.shape[0], device=dev, dtype=x.dtype)
            deg_in = torch.zeros(b * n, device=dev, dtype=x.dtype).index_add_(0, dst, ones)
            deg_out = torch.zeros(b * n, device=dev, dtype=x.dtype).index_add_(0, src, ones)
            inv_in = (1.0 / deg_in.clamp(min=1.0)).unsqueeze(1)
            inv_out = (1.0 / deg_out.clamp(min=1.0)).unsqueeze(1)
            flat_mask = nm.reshape(b * n, 1)
            hf = h.reshape(b * n, self.hidden)
            for layer in self.layers:
                hf = layer(hf, src, dst, inv_in, inv_out) * flat_mask
            h = hf.reshape(b, n, self.hidden)

        if self.attention is not None:
            # a sample with no real node would mask every key (softmax of all -inf = NaN): let such
            # samples attend to node 0, whose output is zeroed by the node mask anyway
            pad = ~node_mask
            empty = ~node_mask.any(dim=1)
            if bool(empty.any()):
                pad = pad.clone()
                pad[empty, 0] = False
            att, _ = self.attention(h, h, h, key_padding_mask=pad, need_weights=False)
            h = self.att_norm(h + att) * nm

        return h, node_mask


def pool_nodes(h: torch.Tensor, node_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked mean and max of ``h`` ``(B, N, H)`` over the real nodes (``node_mask`` ``(B, N)``
    bool): two ``(B, H)`` tensors, zeros for a sample without real nodes."""
    nm = node_mask.unsqueeze(-1).to(h.dtype)
    count = nm.sum(dim=1)  # (B, 1)
    mean = h.sum(dim=1) / count.clamp(min=1.0)  # (B, H)
    neg = torch.finfo(h.dtype).min
    mx = h.masked_fill(~node_mask.unsqueeze(-1), neg).max(dim=1).values
    mx = torch.where(count > 0, mx, torch.zeros_like(mx))  # (B, H)
    return mean, mx


class GNNExtractor(BaseFeaturesExtractor, NodeEncoder):
    """GraphSAGE-style encoder of the padded graph observation.

    Pipeline, for a batch of ``B`` observations with ``N = max_nodes``, ``E = max_edges``,
    ``K = K_max``, ``F`` node features and ``C`` chip features:

    1. node encoder: MLP ``F -> hidden -> hidden`` on ``node_features`` ``(B, N, F)``;
    2. ``layers`` rounds of :class:`_SageLayer` along the edges in both directions (separate weights
       for predecessors and successors), over the flattened batch (node ``i`` of sample ``b`` is row
       ``b * N + i``), so padding edges (``edge_mask == 0``) carry nothing;
    3. optional masked multi-head self-attention across the real nodes (``attention=True``),
       residual + LayerNorm;
    4. output = concat of: the current node's embedding (``hidden``) and raw features (``F``),
       masked mean and max pooling over the real nodes (``2 * hidden``), a per-chip MLP over
       ``chip_state`` rows ``C -> chip_hidden`` flattened over ``K`` (``K * chip_hidden``), and the
       action mask (``K`` in sequential mode).

    ``features_dim = 3 * hidden + F + K * chip_hidden + len(action_mask)``, fixed by the observation
    space's padding sizes. Padding nodes are zeroed after every layer and never enter a pooling; an
    all-padding sample (``node_mask`` all 0) gives zeros, not NaN, for the graph parts.
    """

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, layers: int = 3,
                 attention: bool = False, heads: int = 4, chip_hidden: int = 16) -> None:
        for key in ("node_features", "edge_index", "node_mask", "edge_mask", "current_node",
                    "chip_state", "action_mask"):
            if key not in observation_space.spaces:
                raise ValueError(f"GNNExtractor needs observation key {key!r} (an MCMPartition-v0 "
                                 f"observation); got {sorted(observation_space.spaces)}")
        if hidden < 1 or layers < 0 or chip_hidden < 1:
            raise ValueError("hidden and chip_hidden must be >= 1 and layers >= 0")
        if attention and hidden % heads:
            raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
        _, n_feat = _shape(observation_space, "node_features")
        k_max, c_feat = _shape(observation_space, "chip_state")
        mask_len = _shape(observation_space, "action_mask")[0]
        features_dim = 3 * hidden + n_feat + k_max * chip_hidden + mask_len
        super().__init__(observation_space, features_dim)
        self.n_feat, self.k_max, self.chip_hidden = n_feat, k_max, chip_hidden
        self._build_encoder(n_feat, hidden, layers, attention, heads)
        self.chip_mlp = nn.Sequential(nn.Linear(c_feat, chip_hidden), nn.ReLU(),
                                      nn.Linear(chip_hidden, chip_hidden), nn.ReLU())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``obs``: batched observation tensors (SB3 casts every Box to float32). Returns
        ``(B, features_dim)``."""
        x = obs["node_features"]
        b, n, _ = x.shape
        dev = x.device
        h, node_mask = self.embed_nodes(obs)  # (B, N, H), (B, N)
        nm = node_mask.unsqueeze(-1).to(x.dtype)  # (B, N, 1)
        mean, mx = pool_nodes(h, node_mask)

        cur = obs["current_node"].reshape(b, -1)[:, 0].round().long().clamp(0, n - 1)  # (B,)
        rows = torch.arange(b, device=dev)
        cur_h = h[rows, cur]  # (B, H)
        cur_x = x[rows, cur] * nm[rows, cur]  # (B, F)

        chips = self.chip_mlp(obs["chip_state"]).reshape(b, self.k_max * self.chip_hidden)
        mask = obs["action_mask"].reshape(b, -1).to(x.dtype)
        return torch.cat([cur_h, cur_x, mean, mx, chips, mask], dim=1)


def policy_kwargs(hidden: int = 64, layers: int = 3, attention: bool = False, heads: int = 4,
                  chip_hidden: int = 16, net_arch: list[int] | dict[str, list[int]] | None = None,
                  activation_fn: type[nn.Module] | None = None, **extra: Any) -> dict[str, Any]:
    """``policy_kwargs`` for ``MaskablePPO("MultiInputPolicy", env, policy_kwargs=...)`` with a
    :class:`GNNExtractor` (``hidden``, ``layers``, ``attention``, ``heads``, ``chip_hidden``) and
    policy/value heads ``net_arch`` (default :data:`DEFAULT_NET_ARCH`). ``extra`` is passed to the
    policy as is (e.g. ``ortho_init``)."""
    out: dict[str, Any] = {
        "features_extractor_class": GNNExtractor,
        "features_extractor_kwargs": {"hidden": hidden, "layers": layers, "attention": attention,
                                      "heads": heads, "chip_hidden": chip_hidden},
        "net_arch": dict(DEFAULT_NET_ARCH) if net_arch is None else net_arch,
    }
    if activation_fn is not None:
        out["activation_fn"] = activation_fn
    out.update(extra)
    return out
