"""Solutions to the exercises of notebook 5 (``python notebooks/solutions/05_your_model_hardware_and_agent.py``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import mcm_gym
from mcm_gym.bench import format_table, run_bench, summarize
from mcm_gym.bench import leaderboard as lb
from mcm_gym.bench.suites import Instance, get_suite, list_suites, register_suite
from mcm_gym.instances.coarsen import coarsen
from mcm_gym.instances.importers import from_torch
from mcm_gym.search import Searcher, get_searcher, register_searcher, split_by_work

torch.manual_seed(0)
torch.set_num_threads(1)


# Exercise 5.1 -------------------------------------------------------------------------------------
class TinyTransformer(nn.Module):  # the notebook's model
    def __init__(self, d=256, layers=4):
        super().__init__()
        self.embed = nn.Embedding(1000, d)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True) for _ in range(layers))
        self.head = nn.Linear(d, 1000)

    def forward(self, ids):
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


graph = coarsen(from_torch(TinyTransformer().eval(), (torch.randint(0, 1000, (1, 64)),), name="tiny-transformer"),
                40).graph
slow = {"peak_flops": 4.0e12, "sram_bytes": 3.0e6, "mem_bw": 2.0e11}
fast = {"peak_flops": 8.0e12, "sram_bytes": 3.0e6, "mem_bw": 4.0e11}
variants = {"as in the notebook": [slow, fast, slow, slow], "all slow": [slow] * 4,
            "all slow, twice the SRAM": [{**slow, "sram_bytes": 6.0e6}] * 4}
for what, chips in variants.items():
    hw = mcm_gym.Hardware.from_dict({"name": "my-chain-4", "topology": "chain", "chips": chips,
                                     "link_bandwidth": 1.0e10, "link_latency": 1.0e-6})
    res = get_searcher("dp").search(mcm_gym.Problem(graph, hw), budget=20, seed=0)
    print(f"5.1  {what:26s} score {res.score:.4f}, nodes per chip {np.bincount(res.partition, minlength=4)}")
# Compare the nodes per chip: with equal chips the DP gives each a similar share of the work, while
# the notebook's fast chip takes a larger one. If doubling the SRAM changes nothing, memory was not what
# bound the partition on equal chips. Scores are relative to each hardware's own lower bound, so
# compare partitions rather than scores across hardware.


# Exercise 5.2 -------------------------------------------------------------------------------------
class JitterSearch(Searcher):
    """The notebook's toy method."""

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


class LocalJitter(JitterSearch):
    """Jitter around the best cuts so far, with noise shrinking as the budget is spent."""

    name = "local-jitter"

    def _run(self, problem, tr, rng):
        k = problem.num_chips
        best_cuts, best = np.arange(1, k) / k, -1.0
        total = tr.left
        while tr.left > 0:
            noise = self.noise * tr.left / total
            cuts = np.sort(np.clip(best_cuts + rng.normal(0, noise, k - 1), 0.01, 0.99))
            p = self._repair(problem, split_by_work(problem, cuts))
            if p is None:
                tr.fail()
                continue
            tr.add(p)
            score = float(problem.evaluate(p).score[0])
            if score > best:
                best, best_cuts = score, cuts


register_searcher("jitter", JitterSearch, replace=True)
register_searcher("local-jitter", LocalJitter, replace=True)
rows = run_bench(["zoo://bert-base-v1"], ["ring-8"], ["jitter", "dp"], seeds=[0], budget=10)
print("5.2", format_table(summarize(rows)), sep="\n")
if "suite://course-hard-v1" not in list_suites():
    register_suite("suite://course-hard-v1", "suite://hard-v1 without BERT-base on mesh-6x6",
                   [i for i in get_suite("suite://hard-v1").instances if i.hardware != "mesh-6x6"])
for method in ("dp", "jitter", "local-jitter"):
    r = lb.evaluate(method, "suite://course-hard-v1", budget=30, seed=0, out=None)
    print(f"5.2  {method:13s} mean gap to best {np.mean([x.get('gap_to_best', np.nan) for x in r]):.2%}")

# Exercise 5.3 -------------------------------------------------------------------------------------
if "suite://my-heldout-v1" not in list_suites():
    register_suite("suite://my-heldout-v1", "generator graphs 1000-1004 on ring-4",
                   [Instance.of(f"generator://layered-dag-v0/{s}", "ring-4") for s in range(1000, 1005)])
rows = lb.evaluate("dp", "suite://my-heldout-v1", budget=32, seed=0)  # gaps print as '-'
for inst, row in zip(get_suite("suite://my-heldout-v1").instances, rows, strict=True):
    problem = inst.problem()
    exact = get_searcher("exact", time_limit=30).search(problem, budget=64, seed=0)
    proven = exact.extra.get("proven_lower_bound", 0.0)
    bound_score = problem.lower_bound / proven if proven > 0 else 1.0
    print(f"5.3  {inst.key}: dp {row['score']:.4f}, proven bound {bound_score:.4f}, "
          f"gap to bound {1 - row['score'] / bound_score:.2%}")
