"""One-shot policies as checkpoint files and as a search method (``oneshot``).

A one-shot checkpoint is a ``.pt`` file holding a plain dict, loaded with
``torch.load(weights_only=True)`` (nothing is unpickled, so any file is safe to load): ``format``
(:data:`ONESHOT_FORMAT`), ``k_max``, ``policy`` (the :func:`~mcm_gym.learn.oneshot.oneshot_policy_kwargs`
arguments), ``node_features`` (the observation's feature names, checked on load), ``cost_model`` and
``state_dict``; a JSON sidecar (same name, ``.json``) carries how it was trained. Both are written
atomically.

:class:`OneShotSearch` (``oneshot`` in ``mcm-gym bench``, ``oneshot:checkpoint=pretrained``) runs the
one-shot learner on one problem at a budget of repaired candidates: from scratch, or starting from a
checkpoint whose greedy candidate (its zero-shot answer) is the first evaluation; ``train=False``
samples the policy without training (``mcm-gym partition --policy``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcm_gym._io import atomic_write, atomic_write_text
from mcm_gym.core.cost import COST_MODEL
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.env.observation import NODE_FEATURES
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.oneshot import STAGE_ORDERS, OneShotPolicy, StageCandidates, oneshot_policy_kwargs
from mcm_gym.learn.oneshot_train import (
    SPLIT_FALLBACK,
    SPLITS,
    OneShotTrainConfig,
    blank_policy,
    extra_order_fit,
    obs_batch,
    policy_orders,
    split_candidates,
    train_oneshot,
    widen_policy,
)
from mcm_gym.search.base import Progress, Searcher, SearchResult, Tracker
from mcm_gym.search.polish import polish

__all__ = ["ADAPT_ORDERS", "FINETUNE_NODE_ENTROPY", "FINETUNE_STAGE_ENTROPY", "ONESHOT_FORMAT", "OneShotSearch",
           "is_oneshot_checkpoint", "load_oneshot", "save_oneshot", "oneshot_sidecar", "stage_temperature",
           "widen_policy"]

ONESHOT_FORMAT = "mcm-gym-oneshot/1"
#: Per-node entropy (nats) a fine-tuning run gives the checkpoint's distributions (``node_entropy``;
#: see :class:`~mcm_gym.learn.oneshot_train.OneShotTrainConfig`): the shipped policy is so sharp that
#: its samples are nearly all its greedy candidate. On BERT-base / ring-8, 300 samples, seeds 0, 2, 3:
#: 0.8322, 0.8295, 0.8187 with 0.3; 0.8268, 0.8295, 0.8161 with 0.1; without: 0.8135 on 2 of 3.
FINETUNE_NODE_ENTROPY = 0.3
#: Entropy per stage end (nats; the policy's entropy along the greedy path, order and number of
#: stages included, over its ``m - 1`` ends) a fine-tuning run gives a stages-head checkpoint
#: (``stage_entropy``), by one temperature over all its logits (argmaxes kept). On BERT-base /
#: ring-8 the pre-trained stages policy has 0.33 nats per end and fine-tuning at temperature 1 stayed
#: at its zero-shot 0.752 for 1,000 samples; temperature 10 (2.2 nats per end) reached 0.8295-0.8322.
FINETUNE_STAGE_ENTROPY = 2.0
#: Orders a stages-head learner adapts around its best partition after every update (``adapt_orders``,
#: :class:`~mcm_gym.learn.oneshot_train.OneShotTrainConfig`), the head's number of extra orders. At 200
#: evaluations (median of 3 seeds) from scratch: hard suite 0.877 of the best known with fixed
#: orders, 0.919 / 0.941 / 0.945 with 8 / 24 / 48; held-out suite 0.979 fixed, 0.986 with 24.
ADAPT_ORDERS = 24

_ARCH_KEYS = ("hidden", "layers", "attention", "heads", "prior", "sharpness", "head_hidden", "vf_hidden", "head",
              "stage_sharpness", "count_prior", "cut_prior", "max_log_sharpness", "speed_prior",
              "balance", "extra_orders", "orders")
#: What a checkpoint written before a key existed was trained with (without ``head``: a nodes-head one).
_LEGACY_ARCH = {"prior": "pipeline", "cut_prior": 0.0, "max_log_sharpness": 6.0, "speed_prior": 0.0,
                "balance": "global", "extra_orders": 0, "orders": list(STAGE_ORDERS)}


def _arch(policy: OneShotPolicy) -> dict[str, Any]:
    fx = dict(policy.features_extractor_kwargs)
    return {"hidden": int(fx.get("hidden", 64)), "layers": int(fx.get("layers", 3)),
            "attention": bool(fx.get("attention", False)), "heads": int(fx.get("heads", 4)),
            "prior": policy.prior, "sharpness": float(policy.sharpness), "head_hidden": int(policy.head_hidden),
            "vf_hidden": int(policy.vf_hidden), "head": policy.head, "stage_sharpness": float(policy.stage_sharpness),
            "count_prior": float(policy.count_prior), "cut_prior": float(policy.cut_prior),
            "max_log_sharpness": float(policy.max_log_sharpness), "speed_prior": float(policy.speed_prior),
            "balance": str(policy.balance), "extra_orders": int(policy.extra_orders), "orders": list(policy.orders)}


def save_oneshot(policy: OneShotPolicy, path: str | os.PathLike[str], info: dict[str, Any] | None = None) -> Path:
    """Write ``policy`` to ``path`` (``.pt``) and ``info`` (JSON-able: how it was trained) to the
    sidecar ``path.json``, both atomically."""
    p = Path(path)
    if p.suffix != ".pt":
        raise ValueError(f"{p}: a one-shot checkpoint is a .pt file")
    blob = {"format": ONESHOT_FORMAT, "k_max": int(policy.k_max), "policy": _arch(policy),
            "node_features": list(NODE_FEATURES), "cost_model": COST_MODEL,
            "state_dict": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}}
    atomic_write(p, lambda tmp: torch.save(blob, tmp))
    atomic_write_text(oneshot_sidecar(p), json.dumps({"format": ONESHOT_FORMAT, **(info or {})}, indent=1))
    return p


def oneshot_sidecar(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of a one-shot checkpoint."""
    return Path(path).with_suffix(".json")


def is_oneshot_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a one-shot checkpoint (by its ``.pt`` suffix; :func:`load_oneshot`
    checks the content)."""
    return Path(path).suffix == ".pt"


def _blob(path: Path) -> dict[str, Any]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a file that is not its format
        raise ValueError(f"{path}: not a one-shot checkpoint (torch.load with weights_only=True could not read "
                         f"it: {type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != ONESHOT_FORMAT:
        raise ValueError(f"{path}: not a one-shot checkpoint (format {ONESHOT_FORMAT!r} expected)")
    return blob


def load_oneshot(path: str | os.PathLike[str]) -> OneShotPolicy:
    """Load a one-shot checkpoint written by :func:`save_oneshot` (no unpickling). The policy is
    built for a small observation; it accepts observations of any padding with ``K_max`` chips."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} not found")
    blob = _blob(p)
    if list(blob.get("node_features", [])) != list(NODE_FEATURES):
        raise ValueError(f"{p}: trained on node features {blob.get('node_features')}, this version has "
                         f"{list(NODE_FEATURES)}")
    try:  # a malformed blob (missing keys, wrong shapes) fails here in several ways
        k_max = int(blob["k_max"])
        arch = {**_LEGACY_ARCH, **{k: blob["policy"][k] for k in _ARCH_KEYS if k in blob["policy"]}}
        policy = blank_policy(k_max, oneshot_policy_kwargs(**arch), 1e-3)
        policy.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{p}: malformed one-shot checkpoint ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]})") from None
    policy.set_training_mode(False)
    policy.cost_model = str(blob.get("cost_model", ""))  # type: ignore[assignment]  # recorded, not a module
    return policy


def stage_temperature(policy: OneShotPolicy, env: MCMPartitionEnv, entropy: float, floor: float = 1.0) -> float:
    """The temperature (at least ``floor``; bisection on its log up to 1e4) at which ``policy``'s
    stages head has ``entropy`` nats per stage end on ``env``:
    :meth:`~mcm_gym.learn.oneshot.StageCandidates.entropy` (the order's, the number of stages' and
    the ends' along the greedy path) over the ``m - 1`` ends of the greedy number of stages ``m``.
    On BERT-base / ring-8 with ``pretrained-v6`` 2 nats per end this way is a temperature of
    about 1.7 (2.8 with its four named orders alone: 28 distinct orders carry more entropy).
    ``floor`` where the policy is already that spread, or has one stage."""
    obs, masks = obs_batch([env])
    with torch.no_grad():  # one forward pass: each temperature divides its logits (StageCandidates.tempered)
        base = policy.candidates(obs, masks, env.problem.n, 1.0, orders=policy_orders(policy, env.problem))
    assert isinstance(base, StageCandidates)

    def per_end(t: float) -> float:
        with torch.no_grad():
            d = base.tempered(t)
            ends = d.greedy_pair()[1] - 1
            return float(d.entropy()) / ends if ends else float("inf")

    if per_end(floor) >= entropy:
        return floor
    lo, hi = math.log(floor), math.log(1e4)
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if per_end(math.exp(mid)) < entropy else (lo, mid)
    return math.exp(hi)


class OneShotSearch(Searcher):
    """The one-shot learner on one problem; every repaired candidate is one evaluation.

    Options: ``checkpoint`` (None: a fresh policy; a ``.pt`` path or a shipped name such as
    ``pretrained``: start from it, its greedy candidate first), ``train`` (False: no training, the
    greedy candidate then samples of the policy), ``samples_per_graph`` (candidates per update;
    default ``min(64, max(8, budget // 10))``), ``learning_rate``, ``epochs``, ``target``,
    ``use_repair`` (False: an invalid candidate is a failed evaluation; the solver ablation),
    ``hidden``, ``layers``, ``prior``, ``sharpness``, ``head`` (``nodes`` or ``stages``; the fresh
    policy's architecture; a checkpoint keeps its own), ``temperature`` (the sampled distribution is
    the logits over it), ``node_entropy`` (when fine-tuning from a checkpoint: each node's
    distribution is flattened to this entropy, nats, where sharper; default
    :data:`FINETUNE_NODE_ENTROPY`; None: off; ignored from scratch, with ``train=False`` and for a
    stages-head checkpoint, and reported in ``extra``), ``stage_entropy`` (the same for a stages-head
    checkpoint: one temperature, at least ``temperature``, that gives its stage ends this mean
    entropy in nats, :func:`stage_temperature`; default :data:`FINETUNE_STAGE_ENTROPY`; None: off),
    ``torch_threads`` (torch's global thread count), ``polish`` (with a checkpoint: polish its
    greedy partition with up to this many evaluations, :func:`mcm_gym.search.polish.polish`, before
    sampling or training with the rest of the budget; 0: off), ``adapt_orders`` (training with the
    stages head: after every update its extra orders are this many orders around the best partition
    so far, the first update's around the zero-shot or polished one;
    :class:`~mcm_gym.learn.oneshot_train.OneShotTrainConfig`; default :data:`ADAPT_ORDERS`; 0: its
    fixed orders, as before 2026-12-07; ignored by the nodes head and with ``train=False``), ``split``
    (with a stages-head checkpoint: ``"dp"`` splits its greedy order with the stage DP,
    :func:`~mcm_gym.learn.oneshot_train.greedy_candidates`; default ``"head"``: its own ends). The seed of
    :meth:`search` seeds torch's sampling (forked: the caller's stream is untouched).
    A checkpoint trained on fewer chips than the hardware has is widened to them
    (:func:`widen_policy`). ``SearchResult.extra``: ``temperature`` (the one applied), ``node_entropy`` (None if none),
    ``widened_k_max`` (``{"from", "to"}`` where the checkpoint was widened),
    ``adapt_orders`` (when a stages head trains: how many it adapts, fewer where the order budget cuts them,
    and then ``adapt_orders_cut``, why) and, with ``polish``, what the polish did."""

    name = "oneshot"

    def __init__(self, checkpoint: str | os.PathLike[str] | OneShotPolicy | None = None, *, train: bool = True,
                 samples_per_graph: int | None = None, learning_rate: float = 3e-3, epochs: int = 4,
                 target: str = "candidate", use_repair: bool = True, hidden: int = 32, layers: int = 2,
                 prior: str | None = None, sharpness: float = 3.0, temperature: float = 1.0,
                 node_entropy: float | None = FINETUNE_NODE_ENTROPY, torch_threads: int = 1,
                 repair: RepairConfig | None = None, head: str = "nodes",
                 stage_entropy: float | None = FINETUNE_STAGE_ENTROPY, polish: int = 0,
                 adapt_orders: int = ADAPT_ORDERS, split: str = "head") -> None:
        super().__init__(repair)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split != "head" and checkpoint is None:
            raise ValueError("split applies to a checkpoint's greedy candidate; give a checkpoint")
        self.split = split
        if polish < 0:
            raise ValueError(f"polish must be >= 0 evaluations, got {polish}")
        if polish and checkpoint is None:
            raise ValueError("polish needs a checkpoint: it polishes the checkpoint's greedy partition")
        self.polish = polish
        if not train and checkpoint is None:
            raise ValueError("oneshot with train=False needs a checkpoint (there is nothing to sample without one)")
        self.checkpoint = checkpoint
        self.train, self.samples_per_graph = train, samples_per_graph
        self.learning_rate, self.epochs, self.target, self.use_repair = learning_rate, epochs, target, use_repair
        self.policy_kw = {"hidden": hidden, "layers": layers, "prior": prior, "sharpness": sharpness, "head": head}
        self.temperature, self.node_entropy, self.stage_entropy = temperature, node_entropy, stage_entropy
        if stage_entropy is not None and not stage_entropy > 0:
            raise ValueError(f"stage_entropy must be > 0 nats or None, got {stage_entropy}")
        self.torch_threads = torch_threads
        self._extra: dict[str, Any] = {}
        self.adapt_orders = adapt_orders
        OneShotTrainConfig(learning_rate=learning_rate, epochs=epochs, target=target, policy=self.policy_kw,
                           temperature=temperature, node_entropy=node_entropy,
                           adapt_orders=adapt_orders)  # checks the options
        self.last_policy: OneShotPolicy | None = None

    def search(self, problem: Problem, budget: int, seed: int = 0,
               progress: Progress | None = None) -> SearchResult:
        self._extra = {}
        res = super().search(problem, budget, seed, progress)
        res.extra = dict(self._extra)
        return res

    def _initial(self) -> OneShotPolicy | None:
        if self.checkpoint is None or isinstance(self.checkpoint, OneShotPolicy):
            return self.checkpoint
        from mcm_gym.learn.checkpoints import resolve_checkpoint

        path = resolve_checkpoint(str(self.checkpoint))
        if not is_oneshot_checkpoint(path):
            raise ValueError(f"{path} is not a one-shot checkpoint (.pt); a MaskablePPO .zip runs with "
                             f"rl:checkpoint=... or policy")
        return load_oneshot(path)

    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None:
        torch.set_num_threads(self.torch_threads)
        seed = int(rng.integers(2**31 - 1))
        init = self._initial()
        widened = None
        if init is not None and problem.num_chips > init.k_max:  # reported in extra, never silent
            widened = {"from": init.k_max, "to": problem.num_chips}
            init = widen_policy(init, problem.num_chips)

        def count(part: np.ndarray | None) -> None:
            if part is not None:
                tr.add(part)
            else:
                tr.fail()

        env = MCMPartitionEnv(problem.graph, problem.hardware, mode="oneshot", use_repair=self.use_repair,
                              repair=self.repair_config, k_max=init.k_max if init is not None else None)
        # per-node flattening serves a sharp nodes-head checkpoint; the stages head has no per-node logits
        node_entropy = self.node_entropy if init is not None and self.train and init.head == "nodes" else None
        temperature = self.temperature
        if init is not None and self.train and init.head == "stages" and self.stage_entropy is not None:
            temperature = stage_temperature(init, env, self.stage_entropy, self.temperature)
        self._extra = {"temperature": temperature, "node_entropy": node_entropy}
        if widened is not None:
            self._extra["widened_k_max"] = widened
        head = init.head if init is not None else self.policy_kw["head"]
        adapt = self.adapt_orders if self.train and head == "stages" else 0
        if adapt:  # the orders that fit the budget are the ones used (none: the fixed orders stay)
            k = init.k_max if init is not None else problem.num_chips
            fit = extra_order_fit(init if init is not None else k, problem)  # a new policy: its default orders
            self._extra["adapt_orders"] = min(adapt, fit)
            if fit < adapt:
                self._extra["adapt_orders_cut"] = (f"{min(adapt, fit)} of {adapt}: {problem.n} nodes with "
                                                   f"K_max {k} fit no more under STAGE_ORDER_BUDGET")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            start: np.ndarray | None = None
            if init is not None:
                [cand], [fell_back] = split_candidates(init, [env], self.split)
                if self.split != "head":
                    self._extra["split"] = self.split
                    if fell_back:  # reported in the result, not warned
                        self._extra["split_fallback"] = SPLIT_FALLBACK
                first = self._score(env, cand)
                count(first)
                if self.polish and (first is None or tr.left <= 0):
                    why = "no valid greedy partition to polish" if first is None else "no budget left to polish"
                    self._extra["polish"] = {"skipped": why}
                elif self.polish and first is not None:
                    done = polish(problem, first, min(self.polish, tr.left), on_evaluated=tr.add)
                    if done.moves and done.score >= tr.best_score:  # tie-breaking moves count (Tracker keeps
                        start = done.partition  # the first of equal scores): adapt around the polished one
                    self._extra["polish"] = done.summary()
            if tr.left <= 0:
                self.last_policy = init
                return
            if not self.train and init is not None:
                obs, masks = obs_batch([env])
                with torch.no_grad():
                    dist = init.candidates(obs, masks, problem.n, self.temperature,
                                           orders=policy_orders(init, problem))
                gen = torch.Generator().manual_seed(seed)
                while tr.left > 0:
                    count(self._score(env, dist.sample(1, gen)[0].numpy().astype(np.int64)))
                self.last_policy = init
                return
            spg = self.samples_per_graph or min(64, max(8, tr.budget // 10))
            cfg = OneShotTrainConfig(max_samples=tr.left, samples_per_graph=spg, learning_rate=self.learning_rate,
                                     epochs=self.epochs, target=self.target, use_repair=self.use_repair,
                                     policy=self.policy_kw, temperature=temperature,
                                     node_entropy=node_entropy, adapt_orders=adapt, seed=seed)
            run = train_oneshot([(problem.graph, problem.hardware)], cfg, init=init, repair=self.repair_config,
                                on_sample=lambda _i, _s, part: count(part),
                                start_partitions=[start if start is not None else tr.best] if adapt else None)
            self.last_policy = run.policy

    def _score(self, env: MCMPartitionEnv, cand: np.ndarray) -> np.ndarray | None:
        pr = env.problem
        if self.use_repair:
            return pr.repair(cand, env.repair_config).partition
        return cand if bool(pr.is_valid(cand)) else None
