"""The one-shot learner on a large instance: zero-shot and fine-tuning seconds and peak memory.

    python benchmarks/bench_learner_scale.py --nodes 2000 --hardware mesh-8x8 --budget 20

A layered DAG of ``--nodes`` nodes (``layered_dag(seed 7, width <= 8)``; or ``--graph``) on ``--hardware``; the shipped
``pretrained`` policy (widened to the hardware's chips where it has more than 8): one zero-shot
partition (``OneShotSearch(train=False)``, budget 1, the policy's load included), then fine-tuning at
``--budget`` evaluations (``OneShotSearch`` defaults, seed 0). Prints one JSON line: seconds, scores,
the fine-tuning temperature and the process's peak resident memory (MB, ``ru_maxrss``). One torch
thread. ``--before PATH`` runs the same against another checkout's package (``git archive <commit>
mcm_gym graphs | tar -x -C PATH``), for a before/after ratio on one machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--graph", default=None, help="a graph id instead of the layered DAG (e.g. zoo://bert-base-v1)")
    ap.add_argument("--hardware", default="mesh-8x8")
    ap.add_argument("--budget", type=int, default=20, help="fine-tuning evaluations")
    ap.add_argument("--before", default=None, metavar="PATH", help="measure the package under PATH instead")
    args = ap.parse_args()
    if args.before:
        sys.path.insert(0, os.path.abspath(args.before))
        os.chdir(args.before)  # its bundled graphs
    import torch

    import mcm_gym
    from mcm_gym.core.hardware import get_hardware
    from mcm_gym.core.problem import Problem
    from mcm_gym.instances.catalog import load_graph
    from mcm_gym.instances.generators import layered_dag
    from mcm_gym.learn.oneshot_search import OneShotSearch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the order-budget warning on 64 chips, expected here
    graph = load_graph(args.graph) if args.graph else layered_dag(7, min_nodes=args.nodes, max_nodes=args.nodes,
                                                                   max_width=8)
    pr = Problem(graph, get_hardware(args.hardware))
    t = time.perf_counter()
    zero = OneShotSearch("pretrained", train=False).search(pr, budget=1, seed=0)
    t_zero = time.perf_counter() - t
    t = time.perf_counter()
    tuned = OneShotSearch("pretrained").search(pr, budget=args.budget, seed=0)
    t_tune = time.perf_counter() - t
    print(json.dumps({"package": os.path.dirname(mcm_gym.__file__), "nodes": pr.n, "chips": pr.num_chips,
                      "zero_shot_s": round(t_zero, 2), "zero_shot_score": round(zero.score, 4),
                      "budget": args.budget, "fine_tune_s": round(t_tune, 2), "fine_tune_score": round(tuned.score, 4),
                      "temperature": tuned.extra.get("temperature"),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "load_average_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
