"""How fast the one-shot learner trains when the repair sits in its loop (issue 13).

Run: ``python benchmarks/bench_oneshot_speed.py [--hardware mesh-4x4] [--samples 128]``: trains the
one-shot policy from scratch on BERT-base (``train_oneshot``, default config, seed 0) for a fixed
number of repaired samples and prints the wall time (s), samples/s and the best score. An untrained
policy emits candidates far from any valid partition, so this times the repair of far candidates.
``--before PATH`` runs the same against another checkout's package (``git archive <commit> mcm_gym
graphs | tar -x -C PATH``), for a before/after ratio on one machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hardware", default="mesh-4x4")
    ap.add_argument("--samples", type=int, default=128, help="repaired samples to train on")
    ap.add_argument("--before", default=None, metavar="PATH", help="measure the package under PATH instead")
    args = ap.parse_args()
    if args.before:
        sys.path.insert(0, os.path.abspath(args.before))
        os.chdir(args.before)  # its bundled graphs
    import mcm_gym
    from mcm_gym.learn.oneshot_train import OneShotTrainConfig, train_oneshot

    t = time.perf_counter()
    run = train_oneshot([("zoo://bert-base-v1", args.hardware)], OneShotTrainConfig(max_samples=args.samples, seed=0))
    wall = time.perf_counter() - t
    print(json.dumps({"package": os.path.dirname(mcm_gym.__file__), "hardware": args.hardware,
                      "samples": run.samples, "wall_s": round(wall, 2), "samples_per_s": round(run.samples / wall, 3),
                      "best_score": [round(x, 4) for x in run.best_score], "load_average_1min": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
