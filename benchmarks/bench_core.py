"""Core benchmarks: batched cost evaluation and Z3 repair on BERT-base / ring-8.

Run: ``python benchmarks/bench_core.py [--out benchmarks/results/core.json]``. Prints a Markdown
table (medians over repeats, measured in one run) for BENCHMARKS.md. Single-threaded on purpose.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import mcm_gym  # noqa: E402
from mcm_gym import RepairConfig  # noqa: E402
from mcm_gym._io import atomic_write_text  # noqa: E402
from mcm_gym.search import split_by_work  # noqa: E402


def noisy(base: np.ndarray, k: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    """``base`` with a fraction ``frac`` of its nodes moved by 1 or 2 chips (clipped)."""
    c = base.copy()
    idx = rng.choice(c.size, max(1, int(frac * c.size)), replace=False)
    c[idx] = np.clip(c[idx] + rng.choice([-2, -1, 1, 2], idx.size), 0, k - 1)
    return c


def bench_eval(problem: mcm_gym.Problem, base: np.ndarray, batch: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    k = problem.num_chips
    sets = {
        "noisy (5% of nodes moved)": np.stack([noisy(base, k, 0.05, rng) for _ in range(batch)]),
        "uniform random": rng.integers(0, k, (batch, problem.n)),
    }
    out = {}
    for name, parts in sets.items():
        problem.evaluate(parts[:8])  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            problem.evaluate(parts)
            times.append(time.perf_counter() - t)
        with_valid = []
        for _ in range(repeats):
            t = time.perf_counter()
            problem.scores(parts)
            with_valid.append(time.perf_counter() - t)
        out[name] = {"partitions_per_s": batch / float(np.median(times)),
                     "partitions_per_s_with_validity": batch / float(np.median(with_valid))}
    return out


def naive_onehot_repair(problem: mcm_gym.Problem, cand: np.ndarray, timeout_s: float) -> tuple[float, int]:
    """The plain encoding, for comparison: one-hot Bools for every (node, chip), z3 Python API,
    z3.Optimize with soft constraints, no preprocessing. Returns (seconds, changes or -1)."""
    import z3

    t = time.perf_counter()
    g, hw = problem.graph, problem.hardware
    k = hw.num_chips
    x = [[z3.Bool(f"x{v}_{c}") for c in range(k)] for v in range(g.n)]
    opt = z3.Optimize()
    opt.set("timeout", int(timeout_s * 1000))
    for v in range(g.n):
        opt.add(z3.PbEq([(x[v][c], 1) for c in range(k)], 1))
    chip = [z3.Sum([z3.If(x[v][c], c, 0) for c in range(k)]) for v in range(g.n)]
    for u, v in zip(g.edge_src.tolist(), g.edge_dst.tolist(), strict=True):
        opt.add(chip[u] <= chip[v])
    w = [int(b) for b in problem.mem_demand]
    for c in range(k):
        opt.add(z3.PbLe([(x[v][c], w[v]) for v in range(g.n) if w[v] > 0], int(hw.sram_bytes[c])))
    used = [z3.Or([x[v][c] for v in range(g.n)]) for c in range(k)]
    for c in range(k - 1):
        opt.add(z3.Implies(used[c + 1], used[c]))
    for v in range(g.n):
        opt.add_soft(x[v][int(cand[v])], 1)
    r = opt.check()
    el = time.perf_counter() - t
    if r != z3.sat:
        return el, -1
    m = opt.model()
    return el, sum(1 for v in range(g.n) if not z3.is_true(m.eval(x[v][int(cand[v])])))


def bench_repair(problem: mcm_gym.Problem, base: np.ndarray, n: int, naive_n: int) -> dict:
    rng = np.random.default_rng(1)
    k = problem.num_chips
    cands = [noisy(base, k, 0.05, rng) for _ in range(n)]
    cfg = RepairConfig()
    times, statuses, changes = [], [], []
    for c in cands:
        r = problem.repair(c, cfg)
        times.append(r.solve_time)
        statuses.append(r.status)
        changes.append(r.changes)
    naive_times, naive_changes = [], []
    for c in cands[:naive_n]:
        t, ch = naive_onehot_repair(problem, c, timeout_s=60)
        naive_times.append(t)
        naive_changes.append(ch)
    return {
        "candidates": n,
        "median_s": float(np.median(times)), "p90_s": float(np.percentile(times, 90)),
        "max_s": float(np.max(times)),
        "status_counts": {s: statuses.count(s) for s in sorted(set(statuses))},
        "median_changes": float(np.median([c for c in changes if c is not None])),
        "naive_onehot_median_s": float(np.median(naive_times)) if naive_times else None,
        "naive_candidates": naive_n,
        "naive_same_changes": all(a == b for a, b in zip(naive_changes, changes, strict=False)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--graph", default="zoo://bert-base-v1")
    ap.add_argument("--hardware", default="ring-8")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--repairs", type=int, default=30)
    ap.add_argument("--naive", type=int, default=5, help="candidates also run with the naive encoding")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    problem = mcm_gym.Problem(mcm_gym.load_graph(args.graph), mcm_gym.get_hardware(args.hardware))
    base = problem.repair(split_by_work(problem)).partition
    assert base is not None
    res = {"graph": args.graph, "hardware": args.hardware, "nodes": problem.n,
           "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
           "python": platform.python_version(), "numpy": np.__version__,
           "eval": bench_eval(problem, base, args.batch, args.repeats),
           "repair": bench_repair(problem, base, args.repairs, args.naive)}
    print(f"## {args.graph} on {args.hardware} ({problem.n} nodes), batch {args.batch}, "
          f"{args.repeats} repeats\n")
    print("| evaluation | partitions/s (costs) | partitions/s (costs + validity) |")
    print("|---|---:|---:|")
    for name, r in res["eval"].items():
        print(f"| {name} | {r['partitions_per_s']:,.0f} | {r['partitions_per_s_with_validity']:,.0f} |")
    rp = res["repair"]
    print(f"\n| repair ({rp['candidates']} noisy candidates) | median | p90 | max | statuses | "
          f"median changes |\n|---|---:|---:|---:|---|---:|")
    print(f"| mcm_gym.core.repair | {rp['median_s'] * 1e3:.0f} ms | {rp['p90_s'] * 1e3:.0f} ms | "
          f"{rp['max_s'] * 1e3:.0f} ms | {rp['status_counts']} | {rp['median_changes']:.0f} |")
    if rp["naive_onehot_median_s"] is not None:
        print(f"| naive one-hot z3.Optimize, no preprocessing ({rp['naive_candidates']} candidates) | "
              f"{rp['naive_onehot_median_s'] * 1e3:.0f} ms | | | same optimum: {rp['naive_same_changes']} | |")
        print(f"\nspeed-up of the median: {rp['naive_onehot_median_s'] / rp['median_s']:.1f}x")
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
