"""Repair benchmarks (issue 13): Z3 minimal-change repair on BERT-base and on large layered DAGs.

Run: ``python benchmarks/bench_repair.py [--out benchmarks/results/repair.json]`` (about 5 minutes on
2 cores). Prints Markdown tables for BENCHMARKS.md:

* BERT-base (``zoo://bert-base-v1``) on ring-8, mesh-4x4 and mesh-6x6, default ``RepairConfig``:
  candidates with 10% of the nodes of a valid partition (the repaired equal-work split) moved by 1-2
  chips, and uniformly random candidates; 5 seeds each. Status counts, median and max time (s),
  median changes, which engine answered and which budget stopped it.
* Layered DAGs of 1,000, 3,000 and 10,000 nodes (``layered_dag(seed, min_nodes=n, max_nodes=n)``)
  with weights scaled so they fill 60% of ring-64's SRAM, each case in a fresh process: repair time,
  peak resident memory of that process (MB, Python + numpy + Z3), status. Candidates: a valid
  partition (the greedy repair of the equal-work split) with 10% of the nodes moved, and uniformly
  random.

Seeded and single-threaded; timings are wall-clock and depend on the machine's load (recorded).
``--before PATH`` runs the same cases against another checkout of the package (e.g. ``git archive``
of an older commit), for a before/after table on one machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

BERT = "zoo://bert-base-v1"
BERT_HW = ("ring-8", "mesh-4x4", "mesh-6x6")
SEEDS = (0, 1, 2, 3, 4)
SCALE_NODES = (1000, 3000, 10_000)
SCALE_HW = "ring-64"
SCALE_KINDS = ("5% moved", "10% moved", "uniform random")
SCALE_FILL = 0.6  # weights / total SRAM


def moved(base: np.ndarray, k: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    """``base`` with a fraction ``frac`` of its nodes moved by 1 or 2 chips (clipped to 0..k-1)."""
    c = base.copy()
    idx = rng.choice(c.size, max(1, int(frac * c.size)), replace=False)
    c[idx] = np.clip(c[idx] + rng.choice([-2, -1, 1, 2], idx.size), 0, k - 1)
    return c


def record(res: Any, wall: float) -> dict[str, Any]:
    info = res.info or {}
    return {"status": res.status, "changes": res.changes, "method": res.method, "time_s": wall,
            "engine": info.get("engine"), "reason": info.get("reason"), "lower_bound": info.get("lower_bound"),
            "solver_calls": info.get("solver_calls"), "first_solution_s": info.get("first_solution_s")}


def bench_bert(cpsat_seconds: float, cpsat_seeds: int) -> list[dict[str, Any]]:
    import mcm_gym
    from mcm_gym.core import repair_cpsat
    from mcm_gym.search import split_by_work

    graph = mcm_gym.load_graph(BERT)
    rows = []
    for hw in BERT_HW:
        problem = mcm_gym.Problem(graph, mcm_gym.get_hardware(hw))
        base = problem.repair(split_by_work(problem)).partition
        assert base is not None
        k = problem.num_chips
        for kind in ("10% moved", "uniform random"):
            for seed in SEEDS:
                rng = np.random.default_rng(seed)
                cand = moved(base, k, 0.1, rng) if kind == "10% moved" else rng.integers(0, k, problem.n)
                t = time.perf_counter()
                res = problem.repair(cand)
                row = record(res, time.perf_counter() - t)
                row.update(hardware=hw, kind=kind, seed=seed)
                if (kind == "uniform random" and seed < cpsat_seeds and cpsat_seconds > 0
                        and repair_cpsat.available()):  # the reference: CP-SAT's count after its time limit
                    ref = repair_cpsat.repair_cpsat(problem, cand, time_limit=cpsat_seconds, seed=0, workers=1)
                    row.update(cpsat_status=ref.status, cpsat_changes=ref.changes,
                               cpsat_lower_bound=(ref.info or {}).get("lower_bound"), cpsat_s=ref.solve_time)
                rows.append(row)
                print(f"  {hw} {kind} seed {seed}: {row['status']} {row['changes']} changes "
                      f"{row['time_s']:.3f} s ({row['engine']}, {row['reason']})", file=sys.stderr, flush=True)
    return rows


def scaled_dag(n: int, seed: int = 7) -> Any:
    """A layered DAG of ``n`` nodes whose weights fill ``SCALE_FILL`` of ring-64's SRAM (bytes
    rounded down to integers)."""
    import mcm_gym

    g = mcm_gym.layered_dag(seed, min_nodes=n, max_nodes=n)
    hw = mcm_gym.get_hardware(SCALE_HW)
    s = SCALE_FILL * hw.total_sram_bytes / g.total_weight_bytes
    nodes = [mcm_gym.Node(nd.name, nd.op, nd.flops, float(np.floor(nd.weight_bytes * s)), nd.out_bytes)
             for nd in g.nodes]
    return mcm_gym.Graph(nodes, [(e.src, e.dst) for e in g.edges], name=f"layered-dag-{seed}-{n}-scaled")


def scale_case(n: int, kind: str, hw_name: str = SCALE_HW) -> dict[str, Any]:
    """One scale case, in this process (run it in a fresh one: peak memory is per process). The
    first repair (seed 0) is cold: it computes the graph's chip bounds, which a learning loop computes
    once per graph; a second candidate (seed 1) is then repaired warm."""
    import mcm_gym
    from mcm_gym.search import split_by_work

    t = time.perf_counter()
    g = scaled_dag(n)
    problem = mcm_gym.Problem(g, mcm_gym.get_hardware(hw_name))
    k = problem.num_chips
    base = None
    if kind.endswith("% moved"):
        base = mcm_gym.greedy_repair(problem, split_by_work(problem))
        assert base is not None
    setup = time.perf_counter() - t

    def candidate(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if base is not None:
            return moved(base, k, float(kind.split("%")[0]) / 100, rng)
        return rng.integers(0, k, problem.n)

    t = time.perf_counter()
    res = problem.repair(candidate(0))
    row = record(res, time.perf_counter() - t)
    cand = candidate(1)
    t = time.perf_counter()
    warm = problem.repair(cand)
    row["warm"] = record(warm, time.perf_counter() - t)
    row.update(nodes=g.n, edges=g.num_edges, kind=kind, hardware=hw_name, setup_s=setup, peak_rss_mb=peak_rss_mb())
    return row


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` (Linux; reset by ``exec``, unlike
    ``ru_maxrss``, which a child inherits from its parent), else ``ru_maxrss``."""
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_scale(pythonpath: str | None) -> list[dict[str, Any]]:
    rows = []
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    for hw_name, n in [(SCALE_HW, n) for n in SCALE_NODES] + [("mesh-8x8", 10_000)]:
        for kind in SCALE_KINDS:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--scale-case", str(n), kind, hw_name],
                                  capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode == 0:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
            else:  # e.g. Z3 out of memory while parsing: the process dies
                row = {"nodes": n, "kind": kind, "hardware": hw_name,
                       "status": f"process died (exit {proc.returncode})", "time_s": time.perf_counter() - t,
                       "stderr": proc.stderr[-500:]}
            rows.append(row)
            print(f"  {hw_name} {n} nodes {kind}: {row.get('status')} {row.get('time_s', 0):.2f} s "
                  f"{row.get('peak_rss_mb', 0):.0f} MB", file=sys.stderr, flush=True)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for hw in BERT_HW:
        for kind in ("10% moved", "uniform random"):
            rs = [r for r in rows if r["hardware"] == hw and r["kind"] == kind]
            statuses = [r["status"] for r in rs]
            times = [r["time_s"] for r in rs]
            changes = [r["changes"] for r in rs if r["changes"] is not None]
            reasons = [r["reason"] for r in rs if r["reason"]]
            engines = [f"{r['engine']}" + ("" if r["method"] == "z3" else f" -> {r['method']}") for r in rs]
            ratios = [r["changes"] / r["cpsat_changes"] for r in rs if r.get("cpsat_changes") and r["changes"]]
            out.append({"hardware": hw, "kind": kind, "candidates": len(rs),
                        "max_ratio_to_cpsat": max(ratios) if ratios else None,
                        "cpsat_changes": [r.get("cpsat_changes") for r in rs if "cpsat_changes" in r],
                        "status_counts": {s: statuses.count(s) for s in sorted(set(statuses))},
                        "median_s": float(np.median(times)), "max_s": float(np.max(times)),
                        "median_changes": float(np.median(changes)) if changes else None,
                        "changes": [r["changes"] for r in rs],
                        "engines": {e: engines.count(e) for e in sorted(set(engines))},
                        "reasons": {x: reasons.count(x) for x in sorted(set(reasons))}})
    return out


def machine() -> dict[str, Any]:
    import z3

    return {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
            "load_average_1min": os.getloadavg()[0], "python": platform.python_version(), "numpy": np.__version__,
            "z3": z3.get_full_version(), "date": datetime.date.today().isoformat()}


def fmt_counts(d: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in d.items()) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--before", default=None, metavar="PATH",
                    help="directory holding another mcm_gym package to measure instead (put first on PYTHONPATH)")
    ap.add_argument("--only", choices=["bert", "scale"], default=None, help="run one of the two parts")
    ap.add_argument("--cpsat-seconds", type=float, default=60.0,
                    help="CP-SAT's time limit per uniformly random BERT candidate, the reference count (0: skip)")
    ap.add_argument("--cpsat-seeds", type=int, default=3, help="how many of the seeds get the CP-SAT reference")
    ap.add_argument("--scale-case", nargs=3, metavar=("NODES", "KIND", "HW"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scale_case:
        print(json.dumps(scale_case(int(args.scale_case[0]), args.scale_case[1], args.scale_case[2])))
        return
    if args.before:
        sys.path.insert(0, os.path.abspath(args.before))
    import mcm_gym

    t0 = time.perf_counter()
    scale_rows = [] if args.only == "bert" else bench_scale(os.path.abspath(args.before) if args.before else None)
    bert_rows = [] if args.only == "scale" else bench_bert(args.cpsat_seconds, args.cpsat_seeds)
    res = {"package": os.path.dirname(os.path.abspath(mcm_gym.__file__)), **machine(),
           "wall_s": time.perf_counter() - t0, "bert": summarize(bert_rows) if bert_rows else [],
           "bert_rows": bert_rows, "scale": scale_rows}
    print(f"## Repair: {BERT} (311 nodes), default RepairConfig, {len(SEEDS)} seeds per row "
          f"({res['machine']}, load {res['load_average_1min']:.2f})\n")
    print("| hardware | candidates | statuses | median time | max time | changes | CP-SAT's changes "
          f"({args.cpsat_seconds:g} s) | max ratio | engine (-> method) | budget that stopped it |")
    print("|---|---|---|---:|---:|---|---|---:|---|---|")
    for s in res["bert"]:
        cp = ", ".join(str(x) for x in s["cpsat_changes"]) or "-"
        ratio = f"{s['max_ratio_to_cpsat']:.3f}" if s["max_ratio_to_cpsat"] else "-"
        print(f"| {s['hardware']} | {s['kind']} | {fmt_counts(s['status_counts'])} | {s['median_s'] * 1e3:,.0f} ms "
              f"| {s['max_s'] * 1e3:,.0f} ms | {', '.join(str(x) for x in s['changes'])} | {cp} | {ratio} "
              f"| {fmt_counts(s['engines'])} | {fmt_counts(s['reasons'])} |")
    print(f"\n## Repair at scale: layered DAGs, weights filling {SCALE_FILL:.0%} of {SCALE_HW}'s SRAM "
          "(cold: first repair of the graph; warm: the next candidate)\n")
    print("| hardware | nodes | edges | candidate | status | method (engine) | changes (lower bound) | cold time "
          "| warm: status, changes, time | peak memory | reason |")
    print("|---|---:|---:|---|---|---|---:|---:|---|---:|---|")
    for r in res["scale"]:
        if "method" not in r:
            print(f"| {r.get('hardware', SCALE_HW)} | {r['nodes']:,} | | {r['kind']} | {r['status']} | | "
                  f"| {r['time_s']:.1f} s | | | |")
            continue
        w = r["warm"]
        print(f"| {r['hardware']} | {r['nodes']:,} | {r['edges']:,} | {r['kind']} | {r['status']} "
              f"| {r['method']} ({r['engine']}) | {r['changes']} ({r['lower_bound']}) | {r['time_s']:.2f} s "
              f"| {w['status']}, {w['changes']}, {w['time_s']:.2f} s | {r['peak_rss_mb']:,.0f} MB "
              f"| {r['reason'] or ''} |")
    print(f"\ntotal {res['wall_s']:.0f} s")
    if args.out:
        from mcm_gym._io import atomic_write_text

        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
