"""The Gymnasium environment ``MCMPartition-v0``: instances, actions, masks, repair and reward."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mcm_gym.core.constraints import PlacementState
from mcm_gym.core.graph import Graph
from mcm_gym.core.hardware import Hardware, get_hardware
from mcm_gym.core.ids import expand_ids
from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig, RepairResult
from mcm_gym.env.observation import CHIP_FEATURES, NODE_FEATURES, ObservationBuilder
from mcm_gym.env.stages import STAGE_REWARDS, StageMasker
from mcm_gym.instances.catalog import load_graph
from mcm_gym.instances.dataset import GraphGenerator

__all__ = ["MCMPartitionEnv", "InvalidActionError", "NODE_FEATURES", "CHIP_FEATURES", "MODES"]


#: The env's modes: one chip per node, one stage end per chip, or a whole partition in one step.
MODES = ("sequential", "stages", "oneshot")


class InvalidActionError(ValueError):
    """An action outside the action space (e.g. a chip index beyond ``K_max``)."""


class MCMPartitionEnv(gym.Env[dict[str, Any], Any]):
    """Partition a computation graph across the chips of a multi-chip module.

    ## Description
    An ML model's computation graph (a DAG of operations with FLOPs, weight bytes and tensor bytes)
    must be split over the ``K`` chips of an MCM that run it as a pipeline. The agent proposes a chip
    for every node; a Z3 solver repairs the candidate into the closest valid partition (the hardware's
    constraints: dataflow, memory, contiguity, optionally neighbour-only links and chip triangles),
    and the reward is the repaired partition's normalised throughput score (Xie et al., MLSys 2022).
    For a third-party agent (e.g. sb3-contrib ``MaskablePPO``) the recommended mode is ``"stages"``:
    at most ``K`` decisions per episode instead of one per node, and it learns much faster (BENCHMARKS.md,
    "Sequential env for third-party agents: stage ends (issue 14)"); ``"sequential"`` stays the default.

    ## Action Space
    ``mode="sequential"`` (default): ``Discrete(K_max)``, the chip of the current node; nodes come in
    a fixed topological order, one per step. ``action_masks()`` (for sb3-contrib ``MaskablePPO``) and
    ``obs["action_mask"]`` give the chips the constraints leave open for that node, judged locally.
    An in-space action that the mask forbids is accepted as part of the candidate and counted in
    ``info["invalid_actions"]``; the repair fixes it. An action outside the space raises
    :class:`InvalidActionError`.
    ``mode="stages"``: ``Discrete(max_nodes)``, one step per chip: at step ``c`` the action ``a`` is
    where chip ``c``'s stage ends, so chip ``c`` holds nodes ``start..a`` (inclusive) of the graph's
    topological order, ``start`` = the previous stage's end + 1. Such a split holds dataflow and
    contiguity by construction. The mask (``(max_nodes,)``) allows the ends ``a`` in ``start..n-1``
    whose stage fits chip ``c``'s SRAM (shared tensors once per chip), whose remaining nodes fit the
    later chips' total SRAM, that keep ``neighbor_only`` / ``triangle`` (where enabled) for the edges
    from earlier stages, and only ``n - 1`` on the last chip; where nothing is left it drops those
    parts one by one (``triangle``, ``neighbor_only``, remaining SRAM), then allows ``n - 1`` only,
    counting each in ``info["mask_fallbacks"]`` (the repair fixes the rest). A forbidden in-space end
    is counted in ``info["invalid_actions"]`` and clipped into ``start..n-1`` (the last chip takes the
    rest whatever the action). See :mod:`mcm_gym.env.stages`.
    ``mode="oneshot"`` (the paper's formulation): ``MultiDiscrete([K_max] * max_nodes)``, a whole
    partition in one step; entries of padding nodes are ignored.

    ## Observation Space
    A ``Dict`` of fixed-shape ``Box``es, padded to ``max_nodes``, ``max_edges`` and ``K_max`` so one
    policy serves many graphs: ``node_features`` ``(max_nodes, 12)`` float32 in [0, 1] (see
    ``NODE_FEATURES``), ``edge_index`` ``(2, max_edges)`` int64 (padding edges are ``0 -> 0``),
    ``node_mask`` ``(max_nodes,)`` and ``edge_mask`` ``(max_edges,)`` int8, ``current_node`` ``(1,)``
    int64, ``chip_state`` ``(K_max, 7)`` float32 in [0, 1] (see ``CHIP_FEATURES``), ``action_mask``
    ``(K_max,)`` int8 (in stages mode ``(max_nodes,)``, in oneshot mode ``(max_nodes * K_max,)``). In
    stages mode ``current_node`` is the stage's first node, and the ``allowed`` chip feature marks the
    chip being filled.

    ## Rewards
    0 on every step but the last; then the repaired partition's score ``lower_bound / bottleneck`` in
    (0, 1], or 0 when no valid partition exists (or, with ``use_repair=False``, when the candidate is
    invalid). In stages mode with ``reward="shaped"`` (its default; ``"final"`` is the above):
    potential-based shaping, step ``t`` earns ``phi(s_t+1) - phi(s_t)`` with ``phi(s_0) = 0``, ``phi`` =
    the estimated score once a stage is closed (the closed chips' compute times and the rest's work
    spread over the chips left; see :meth:`mcm_gym.env.stages.StageMasker.potential`) and the final
    score at the end, so an episode's return is its score exactly. It learns faster than the final
    score alone (BENCHMARKS.md, "Sequential env for third-party agents: stage ends (issue 14)").

    ## Episode End
    Terminates after the last node (sequential), after the stage that ends at the last node, at most
    ``K`` steps (stages), or after the single step (oneshot). No truncation.

    ## Arguments
    * ``graph``: a :class:`Graph`, id (``zoo://bert-base-v1``, ``tiny://chain-v1``,
      ``generator://layered-dag-v0/7``), short name or file; default ``zoo://bert-base-v1``.
    * ``hardware``: a :class:`Hardware`, preset (``ring-8``, ``mesh-6x6``) or file; default: the graph's
      ``default_hardware`` metadata, else ``ring-8``.
    * ``graphs``: instead of ``graph``, a list of graphs/ids (ranges such as
      ``generator://layered-dag-v0/0:100`` allowed) or a :class:`GraphGenerator`; each reset draws one
      with ``self.np_random``.
    * ``mode``: ``"sequential"``, ``"stages"`` or ``"oneshot"``.
    * ``reward``: ``"final"`` or ``"shaped"`` (stages mode only, where it is the default; see Rewards).
    * ``max_nodes``, ``max_edges``, ``k_max``: padding sizes (default: the largest instance given; for
      a :class:`GraphGenerator`, its ``max_nodes`` / ``max_edges``).
    * ``repair``: a :class:`RepairConfig`; ``use_repair``: False scores the raw candidate (ablation).
    * ``timing``: add ``info["repair_time"]`` (wall-clock seconds). Off by default so that ``info``
      holds only deterministic values (the same seed gives the same ``info``); the last repair's time
      is always in ``env.unwrapped.last_repair_time``.
    * ``render_mode``: ``"ansi"`` or ``"rgb_array"``.

    ## Reset
    ``reset(options={"graph": id_or_graph, "hardware": preset_or_hardware})`` (either key alone works)
    chooses the instance of the episode, as CompilerGym's ``reset(benchmark=...)``; it must fit the
    padding. An env made with one ``graph`` keeps the choice for later resets; an env with ``graphs``
    draws from them again at the next reset without options. Unknown option keys raise ``ValueError``.

    ## Version History
    * v0: initial version. Since 0.2 (no change to observations, rewards or dynamics): ``reset``
      options choose the instance, and a :class:`GraphGenerator` sizes the padding. Then
      ``mode="stages"`` (issue 14; a new mode, the other modes' dynamics unchanged, so still v0).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        graph: Graph | str | None = None,
        hardware: Hardware | str | None = None,
        *,
        graphs: Sequence[Graph | str] | GraphGenerator | None = None,
        mode: str = "sequential",
        reward: str | None = None,
        max_nodes: int | None = None,
        max_edges: int | None = None,
        k_max: int | None = None,
        repair: RepairConfig | None = None,
        use_repair: bool = True,
        timing: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if reward is None:
            reward = "shaped" if mode == "stages" else "final"
        if reward not in STAGE_REWARDS:
            raise ValueError(f"reward must be one of {', '.join(map(repr, STAGE_REWARDS))}, got {reward!r}")
        if reward != "final" and mode != "stages":
            raise ValueError(f"reward={reward!r} needs mode='stages' (the other modes reward the final score only)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if graph is not None and graphs is not None:
            raise ValueError("give either graph or graphs, not both")
        self.mode = mode
        self.reward_kind = reward
        self.render_mode = render_mode
        self.repair_config = repair or RepairConfig()
        self.use_repair = use_repair
        self.timing = timing
        self.last_repair_time = 0.0  # s, wall clock of the last repair
        self._problems: OrderedDict[tuple[str, str], Problem] = OrderedDict()  # LRU of cost tables

        if graphs is None:
            g = load_graph(graph if graph is not None else "zoo://bert-base-v1")
            self._generator = None
            self._fixed: list[Graph] = [g]
        else:
            self._generator = graphs if isinstance(graphs, GraphGenerator) else None
            self._fixed = [] if self._generator else [load_graph(x) for x in expand_ids(graphs)]
            if not self._generator and not self._fixed:
                raise ValueError("graphs is empty")
        self._hardware_spec = hardware
        if self._generator is not None:  # padding from the generator's own sizes, never from a sample
            first = self._generator.sample(np.random.default_rng(0))
            self.max_nodes = int(max_nodes or self._generator.max_nodes)
            self.max_edges = int(max_edges or self._generator.max_edges)
            chips = ([self._hardware_for(first).num_chips] if hardware is not None
                     else [self._hardware_for(g).num_chips for g in self._generator])
        else:
            first = self._fixed[0]
            self.max_nodes = int(max_nodes or max(g.n for g in self._fixed))
            self.max_edges = int(max_edges or max(max(g.num_edges, 1) for g in self._fixed))
            chips = [self._hardware_for(g).num_chips for g in self._fixed]
        hw0 = self._hardware_for(first)
        self.k_max = int(k_max or max(chips))
        for g in self._fixed:
            self._check_fits(g, self._hardware_for(g))

        nf, cf = len(NODE_FEATURES), len(CHIP_FEATURES)
        mask_len = {"sequential": self.k_max, "stages": self.max_nodes}.get(mode, self.max_nodes * self.k_max)
        self.observation_space = spaces.Dict({
            "node_features": spaces.Box(0.0, 1.0, (self.max_nodes, nf), np.float32),
            "edge_index": spaces.Box(0, self.max_nodes - 1, (2, self.max_edges), np.int64),
            "node_mask": spaces.Box(0, 1, (self.max_nodes,), np.int8),
            "edge_mask": spaces.Box(0, 1, (self.max_edges,), np.int8),
            "current_node": spaces.Box(0, self.max_nodes - 1, (1,), np.int64),
            "chip_state": spaces.Box(0.0, 1.0, (self.k_max, cf), np.float32),
            "action_mask": spaces.Box(0, 1, (mask_len,), np.int8),
        })
        if mode == "sequential":
            self.action_space: spaces.Space[Any] = spaces.Discrete(self.k_max)
        elif mode == "stages":
            self.action_space = spaces.Discrete(self.max_nodes)
        else:
            self.action_space = spaces.MultiDiscrete(np.full(self.max_nodes, self.k_max, dtype=np.int64))
        self._set_instance(first, hw0)

    # ------------------------------------------------------------------ instances
    def _hardware_for(self, g: Graph) -> Hardware:
        spec = self._hardware_spec or g.metadata.get("default_hardware") or "ring-8"
        return get_hardware(spec)

    def _check_fits(self, g: Graph, hw: Hardware) -> None:
        if g.n > self.max_nodes:
            raise ValueError(f"graph {g.name!r} has {g.n} nodes > max_nodes={self.max_nodes}")
        if g.num_edges > self.max_edges:
            raise ValueError(f"graph {g.name!r} has {g.num_edges} edges > max_edges={self.max_edges}")
        if hw.num_chips > self.k_max:
            raise ValueError(f"hardware {hw.name!r} has {hw.num_chips} chips > k_max={self.k_max}")

    def _problem(self, g: Graph, hw: Hardware) -> Problem:
        key = (g.id or g.name, hw.id or hw.name)
        pr = self._problems.get(key)
        if pr is None or pr.graph is not g and pr.graph.id is None:
            pr = Problem(g, hw)
            self._problems[key] = pr
            while len(self._problems) > 1024:
                self._problems.popitem(last=False)
        self._problems.move_to_end(key)
        return pr

    def _set_instance(self, g: Graph, hw: Hardware) -> None:
        self._check_fits(g, hw)
        self.problem = self._problem(g, hw)
        self._obs_builder = ObservationBuilder(self.problem, self.max_nodes, self.max_edges, self.k_max)
        self._stager = StageMasker(self.problem) if self.mode == "stages" else None
        self._reset_state()

    def _reset_state(self) -> None:
        pr = self.problem
        self._state = PlacementState(pr.graph, pr.hardware, pr.mem_demand)
        self._work = np.zeros(pr.num_chips)
        self._cursor = 0
        self._chip = 0  # stages mode: the chip whose stage the next step closes
        self._potential = 0.0  # stages mode, reward="shaped": the potential of the current state
        self._invalid_actions = 0
        self._mask_fallbacks = 0
        self._done = False
        self._last_info: dict[str, Any] = {}
        self._mask = self._compute_mask()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = sorted(set(opts) - {"graph", "hardware"})
        if unknown:
            raise ValueError(f"reset: unknown option(s) {', '.join(map(repr, unknown))}; "
                             f"known: 'graph', 'hardware'")
        if opts.get("graph") is not None or opts.get("hardware") is not None:
            g = load_graph(opts["graph"]) if opts.get("graph") is not None else self.problem.graph
            hw = get_hardware(opts["hardware"]) if opts.get("hardware") is not None else self._hardware_for(g)
            self._set_instance(g, hw)
            if self._generator is None and len(self._fixed) == 1:  # a single instance: the choice stays
                self._fixed = [g]
                if opts.get("hardware") is not None:
                    self._hardware_spec = hw
        elif self._generator is not None:
            g = self._generator.sample(self.np_random)
            self._set_instance(g, self._hardware_for(g))
        elif len(self._fixed) > 1:
            g = self._fixed[int(self.np_random.integers(len(self._fixed)))]
            self._set_instance(g, self._hardware_for(g))
        else:
            self._reset_state()
        return self._obs(), self._base_info()

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called after the episode ended; call reset()")
        checked = _as_chips(action, scalar=self.mode != "oneshot")
        if checked is None or not self.action_space.contains(checked):
            what = "a node index (the stage's last node)" if self.mode == "stages" else "integer chip indices"
            raise InvalidActionError(f"action {action!r:.200} is outside the action space {self.action_space}: "
                                     f"give {what}")
        action = checked
        g = self.problem.graph
        if self.mode == "stages":
            return self._stage_step(int(action))
        if self.mode == "sequential":
            a = int(action)
            if not self._mask[a]:
                self._invalid_actions += 1
            self._place(self._cursor, a)
            self._cursor += 1
            if self._cursor < g.n:
                self._mask = self._compute_mask()
                return self._obs(), 0.0, False, False, self._base_info()
            candidate = self._state.assign.copy()
        else:
            cand_full = np.asarray(action, dtype=np.int64)
            candidate = cand_full[: g.n].copy()
            full_mask = self._oneshot_mask().reshape(self.max_nodes, self.k_max)
            self._invalid_actions = int((~full_mask[np.arange(g.n), candidate]).sum())
            for v in range(g.n):
                self._place(v, int(candidate[v]))
            self._cursor = g.n
        self._done = True
        reward, info = self._finish(candidate)
        self._last_info = info
        return self._obs(), reward, True, False, info

    def _stage_step(self, a: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Stages mode: chip ``self._chip`` holds nodes ``self._cursor..a`` (clipped to the real nodes;
        the last chip takes the rest)."""
        stager = self._stager
        assert stager is not None
        n, c, start = self.problem.graph.n, self._chip, self._cursor
        if not self._mask[a]:
            self._invalid_actions += 1
        end = n - 1 if c >= self.problem.num_chips - 1 else min(max(a, start), n - 1)
        for v in range(start, end + 1):
            self._place(v, c)
        self._cursor, self._chip = end + 1, c + 1
        if self._cursor < n:
            self._mask = self._compute_mask()
            reward = 0.0
            if self.reward_kind == "shaped":
                phi = stager.potential(self._work, self._chip, self._cursor)
                reward, self._potential = phi - self._potential, phi
            return self._obs(), reward, False, False, self._base_info()
        self._done = True
        score, info = self._finish(self._state.assign.copy())
        self._last_info = info
        if self.reward_kind == "shaped":  # the potentials telescope: the return is the score
            score -= self._potential
        return self._obs(), score, True, False, info

    def action_masks(self) -> np.ndarray:
        """Boolean mask of allowed actions (sb3-contrib ``MaskablePPO`` calls this)."""
        if self.mode == "oneshot":
            return self._oneshot_mask()
        return self._mask.copy()

    # ------------------------------------------------------------------ batch API
    def evaluate(self, partitions: np.ndarray) -> dict[str, np.ndarray]:
        """Score a batch ``(B, n)`` of partitions of the current instance: ``score`` (0 where
        invalid), ``raw_score``, ``valid``, ``throughput``, ``bottleneck`` (s), ``latency`` (s)."""
        ev, valid = self.problem.evaluate_valid(partitions)
        return {"score": np.where(valid, ev.score, 0.0), "raw_score": ev.score, "valid": valid,
                "throughput": ev.throughput, "bottleneck": ev.bottleneck, "latency": ev.latency}

    def repair(self, partition: np.ndarray) -> RepairResult:
        """Repair one candidate partition of the current instance (see :mod:`mcm_gym.core.repair`)."""
        return self.problem.repair(partition, self.repair_config)

    # ------------------------------------------------------------------ internals
    def _place(self, v: int, chip: int) -> None:
        self._state.place(v, chip)
        if 0 <= chip < self.problem.num_chips:
            self._work[chip] += self.problem.cost.node_time[v, chip]

    def _compute_mask(self) -> np.ndarray:
        """Mask for the node at the cursor; relaxes constraints (memory first) if nothing is left."""
        if self._stager is not None:
            return self._stage_mask()
        k = self.problem.num_chips
        full = np.zeros(self.k_max, dtype=bool)
        if self._cursor >= self.problem.graph.n:
            full[:k] = True
            return full
        v = self._cursor
        masks = {c.name: c.mask(self._state, v) for c in self.problem.constraints}
        allowed = np.ones(k, dtype=bool)
        for m in masks.values():
            allowed &= m
        for drop in ("memory", "triangle", "neighbor_only", "contiguous", "dataflow"):
            if allowed.any():
                break
            self._mask_fallbacks += 1
            masks.pop(drop, None)
            allowed = np.ones(k, dtype=bool)
            for m in masks.values():
                allowed &= m
        if not allowed.any():
            allowed[:] = True
        full[:k] = allowed
        return full

    def _stage_mask(self) -> np.ndarray:
        """Stages mode: the allowed stage ends (node indices, ``(max_nodes,)``) for the current chip."""
        assert self._stager is not None
        n = self.problem.graph.n
        if self._cursor >= n:  # episode over: the last node, so the mask is never empty
            full = np.zeros(self.max_nodes, dtype=bool)
            full[n - 1] = True
            return full
        full, relaxed = self._stager.mask(self._chip, self._cursor, self.max_nodes)
        self._mask_fallbacks += relaxed
        return full

    def _oneshot_mask(self) -> np.ndarray:
        m = np.zeros((self.max_nodes, self.k_max), dtype=bool)
        m[: self.problem.graph.n, : self.problem.num_chips] = True
        m[self.problem.graph.n:, 0] = True
        return m.ravel()

    def _obs(self) -> dict[str, np.ndarray]:
        mask = self._oneshot_mask() if self.mode == "oneshot" else self._mask
        allowed: np.ndarray | None = self._mask if self.mode == "sequential" else None
        if self.mode == "stages":  # the chip whose stage is chosen now
            allowed = np.zeros(self.k_max, dtype=bool)
            if not self._done:
                allowed[self._chip] = True
        return self._obs_builder.build(self._state, self._work, self._cursor, self._done, mask, allowed)

    def _base_info(self) -> dict[str, Any]:
        g, hw = self.problem.graph, self.problem.hardware
        info = {"graph_id": g.id or g.name, "hardware_id": hw.id or hw.name, "step": self._cursor,
                "num_nodes": g.n, "num_chips": hw.num_chips}
        if self.mode == "stages":
            info["stage"] = self._chip  # stages closed so far
        return info

    def _finish(self, candidate: np.ndarray) -> tuple[float, dict[str, Any]]:
        pr = self.problem
        k = pr.num_chips
        in_range = (candidate >= 0) & (candidate < k)
        clipped = np.clip(candidate, 0, k - 1)
        counts = {name: int(c[0]) for name, c in pr.violation_counts(clipped).items()}
        counts["out_of_range"] = int((~in_range).sum())
        info = self._base_info()
        info.update(candidate=candidate.copy(), violations=counts, invalid_actions=self._invalid_actions,
                    mask_fallbacks=self._mask_fallbacks, lower_bound=pr.lower_bound)
        if self.use_repair:
            res = pr.repair(candidate, self.repair_config)
            self.last_repair_time = res.solve_time
            info.update(partition=res.partition, changes=res.changes, repair_status=res.status,
                        repair_method=res.method, repair_calls=res.info.get("solver_calls", 0))
            if self.timing:
                info["repair_time"] = res.solve_time
            final = res.partition
        else:
            ok = bool(in_range.all()) and all(v == 0 for v in counts.values())
            info.update(partition=candidate.copy() if ok else None, changes=0 if ok else None,
                        repair_status="skipped", repair_method="none", repair_calls=0)
            final = candidate if ok else None
        if final is None:
            info.update(score=0.0, throughput=0.0, bottleneck=float("inf"), latency=float("inf"))
            return 0.0, info
        row = pr.evaluate(final).row()
        info.update(score=row["score"], throughput=row["throughput"], bottleneck=row["bottleneck"],
                    latency=row["latency"], chip_time=row["chip_time"], link_time=row["link_time"],
                    memory=row["memory"])
        return float(row["score"]), info

    # ------------------------------------------------------------------ rendering
    def render(self) -> Any:  # str (ansi), (H, W, 3) uint8 array (rgb_array) or None
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _current_partition(self) -> np.ndarray:
        final = self._last_info.get("partition") if self._done else None
        return final if final is not None else self._state.assign

    def _render_text(self) -> str:
        pr = self.problem
        p = self._current_partition()
        hw = pr.hardware
        lines = [f"{pr.graph.name} on {hw.name}: {int((p >= 0).sum())}/{pr.graph.n} nodes placed"]
        placed = (p >= 0) & (p < hw.num_chips)
        t = np.zeros(hw.num_chips)
        mem = pr.cost.placed_memory(p)
        cnt = np.zeros(hw.num_chips, dtype=int)
        for v in np.flatnonzero(placed):
            t[p[v]] += pr.cost.node_time[v, p[v]]
            cnt[p[v]] += 1
        lines.append(f"{'chip':>4} {'nodes':>6} {'compute (us)':>13} {'SRAM used':>10}")
        for c in range(hw.num_chips):
            lines.append(f"{c:>4} {cnt[c]:>6} {t[c] * 1e6:>13.2f} {mem[c] / hw.sram_bytes[c]:>9.0%}")
        if self._done and self._last_info:
            i = self._last_info
            lines.append(f"score {i['score']:.4f}  throughput {i['throughput']:.1f}/s  "
                         f"repair {i['repair_status']} ({i['changes']} changes)")
        return "\n".join(lines) + "\n"

    @property
    def render_shape(self) -> tuple[int, int, int]:
        """Shape of the ``rgb_array`` image: (height, width, 3) pixels."""
        from mcm_gym.viz import DPI, FIGSIZE

        return (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI), 3)

    def _render_rgb(self) -> np.ndarray:
        from mcm_gym.viz import render_partition_rgb

        cand = self._last_info.get("candidate") if self._done else None
        return render_partition_rgb(self.problem, self._current_partition(), candidate=cand)


def _as_chips(action: Any, scalar: bool) -> Any:
    """``action`` as chip indices: an ``int`` (``scalar``; also a 1-element array) or an int64 array;
    None when it is not made of integers (booleans, strings, non-integral floats)."""
    try:
        a = np.asarray(action)
    except (TypeError, ValueError):
        return None
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        return None
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a) & (a == np.round(a))):
        return None
    if scalar:
        return int(a.ravel()[0]) if a.size == 1 and a.ndim <= 1 else None
    return a.astype(np.int64)
