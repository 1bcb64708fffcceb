"""Write, and with ``--execute`` run, the course notebooks from the cells below.

One command regenerates the whole course with its outputs, figures included::

    .venv/bin/python notebooks/make_notebooks.py --execute

It writes every ``notebooks/NN_*.ipynb`` from the cells in this file, executes each one top to bottom
in a fresh kernel (nbclient, working directory ``notebooks/``), saves it with its outputs, and writes
the measured running times into the table of ``docs/notebooks.md``. Re-run it whenever the cost
model, the searches, the shipped policy or this file change: ``tests/test_notebooks.py`` executes
every notebook again and fails when the committed outputs differ from a fresh run (scores compared
with a tolerance of one unit in the last printed digit; wall-clock times are not compared).

Without ``--execute`` the notebooks are written without outputs (quick, for reviewing the cells).
``--only 03`` restricts either mode to the notebooks whose name starts with ``03``.

Conventions the staleness test relies on (cell metadata ``tags``):

* ``figure``: the cell shows a figure, so its committed and fresh outputs must hold an ``image/png``;
* ``timing``: the cell prints wall-clock times: its numbers are not compared, its text is;
* ``training``: the cell prints results of a training run: as for ``timing``, its text is compared
  and its numbers are not. A seeded run repeats exactly on one machine, but PPO's floating point
  differs between CPU types and a few thousand steps amplify it: notebook 04's 6,000-step run scored
  0.6309 at 4,096 steps where it was generated and 0.5223 on an AMD EPYC (2026-12-02), far beyond
  any tolerance that would still mean something.

In Markdown tables, columns whose header names a time (``wall time (s)``) are not compared either.
Prose never quotes a number the code computes: the outputs carry them, so the text cannot go stale.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
DOCS_PAGE = HERE.parent / "docs" / "notebooks.md"
TABLE_BEGIN = "<!-- notebooks table: written by notebooks/make_notebooks.py --execute -->"
TABLE_END = "<!-- end of notebooks table -->"
KERNEL_TIMEOUT = 300  # s per cell


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(dedent(text).strip())


def code(src: str, *tags: str) -> nbformat.NotebookNode:
    cell = new_code_cell(dedent(src).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def header(title: str, minutes: str, prerequisites: str, goals: list[str]) -> nbformat.NotebookNode:
    lines = [f"# {title}", "", f"*Study time: about {minutes} minutes.* Prerequisites: {prerequisites}", "",
             "## Learning goals", "", "After this notebook you can:", ""]
    lines += [f"- {g}" for g in goals]
    return new_markdown_cell("\n".join(lines))


def exercises(number: int, solutions: str, items: list[str]) -> nbformat.NotebookNode:
    lines = ["## Exercises", "",
             f"Try them before you look: the solutions are in [`solutions/{solutions}`](solutions/{solutions}), "
             "one section per exercise, each runnable on its own.", ""]
    for i, text in enumerate(items, 1):
        lines += [f"**Exercise {number}.{i}.** {dedent(text).strip()}", ""]
    return new_markdown_cell("\n".join(lines).strip())


# ------------------------------------------------------------------------------------------ 1
NB01 = [
    header("1. The problem, and why valid partitions are sparse", "30",
           "Python and numpy. No machine learning yet.",
           ["say what a *partition* of a computation graph over the chips of a multi-chip module (MCM) is, "
            "and why the slowest chip or link (the *bottleneck*) sets the pipeline's throughput;",
            "compute a partition's score `lower_bound / bottleneck` and read its per-chip breakdown;",
            "name the hardware constraints (`dataflow`, `memory`, `contiguous`) and find which ones a "
            "partition breaks;",
            "explain with a counting argument why valid partitions become vanishingly rare as graphs and "
            "modules grow;",
            "step through the environment `MCMPartition-v0` by hand and read its action mask."]),
    md("""
    ## A graph and a module

    A model is a graph of operations. An MCM runs it as a **pipeline**: chip 0 runs the first operations
    and streams tensors to chip 1, and so on, while the next input already enters chip 0. A **partition**
    gives every node a chip.

    We start on a tiny graph: one transformer encoder layer (15 nodes) on a 4-chip ring. Units
    throughout: FLOPs, bytes, seconds."""),
    code("""
    import numpy as np

    import mcm_gym

    graph = mcm_gym.load_graph("tiny://attention-v1")
    hw = mcm_gym.get_hardware("ring-4")
    problem = mcm_gym.Problem(graph, hw)
    print(graph)
    print(hw)
    for i, node in enumerate(graph.nodes):
        print(f"{i:2d} {node.name:8s} {node.op:11s} {node.flops / 1e9:6.2f} GFLOP  "
              f"{node.weight_bytes / 2**20:5.1f} MiB weights")
    print("SRAM per chip:", hw.sram_bytes[0] / 2**20, "MiB")"""),
    md("""
    ## Scoring a partition

    `problem.evaluate` simulates the pipeline: each chip's compute time, each link's transfer time, and
    the **bottleneck**, the largest of them (seconds per input). Throughput is `1 / bottleneck`. The
    **score** is `lower_bound / bottleneck`, where the lower bound is the physical limit (all work spread
    perfectly over all chips, links for free): 1 would be perfect, and scores compare across graphs and
    hardware.

    First, everything on chip 0."""),
    code("""
    everything_on_chip0 = np.zeros(graph.n, dtype=int)
    row = problem.evaluate(everything_on_chip0).row()
    print("score", round(row["score"], 4), "| bottleneck", row["bottleneck"], "s")
    print("violations:")
    for v in problem.check(everything_on_chip0):
        print("  ", v)"""),
    md("""
    The simulator still scores it, but the hardware would refuse it: the weights do not fit one chip's
    SRAM (`memory`). Leaving chips 1 to 3 empty is allowed: `contiguous` only forbids an empty chip
    *inside* the pipeline. Let us spread the nodes by hand, in topological order, a few per chip."""),
    code("""
    by_hand = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
    row = problem.evaluate(by_hand).row()
    print("valid:", problem.is_valid(by_hand), "| score:", round(row["score"], 4))
    print("chip compute time (us):", np.round(np.array(row["chip_time"]) * 1e6, 2))
    print("link time (us):        ", np.round(np.array(row["link_time"]) * 1e6, 2))
    print("SRAM used (%):         ", np.round(100 * np.array(row["memory"]) / hw.sram_bytes, 1))"""),
    code("""
    import matplotlib.pyplot as plt

    chips = np.arange(hw.num_chips)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].bar(chips - 0.2, np.array(row["chip_time"]) * 1e6, width=0.4, label="compute")
    ax[0].bar(chips + 0.2, np.array(row["link_time"]) * 1e6, width=0.4, label="outgoing link")
    ax[0].axhline(row["bottleneck"] * 1e6, color="k", ls="--", lw=1, label="bottleneck")
    ax[0].axhline(row["lower_bound"] * 1e6, color="g", ls=":", lw=1, label="lower bound")
    ax[0].set(xlabel="chip", ylabel="time per input (us)", title="Where the time goes", xticks=chips)
    ax[0].set_ylim(0, 1.45 * row["bottleneck"] * 1e6)
    ax[0].legend(fontsize=7, ncol=2, loc="upper center")
    ax[1].bar(chips, 100 * np.array(row["memory"]) / hw.sram_bytes, label="weights")
    ax[1].axhline(100, color="r", lw=1, label="SRAM capacity")
    ax[1].set_ylim(0, 125)
    ax[1].legend(fontsize=7, loc="upper left")
    ax[1].set(xlabel="chip", ylabel="SRAM used (% of capacity)", title="Weights per chip", xticks=chips)
    plt.tight_layout()
    plt.show()""", "figure"),
    md("""
    ## Valid partitions are sparse

    Draw partitions uniformly at random and count the valid ones. `violation_counts` tells which
    constraint each one breaks."""),
    code("""
    rng = np.random.default_rng(0)
    samples = rng.integers(0, hw.num_chips, size=(100_000, graph.n))
    print("valid:", problem.is_valid(samples).sum(), "of", len(samples))
    for name, c in problem.violation_counts(samples).items():
        print(f"  {name:10s} satisfied by {np.mean(c == 0):.3%}")"""),
    md("""
    Why so few? Take the simplest graph, a chain of `n` nodes. The `dataflow` rule says tensors only
    flow forward, so along the chain the chip numbers never decrease. Such sequences are chosen by where
    the `K - 1` chip boundaries go: there are `C(n + K - 1, n)` of them among `K^n` partitions. The
    fraction falls exponentially in `n`, and memory and contiguity remove more on top.

    Check the formula on the bundled six-node chain, then plot it."""),
    code("""
    from math import comb, log10

    chain = mcm_gym.Problem(mcm_gym.load_graph("tiny://chain-v1"), hw)
    draws = rng.integers(0, 4, size=(200_000, chain.n))
    sampled = np.mean(chain.violation_counts(draws)["dataflow"] == 0)
    print(f"chain of {chain.n} on 4 chips: formula {comb(chain.n + 3, chain.n) / 4**chain.n:.4f}, "
          f"sampled {sampled:.4f}")"""),
    code("""
    def log10_monotone_fraction(n, k):
        return log10(comb(n + k - 1, n)) - n * log10(k)


    ns = np.arange(1, 321)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in (2, 4, 8):
        ax.plot(ns, [log10_monotone_fraction(n, k) for n in ns], label=f"K = {k} chips")
    ax.axvline(311, color="grey", ls=":", lw=1)
    ax.text(305, -150, "BERT-base (311 nodes)", rotation=90, ha="right", va="center", fontsize=8)
    ax.set(xlabel="nodes in a chain (n)", ylabel="log10(fraction satisfying dataflow)",
           title="Random partitions that respect the dataflow rule")
    ax.legend()
    plt.show()
    print(f"BERT-base on 8 chips, dataflow alone, as a chain: 10^{log10_monotone_fraction(311, 8):.0f}")""",
         "figure"),
    md("""
    BERT-base is not a chain (its attention blocks branch), which makes dataflow rarer still. On the real
    graph, on the paper-like 8-chip ring:"""),
    code("""
    bert = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
    uniform = rng.integers(0, 8, size=(200_000, bert.n))
    print(bert.graph)
    print("uniformly random BERT partitions valid:", bert.is_valid(uniform).sum(), "of", len(uniform))
    for name, c in bert.violation_counts(uniform[:1000]).items():
        print(f"  {name:10s} violated by {np.mean(c > 0):.1%} (mean {c.mean():.1f} violations each)")"""),
    md("""
    This is the paper's starting point: a learner that proposes whole partitions at random would almost
    never see a valid one, so it would almost never see a reward. Notebook 3 shows the remedy (repair by
    a solver); notebook 2 shows how searches cope.

    ## The environment, by hand

    `MCMPartition-v0` asks for one node's chip per step, in topological order. The action mask says which
    chips the constraints still allow for the current node, judged locally. At the end the candidate is
    repaired (notebook 3) and the reward is the score."""),
    code("""
    import gymnasium as gym

    env = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4", render_mode="ansi")
    obs, info = env.reset(seed=0)
    print({k: v.shape for k, v in obs.items()})
    print("first mask:", obs["action_mask"])
    done = False
    while not done:
        allowed = np.flatnonzero(obs["action_mask"])
        action = allowed[-1]  # a naive policy: always the last allowed chip
        obs, reward, done, truncated, info = env.step(action)
    print(env.render())
    print("reward", round(reward, 4), "| repair:", info["repair_status"], info["changes"], "changes")"""),
    code("""
    img = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4", render_mode="rgb_array")
    img.reset(seed=0)
    for a in by_hand:
        img.step(a)
    plt.figure(figsize=(10, 5))
    plt.imshow(img.render())
    plt.axis("off")
    plt.title("The hand-made partition as the environment renders it")
    plt.show()""", "figure"),
    exercises(1, "01_the_problem_and_sparsity.py", [
        """Enumerate all `4**6` partitions of `tiny://chain-v1` on `ring-4` (`itertools.product`) and
        count the valid ones exactly. How many satisfy each constraint on its own? Does the dataflow
        count match the formula?""",
        """By brute force over the same enumeration, find the best valid partition of the chain. What is
        its score, and is its bottleneck a chip or a link?""",
        """Write a policy for the sequential environment that stays on the current chip until it holds a
        fair share (`1 / K`) of the graph's total compute, then moves on to the next allowed chip (keep
        the sums yourself with `problem.cost.node_time[v, chip]`, in seconds). Compare its reward on
        `tiny://attention-v1` / `ring-4` and on BERT-base / `ring-8` with the last-allowed-chip policy
        above."""]),
]


# ------------------------------------------------------------------------------------------ 2
NB02 = [
    header("2. Searches and their optimality gaps", "30",
           "notebook 1.",
           ["run the package's search methods (`random`, `sa`, `greedy`, `dp`) at an equal budget of "
            "evaluated partitions and read a best-score-against-budget plot;",
            "read the leaderboard: per instance, the best known partition and the best proven bound;",
            "compute a result's *gap to best* and *gap to bound*, and say what a zero gap to the bound "
            "proves;",
            "prove an optimum on a small instance with the exact search;",
            "find where the strong baseline (the stage DP) falls short: the `hard` suite;",
            "polish a result with local moves that leave the DP's node orders, and count those moves "
            "as evaluations."]),
    md("""
    ## Methods at an equal budget

    BERT-base (311 operations from `torch.export` of the real model) on the paper-like 8-chip ring.
    `random` and `sa` (simulated annealing) are the paper's baselines: each candidate is repaired by the
    solver before it is scored. `greedy` and `dp` are what a compiler engineer would try (`dp` is
    PipeDream/Alpa-style stage construction: it cuts the topological order into contiguous stages). Every
    partition a method scores counts against the same budget, so the comparison is fair in evaluations;
    the wall-time column is there for information (it is not compared between runs)."""),
    code("""
    import numpy as np

    import mcm_gym
    from mcm_gym.bench import format_table, run_bench, summarize
    from mcm_gym.search import known_searchers

    print("search methods:", ", ".join(known_searchers()))
    rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], ["random", "sa", "greedy", "dp"], seeds=[0, 1], budget=12)
    print(format_table(summarize(rows)))"""),
    code("""
    import json

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method in ["random", "sa", "greedy", "dp"]:
        traces = [json.loads(r["trace"]) for r in rows if r["method"] == method]
        n = max(len(t) for t in traces)
        mean = np.mean([t + [t[-1]] * (n - len(t)) for t in traces], axis=0)
        ax.step(np.arange(1, n + 1), mean, where="post", label=method)
    ax.set(xlabel="evaluated partitions (budget used)", ylabel="best score so far (mean of 2 seeds)",
           title="BERT-base on ring-8: best score against budget")
    ax.legend()
    plt.show()""", "figure"),
    md("""
    ## The leaderboard: best known and proven bound

    A score alone does not say how much room is left. The leaderboard (`mcm_gym/bench/leaderboard.json`,
    rebuilt by `mcm-gym leaderboard`) keeps, per instance, the **best known** partition and the best
    **proven bound**: a score no valid partition can exceed (found by the exact search, or the physical
    lower bound, whose score is 1). For a result with score `s`:

    - `gap_to_best = 1 - s / best_score`: how far behind the best anyone found;
    - `gap_to_bound = 1 - s / bound_score`: how far from what is provably possible. When the best known
      equals the bound, the best known is **proven optimal**.

    The leaderboard records the cost model its scores were computed with; when the simulator changes,
    its entries no longer count until `mcm-gym leaderboard` rebuilds them. `lb.gaps` then returns
    `None`, and the small helper below prints `nan`."""),
    code("""
    from mcm_gym.bench import leaderboard as lb


    def gap(problem, score, which="gap_to_best"):
        \"\"\"A score's gap to the leaderboard's best known (or bound); NaN where the leaderboard lacks it.\"\"\"
        g = lb.gaps(problem, score)
        return g[which] if g else float("nan")


    problem = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
    entry = lb.lookup(problem)
    print("instance:", lb.instance_key(problem))
    if entry is not None:
        print("best known:", round(entry["best"]["score"], 4), "by", entry["best"]["method"])
        print("bound:     ", round(entry["bound"]["score"], 4), "by", entry["bound"]["method"])
    for s in summarize(rows):
        print(f"{s['method']:7s} score {s['score_mean']:.4f}  gap to best {gap(problem, s['score_mean']):.2%}  "
              f"gap to bound {gap(problem, s['score_mean'], 'gap_to_bound'):.2%}")"""),
    md("""
    ## Proving an optimum

    The exact search (Z3, or CP-SAT where OR-Tools is installed) both finds partitions and proves bounds.
    On the 15-node graph of notebook 1 it proves the optimum quickly."""),
    code("""
    from mcm_gym.search import get_searcher
    from mcm_gym.search.base import proof_line

    tiny = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
    res = get_searcher("exact", time_limit=60).search(tiny, budget=64, seed=0)
    print("exact score:", round(res.score, 4), "| partition:", res.partition)
    print(proof_line(res))
    dp = get_searcher("dp").search(tiny, budget=32, seed=0)
    print("stage DP score:", round(dp.score, 4), f"(gap to the proven optimum {1 - dp.score / res.score:.2%})")"""),
    md("""
    ## Where the stage DP falls short

    Where the DP's partition is itself the best known and matches the proven bound, no method can beat
    it; a new method can only match it faster or more cheaply. Compare the leaderboard entries above
    with the DP's row of the table. The suite `suite://hard-v1` collects instances where the DP was
    found more than 5% below the proven optimum: heterogeneous rings (`hring-*`, chips of different
    speeds), meshes, activation memory, neighbour-only links with the triangle rule. That is where new
    methods have room. We leave out its BERT-on-36-chips instance here (repair-based searches take
    minutes on it)."""),
    code("""
    from mcm_gym.bench.suites import get_suite

    hard = [inst for inst in get_suite("suite://hard-v1").instances if inst.hardware != "mesh-6x6"]
    scores = {"dp": [], "sa": []}
    best_known = []
    for inst in hard:
        p = inst.problem()
        for method in scores:
            scores[method].append(get_searcher(method).search(p, budget=20, seed=0).score)
        e = lb.lookup(p)
        best_known.append(e["best"]["score"] if e else float("nan"))
    print(f"{'instance':70s} {'dp':>7s} {'sa':>7s} {'best':>7s} {'dp gap':>7s} {'sa gap':>7s}")
    for i, inst in enumerate(hard):
        d, a, b = scores["dp"][i], scores["sa"][i], best_known[i]
        print(f"{inst.key:70s} {d:7.4f} {a:7.4f} {b:7.4f} {1 - d / b:7.2%} {1 - a / b:7.2%}")"""),
    code("""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(hard))
    ax.bar(x - 0.2, scores["dp"], width=0.4, label="dp")
    ax.bar(x + 0.2, scores["sa"], width=0.4, label="sa (20 evaluations)")
    ax.scatter(x, best_known, marker="_", s=300, color="k", zorder=3, label="best known (leaderboard)")
    ax.set_xticks(x, [f"{i.graph.rsplit('/', 1)[-1]}\\n{i.hardware.split('?')[0]}" for i in hard], fontsize=6)
    ax.set(xlabel="instance (generator seed, hardware)", ylabel="score (lower bound / bottleneck)", ylim=(0, 1.15),
           title="suite://hard-v1: each method's score against the best known partition")
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    plt.tight_layout()
    plt.show()""", "figure"),
    md("""
    ## Leaving the order: a local polish

    Under `dataflow` and `contiguous`, sorting a valid partition's nodes by chip gives a topological
    order that the partition splits into contiguous stages. So *every* valid partition is a stage split
    of some order, and the DP is exact for the orders it tries; what it misses lies in orders it never
    tried. `mcm_gym.search.polish` starts from any valid partition and moves one node at a time to a
    neighbouring chip (each move changes the order), taking the best move while one helps; each scored
    move is one evaluation, so the comparison stays fair. `polish_result` applies it to any method's
    result (on the command line: `mcm-gym partition ... --polish N`). A move that ties on the bottleneck
    but unloads the next-slowest chip or link also counts as progress, so `moves` can grow while the
    score does not. From the DP's split, with 20 moves, the gains below are small; from the shipped
    policy's zero-shot partition they are larger (BENCHMARKS.md, "Zero-shot plus a local polish")."""),
    code("""
    from mcm_gym.search import polish_result

    print(f"{'instance':70s} {'dp':>7s} {'+polish':>8s} {'moves':>6s} {'stop':>14s}")
    for inst in hard:
        p = inst.problem()
        res = get_searcher("dp").search(p, budget=20, seed=0)
        more = polish_result(p, res, 20)
        info = more.extra["polish"]
        print(f"{inst.key:70s} {res.score:7.4f} {more.score:8.4f} {info['moves']:6d} {info['stop']:>14s}")"""),
    exercises(2, "02_search_and_optimality_gaps.py", [
        """Give `random` and `sa` four times the budget (48 evaluations) on BERT-base / ring-8, with the
        same two seeds. How much of their gap to the best known do they close?""",
        """Take the leaderboard entry of the first instance of `suite://hard-v1`, recompute the DP's
        `gap_to_best` and `gap_to_bound` by hand from `entry["best"]["score"]` and
        `entry["bound"]["score"]`, and check them against `lb.gaps`. Is its best known proven optimal?""",
        """Group the hard instances by hardware (the part of `inst.hardware` before `?`, and the switches
        after it). On which family is the DP's mean gap largest? Why would chips of different speeds
        (`hring`) trouble a method that cuts stages by an equal share of the work?"""]),
]


# ------------------------------------------------------------------------------------------ 3
NB03 = [
    header("3. Repair, and the solver's role", "30",
           "notebooks 1 and 2; what a policy gradient is (one paragraph below recalls it).",
           ["say what the repair returns (the valid partition with the fewest changed nodes) and read its "
            "status: `optimal`, `feasible`, `infeasible`, `unknown`;",
            "see on a figure which nodes the repair moved;",
            "measure how many nodes the repair moves as a candidate strays further from a valid partition;",
            "run the one-shot ablation: a learner proposing whole partitions, rewarded with the repaired "
            "score, against the same learner rewarded 0 for invalid candidates;",
            "explain why the solver, not the learner, makes the paper's method work on sparse problems."]),
    md("""
    ## Repairing a candidate

    `problem.repair(candidate)` asks a Z3 solver for the valid partition that changes the fewest nodes
    of `candidate` (pseudo-boolean constraints and budgets; for candidates far from any valid
    partition on large formulas, the order DP, a dynamic program over topological orders, answers
    without the solver; a deterministic greedy fallback; `result.method` says which engine answered,
    and `RepairConfig(backend="cpsat")` uses OR-Tools instead). Here a uniformly random candidate on the graph of
    notebook 1."""),
    code("""
    import numpy as np

    import mcm_gym

    tiny = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
    candidate = np.random.default_rng(3).integers(0, 4, tiny.n)
    print("candidate:", candidate, "valid:", tiny.is_valid(candidate))
    print("violations:", {k: int(v[0]) for k, v in tiny.violation_counts(candidate).items()})
    result = tiny.repair(candidate)
    print("status:", result.status, "| method:", result.method, "|", result.changes, "nodes moved")
    print("repaired: ", result.partition)
    print("score:", round(tiny.evaluate(result.partition).score[0], 4))"""),
    code("""
    print(f"solve time: {result.solve_time * 1e3:.1f} ms")""", "timing"),
    code("""
    import io

    from IPython.display import Image, display

    from mcm_gym.viz import partition_figure

    fig = partition_figure(tiny, result.partition, candidate=candidate, title="repair of a random candidate")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    display(Image(buf.getvalue()))""", "figure"),
    md("""
    The ringed nodes are the ones the solver moved. It never moves more than it must: the change count is
    optimal when the status is `optimal`.

    ## How far is a candidate from valid?

    Start from a good valid BERT-base partition (the stage DP's), move `m` random nodes to random chips,
    and repair. The repair could always undo the `m` moves, so it never needs more than `m` changes; it
    often needs fewer, because another nearby valid partition is closer."""),
    code("""
    from mcm_gym.search import get_searcher

    bert = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
    base = get_searcher("dp").search(bert, budget=32, seed=0).partition
    rng = np.random.default_rng(0)
    moved, changes, scores = [], [], []
    for m in (1, 2, 5, 10, 20, 40):
        for _ in range(4):
            cand = base.copy()
            nodes = rng.choice(bert.n, m, replace=False)
            cand[nodes] = rng.integers(0, 8, m)
            r = bert.repair(cand)
            moved.append(m)
            changes.append(r.changes)
            scores.append(bert.evaluate(r.partition).score[0])
    for m in sorted(set(moved)):
        sel = np.array(moved) == m
        print(f"{m:3d} perturbed -> {np.mean(np.array(changes)[sel]):5.1f} moved back on average, "
              f"repaired score {np.mean(np.array(scores)[sel]):.4f}")"""),
    code("""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(moved, changes, alpha=0.6, label="one candidate")
    ax.plot([0, 40], [0, 40], "k:", lw=1, label="changes = perturbed nodes")
    ax.set(xlabel="nodes perturbed from the DP's partition", ylabel="nodes moved by the repair",
           title="BERT-base / ring-8: size of the repair")
    ax.legend(fontsize=8)
    plt.show()""", "figure"),
    md("""
    ## The one-shot ablation

    The paper's policy proposes a whole partition in one step; the solver repairs it; the reward is the
    repaired score. The environment's `mode="oneshot"` is that formulation: the action is a chip for
    every node. With `use_repair=False` an invalid candidate simply scores 0: this is the ablation.

    The learner here is the smallest policy that can learn: one independent softmax over chips per node
    (logits `theta`, shape `nodes x chips`), trained by REINFORCE. Each iteration samples a batch of
    partitions, and moves `theta` towards the samples that scored above the batch's mean:
    `theta += lr * mean((reward - mean reward) / std * (onehot(sample) - softmax(theta)))`. When every
    reward is the same (say, all 0), the update is zero: nothing can be learned."""),
    code("""
    import gymnasium as gym


    def reinforce(use_repair, iterations=40, batch=16, lr=1.0, seed=0):
        \"\"\"Train a per-node softmax policy in the one-shot env; return per-iteration statistics.\"\"\"
        env = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4", mode="oneshot",
                       use_repair=use_repair)
        env.reset(seed=seed)
        u = env.unwrapped
        n, k = u.problem.n, u.problem.num_chips
        rng = np.random.default_rng(seed)
        theta = np.zeros((n, k))
        mean_reward, violations, best = [], [], 0.0
        for _ in range(iterations):
            prob = np.exp(theta - theta.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            samples = (prob.cumsum(axis=1)[None] < rng.random((batch, n, 1))).sum(axis=2)  # one chip per node
            rewards = []
            for s in samples:
                env.reset()
                action = np.zeros(u.max_nodes, dtype=np.int64)
                action[:n] = s
                rewards.append(env.step(action)[1])
            rewards = np.array(rewards)
            adv = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
            theta += lr * np.mean(adv[:, None, None] * (np.eye(k)[samples] - prob), axis=0)
            best = max(best, rewards.max())
            mean_reward.append(rewards.mean())
            violations.append(sum(c.mean() for c in u.problem.violation_counts(samples).values()))
        return {"mean_reward": mean_reward, "violations": violations, "best": best}


    with_repair = reinforce(use_repair=True)
    without = reinforce(use_repair=False)
    for name, r in (("with repair", with_repair), ("invalid = 0", without)):
        print(f"{name:12s} first mean reward {r['mean_reward'][0]:.4f}, last {r['mean_reward'][-1]:.4f}, "
              f"best {r['best']:.4f}, violations per raw candidate {r['violations'][0]:.2f} -> "
              f"{r['violations'][-1]:.2f}")"""),
    code("""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, r in (("repair on", with_repair), ("repair off (invalid = 0)", without)):
        ax[0].plot(r["mean_reward"], label=name)
        ax[1].plot(r["violations"], label=name)
    ax[0].set(xlabel="iteration (16 sampled partitions each)", ylabel="mean reward (score)",
              title="One-shot REINFORCE on attention-v1 / ring-4")
    ax[1].set(xlabel="iteration", ylabel="constraint violations per candidate",
              title="Raw candidates, before repair (mean)")
    ax[0].legend(fontsize=7)
    plt.tight_layout()
    plt.show()""", "figure"),
    md("""
    Without repair the learner never sees a valid candidate, every reward is 0 and its policy never
    moves. With repair every candidate yields a score, so the gradient points somewhere from the first
    iteration. That is the solver's role: it turns a needle-in-a-haystack reward into a dense one. The
    right-hand panel shows what else happens: with repair, the raw candidates themselves tend to need
    less repair as the policy learns, although it is never told about the constraints; without repair
    they stay as random as they started.

    The same ablation at full size, with the package's learners (minutes to hours on a CPU; not run
    here):

    ```bash
    # the one-shot GNN policy (mcm_gym.learn.oneshot_train) on BERT-base / ring-8, with and without repair
    python agents/train_oneshot.py --graph zoo://bert-base-v1 --hardware ring-8 --samples 2000 --seeds 0 1 2 \\
        --out runs/oneshot_repair.json
    python agents/train_oneshot.py --graph zoo://bert-base-v1 --hardware ring-8 --samples 2000 --seeds 0 1 2 \\
        --no-repair --out runs/oneshot_no_repair.json
    # MaskablePPO in the sequential env, whose action masks already keep many candidates valid
    mcm-gym experiment ablation --out runs/ablation     # RL with and without repair on MLP-Mixer / ring-8
    ```"""),
    exercises(3, "03_repair_and_the_solver.py", [
        """Repair the perturbed BERT candidates with the greedy fallback `mcm_gym.greedy_repair(bert, cand)`
        as well. How many more nodes does it move than the Z3 repair, and does the score suffer?""",
        """In the *sequential* environment with `use_repair=False`, play 20 episodes of the masked random
        policy (a random allowed chip each step) on `tiny://attention-v1` / `ring-4` and on
        `zoo://mlp-mixer-b16-v1` / `ring-8`. What fraction of the candidates is valid without repair?
        What does that say about the role of action masks?""",
        """Give the no-repair learner a denser signal: reward an invalid candidate with
        `-(total violations) / n` instead of 0 (use `problem.violation_counts` on the samples rather than
        the env). Does it now find a valid partition within 40 iterations?"""]),
]


# ------------------------------------------------------------------------------------------ 4
NB04 = [
    header("4. Train a policy, use it zero-shot, fine-tune it", "35",
           "notebooks 1 to 3; PPO at the level of 'an actor-critic policy-gradient method'.",
           ["pre-train a graph-neural-network policy on many graphs (behaviour cloning, then PPO) with a "
            "sectioned training config;",
            "use a policy zero-shot on a graph it never saw, and fine-tune it there;",
            "read training curves (training episodes and held-out validation graphs);",
            "run the shipped pre-trained policy and place it among the searches of notebook 2;",
            "give the commands that train the full-size policy and reproduce the paper's experiments."]),
    md("""
    The paper's recipe: a graph neural network policy (here `mcm_gym.learn.extractor.GNNExtractor`
    inside sb3-contrib's MaskablePPO) proposes a chip per node, the solver repairs the proposal, and the
    reward is the repaired partition's score. Pre-trained on many graphs, the policy is used zero-shot on
    a graph it never saw, then fine-tuned on it.

    Pre-training here has two stages: the policy first imitates a fast search (the stage DP) on the
    training graphs (behaviour cloning, the `bc` section), then PPO improves it with the repaired score
    as reward. Kept small so that it runs on a laptop CPU within the notebook's few minutes: random layered DAGs of the
    `train` split on a 4-chip ring, validated on graphs of the `heldout` split. The config has the
    sections of a YAML training config (`instances`, `env`, `ppo` with MaskablePPO's own argument names,
    `policy`, `bc`, `eval`)."""),
    code("""
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar wants ipywidgets"""),
    code("""
    import json
    import tempfile
    from pathlib import Path

    import torch

    from mcm_gym.learn.config import TrainConfig
    from mcm_gym.learn.evaluation import evaluate_policy_on
    from mcm_gym.learn.train import finetune, train

    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp()) / "pretrain"
    cfg = TrainConfig.from_dict({
        "instances": {"split": "train", "graphs": ["generator://layered-dag-v0/0:40"],  # 40 random training graphs
                      "hardware": ["ring-4"]},
        "env": {"k_max": 4, "max_nodes": 64, "max_edges": 128},
        "bc": {"teacher": "dp", "epochs": 5},  # stage 1: imitate the stage DP's partitions of the training graphs
        "ppo": {"n_steps": 512, "batch_size": 128, "n_epochs": 4},  # passed to MaskablePPO as they are
        "policy": {"extractor": {"hidden": 32, "layers": 2}},
        "eval": {"split": "heldout", "graphs": ["generator://layered-dag-v0/1000:1003"], "every": 2000},
        "total_timesteps": 6000, "checkpoint_every": 0, "seed": 0, "out_dir": str(out),
    })
    ckpt = train(cfg, progress=False)
    curve = json.loads((out / "train_log.json").read_text())["curve"]
    for point in curve:
        print({k: round(point[k], 4) if isinstance(point[k], float) else point[k]
               for k in point if k in ("timesteps", "eval_mean_score", "train_mean_score")})""", "training"),
    md("""
    ## Zero-shot on a graph it never saw

    `tiny://attention-v1` is one transformer encoder layer; the policy was trained on random DAGs only.
    One greedy episode, then repair."""),
    code("""
    zero = evaluate_policy_on(ckpt, "tiny://attention-v1", "ring-4")
    print("zero-shot score:", round(zero["mean_score"], 4), "| repair:", zero["repair"]["status"])""",
         "training"),
    md("""
    ## Fine-tune on it

    Fine-tuning starts from the pre-trained weights and trains on the target instance only; the first
    point of its curve is the zero-shot score."""),
    code("""
    ft = finetune(ckpt, "tiny://attention-v1", "ring-4", total_timesteps=1500,
                  ppo={"n_steps": 256, "batch_size": 64}, eval={"every": 500},
                  out_dir=str(out.parent / "finetune"), progress=False)
    ft_curve = json.loads((out.parent / "finetune" / "train_log.json").read_text())["curve"]
    after = evaluate_policy_on(ft, "tiny://attention-v1", "ring-4")
    print("after fine-tuning:", round(after["mean_score"], 4))""", "training"),
    code("""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot([p["timesteps"] for p in curve], [p.get("train_mean_score") for p in curve], label="training episodes")
    ev = [p for p in curve if p.get("eval_mean_score") is not None]
    ax[0].plot([p["timesteps"] for p in ev], [p["eval_mean_score"] for p in ev], marker="o", label="held-out graphs")
    ax[0].legend(fontsize=7)
    ax[0].set(title="pre-training on 40 random DAGs", xlabel="environment steps", ylabel="mean score")
    ft_ev = [p for p in ft_curve if p.get("eval_mean_score") is not None]
    ax[1].plot([p["timesteps"] for p in ft_ev], [p["eval_mean_score"] for p in ft_ev], marker="o")
    ax[1].set(title="fine-tuning on attention-v1 / ring-4", xlabel="environment steps", ylabel="score (greedy episode)")
    plt.tight_layout()
    plt.show()""", "figure"),
    md("""
    ## The shipped policy on BERT-base

    Six thousand steps on 40 small graphs is a demonstration. The policy shipped with the package
    (`pretrained`) is the paper's one-shot formulation (`mcm_gym.learn.oneshot`): one pass of a graph
    network scores where the pipeline stages end (in one of 28 node orders), a whole candidate is
    drawn and the solver repairs it. Its priors prefer the order and number of stages whose own greedy
    pipeline a simple cost model predicts fastest, and aim each stage at an equal part of the compute
    time left. It was pre-trained by reinforcement learning on the training split (hundreds of layered
    DAGs and the zoo's training graphs on seven hardware profiles, `agents/pretrain_oneshot.py`),
    pulled towards those priors; it never saw BERT-base. On held-out graphs the untrained priors alone
    (`priors`) are about as good zero-shot; with the polish below the pre-trained policy is ahead
    (BENCHMARKS.md).
    Zero-shot is its greedy candidate plus repair; a local polish (`mcm_gym.search.polish`, or
    `mcm-gym partition --policy pretrained --polish 49`) then moves single nodes to a neighbouring chip
    while that helps, each scored move one evaluation; fine-tuning (`oneshot:checkpoint=pretrained`)
    trains on the target, every repaired candidate counting as one evaluation, and after every update
    re-draws 24 of its node orders around the best partition so far (as `dp` draws its random orders),
    so it is not capped by the best split of its fixed orders. Both beside the leaderboard and
    the searches (BENCHMARKS.md says where the pre-trained policy wins and where it loses):"""),
    code("""
    import mcm_gym
    from mcm_gym.bench import leaderboard as lb
    from mcm_gym.learn.oneshot_search import OneShotSearch
    from mcm_gym.search import get_searcher
    from mcm_gym.search.polish import polish_result

    problem = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))


    def gap(score):
        \"\"\"The gap to the leaderboard's best known BERT-base / ring-8 partition (NaN if it has none).\"\"\"
        g = lb.gaps(problem, score)
        return g["gap_to_best"] if g else float("nan")


    zero_shot = OneShotSearch("pretrained", train=False).search(problem, budget=1, seed=0)
    zero = zero_shot.score
    print(f"shipped policy, zero-shot:           {zero:.4f} (gap to best {gap(zero):.2%})")
    polished = polish_result(problem, zero_shot, 49).score
    print(f"zero-shot + polish, 50 evaluations:  {polished:.4f} (gap to best {gap(polished):.2%})")
    tuned = get_searcher("oneshot:checkpoint=pretrained").search(problem, budget=100, seed=0).score
    print(f"fine-tuned, 100 repaired candidates: {tuned:.4f} (gap to best {gap(tuned):.2%})")
    for method in ("random", "sa", "dp"):
        s = get_searcher(method).search(problem, budget=100, seed=0).score
        print(f"{method:6s} at 100 evaluations:         {s:.4f} (gap to best {gap(s):.2%})")""", "training"),
    md("""
    ## The full-size commands

    The same code trains and evaluates the full-size policies; these take from minutes to hours on a CPU
    and are not run here:

    ```bash
    # pre-train the one-shot policy on the training split by RL (how the shipped pretrained was made)
    python agents/pretrain_oneshot.py --head stages --val-zoo zoo://distilbert-v1 zoo://mobilenet-v2-v1 \\
        --kl-coef 0.005 --hardware ring-4 ring-8 mesh-2x2 hring-4 hring-8 'ring-4?activation_memory=on' \\
        'ring-4?neighbor_only=on&triangle=on' --out runs/pretrain_oneshot --wall-time 1200
    # zero-shot on a graph: the greedy candidate plus repair (then 49 evaluations of local polish)
    mcm-gym partition --graph resnet-50 --policy pretrained --polish 49
    # the sequential MaskablePPO policy of this notebook at full size, and fine-tuning it
    mcm-gym train agents/configs/pretrain_bc.yaml --out runs/pre
    mcm-gym finetune runs/pre/best.zip --graph bert-base
    # the paper's experiments: fine-tuned vs from scratch, zero-shot on the held-out suite
    mcm-gym experiment finetune --out runs/experiments
    mcm-gym experiment zeroshot --suite suite://heldout-v1 --out runs/experiments
    ```"""),
    exercises(4, "04_train_zero_shot_finetune.py", [
        """Use the shipped policy zero-shot on two other held-out instances, `zoo://resnet-50-v1` and
        `zoo://swin-tiny-v1` on `mesh-2x2`, and compare with the stage DP (gap to best from the
        leaderboard).""",
        """Pre-train again without behaviour cloning (remove the `bc` section, same steps and seed). How
        do the training and held-out curves compare with the run above?""",
        """Fine-tune for three times as many steps (4500). Does the score keep rising, and how does it
        compare with the exact optimum of notebook 2?"""]),
]


# ------------------------------------------------------------------------------------------ 5
NB05 = [
    header("5. Bring your own model and hardware; benchmark your own agent", "35",
           "notebooks 1 and 2 (notebook 4 for the RL part at the end); a little PyTorch.",
           ["turn a PyTorch model into a graph (`torch.export`, FLOPs from torch's flop counter) and "
            "coarsen it, reversibly;",
            "describe your own hardware as a dict (or a YAML/JSON file) and partition the model on it;",
            "write a search method as a `Searcher` subclass, so the harness gives it the same budget as "
            "every other method;",
            "benchmark it on a suite (`suite://paper-v1`, `suite://hard-v1`) with `mcm_gym.bench."
            "leaderboard.evaluate`, against the best known partitions and proven bounds;",
            "plug in any Gymnasium RL library through the environment."]),
    md("""
    ## Your model

    Any PyTorch model that `torch.export` can trace becomes a graph: FLOPs per node from torch's flop
    counter, bytes from the traced shapes, parameters as weights. Here a small transformer, built from
    its definition (no weights are downloaded)."""),
    code("""
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar wants ipywidgets"""),
    code("""
    import torch
    from torch import nn

    import mcm_gym
    from mcm_gym.instances.coarsen import coarsen
    from mcm_gym.instances.importers import from_torch

    torch.manual_seed(0)
    torch.set_num_threads(1)


    class TinyTransformer(nn.Module):
        def __init__(self, d=256, layers=4):
            super().__init__()
            self.embed = nn.Embedding(1000, d)
            self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True)
                                        for _ in range(layers))
            self.head = nn.Linear(d, 1000)

        def forward(self, ids):
            x = self.embed(ids)
            for b in self.blocks:
                x = b(x)
            return self.head(x)


    graph = from_torch(TinyTransformer().eval(), (torch.randint(0, 1000, (1, 64)),), name="tiny-transformer")
    print(graph)"""),
    md("""
    Coarsening is explicit and reversible: merge chains of small ops down to a target size, partition
    the small graph, then map the partition back to every original node."""),
    code("""
    co = coarsen(graph, 40)
    print(graph.n, "->", co.graph.n, "nodes; FLOPs kept:", co.graph.total_flops == graph.total_flops)"""),
    md("""
    ## Your hardware

    Four chips on a chain, one twice as fast as the others, small SRAM so that memory matters. Sizes in
    bytes, speeds in FLOP/s and bytes/s, latency in seconds. `mcm_gym.Hardware.load("my.yaml")` reads
    the same fields from a file."""),
    code("""
    slow = {"peak_flops": 4.0e12, "sram_bytes": 3.0e6, "mem_bw": 2.0e11}
    fast = {"peak_flops": 8.0e12, "sram_bytes": 3.0e6, "mem_bw": 4.0e11}
    hw = mcm_gym.Hardware.from_dict({"name": "my-chain-4", "topology": "chain", "chips": [slow, fast, slow, slow],
                                     "link_bandwidth": 1.0e10, "link_latency": 1.0e-6})
    problem = mcm_gym.Problem(co.graph, hw)
    print(hw, "| weights fill", round(co.graph.total_weight_bytes / hw.total_sram_bytes, 3), "of the SRAM")"""),
    code("""
    import numpy as np

    from mcm_gym.search import get_searcher

    res = get_searcher("dp").search(problem, budget=20, seed=0)
    print("dp score", round(res.score, 4), "| nodes per chip", np.bincount(res.partition, minlength=4))
    full = co.expand(res.partition)  # back to every node of the original graph
    print("valid on the original graph:", mcm_gym.Problem(graph, hw).is_valid(full))"""),
    code("""
    import io

    from IPython.display import Image, display

    from mcm_gym.viz import partition_figure

    buf = io.BytesIO()
    fig = partition_figure(problem, res.partition, title="TinyTransformer on my-chain-4 (stage DP)")
    fig.savefig(buf, format="png")
    display(Image(buf.getvalue()))""", "figure"),
    md("""
    ## Your own search method

    Subclass `Searcher` and implement `_run(problem, tracker, rng)`: every partition you hand to
    `tracker.add` is one evaluation of the budget (`tracker.fail()` counts one that failed), and the
    tracker keeps the best and its trace. Here a toy method: jitter the equal-work stage cuts at random,
    repair, keep the best."""),
    code("""
    from mcm_gym.search import Searcher, split_by_work


    class JitterSearch(Searcher):
        \"\"\"Perturb the equal-work stage cuts at random; keep the best (a toy third-party method).\"\"\"

        name = "jitter"

        def __init__(self, noise=0.03, **kwargs):
            super().__init__(**kwargs)
            self.noise = noise

        def _run(self, problem, tr, rng):
            k = problem.num_chips
            base = np.arange(1, k) / k
            while tr.left > 0:
                cuts = np.sort(np.clip(base + rng.normal(0, self.noise, k - 1), 0.01, 0.99))
                p = self._repair(problem, split_by_work(problem, cuts))
                tr.add(p) if p is not None else tr.fail()


    print("jitter on my-chain-4:", round(JitterSearch().search(problem, budget=10, seed=0).score, 4))"""),
    md("""
    ## Benchmark it on a suite

    A suite is a versioned list of instances (graph id, hardware id, constraint switches).
    `leaderboard.evaluate(method, suite)` runs a method on every instance at a fixed budget and prints
    one row per instance with the gap to the best known partition and to the proven bound (the
    wall-time column varies from run to run). `suite://paper-v1` is the paper's setting."""),
    code("""
    from mcm_gym.bench import leaderboard as lb
    from mcm_gym.bench.suites import list_suites

    print("suites:", ", ".join(list_suites()))
    jitter_rows = lb.evaluate(JitterSearch(), "suite://paper-v1", budget=10, seed=0)
    dp_rows = lb.evaluate("dp", "suite://paper-v1", budget=10, seed=0)"""),
    md("""
    On BERT-base the stage DP is strong (notebook 2). The hard suite, where the DP was found well below
    the proven optimum, is a fairer test; we register a suite of our own holding its small instances
    (the BERT-on-36-chips one takes minutes with a repair-based method)."""),
    code("""
    from mcm_gym.bench.suites import get_suite, register_suite

    if "suite://course-hard-v1" not in list_suites():
        register_suite("suite://course-hard-v1", "suite://hard-v1 without BERT-base on mesh-6x6",
                       [i for i in get_suite("suite://hard-v1").instances if i.hardware != "mesh-6x6"])
    hard_jitter = lb.evaluate(JitterSearch(), "suite://course-hard-v1", budget=10, seed=0, out=None)
    hard_dp = lb.evaluate("dp", "suite://course-hard-v1", budget=10, seed=0, out=None)
    nan = float("nan")  # where the leaderboard does not hold the instance (see notebook 2)
    print(f"{'instance':70s} {'jitter':>7s} {'dp':>7s} {'jitter gap':>11s} {'dp gap':>7s}")
    for a, b in zip(hard_jitter, hard_dp, strict=True):
        print(f"{a['instance']:70s} {a['score']:7.4f} {b['score']:7.4f} {a.get('gap_to_best', nan):11.2%} "
              f"{b.get('gap_to_best', nan):7.2%}")
    print(f"mean gap to best: jitter {np.mean([r.get('gap_to_best', nan) for r in hard_jitter]):.2%}, "
          f"dp {np.mean([r.get('gap_to_best', nan) for r in hard_dp]):.2%}")"""),
    code("""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    a = np.array([r["score"] for r in hard_dp])
    b = np.array([r["score"] for r in hard_jitter])
    ax.scatter(a, b)
    lo = min(a.min(), b.min()) * 0.95
    ax.plot([lo, 1], [lo, 1], "k:", lw=1)
    ax.set(xlabel="stage DP: score", ylabel="jitter: score",
           title="course-hard-v1: above the diagonal, jitter wins")
    plt.show()""", "figure"),
    md("""
    The same from the command line, for any registered method (`register_searcher`, or a package's
    `mcm_gym.searchers` entry point):

    ```bash
    mcm-gym bench --suite suite://paper-v1 --methods dp sa --budget 50 --seeds 0
    ```

    ## Any Gymnasium RL library

    The environment is a plain Gymnasium env; masks come from `action_masks()` (sb3-contrib) or
    `obs["action_mask"]` (RLlib and others). Here sb3-contrib's MaskablePPO with its default MLP
    policy on the tiny graph (notebook 4 uses the graph neural network policy)."""),
    code("""
    import gymnasium as gym
    from sb3_contrib import MaskablePPO

    env = gym.make("MCMPartition-v0", graph="tiny://attention-v1", hardware="ring-4")
    model = MaskablePPO("MultiInputPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0).learn(1024)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
        obs, reward, done, _, info = env.step(int(action))
    print("score", round(reward, 4), "| repair", info["repair_status"], info["changes"], "changes")""",
         "training"),
    exercises(5, "05_your_model_hardware_and_agent.py", [
        """Make the fast chip of `my-chain-4` as slow as the others, then give every chip twice the SRAM.
        How do the DP's nodes per chip and its score change each time, and why?""",
        """Register `JitterSearch` under the name `jitter` (`mcm_gym.search.register_searcher`) and run
        it by name with `run_bench` beside `dp` on BERT-base / ring-8. Then try to beat the DP's mean gap
        on `suite://course-hard-v1`: a smaller `noise`, a larger budget, or cuts jittered around the
        best cuts found so far.""",
        """Build a suite of your own, `suite://my-heldout-v1`, of generator graphs 1000 to 1004 on
        `ring-4`. The leaderboard holds none of them, so `evaluate` prints `-` for the gaps: compute the
        proven bound of each with `get_searcher("exact", time_limit=30)` and report the DP's gap to it."""]),
]

NOTEBOOKS = {
    "01_the_problem_and_sparsity.ipynb": NB01,
    "02_search_and_optimality_gaps.ipynb": NB02,
    "03_repair_and_the_solver.ipynb": NB03,
    "04_train_zero_shot_finetune.ipynb": NB04,
    "05_your_model_hardware_and_agent.ipynb": NB05,
}

#: What the docs page says of each notebook: (topics, prerequisites, study time in minutes).
DESCRIPTIONS = {
    "01_the_problem_and_sparsity.ipynb": ("partitions, the pipeline bottleneck and the score; the constraints; "
                                          "why valid partitions are sparse; the environment by hand",
                                          "Python, numpy", "30"),
    "02_search_and_optimality_gaps.ipynb": ("searches at an equal budget; the leaderboard; gaps to best and to the "
                                            "proven bound; the exact search; the hard suite", "notebook 1", "30"),
    "03_repair_and_the_solver.ipynb": ("the Z3 repair; how far candidates are from valid; the one-shot ablation "
                                       "(repair on vs invalid = 0)", "notebooks 1-2; policy gradients", "30"),
    "04_train_zero_shot_finetune.ipynb": ("pre-training (behaviour cloning + PPO), zero-shot, fine-tuning; the "
                                          "shipped policy; the full-size commands", "notebooks 1-3; PPO", "35"),
    "05_your_model_hardware_and_agent.ipynb": ("a PyTorch model and your own hardware; a Searcher of your own, "
                                               "benchmarked on suites; any RL library",
                                               "notebooks 1-2; PyTorch", "35"),
}

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` without outputs, as this file defines it."""
    nb = new_notebook(cells=[nbformat.from_dict(c) for c in NOTEBOOKS[name]], metadata=dict(META))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: no diff noise from random ones
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = KERNEL_TIMEOUT) -> float:
    """Run ``nb`` top to bottom in a fresh kernel (in place); return the wall time in seconds.
    Thread-safe: several notebooks may run at once, each in its own kernel."""
    import nbclient

    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the kernel's set iteration order is reproducible
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}}).execute(env=env)
    return time.perf_counter() - t0


def docs_table(seconds: dict[str, float]) -> str:
    lines = [TABLE_BEGIN, "",
             "| notebook | what it teaches | prerequisites | study time | run time (measured, 2-core CPU) |",
             "|---|---|---|---:|---:|"]
    for name in NOTEBOOKS:
        topics, prereq, minutes = DESCRIPTIONS[name]
        run = f"{seconds[name]:.0f} s" if name in seconds else "not measured"
        lines.append(f"| [{name}](../notebooks/{name}) | {topics} | {prereq} | {minutes} min | {run} |")
    return "\n".join(lines + ["", TABLE_END])


def update_docs(seconds: dict[str, float]) -> None:
    """Write the measured times into the table of docs/notebooks.md (kept where not re-measured)."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END) + len(TABLE_END)
    old = dict(re.findall(r"\[(\d\d_\w+\.ipynb)\][^\n]*\| (\d+) s \|", text[start:end]))
    merged = {k: float(v) for k, v in old.items()} | seconds
    DOCS_PAGE.write_text(text[:start] + docs_table(merged) + text[end:], encoding="utf-8")


# ------------------------------------------------------------------------------ staleness check
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_TIME_HEADER = re.compile(r"time|seconds", re.IGNORECASE)


def _mask_time_columns(text: str) -> str:
    """Blank the cells of Markdown-table columns whose header names a time (counted from the right,
    since instance keys hold ``|`` themselves)."""
    lines = text.split("\n")
    masked_from_right: list[int] = []
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            masked_from_right = []
            continue
        cols = line.strip().strip("|").split("|")
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            masked_from_right = [len(cols) - j for j, c in enumerate(cols) if _TIME_HEADER.search(c)]
            continue
        if masked_from_right and not line.startswith("|---"):
            for r in masked_from_right:
                if r <= len(cols):
                    cols[len(cols) - r] = " <time> "
            lines[i] = "|" + "|".join(cols) + "|"
    return "\n".join(lines)


def _close(a: str, b: str, atol: float) -> bool:
    """Two printed numbers agree: one unit in the last printed digit for decimals, 2e-4 relative for
    integers (a rounding flip of a large count), at least ``atol``."""
    x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    exp = min(Decimal(a.replace(",", "")).as_tuple().exponent, Decimal(b.replace(",", "")).as_tuple().exponent)
    decimal = "." in a or "e" in a.lower()
    ulp = 1.01 * 10.0 ** int(exp) if decimal else 0.0
    return abs(x - y) <= max(ulp, 2e-4 * max(abs(x), abs(y)), atol)


def same_text(committed: str, fresh: str, tags: list[str] | tuple[str, ...] = ()) -> str | None:
    """None when two outputs agree, else a short description of the first difference."""
    texts = []
    volatile = "timing" in tags or "training" in tags  # numbers not compared (see the module doc)
    for t in (committed, fresh):
        t = _mask_time_columns(_ADDRESS.sub("0x?", t))
        texts.append(_NUMBER.sub("<n>", t) if volatile else t)
    a, b = texts
    if volatile:
        return None if a == b else f"text differs: {a[:200]!r} vs {b[:200]!r}"
    parts_a, parts_b = _NUMBER.split(a), _NUMBER.split(b)
    nums_a, nums_b = _NUMBER.findall(a), _NUMBER.findall(b)
    if parts_a != parts_b or len(nums_a) != len(nums_b):
        return f"text differs: {a[:300]!r} vs {b[:300]!r}"
    for x, y in zip(nums_a, nums_b, strict=True):
        if not _close(x, y, 0.0):
            return f"number {x} is now {y} in {b[:300]!r}"
    return None


def _outputs(cell: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """A code cell's outputs as (kind, text): consecutive stream chunks merged, stderr left out."""
    out: list[tuple[str, str]] = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            if o["name"] == "stderr":
                continue
            if out and out[-1][0] == "stdout":
                out[-1] = ("stdout", out[-1][1] + o["text"])
            else:
                out.append(("stdout", o["text"]))
        elif o["output_type"] == "error":
            out.append(("error", f"{o['ename']}: {o['evalue']}"))
        else:
            data = o.get("data", {})
            out.append(("data " + ",".join(sorted(data)), data.get("text/plain", "")))
    return out


def compare(committed: nbformat.NotebookNode, fresh: nbformat.NotebookNode) -> list[str]:
    """Differences between a committed notebook and a fresh execution of it (empty: up to date)."""
    problems = []
    if len(committed.cells) != len(fresh.cells):
        return [f"{len(committed.cells)} cells committed, {len(fresh.cells)} generated"]
    for i, (c, f) in enumerate(zip(committed.cells, fresh.cells, strict=True)):
        if c.cell_type != f.cell_type or c.source != f.source:
            problems.append(f"cell {i}: its source is not the generator's")
            continue
        if c.cell_type != "code":
            continue
        oc, of = _outputs(c), _outputs(f)
        kinds_c, kinds_f = [k for k, _ in oc], [k for k, _ in of]
        if kinds_c != kinds_f:
            problems.append(f"cell {i}: outputs {kinds_c} committed, {kinds_f} now")
            continue
        for (kind, tc), (_, tf) in zip(oc, of, strict=True):
            why = same_text(tc, tf, c.metadata.get("tags", ()))
            if why:
                problems.append(f"cell {i} ({kind}): {why}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execute", action="store_true", help="run every notebook and save it with its outputs")
    ap.add_argument("--check", action="store_true",
                    help="run every notebook and compare with the committed one; write nothing")
    ap.add_argument("--only", nargs="*", default=None, help="name prefixes, e.g. 01 03")
    args = ap.parse_args(argv)
    names = [n for n in NOTEBOOKS if not args.only or any(n.startswith(p) for p in args.only)]
    seconds: dict[str, float] = {}
    stale = 0
    for name in names:
        nb = build(name)
        if args.check:
            took = execute(nb)
            problems = compare(nbformat.read(HERE / name, as_version=4), nb)
            stale += bool(problems)
            print(f"{name}: {'stale' if problems else 'up to date'} ({took:.1f} s)", *problems, sep="\n  ")
            continue
        if args.execute:
            seconds[name] = execute(nb)
            print(f"executed {name} in {seconds[name]:.1f} s", flush=True)
        nbformat.write(nb, HERE / name)
        print(f"wrote {name}", flush=True)
    if args.check:
        return 1 if stale else 0
    if args.execute:
        update_docs(seconds)
        print(f"updated {DOCS_PAGE.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
