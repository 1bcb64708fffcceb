"""Pipeline-stage dynamic programming over topological orders (as PipeDream / Alpa build stages).

Given a topological order ``sigma`` of the nodes and ``K`` chips, :func:`best_split` finds the split
of ``sigma`` into ``m <= K`` consecutive non-empty stages, stage ``s`` on chip ``s``, that minimises
the bottleneck (seconds). Every such split satisfies ``dataflow`` (the order is topological) and
``contiguous`` (chips ``0..m-1`` are used); ``memory``, ``neighbor_only`` and ``triangle`` are
enforced inside the DP, as each reduces to a condition on one stage ``[i, j)`` of the order:

* memory: the stage's ``mem_demand``, plus each shared tensor a node of the stage reads (once),
  fits the chip's SRAM;
* neighbor_only: no edge jumps over the stage (producer before ``i``, consumer at or after ``j``);
* triangle: no triangle ``u -> v -> w`` has ``u`` before the stage, ``v`` in it and ``w`` after it.

Cost model inside the DP: a stage's chip time is the sum of its nodes' times on that chip; the cut
after position ``j`` is crossed by every tensor produced before it and consumed at or after it, once
(multicast; with several edges from one producer, the largest one that crosses), over the link
``c -> c+1``. On a ring or chain this is exactly what the simulator computes (a forward route
``a -> b`` crosses links ``a..b-1``), so the DP is exact for its order there. On a mesh the XY
routes do not follow the pipeline, and the cut model is only an approximation: :class:`DPSearch`
therefore always scores its partitions with the real simulator. There (any topology but ring and
chain), an order with at most :attr:`StageSplitter.enumerate_max_splits` splits (2,000: up to 23
nodes on 4 chips) is split exactly instead, by scoring every split with the simulator in one batch
(:meth:`StageSplitter.split_enumerate`, a few to tens of ms per order); a 10-node DAG on mesh-2x2 whose best split the
cut model misses by 22% is the case that asked for it.

Complexity: ``O(K n^2)`` per order (numpy over the split point), a few ms for BERT-base on ring-8;
above 2,000 nodes a bisection on the bottleneck (:meth:`StageSplitter.split_bisect`), ``O(K n log n)``
per step and memory linear in ``n``, gives the same split to a relative 1e-12.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from mcm_gym.core.problem import Problem
from mcm_gym.core.repair import RepairConfig
from mcm_gym.search.base import Searcher, Tracker
from mcm_gym.search.heuristics import split_by_work

__all__ = ["DPSearch", "StageSplitter", "best_split", "dfs_order", "level_order", "alap_order",
           "priority_order", "jittered_order", "rdfs_order", "live_order", "critical_order", "asap_time_order",
           "NAMED_ORDERS", "split_count"]


# ---------------------------------------------------------------------------- orders
def priority_order(problem: Problem, key: np.ndarray) -> np.ndarray:
    """The topological order that always takes the ready node with the smallest ``key`` (ties by
    index); shape ``(n,)``, node indices."""
    return problem.graph.priority_order(key)


def jittered_order(problem: Problem, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A topological order near ``order`` (node indices): nodes ranked by their position in it plus
    Gaussian noise of a random scale, log-uniform in ``[0.5, max(1, n / 4)]`` positions."""
    n = problem.n
    rank = np.empty(n)
    rank[order] = np.arange(n)
    scale = float(np.exp(rng.uniform(np.log(0.5), np.log(max(1.0, n / 4)))))
    return priority_order(problem, rank + scale * rng.standard_normal(n))


def _stack_kahn(nexts: Sequence[Sequence[int]], count: np.ndarray, smallest_first: bool) -> list[int]:
    """Kahn's algorithm with a stack over ``nexts`` (successor lists; ``count[v]``: how many must come
    before ``v``, consumed): the most recently readied node first, among nodes readied together
    the smallest index first (``smallest_first``) or the largest."""
    n = len(nexts)
    stack = [v for v in (range(n - 1, -1, -1) if smallest_first else range(n)) if count[v] == 0]
    out: list[int] = []
    while stack:
        v = stack.pop()
        out.append(v)
        ready = []
        for w in nexts[v]:
            count[w] -= 1
            if count[w] == 0:
                ready.append(w)
        stack.extend(sorted(ready, reverse=smallest_first))
    return out


def dfs_order(problem: Problem) -> np.ndarray:
    """Depth-first topological order: Kahn's algorithm with a stack (the most recently readied node
    first, smallest index first among siblings), which keeps chains and branches together."""
    g = problem.graph
    indeg = np.array([len(p) for p in g.preds], dtype=np.int64)
    return np.array(_stack_kahn(g.succs, indeg, smallest_first=True), dtype=np.int64)


def level_order(problem: Problem) -> np.ndarray:
    """Nodes by earliest level (longest path from a source), then index (ASAP)."""
    g = problem.graph
    return np.lexsort((np.arange(g.n), g.depth)).astype(np.int64)


def alap_order(problem: Problem) -> np.ndarray:
    """Nodes by latest level (depth of the graph minus the longest path to a sink), then index."""
    g = problem.graph
    height = np.zeros(g.n, dtype=np.int64)
    for v in range(g.n - 1, -1, -1):
        for w in g.succs[v]:
            height[v] = max(height[v], height[w] + 1)
    latest = int(g.depth.max()) - height
    return np.lexsort((np.arange(g.n), latest)).astype(np.int64)


def rdfs_order(problem: Problem) -> np.ndarray:
    """Reverse depth-first: :func:`dfs_order` of the reversed graph (from the sinks; a node is placed
    once all its consumers are, the most recently readied first), reversed. Where :func:`dfs_order`
    puts a consumer right after its producer when it can, this puts a producer right before its
    consumer: the chain that feeds a node ends next to it."""
    g = problem.graph
    left = np.array([len(s) for s in g.succs], dtype=np.int64)  # consumers not yet placed
    return np.array(_stack_kahn(g.preds, left, smallest_first=False)[::-1], dtype=np.int64)


def _time_levels(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """``(top, bottom)`` per node (s): the longest path of fastest node times from a source up to the
    node (excluded), and from the node (included) to a sink."""
    g = problem.graph
    t = problem.cost.node_time.min(axis=1)
    top, bottom = np.zeros(g.n), t.copy()
    for v in range(g.n):  # node indices are a topological order
        for u in g.preds[v]:
            top[v] = max(top[v], top[u] + t[u])
    for v in range(g.n - 1, -1, -1):
        for w in g.succs[v]:
            bottom[v] = max(bottom[v], t[v] + bottom[w])
    return top, bottom


def asap_time_order(problem: Problem) -> np.ndarray:
    """Nodes by earliest start time (the longest path of fastest node times from a source, s), as
    a list scheduler with unlimited chips starts them; :func:`level_order` counts nodes instead."""
    return priority_order(problem, _time_levels(problem)[0])


def critical_order(problem: Problem) -> np.ndarray:
    """The ready node on the longest path (fastest node times, s, through it from a source to a sink)
    first: critical chains stay together."""
    top, bottom = _time_levels(problem)
    return priority_order(problem, -(top + bottom))


def live_order(problem: Problem) -> np.ndarray:
    """Fewest live bytes: the ready node whose run frees the most bytes (inputs it is the last
    consumer of, minus its own output if anything consumes it) first, ties by index; a cut of the
    order then carries few bytes. A heap with lazy updates: a node's gain only rises, and each
    push recomputes it over the node's inputs (``O(sum of in-degree squared + E log n)``)."""
    g = problem.graph
    out_b = g.out_bytes
    indeg = np.array([len(p) for p in g.preds], dtype=np.int64)
    left = np.array([len(s) for s in g.succs], dtype=np.int64)  # consumers not yet run

    def gain(v: int) -> float:
        freed = sum(float(out_b[u]) for u in set(g.preds[v]) if left[u] == 1)
        return freed - (float(out_b[v]) if g.succs[v] else 0.0)

    heap = [(-gain(v), v) for v in range(g.n) if indeg[v] == 0]
    heapq.heapify(heap)
    done = np.zeros(g.n, dtype=bool)
    out: list[int] = []
    while heap:
        neg, v = heapq.heappop(heap)
        if done[v] or -neg != gain(v):  # stale entry: a newer one is in the heap
            continue
        done[v] = True
        out.append(v)
        for u in set(g.preds[v]):
            left[u] -= 1
            if left[u] == 1:  # its last consumer now frees it: that consumer's gain rose
                for w in g.succs[u]:
                    if not done[w] and indeg[w] == 0:
                        heapq.heappush(heap, (-gain(w), w))
        for w in g.succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, (-gain(w), w))
    return np.array(out, dtype=np.int64)


#: Heuristic topological orders by name (each ``problem -> (n,)`` node indices): the stages head
#: chooses among them (:data:`mcm_gym.learn.oneshot.STAGE_ORDERS_ALL`; four for checkpoints before
#: 2026-12-08) and :class:`DPSearch` starts from all eight.
NAMED_ORDERS: dict[str, Callable[[Problem], np.ndarray]] = {
    "graph": lambda problem: np.arange(problem.n, dtype=np.int64),
    "dfs": dfs_order, "asap": level_order, "alap": alap_order,
    "rdfs": rdfs_order, "live": live_order, "critical": critical_order, "asap_time": asap_time_order,
}


# ---------------------------------------------------------------------------- the DP
class StageSplitter:
    """Order-independent tables of one problem; :meth:`split` runs the DP for one order."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        g, hw = problem.graph, problem.hardware
        self.k = hw.num_chips
        self.node_time = problem.cost.node_time  # (n, K) s
        self.mem = problem.mem_demand  # (n,) bytes
        cons = hw.constraints
        self.use_memory = cons.memory
        self.use_neighbor = cons.neighbor_only
        self.use_triangle = cons.triangle and g.triangles.size > 0
        # Link c -> c+1 for each pipeline step (bandwidth bytes/s, latency s); inf/0 if missing.
        lid = {(ln.src, ln.dst): i for i, ln in enumerate(hw.links)}
        self.bw = np.full(self.k, np.inf)
        self.lat = np.zeros(self.k)
        for c in range(self.k - 1):
            i = lid.get((c, c + 1))
            if i is not None:
                self.bw[c], self.lat[c] = hw.link_bandwidth[i], hw.link_latency[i]
        self.serialize = hw.serialize_comm
        self.src, self.dst, self.bytes = g.edge_src, g.edge_dst, g.edge_bytes
        #: True where the DP's cost equals the simulator's (ring, chain); a mesh is approximate.
        self.exact = hw.topology in ("ring", "chain")
        #: Above this many nodes :meth:`split` bisects on the bottleneck instead of building
        #: ``(n+1) x (n+1)`` matrices (8 bytes per entry, several per chip).
        self.matrix_max_nodes = 2000
        #: Where the cut model is approximate (not :attr:`exact`), orders with at most this many
        #: splits into ``m <= K`` stages are split by scoring every split (0: never).
        self.enumerate_max_splits = 2000
        self._lo_mem: dict[tuple[bytes, float], np.ndarray] = {}

    def stage_starts_by_memory(self, order: np.ndarray, cap: float) -> np.ndarray:
        """``lo[j]``: the first position ``i`` such that the stage ``[i, j)`` of ``order`` fits ``cap``
        bytes (its nodes' demand plus each shared tensor they read, once), shape ``(n+1,)``;
        ``lo[j] == j`` when not even the node before ``j`` fits alone. Two pointers, ``O(n + M)``."""
        key = (order.tobytes(), float(cap))
        if key in self._lo_mem:
            return self._lo_mem[key]
        g = self.problem.graph
        n = g.n
        dem = self.mem[order]
        if not g.shared:
            prefix = np.r_[0.0, np.cumsum(dem)]
            lo = np.searchsorted(prefix, prefix - cap * (1 + 1e-12), side="left").astype(np.int64)
        else:
            lo = np.zeros(n + 1, dtype=np.int64)
            held = np.zeros(len(g.shared), dtype=np.int64)  # users of each tensor in the window
            size = g.shared_bytes
            used, i = 0.0, 0
            for j in range(1, n + 1):
                v = int(order[j - 1])
                used += dem[j - 1]
                for t in g.node_shared[v]:
                    held[t] += 1
                    if held[t] == 1:
                        used += size[t]
                while i < j and used > cap * (1 + 1e-12):
                    u = int(order[i])
                    used -= dem[i]
                    for t in g.node_shared[u]:
                        held[t] -= 1
                        if held[t] == 0:
                            used -= size[t]
                    i += 1
                lo[j] = i
        if len(self._lo_mem) > 8:
            self._lo_mem.clear()
        self._lo_mem[key] = lo
        return lo

    def split_bisect(self, order: np.ndarray, pos: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray | None, float]:
        """The DP's split of ``order``, found by bisection on the bottleneck ``T`` (s): for a given
        ``T`` the positions where stage ``c`` can end form a set computed from the previous chip's in
        one vectorised pass (stage times are monotone in both ends, so the feasible starts of a stage
        ending at ``j`` are an interval, found by ``searchsorted``). The result is within a relative
        1e-12 of the exact DP's bottleneck. ``neighbor_only`` / ``triangle`` are not handled here."""
        n, k = self.problem.n, self.k
        prefix = np.vstack([np.zeros((1, k)), np.cumsum(self.node_time[order], axis=0)])  # (n+1, K)
        sram = self.problem.hardware.sram_bytes
        lo_mem = [self.stage_starts_by_memory(order, float(sram[c])) if self.use_memory
                  else np.zeros(n + 1, dtype=np.int64) for c in range(k)]
        ct = np.empty((k, n + 1))
        for c in range(k):
            ct[c] = self.send_time(cut, c)
            ct[c, n] = 0.0  # the last stage sends nothing on
        jj = np.arange(n + 1)

        def reach(t: float) -> list[tuple[np.ndarray, np.ndarray]] | None:
            """Per chip, (ends reachable, earliest start per end) at bottleneck ``t``; None if ``n``
            is not reachable on any number of chips."""
            ends = np.zeros(n + 1, dtype=bool)
            ends[0] = True
            out: list[tuple[np.ndarray, np.ndarray]] = []
            for c in range(min(k, n)):
                ok_cut = np.isfinite(ct[c]) & (ct[c] <= t)
                budget = np.where(ok_cut, t - ct[c] if self.serialize else t, -1.0)
                col = prefix[:, c]
                lo = np.searchsorted(col, col - budget * (1 + 1e-12), side="left")
                lo = np.maximum(lo, lo_mem[c])
                count = np.r_[0, np.cumsum(ends)]  # count[i] = ends reachable before position i
                top = np.maximum(jj, 1)  # starts are < j
                new = ok_cut & (budget >= 0) & (lo < jj) & (count[top] - count[np.minimum(lo, top)] > 0)
                new[0] = False
                out.append((new, lo))
                if new[n]:
                    return out
                if not new.any():
                    return None
                ends = new
            return None

        hi = float(max(prefix[-1].max(), np.nanmax(np.where(np.isfinite(ct), ct, 0.0)))) * 2 + 1e-300
        if self.serialize:
            hi *= 2
        if reach(hi) is None:
            return None, float("inf")
        lo_t = 0.0
        while hi - lo_t > 1e-12 * hi:
            mid = 0.5 * (lo_t + hi)
            if reach(mid) is None:
                lo_t = mid
            else:
                hi = mid
        steps = reach(hi)
        assert steps is not None
        part = np.empty(n, dtype=np.int64)
        j, worst = n, 0.0
        for c in range(len(steps) - 1, -1, -1):
            prev = steps[c - 1][0] if c > 0 else np.eye(1, n + 1, 0, dtype=bool)[0]
            lo = int(steps[c][1][j])
            cand = np.flatnonzero(prev[lo:j]) + lo
            i = int(cand[-1])  # any reachable start works; the latest keeps this stage short
            part[order[i:j]] = c
            seg = float(prefix[j, c] - prefix[i, c])
            worst = max(worst, seg + ct[c, j] if self.serialize else max(seg, ct[c, j]))
            j = i
        assert j == 0
        return part, worst

    def send_time(self, cut: np.ndarray, c: int) -> np.ndarray:
        """Seconds to send ``cut`` bytes (any shape) from chip ``c`` to chip ``c + 1`` over their
        link (bandwidth plus latency; 0 where nothing crosses); from the last chip, inf where something
        would cross (there is no next stage)."""
        if c + 1 >= self.k:
            return np.where(cut > 0, np.inf, 0.0)
        return np.where(cut > 0, cut / self.bw[c] + self.lat[c], 0.0)

    def cut_bytes(self, pos: np.ndarray) -> np.ndarray:
        """Bytes crossing each cut, shape ``(n+1,)``: entry ``j`` is the cut before position ``j``.

        Per producer ``u``, with consumers at sorted positions ``q_1 <= ... <= q_r``, the cut ``j``
        in ``(pos[u], q_r]`` carries the largest edge to a consumer at or after ``j``
        (multicast)."""
        n = len(pos)
        cut = np.zeros(n + 1)
        if self.src.size == 0:
            return cut
        ps, pd = pos[self.src], pos[self.dst]
        idx = np.lexsort((pd, self.src))  # by producer, then consumer position
        src, qd, byt = self.src[idx], pd[idx], self.bytes[idx]
        bounds = np.flatnonzero(np.r_[True, src[1:] != src[:-1], True])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            suffix = np.maximum.accumulate(byt[a:b][::-1])[::-1]  # largest edge at or after each
            start = int(ps[idx[a]]) + 1
            for q, s in zip(qd[a:b].tolist(), suffix.tolist(), strict=True):
                if q + 1 > start and s > 0:
                    cut[start:q + 1] += s
                start = max(start, q + 1)
        return cut

    def shared_memory(self, pos: np.ndarray) -> np.ndarray:
        """Bytes of shared tensors a stage ``[i, j)`` of the order holds, shape ``(n+1, n+1)``: a
        tensor counts once if a user lies in the stage, i.e. its first user at or after ``i`` is
        before ``j``."""
        g = self.problem.graph
        n = g.n
        diff = np.zeros((n + 1, n + 2))
        rows = np.arange(n + 1)
        for t, users in enumerate(g.shared_users):
            q = np.sort(pos[list(users)])
            nxt = np.searchsorted(q, rows)  # index of the first user at or after i
            has = nxt < q.size
            diff[rows[has], q[nxt[has]] + 1] += g.shared_bytes[t]
        return np.cumsum(diff, axis=1)[:, : n + 1]

    def _forbidden(self, pos: np.ndarray, n: int) -> np.ndarray | None:
        """Stages ``[i, j)`` ruled out by neighbor_only / triangle, boolean ``(n+1, n+1)``."""
        rects: list[np.ndarray] = []  # rows (i0, i1, j0, j1), inclusive
        if self.use_neighbor and self.src.size:
            pu, pw = pos[self.src], pos[self.dst]
            keep = pw - pu >= 2  # an edge can only jump over a stage strictly between its ends
            rects.append(np.stack([pu + 1, pw - 1, np.zeros_like(pu), pw], axis=1)[keep])
        if self.use_triangle:
            t = self.problem.graph.triangles
            pu, pv, pw = pos[t[:, 0]], pos[t[:, 1]], pos[t[:, 2]]
            rects.append(np.stack([pu + 1, pv, pv + 1, pw], axis=1))
        if not rects or sum(len(r) for r in rects) == 0:
            return None
        r = np.concatenate(rects)
        diff = np.zeros((n + 2, n + 2), dtype=np.int64)
        np.add.at(diff, (r[:, 0], r[:, 2]), 1)
        np.add.at(diff, (r[:, 1] + 1, r[:, 2]), -1)
        np.add.at(diff, (r[:, 0], r[:, 3] + 1), -1)
        np.add.at(diff, (r[:, 1] + 1, r[:, 3] + 1), 1)
        return diff.cumsum(axis=0).cumsum(axis=1)[: n + 1, : n + 1] > 0

    def split_enumerate(self, order: np.ndarray) -> tuple[np.ndarray | None, float]:
        """Best split of the topological ``order`` by scoring all :func:`split_count` splits with
        the simulator (valid ones only): exact on any topology, for few splits. Ties go to fewer
        stages, then to earlier ends. Returns ``(partition, bottleneck in s)`` or ``(None, inf)``."""
        n = len(order)
        by_pos = []
        for m in range(1, min(self.k, n) + 1):
            starts = np.array(list(itertools.combinations(range(1, n), m - 1)),
                              dtype=np.int64).reshape(math.comb(n - 1, m - 1), m - 1)
            by_pos.append((np.arange(n)[None, :, None] >= starts[:, None, :]).sum(axis=2))
        chips = np.concatenate(by_pos)
        parts = np.empty_like(chips)
        parts[:, order] = chips
        ev, ok = self.problem.evaluate_valid(parts)
        if not ok.any():
            return None, float("inf")
        bottleneck = np.where(ok, ev.bottleneck, np.inf)
        best = int(np.argmin(bottleneck))
        return parts[best].astype(np.int64), float(bottleneck[best])

    def split(self, order: Sequence[int] | np.ndarray) -> tuple[np.ndarray | None, float]:
        """Best split of ``order`` (node indices, topological): ``(partition (n,), predicted
        bottleneck in s)``, or ``(None, inf)`` when no split satisfies the constraints. Above
        :attr:`matrix_max_nodes` nodes (and without ``neighbor_only`` / ``triangle``), by bisection
        on the bottleneck (:meth:`split_bisect`), in ``O(K n log n)`` time and memory linear in ``n``;
        off rings and chains with at most :attr:`enumerate_max_splits` splits, by scoring them all
        (:meth:`split_enumerate`; the bottleneck is then the simulator's)."""
        order = np.asarray(order, dtype=np.int64)
        n = self.problem.n
        if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"order must be a permutation of the {n} node indices")
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        if self.src.size and np.any(pos[self.src] >= pos[self.dst]):
            raise ValueError("order is not topological: some edge goes backwards")
        if not self.exact and 0 < split_count(n, self.k) <= self.enumerate_max_splits:
            return self.split_enumerate(order)
        cut = self.cut_bytes(pos)
        if n > self.matrix_max_nodes and not (self.use_neighbor or self.use_triangle):
            return self.split_bisect(order, pos, cut)
        prefix = np.vstack([np.zeros((1, self.k)), np.cumsum(self.node_time[order], axis=0)])
        mprefix = np.r_[0.0, np.cumsum(self.mem[order])]
        ii, jj = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
        bad = ii >= jj  # stages are non-empty
        forb = self._forbidden(pos, n)
        if forb is not None:
            bad |= forb
        seg_mem = mprefix[None, :] - mprefix[:, None] if self.use_memory else None
        if seg_mem is not None and self.problem.graph.shared:
            seg_mem += self.shared_memory(pos)
        sram = self.problem.hardware.sram_bytes
        best = np.full(n + 1, np.inf)  # best[i]: bottleneck of placing order[:i] on chips 0..c-1
        best[0] = 0.0
        args: list[np.ndarray] = []
        finals: list[float] = []
        for c in range(min(self.k, n)):
            seg = prefix[None, :, c] - prefix[:, None, c]
            ct = self.send_time(cut, c)
            ct[n] = 0.0  # the last stage sends nothing on
            stage = seg + ct[None, :] if self.serialize else np.maximum(seg, ct[None, :])
            mask = bad if seg_mem is None else bad | (seg_mem > sram[c])
            cand = np.where(mask, np.inf, np.maximum(best[:, None], stage))
            arg = np.argmin(cand, axis=0)
            best = cand[arg, np.arange(n + 1)]
            args.append(arg)
            finals.append(float(best[n]))
        m = int(np.argmin(finals)) + 1
        if not np.isfinite(finals[m - 1]):
            return None, float("inf")
        part = np.empty(n, dtype=np.int64)
        j = n
        for c in range(m - 1, -1, -1):
            i = int(args[c][j])
            part[order[i:j]] = c
            j = i
        assert j == 0
        return part, finals[m - 1]


def split_count(n: int, k: int) -> int:
    """How many splits ``n`` ordered nodes have into ``m <= k`` non-empty consecutive stages."""
    return sum(math.comb(n - 1, m - 1) for m in range(1, min(n, k) + 1))


def best_split(problem: Problem,
               order: Sequence[int] | np.ndarray) -> tuple[np.ndarray | None, float]:
    """Best contiguous split of the topological ``order`` into pipeline stages on chips ``0..m-1``:
    ``(partition, predicted bottleneck in s)``, ``(None, inf)`` if none is valid. Exact (the
    prediction equals the simulator's bottleneck) on ring and chain hardware, and elsewhere where the
    order has few splits; see module doc."""
    return StageSplitter(problem).split(order)


# ---------------------------------------------------------------------------- the searcher
class DPSearch(Searcher):
    """Stage DP over several topological orders; every distinct partition counts one evaluation.

    Orders, in turn: the eight of :data:`NAMED_ORDERS` (the graph's own, depth-first, ASAP level,
    ALAP level, then, since 2026-12-08, reverse depth-first, fewest live bytes, critical path,
    earliest start); then random topological
    orders (Kahn with priorities = rank in the best order so far + Gaussian noise of a random
    scale), until the budget is spent or ``max_orders_per_eval * budget`` orders were tried
    (duplicate partitions are not evaluated again). Exact for the orders it tries on ring/chain, and
    on other topologies for orders with few splits (:attr:`StageSplitter.enumerate_max_splits`).
    """

    name = "dp"

    def __init__(self, repair: RepairConfig | None = None, *, max_orders_per_eval: int = 4) -> None:
        super().__init__(repair)
        self.max_orders_per_eval = max_orders_per_eval

    def orders(self, problem: Problem, rng: np.random.Generator,
               best_order: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Orders to try; ``best_order[0]`` (updated by the caller) seeds the random ones."""
        for make in NAMED_ORDERS.values():
            yield make(problem)
        while True:
            yield jittered_order(problem, best_order[0], rng)

    def _run(self, problem: Problem, tr: Tracker, rng: np.random.Generator) -> None:
        splitter = StageSplitter(problem)
        seen: set[bytes] = set()
        seen_orders: set[bytes] = set()
        best_order = [np.arange(problem.n, dtype=np.int64)]
        max_orders = self.max_orders_per_eval * tr.budget + len(NAMED_ORDERS)
        for tried, order in enumerate(self.orders(problem, rng, best_order)):
            if tr.left <= 0 or tried >= max_orders:
                break
            if order.tobytes() in seen_orders:  # e.g. a chain has a single topological order
                continue
            seen_orders.add(order.tobytes())
            part, _ = splitter.split(order)
            if part is None:
                continue
            key = part.tobytes()
            if key in seen:
                continue
            seen.add(key)
            if not problem.is_valid(part):  # only float rounding in memory sums can cause this
                part = self._repair(problem, part)
                if part is None:
                    tr.fail()
                    continue
            before = tr.best_score
            tr.add(part)
            if tr.best_score > before:
                best_order[0] = order
        if tr.best is None and tr.left > 0:  # no order admits a valid split: repair a work split
            part = self._repair(problem, split_by_work(problem))
            tr.add(part) if part is not None else tr.fail()
