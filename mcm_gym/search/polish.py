"""Local polish of a valid partition: steepest descent over one-node moves to a neighbouring chip.

A valid partition under ``dataflow`` and ``contiguous`` is a contiguous split of *some* topological
order (sort the nodes by chip). The stage DP and the ``stages`` head split a few fixed orders, so
their ceiling is the best split of those orders; a one-node move changes the order, which is how a
polished candidate reaches partitions no order tried contains.

Each round scores every valid move (a node shifted one chip down or up; validity checks are free,
scoring a move is one evaluation), takes the best and stops at a local optimum or when ``budget``
evaluations are spent. "Best" is the smallest bottleneck (s), ties broken by the leximax of the
per-resource times: the chip and link times (s) sorted in descending order, compared in turn. The
tie-break lets a move that unloads the second-slowest resource count as progress when the slowest
one does not change (a plain score climb stops there). The moves of nodes on the slowest chips come
first, so a round cut short by the budget scores the likeliest ones.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mcm_gym.core.cost import Evaluation
from mcm_gym.core.problem import Problem
from mcm_gym.search.base import SearchResult

__all__ = ["PolishResult", "leximax_key", "one_node_moves", "polish", "polish_result", "RELATIVE_TOLERANCE"]

#: Two times (s) closer than this share of the larger are equal in the comparison of keys.
RELATIVE_TOLERANCE = 1e-9
#: Rows of ``n`` node entries built at a time while listing moves (bounded memory on large graphs).
_MOVE_ENTRIES = 1 << 22


@dataclass
class PolishResult:
    """What :func:`polish` did: the polished partition and its score, the start's score, the moves
    scored (``evaluations``) and taken (``moves``), and why it stopped (``"local optimum"``: no valid
    one-node move improves; ``"budget"``: the evaluations ran out first)."""

    partition: np.ndarray
    score: float
    start_score: float
    evaluations: int
    moves: int
    stop: str

    def summary(self) -> dict[str, Any]:
        """What a result's ``extra["polish"]`` says: ``start_score``, ``score``, ``evaluations``,
        ``moves``, ``stop``."""
        return {"start_score": self.start_score, "score": self.score, "evaluations": self.evaluations,
                "moves": self.moves, "stop": self.stop}


def leximax_key(ev: Evaluation) -> np.ndarray:
    """Per partition ``(B, 1 + K + L)``: the bottleneck (s), then the chip and link times (s) sorted in
    descending order. Smaller in lexicographic order is better; the first entry alone decides the
    score (so the key also fits a cost model that serialises compute and transfer)."""
    times = np.concatenate([ev.chip_time, ev.link_time], axis=1)
    return np.concatenate([ev.bottleneck[:, None], -np.sort(-times, axis=1)], axis=1)


def _lex_better(keys: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Which rows of ``keys`` ``(M, D)`` are lexicographically smaller than ``ref`` ``(D,)``, entries
    within :data:`RELATIVE_TOLERANCE` counting as equal."""
    diff = keys - ref[None, :]
    scale = np.maximum(np.abs(keys), np.abs(ref)[None, :])
    sig = np.abs(diff) > RELATIVE_TOLERANCE * scale
    first = np.argmax(sig, axis=1)
    return sig.any(axis=1) & (diff[np.arange(len(keys)), first] < 0)


def one_node_moves(problem: Problem, partition: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Every valid partition ``(M, n)`` that differs from ``partition`` in one node moved one chip
    down or up (the first ``limit`` of them if given). Nodes on the chips with the most compute time
    (s) come first (links are not ranked), then by node index, the move down before the move up.
    With ``dataflow`` on, it is checked on the edges first (only a node whose producers all sit below
    its chip can move down, one whose consumers all sit above it can move up); every constraint is
    then checked by :meth:`Problem.is_valid`, a chunk of rows at a time, stopping once ``limit`` are
    found."""
    p = _partition(problem, partition)
    out: list[np.ndarray] = []
    found = 0
    for rows in _valid_chunks(problem, p):
        if limit is not None and found >= limit:
            break
        out.append(rows)
        found += len(rows)
    moves = np.concatenate(out, axis=0) if out else np.zeros((0, problem.n), dtype=np.int64)
    return moves if limit is None else moves[:limit]


def _partition(problem: Problem, partition: np.ndarray) -> np.ndarray:
    """``partition`` as an int64 array of ``n`` chip indices (ValueError naming what is wrong)."""
    arr = np.asarray(partition)
    if arr.shape != (problem.n,):
        raise ValueError(f"partition has shape {arr.shape}, the graph has {problem.n} nodes")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"partition must hold integer chip indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _valid_chunks(problem: Problem, p: np.ndarray) -> Iterator[np.ndarray]:
    """The valid one-node moves of ``p`` in :func:`one_node_moves`' order, as chunks of at most
    ``_MOVE_ENTRIES // n`` rows (so memory stays bounded on large graphs; a chunk may be empty)."""
    g, k, n = problem.graph, problem.num_chips, problem.n
    down, up = p > 0, p < k - 1
    if problem.hardware.constraints.dataflow:
        lo = np.full(n, -1, dtype=np.int64)  # highest producer chip
        hi = np.full(n, k, dtype=np.int64)  # lowest consumer chip
        np.maximum.at(lo, g.edge_dst, p[g.edge_src])
        np.minimum.at(hi, g.edge_src, p[g.edge_dst])
        down &= lo < p
        up &= hi > p
    load = problem.evaluate(p[None]).chip_time[0]
    nodes = np.argsort(-load[p], kind="stable")  # chips with the most compute first, then node index
    pos, side = np.nonzero(np.stack([down[nodes], up[nodes]], axis=1))  # (n, 2): move down, move up
    node, delta = nodes[pos], np.where(side == 0, -1, 1)
    step = max(1, _MOVE_ENTRIES // max(n, 1))
    for i in range(0, len(node), step):
        rows = np.repeat(p[None, :], min(step, len(node) - i), axis=0)
        rows[np.arange(len(rows)), node[i:i + step]] += delta[i:i + step]
        yield rows[np.asarray(problem.is_valid(rows), dtype=bool)]


def polish(problem: Problem, start: np.ndarray, budget: int,
           on_evaluated: Callable[[np.ndarray, np.ndarray], object] | None = None) -> PolishResult:
    """Steepest descent from the valid partition ``start`` (module doc), scoring at most ``budget``
    moves (``budget >= 0``). ``on_evaluated(partitions, scores)`` is called with each batch of scored
    moves ``(M, n)`` and their scores ``(M,)`` (all valid). The result is never worse than ``start``;
    the same inputs give the same result. Memory: a chunk of moves at a time (``_MOVE_ENTRIES``
    node entries), whatever the budget."""
    cur = _partition(problem, start)
    budget = operator.index(budget)
    if budget < 0:
        raise ValueError(f"budget must be >= 0 evaluations, got {budget}")
    if not problem.is_valid(cur):
        names = "; ".join(str(v) for v in problem.check(cur)[:3])
        raise ValueError(f"polish needs a valid start partition: {names}")
    ev = problem.evaluate(cur[None])
    key, score = leximax_key(ev)[0], float(ev.score[0])
    start_score, used, taken = score, 0, 0
    while True:
        best: tuple[np.ndarray, np.ndarray, float] | None = None  # the round's best: row, key, score
        more = False  # a valid move was left unscored
        for rows in _valid_chunks(problem, cur):
            if len(rows) == 0:
                continue
            if used >= budget:
                more = True
                break
            take = rows[: budget - used]
            more = len(take) < len(rows)
            used += len(take)
            ev = problem.evaluate(take)
            if on_evaluated is not None:
                on_evaluated(take, ev.score)
            keys = leximax_key(ev)
            # never a larger bottleneck, not even within the tolerance: the score cannot drift down
            ok = np.flatnonzero(_lex_better(keys, key) & (keys[:, 0] <= key[0]))
            if len(ok):
                j = ok[np.lexsort(keys[ok].T[::-1])[0]]  # smallest key; the first of equal ones
                if best is None or tuple(keys[j]) < tuple(best[1]):
                    best = (take[j].copy(), keys[j], float(ev.score[j]))
            if more:
                break
        if best is None:
            stop = "budget" if more else "local optimum"  # cut short: an unscored move might still improve
            break
        cur, key, score = best
        taken += 1
    return PolishResult(partition=cur, score=score, start_score=start_score, evaluations=used, moves=taken,
                        stop=stop)


def polish_result(problem: Problem, res: SearchResult, budget: int) -> SearchResult:
    """``res`` (any method's result on ``problem``) with its partition polished by at most ``budget``
    more evaluations: method ``"<method>+polish"``, the evaluations, trace and wall time (s) extended,
    and ``extra["polish"]`` saying what the polish did (:meth:`PolishResult.summary`: ``start_score``,
    ``score`` (the polish's own; the result keeps the better of it and ``res.score``), ``evaluations``,
    ``moves``, ``stop``). A result without a valid partition is returned as it is, with ``extra["polish"]``
    saying why nothing was polished."""
    if res.partition is None or not problem.is_valid(res.partition):
        return replace(res, extra={**res.extra, "polish": {"skipped": "no valid partition to polish"}})
    t0 = time.perf_counter()
    trace, times = list(res.trace), list(res.trace_time)
    best = res.trace[-1] if res.trace else res.score
    t_end = times[-1] if times else res.wall_time

    def record(_moves: np.ndarray, scores: np.ndarray) -> None:
        nonlocal best
        now = t_end + time.perf_counter() - t0
        for s in scores:
            best = max(best, float(s))
            trace.append(best)
            times.append(now)

    out = polish(problem, res.partition, budget, on_evaluated=record)
    # moves that only broke ties (same bottleneck, lighter runners-up) are kept too: they were taken
    better = out.moves > 0 and out.score >= res.score
    part = out.partition if better else res.partition
    new = SearchResult.of(problem, f"{res.method}+polish", res.seed, part, max(out.score, res.score), trace,
                          res.wall_time + time.perf_counter() - t0, times)
    new.extra = {**res.extra, "polish": out.summary()}
    if better and "proven_lower_bound" in new.extra:  # a proof (exact): the gap of the new bottleneck
        lb = float(new.extra["proven_lower_bound"])  # s
        new.extra["gap"] = new.bottleneck / lb - 1.0 if new.bottleneck > lb > 0 else 0.0
        new.extra["proven_optimal"] = bool(new.extra["gap"] <= 1e-9)
    return new
