"""Order DP: a fast repair heuristic for candidates far from any valid partition (no solver).

Every valid partition under ``dataflow`` is non-decreasing along some topological order. For one
order, :func:`order_dp` finds the non-decreasing labelling that keeps the most candidate chips, with
each chip's nodes a contiguous, non-empty run of the order that fits its SRAM (bytes, shared tensors
counted once per chip) and chips used from 0 upwards: valid under ``dataflow``, ``memory`` and
``contiguous`` by construction. It is a DP over (chip, position), ``O(K n log n)`` numpy work with a
sparse table for the window maxima.

:func:`order_repair` runs it on a topological order that prefers lower candidate chips, then on
orders drawn around the best labelling so far (a seeded mix of it and the candidate, with noise),
each result improved by single moves of a node to its candidate chip where that stays valid. It
returns the best valid partition found (fewest changes), or None. Deterministic for given inputs
unless a deadline cuts the restarts short (reported).

On BERT-base with uniformly random candidates it lands within 0-2% of the proven minimum on ring-8
and at or below what Z3 reaches in 2-3 s on mesh-4x4 / mesh-6x6, in 0.1-0.4 s (BENCHMARKS.md, issue
13). Partitions it returns are checked with the problem's own validity check; ``neighbor_only`` and
``triangle`` are not built in, so under those a result that breaks them is dropped.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["order_dp", "improve_moves", "order_repair"]

_NEG = -(1 << 40)  # "no labelling": far below any count of kept nodes


def _windows(dem: np.ndarray, shared: list[tuple[int, ...]] | None, shared_bytes: np.ndarray,
             cap: float) -> np.ndarray:
    """``lo`` of shape ``(n + 1,)``: the run ``order[j:i]`` fits ``cap`` bytes exactly when ``j >= lo[i]``
    (``lo[i] == i`` when node ``i - 1`` does not fit alone)."""
    n = dem.size
    limit = cap  # as the checker: memory <= SRAM
    if not shared:
        s = np.concatenate([[0.0], np.cumsum(dem)])
        lo = np.searchsorted(s, s - limit, side="left")
        return np.minimum(lo, np.arange(n + 1)).astype(np.int64)
    lo = np.zeros(n + 1, dtype=np.int64)
    count: dict[int, int] = {}
    j, used = 0, 0.0
    for i in range(n):
        used += float(dem[i])
        for t in shared[i]:
            count[t] = count.get(t, 0) + 1
            if count[t] == 1:
                used += float(shared_bytes[t])
        while used > limit and j <= i:
            used -= float(dem[j])
            for t in shared[j]:
                count[t] -= 1
                if count[t] == 0:
                    used -= float(shared_bytes[t])
            j += 1
        lo[i + 1] = j
    return lo


def order_dp(problem: Any, cand: np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """The partition, non-decreasing along the topological ``order``, that keeps the most nodes on
    their candidate chip (see the module doc); shape ``(n,)``, or None if no such partition fits."""
    g, hw = problem.graph, problem.hardware
    n, k = g.n, hw.num_chips
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    use_mem = hw.constraints.memory
    dem = np.asarray(problem.mem_demand, dtype=np.float64)[order] if use_mem else np.zeros(n)
    shared = [g.node_shared[v] for v in order.tolist()] if use_mem and len(g.shared) else None
    cpos = np.asarray(cand)[order]
    levels = max(1, int(n).bit_length())
    log2 = np.zeros(n + 2, dtype=np.int64)
    log2[2:] = np.floor(np.log2(np.arange(2, n + 2))).astype(np.int64)
    pos = np.arange(1, n + 1)
    back = np.zeros((k, n + 1), dtype=np.int32)
    prev = np.full(n + 1, _NEG, dtype=np.int64)
    prev[0] = 0
    best_val, best_c = _NEG, -1
    windows: dict[float, np.ndarray] = {}
    for c in range(k):
        cap = float(hw.sram_bytes[c]) if use_mem else float("inf")
        if cap not in windows:
            windows[cap] = _windows(dem, shared, g.shared_bytes, cap)
        lo = windows[cap][1:]  # for i = 1..n: runs order[j:i] with lo <= j <= i - 1
        prefix = np.concatenate([[0], np.cumsum(cpos == c)])
        val = np.where(prev > _NEG, prev - prefix, _NEG)
        # Sparse table of (max, argmax) over val.
        table, arg = [val], [np.arange(n + 1)]
        for lev in range(1, levels):
            half = 1 << (lev - 1)
            a, b = table[-1][:-half], table[-1][half:]
            ia, ib = arg[-1][:-half], arg[-1][half:]
            take_b = b > a
            table.append(np.where(take_b, b, a))
            arg.append(np.where(take_b, ib, ia))
        r = pos - 1
        ok = lo <= r
        length = np.where(ok, r - lo + 1, 1)
        level = log2[length]
        left = np.where(ok, lo, 0)
        right = np.where(ok, r - np.left_shift(1, level) + 1, 0)
        best = np.full(n, _NEG, dtype=np.int64)
        at = np.zeros(n, dtype=np.int64)
        for lv in np.unique(level[ok]).tolist():
            sel = ok & (level == lv)
            va, vb = table[lv][left[sel]], table[lv][right[sel]]
            ia, ib = arg[lv][left[sel]], arg[lv][right[sel]]
            take_b = vb > va
            best[sel] = np.where(take_b, vb, va)
            at[sel] = np.where(take_b, ib, ia)
        cur = np.full(n + 1, _NEG, dtype=np.int64)
        good = best > _NEG
        cur[1:][good] = prefix[1:][good] + best[good]
        back[c, 1:] = at
        if cur[n] > best_val:
            best_val, best_c = int(cur[n]), c
        prev = cur
    if best_c < 0:
        return None
    labels = np.empty(n, dtype=np.int64)
    i = n
    for c in range(best_c, -1, -1):
        j = int(back[c, i])
        labels[j:i] = c
        i = j
    out = np.empty(n, dtype=np.int64)
    out[order] = labels
    return out


def improve_moves(problem: Any, cand: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``part`` (valid under dataflow, memory, contiguous) with nodes moved, one at a time, to their
    candidate chip wherever the move keeps those three constraints, until no move applies."""
    g, hw = problem.graph, problem.hardware
    k = hw.num_chips
    p = part.copy()
    use_mem = hw.constraints.memory
    dem = np.asarray(problem.mem_demand, dtype=np.float64)
    sram = hw.sram_bytes * (1 - 1e-9)  # a hair below SRAM: float sums drift as nodes move
    mem = problem.cost.chip_memory(p[None])[0].astype(np.float64) if use_mem else np.zeros(k)
    held: list[dict[int, int]] = [{} for _ in range(k)]  # chip -> shared tensor -> users there
    if use_mem and len(g.shared):
        for v in range(g.n):
            for t in g.node_shared[v]:
                held[p[v]][t] = held[p[v]].get(t, 0) + 1
    count = np.bincount(p, minlength=k)
    top = int(p.max()) if p.size else 0
    preds, succs, node_shared, shared_bytes = g.preds, g.succs, g.node_shared, g.shared_bytes
    cand_l = [int(x) for x in cand]
    changed = True
    while changed:
        changed = False
        for v in np.flatnonzero(p != cand).tolist():
            c, a = cand_l[v], int(p[v])
            # Contiguous: no chip above the used ones + 1, and a chip left empty only if it was the top one
            # and the node moves down.
            if c < 0 or c >= k or c > top + 1 or (count[a] == 1 and not (a == top and c < a)):
                continue
            if any(p[u] > c for u in preds[v]) or any(p[w] < c for w in succs[v]):
                continue
            if use_mem:
                add = dem[v] + sum(float(shared_bytes[t]) for t in node_shared[v] if not held[c].get(t))
                if mem[c] + add > sram[c]:
                    continue
                drop = dem[v] + sum(float(shared_bytes[t]) for t in node_shared[v] if held[a].get(t) == 1)
                mem[c] += add
                mem[a] -= drop
                for t in node_shared[v]:
                    held[c][t] = held[c].get(t, 0) + 1
                    held[a][t] -= 1
            p[v] = c
            count[a] -= 1
            count[c] += 1
            if count[a] == 0:  # a was the top chip: the one below it is used
                top -= 1
            top = max(top, c)
            changed = True
    return p


def order_repair(problem: Any, cand: np.ndarray, *, restarts: int = 32, seed: int = 0,
                 deadline: float | None = None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The best valid partition (fewest changes from ``cand``) over ``1 + restarts`` orders (see the
    module doc), and ``info``: ``orders`` tried, ``seconds``, ``stopped`` ("time" when ``deadline``, a
    ``time.perf_counter()`` value, cut the restarts short), ``dropped`` (results the validity check
    refused: under ``neighbor_only`` / ``triangle``, which the DP does not build in; otherwise none
    is expected, and a count shows a slip). Deterministic unless the deadline cuts."""
    t0 = time.perf_counter()
    g = problem.graph
    cand = np.asarray(cand, dtype=np.int64)
    rng = np.random.default_rng(seed)
    best: np.ndarray | None = None
    guide: np.ndarray | None = None  # the latest labelling at least as good as the best: orders are drawn around it
    best_changes = g.n + 1
    tried, stopped, dropped = 0, "", 0
    for it in range(restarts + 1):
        if deadline is not None and it > 0 and time.perf_counter() >= deadline:
            stopped = "time"
            break
        if it == 0 or guide is None:
            key = cand.astype(np.float64) + (rng.random(g.n) if it else 0.0)
        else:
            key = np.where(rng.random(g.n) < 0.3, cand, guide) + rng.random(g.n)
        p = order_dp(problem, cand, g.priority_order(key))
        tried += 1
        if p is None:
            continue
        q = improve_moves(problem, cand, p)
        for r in (q, p):
            changes = int((r != cand).sum())
            if changes > best_changes:
                break
            if not problem.is_valid(r):
                dropped += 1
                continue
            if changes < best_changes:
                best, best_changes = r, changes
            guide = r
            break
    return best, {"orders": tried, "seconds": time.perf_counter() - t0, "stopped": stopped, "dropped": dropped}
