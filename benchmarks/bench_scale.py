"""Scale-out measurements (issue 7): vectorised env stepping, parallel repairs, a Ray bench sweep.

Needs the ``ray`` extra and ``stable-baselines3``::

    python benchmarks/bench_scale.py all            # everything below, in order
    python benchmarks/bench_scale.py envs           # (a) env steps/s, DummyVecEnv vs SubprocVecEnv, 1 and 2 envs
    python benchmarks/bench_scale.py repairs        # (b) repaired BERT evaluations/s, 1 and 2 Ray CPUs
    python benchmarks/bench_scale.py sweep [--out results/scale]   # (c) 6 zoo graphs x 2 presets x 3 methods x 3 seeds

Every section prints a Markdown table. Timings are wall-clock and depend on the machine's load; the
script prints ``os.cpu_count()`` and the 1-minute load average beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV_CASES = [("tiny://attention-v1", "ring-4"), ("zoo://bert-base-v1", "ring-8")]
SWEEP_GRAPHS = ["zoo://resnet-50-v1", "zoo://mobilenet-v2-v1", "zoo://distilbert-v1", "zoo://gpt2-v1",
                "zoo://vit-base-v1", "zoo://t5-small-encoder-v1"]
SWEEP_HW = ["ring-8", "mesh-4x4"]
SWEEP_METHODS = ["balanced", "greedy", "dp"]
SWEEP_SEEDS = [0, 1, 2]


def _machine() -> str:
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min)"


def _make_env(graph: str, hardware: str) -> Any:
    def thunk() -> Any:
        import gymnasium as gym

        import mcm_gym  # noqa: F401  (registers MCMPartition-v0)

        return gym.make("MCMPartition-v0", graph=graph, hardware=hardware)

    return thunk


def env_steps_per_s(graph: str, hardware: str, kind: str, n_envs: int, seconds: float = 8.0,
                    seed: int = 0) -> tuple[float, float]:
    """(env steps/s summed over envs, episodes/s) stepping ``n_envs`` copies with random masked
    actions (masks from ``env_method("action_masks")``) for about ``seconds`` of wall time."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    cls = SubprocVecEnv if kind == "subproc" else DummyVecEnv
    venv = cls([_make_env(graph, hardware) for _ in range(n_envs)])
    rng = np.random.default_rng(seed)
    try:
        venv.seed(seed)
        venv.reset()
        steps = episodes = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            masks = venv.env_method("action_masks")
            acts = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
            _, _, dones, _ = venv.step(acts)
            steps += n_envs
            episodes += int(np.sum(dones))
        dt = time.perf_counter() - t0
    finally:
        venv.close()
    return steps / dt, episodes / dt


def section_envs(seconds: float = 8.0) -> str:
    lines = [f"env steps/s, random masked actions ({_machine()}), {seconds:.0f} s per cell", "",
             "| graph | hardware | vec env | envs | steps/s | episodes/s |", "|---|---|---|---:|---:|---:|"]
    for graph, hw in ENV_CASES:
        for kind in ("dummy", "subproc"):
            for n in (1, 2):
                sps, eps = env_steps_per_s(graph, hw, kind, n, seconds)
                lines.append(f"| {graph} | {hw} | {kind} | {n} | {sps:,.0f} | {eps:.2f} |")
                print(lines[-1], flush=True)
    return "\n".join(lines)


_PROBLEMS: dict[tuple[str, str], Any] = {}


def repair_chunk(graph: str, hardware: str, seed: int, count: int, noise: float) -> tuple[int, int, float]:
    """Repair ``count`` noisy candidates (the equal-work split with a ``noise`` fraction of nodes on
    a random chip) and score them; (repaired valid, evaluated, seconds). The problem is cached per
    worker process, so only the first task in a process pays for loading the graph."""
    from mcm_gym import Problem, get_hardware, load_graph
    from mcm_gym.search import split_by_work

    key = (graph, hardware)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = Problem(load_graph(graph), get_hardware(hardware))
    pr = _PROBLEMS[key]
    rng = np.random.default_rng(seed)
    base = split_by_work(pr)
    t0 = time.perf_counter()
    ok = 0
    for _ in range(count):
        cand = base.copy()
        flip = rng.random(pr.n) < noise
        cand[flip] = rng.integers(0, pr.num_chips, int(flip.sum()))
        p = pr.repair(cand).partition
        if p is not None and pr.scores(p)[0] > 0:
            ok += 1
    return ok, count, time.perf_counter() - t0


def repairs_per_s(cpus: int, tasks: int = 8, per_task: int = 10, graph: str = "zoo://bert-base-v1",
                  hardware: str = "ring-8", noise: float = 0.05) -> tuple[float, int]:
    """(repaired evaluations/s, evaluations) with a local Ray cluster of ``cpus`` CPUs (one task per
    CPU at a time), after one warm-up task per CPU that loads the problem."""
    import ray

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(repair_chunk)
        ray.get([task.remote(graph, hardware, 10_000 + i, 1, noise) for i in range(cpus)])  # warm-up
        t0 = time.perf_counter()
        res = ray.get([task.remote(graph, hardware, i, per_task, noise) for i in range(tasks)])
        dt = time.perf_counter() - t0
    finally:
        ray.shutdown()
    n = sum(r[1] for r in res)
    return n / dt, n


def section_repairs() -> str:
    lines = [f"repaired evaluations/s, BERT-base on ring-8, candidates = equal-work split with 5% of nodes on a "
             f"random chip ({_machine()})", "", "| workers | how | evaluations | repaired evaluations/s |",
             "|---:|---|---:|---:|"]
    ok, n, dt = repair_chunk("zoo://bert-base-v1", "ring-8", 10_000, 1, 0.05)  # load the problem
    ok, n, dt = repair_chunk("zoo://bert-base-v1", "ring-8", 0, 40, 0.05)
    lines.append(f"| 1 | in process, no Ray | {n} | {n / dt:.2f} |")
    print(lines[-1], flush=True)
    for cpus in (1, 2):
        rate, n = repairs_per_s(cpus, tasks=4 * cpus, per_task=10)
        lines.append(f"| {cpus} | Ray tasks (num_cpus={cpus}) | {n} | {rate:.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def section_sweep(out: Path, budget: int = 30, num_cpus: int | None = None) -> str:
    from mcm_gym.bench import format_table, run_bench, run_bench_ray, summarize

    out.mkdir(parents=True, exist_ok=True)
    csv_ray, csv_serial = out / "results_ray.csv", out / "results_serial.csv"
    for p in (csv_ray, csv_serial):
        p.unlink(missing_ok=True)
    n_cells = len(SWEEP_GRAPHS) * len(SWEEP_HW) * len(SWEEP_METHODS) * len(SWEEP_SEEDS)
    t0 = time.perf_counter()
    rows = run_bench_ray(SWEEP_GRAPHS, SWEEP_HW, SWEEP_METHODS, SWEEP_SEEDS, budget, out_csv=csv_ray,
                         num_cpus=num_cpus)
    t_ray = time.perf_counter() - t0
    t0 = time.perf_counter()
    serial = run_bench(SWEEP_GRAPHS, SWEEP_HW, SWEEP_METHODS, SWEEP_SEEDS, budget, out_csv=csv_serial)
    t_serial = time.perf_counter() - t0
    timing = ("wall_time", "trace_time")
    strip = [[{k: v for k, v in r.items() if k not in timing} for r in rs] for rs in (rows, serial)]
    same = strip[0] == strip[1]
    cmd = ("run_bench_ray(" + repr(SWEEP_GRAPHS) + ", " + repr(SWEEP_HW) + ", " + repr(SWEEP_METHODS)
           + f", {SWEEP_SEEDS}, budget={budget}, out_csv='{csv_ray}', num_cpus={num_cpus or os.cpu_count()})")
    head = [f"Ray sweep: {n_cells} cells, budget {budget} ({_machine()})", "", f"    {cmd}", "",
            f"Ray local cluster ({num_cpus or os.cpu_count()} CPUs, start-up included): {t_ray:.1f} s wall; "
            f"serial run_bench: {t_serial:.1f} s wall; rows identical except wall_time and trace_time: {same}; "
            f"failed cells: {len(rows.failures)}", "", ""]
    return "\n".join(head) + format_table(summarize(rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["all", "envs", "repairs", "sweep"], nargs="?", default="all")
    ap.add_argument("--out", type=Path, default=Path("results/scale"))
    ap.add_argument("--seconds", type=float, default=8.0, help="wall time per env-stepping cell")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--num-cpus", type=int, default=None, help="Ray CPUs for the sweep (default: all cores)")
    a = ap.parse_args(argv)
    if a.what in ("all", "envs"):
        print(section_envs(a.seconds), "\n", flush=True)
    if a.what in ("all", "repairs"):
        print(section_repairs(), "\n", flush=True)
    if a.what in ("all", "sweep"):
        print(section_sweep(a.out, a.budget, a.num_cpus), flush=True)


if __name__ == "__main__":
    main()
