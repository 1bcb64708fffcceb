"""Seconds for one zero-shot partition (load the policy, one forward pass, greedy candidate, repair).

    python benchmarks/bench_zeroshot.py --graph zoo://bert-base-v1 --hardware ring-8 --repeats 20 [--polish 49]

Prints the first call in this process (numba compilation and lazy imports included), the median and
max of ``--repeats`` further calls, and the ``mcm-gym partition --policy`` command's whole run
(interpreter start-up and imports included) measured as a subprocess. ``--polish N``: each call also
polishes the zero-shot partition with up to N evaluations (``mcm-gym partition --polish N``);
``--split dp``: the policy's greedy order split by the stage DP (``mcm-gym partition --split dp``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch

from mcm_gym.cli import evaluation_count
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.learn.oneshot_search import OneShotSearch
from mcm_gym.learn.oneshot_train import SPLITS
from mcm_gym.search.polish import polish_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default="zoo://bert-base-v1")
    ap.add_argument("--hardware", default="ring-8")
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--polish", type=evaluation_count, default=0, help="also polish with up to N evaluations (0: none)")
    ap.add_argument("--split", choices=SPLITS, default="head", help="how the greedy candidate ends its stages")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    problem = Problem(load_graph(args.graph), get_hardware(args.hardware))
    times, score = [], 0.0
    for _ in range(args.repeats + 1):
        t0 = time.perf_counter()
        res = OneShotSearch(args.checkpoint, train=False, split=args.split).search(problem, budget=1, seed=0)
        score = polish_result(problem, res, args.polish).score if args.polish else res.score
        times.append(time.perf_counter() - t0)
    warm = np.asarray(times[1:])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mcm_gym.cli", "partition", "--graph", args.graph, "--hardware",
                    args.hardware, "--policy", args.checkpoint, "--polish", str(args.polish), "--split", args.split],
                   check=True, capture_output=True)
    cli = time.perf_counter() - t0
    what = args.checkpoint + (f" split={args.split}" if args.split != "head" else "")
    what += f"+polish {args.polish}" if args.polish else ""
    print(f"{args.graph} / {args.hardware}, {what}: score {score:.4f}; first call {times[0]:.3f} s; "
          f"next {args.repeats}: median {np.median(warm):.4f} s, max {warm.max():.4f} s; "
          f"`mcm-gym partition --policy` whole process {cli:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
