"""Optional compiled kernels for the cost model (numba, the ``fast`` extra); numpy stays the reference.

:func:`chip_loads` sums node times (s) and memory (bytes, each shared tensor once per chip) per chip.
:func:`link_loads` computes the same multicast link loads (bytes per link) as
:meth:`mcm_gym.core.cost.CostModel.link_loads`'s numpy path, one partition at a time in machine
code: for each cumulative group of a producer's edges (see ``CostModel._init_multicast``) it walks
the links of each edge's route once and adds the group's weight to every link not yet counted for
that group. Work per partition: the number of links on the routes of the edges that leave their
chip, instead of the numpy path's fixed passes over bit masks. On a ring (every route runs forward
along the ring, :func:`ring_links`) a group covers the links from its producer's chip to its
farthest consumer, added as a range: work per partition is edges + groups + chips.

Enabled when numba imports and the environment variable ``MCM_GYM_NUMBA`` is not ``0``. The first
call compiles the kernel (about a second; cached on disk by numba where the package folder is
writable).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

__all__ = ["available", "enabled", "chip_loads", "graph_violations", "link_loads", "ring_links", "route_lists"]


def available() -> bool:
    """Whether numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    """Whether the cost model uses the compiled kernel: numba is installed and ``MCM_GYM_NUMBA`` is not ``0``."""
    return os.environ.get("MCM_GYM_NUMBA", "1") != "0" and available()


def route_lists(routes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Routes ``(K, K, L)`` bool as CSR: ``ptr`` of shape ``(K * K + 1,)`` and the link indices."""
    k = routes.shape[0]
    flat = routes.reshape(k * k, -1)
    counts = flat.sum(axis=1)
    ptr = np.zeros(k * k + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    links = np.nonzero(flat)[1].astype(np.int64)  # row-major: grouped by route, in link order
    return ptr, links


@cache
def _compile() -> Callable[..., None]:
    """Compiled once per process, on first use."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(p: Any, src: Any, dst: Any, starts: Any, weight: Any, ptr: Any, links: Any, k: int,
               out: Any) -> None:  # pragma: no cover - compiled
        b_count = p.shape[0]
        groups = weight.shape[0]
        stamp = np.zeros(out.shape[1], dtype=np.int64)
        tick = 0
        for b in range(b_count):
            row = p[b]
            acc = out[b]
            for g in range(groups):
                tick += 1
                w = weight[g]
                for j in range(starts[g], starts[g + 1]):
                    a = row[src[j]]
                    c = row[dst[j]]
                    if a == c:
                        continue
                    r = a * k + c
                    for t in range(ptr[r], ptr[r + 1]):
                        lk = links[t]
                        if stamp[lk] != tick:
                            stamp[lk] = tick
                            acc[lk] += w

    return kernel  # type: ignore[no-any-return]


def link_loads(p: np.ndarray, src: np.ndarray, dst: np.ndarray, starts: np.ndarray, weight: np.ndarray,
               ptr: np.ndarray, links: np.ndarray, k: int, num_links: int) -> np.ndarray:
    """Bytes per link, shape ``(B, L)``, for partitions ``p`` ``(B, n)``: the groups' edges
    ``src``/``dst`` (group ``g`` owns ``starts[g]:starts[g + 1]``), their weights (bytes) and the
    routes as CSR (:func:`route_lists`)."""
    out = np.zeros((p.shape[0], num_links))
    _compile()(np.ascontiguousarray(p, dtype=np.int64), src, dst, starts, weight, ptr, links, int(k), out)
    return out


@cache
def _compile_chip() -> Callable[..., None]:
    """Compiled once per process, on first use."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(p: Any, node_time: Any, mem: Any, sh_ptr: Any, sh_nodes: Any, sh_bytes: Any, chip_time: Any,
               memory: Any) -> None:  # pragma: no cover - compiled
        b_count, n = p.shape
        k = chip_time.shape[1]
        stamp = np.zeros(k, dtype=np.int64)
        tick = 0
        for b in range(b_count):
            row = p[b]
            ct = chip_time[b]
            mm = memory[b]
            for v in range(n):
                c = row[v]
                ct[c] += node_time[v, c]
                mm[c] += mem[v]
            for s in range(sh_bytes.shape[0]):
                tick += 1
                for j in range(sh_ptr[s], sh_ptr[s + 1]):
                    c = row[sh_nodes[j]]
                    if stamp[c] != tick:
                        stamp[c] = tick
                        mm[c] += sh_bytes[s]

    return kernel  # type: ignore[no-any-return]


def chip_loads(p: np.ndarray, node_time: np.ndarray, mem: np.ndarray, sh_ptr: np.ndarray, sh_nodes: np.ndarray,
               sh_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chip time (s) and memory (bytes) per chip, each ``(B, K)``, for partitions ``p`` ``(B, n)``:
    ``node_time`` ``(n, K)``, ``mem`` ``(n,)`` own bytes per node, and the shared tensors as CSR
    (tensor ``s`` is read by ``sh_nodes[sh_ptr[s]:sh_ptr[s + 1]]``, ``sh_bytes[s]`` bytes)."""
    b, k = p.shape[0], node_time.shape[1]
    chip_time, memory = np.zeros((b, k)), np.zeros((b, k))
    _compile_chip()(np.ascontiguousarray(p, dtype=np.int64), node_time, mem, sh_ptr, sh_nodes, sh_bytes,
                 chip_time, memory)
    return chip_time, memory


def ring_links(routes: np.ndarray) -> np.ndarray | None:
    """``ring[c]``: the link from chip ``c`` to chip ``c + 1 (mod K)``, shape ``(K,)``, when every route
    ``a -> b`` is exactly the links ``ring[a], ring[a + 1], ...`` up to chip ``b`` (a ring); else None."""
    k = routes.shape[0]
    if k < 2:
        return None
    ring = np.full(k, -1, dtype=np.int64)
    for c in range(k):
        hop = np.flatnonzero(routes[c, (c + 1) % k])
        if hop.size != 1:
            return None
        ring[c] = hop[0]
    want = np.zeros_like(routes, dtype=bool)
    for a in range(k):
        for d in range(1, k):
            want[a, (a + d) % k] = want[a, (a + d - 1) % k]
            want[a, (a + d) % k, ring[(a + d - 1) % k]] = True
    return ring if np.array_equal(want, routes.astype(bool)) else None


@cache
def _compile_ring() -> Callable[..., None]:
    """Compiled once per process, on first use."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(p: Any, src: Any, dst: Any, starts: Any, weight: Any, ring: Any, out: Any) -> None:  # pragma: no cover
        b_count = p.shape[0]
        k = ring.shape[0]
        groups = weight.shape[0]
        diff = np.zeros(2 * k + 1)
        for b in range(b_count):
            row = p[b]
            diff[:] = 0.0
            for g in range(groups):
                s0 = starts[g]
                a = row[src[s0]]
                far = 0
                for j in range(s0, starts[g + 1]):
                    d = row[dst[j]] - a
                    if d < 0:
                        d += k
                    if d > far:
                        far = d
                if far > 0:
                    diff[a] += weight[g]
                    diff[a + far] -= weight[g]
            acc = 0.0
            for pos in range(2 * k):
                acc += diff[pos]
                out[b, ring[pos % k]] += acc

    return kernel  # type: ignore[no-any-return]


def ring_link_loads(p: np.ndarray, src: np.ndarray, starts: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                    ring: np.ndarray, num_links: int) -> np.ndarray:
    """:func:`link_loads` on a ring (``ring`` from :func:`ring_links`); every group's edges share one
    producer."""
    out = np.zeros((p.shape[0], num_links))
    _compile_ring()(np.ascontiguousarray(p, dtype=np.int64), src, dst, starts, weight, ring, out)
    return out


@cache
def _compile_violations() -> Callable[..., None]:
    """Compiled once per process, on first use."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(p: Any, src: Any, dst: Any, tri: Any, k: int, out: Any) -> None:  # pragma: no cover - compiled
        b_count = p.shape[0]
        used = np.zeros(k, dtype=np.bool_)
        for b in range(b_count):
            row = p[b]
            back = 0
            skip = 0
            for j in range(src.shape[0]):
                d = row[dst[j]] - row[src[j]]
                if d < 0:
                    back += 1
                elif d > 1:
                    skip += 1
            used[:] = False
            top = -1
            for v in range(row.shape[0]):
                used[row[v]] = True
                if row[v] > top:
                    top = row[v]
            empty = 0
            for c in range(top):
                if not used[c]:
                    empty += 1
            spread = 0
            for t in range(tri.shape[0]):
                a, m, z = row[tri[t, 0]], row[tri[t, 1]], row[tri[t, 2]]
                if a < m and m < z:
                    spread += 1
            out[b, 0] = back
            out[b, 1] = skip
            out[b, 2] = empty
            out[b, 3] = spread

    return kernel  # type: ignore[no-any-return]


def graph_violations(p: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, k: int) -> np.ndarray:
    """Per partition of ``p`` ``(B, n)``: edges going back (``dataflow``), edges skipping a chip
    (``neighbor_only``), empty chips below the highest used one (``contiguous``) and triangles spread
    over three increasing chips (``triangle``); shape ``(B, 4)``, int64."""
    out = np.zeros((p.shape[0], 4), dtype=np.int64)
    tri = np.ascontiguousarray(triangles, dtype=np.int64).reshape(-1, 3)
    _compile_violations()(np.ascontiguousarray(p, dtype=np.int64), src, dst, tri, int(k), out)
    return out
