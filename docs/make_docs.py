"""Regenerate the figures of docs/concepts.md and the API reference docs/api.md.

Run: ``python docs/make_docs.py`` (needs the ``viz`` extra). Everything in docs/figures and
docs/api.md comes from this script.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import numpy as np

import mcm_gym
from mcm_gym._io import atomic_write_text
from mcm_gym.search import get_searcher, split_by_work
from mcm_gym.viz import partition_figure

HERE = Path(__file__).resolve().parent
FIG = HERE / "figures"

API_MODULES = ["mcm_gym._io", "mcm_gym.core.ids", "mcm_gym.core.graph", "mcm_gym.core.hardware",
               "mcm_gym.core.cost", "mcm_gym.core.kernels", "mcm_gym.core.constraints", "mcm_gym.core.encoding",
               "mcm_gym.core.repair",
               "mcm_gym.core.problem", "mcm_gym.instances.generators", "mcm_gym.instances.catalog",
               "mcm_gym.instances.dataset", "mcm_gym.instances.zoo", "mcm_gym.instances.importers",
               "mcm_gym.instances.coarsen", "mcm_gym.viz", "mcm_gym.env.partition_env", "mcm_gym.env.observation",
               "mcm_gym.env.stages",
               "mcm_gym.search.base", "mcm_gym.search.heuristics", "mcm_gym.search.dp", "mcm_gym.search.exact",
               "mcm_gym.search.polish",
               "mcm_gym.learn.extractor", "mcm_gym.learn.config", "mcm_gym.learn.model", "mcm_gym.learn.resolution",
               "mcm_gym.learn.factories", "mcm_gym.learn.checkpoints", "mcm_gym.learn.callbacks",
               "mcm_gym.learn.evaluation", "mcm_gym.learn.train", "mcm_gym.learn.imitation",
               "mcm_gym.learn.oneshot", "mcm_gym.learn.oneshot_train", "mcm_gym.learn.oneshot_search",
               "mcm_gym.learn.oneshot_pretrain", "mcm_gym.learn.rl_search",
               "mcm_gym.learn.rllib", "mcm_gym.bench.results", "mcm_gym.bench.report",
               "mcm_gym.bench.runner", "mcm_gym.bench.distributed", "mcm_gym.bench.experiments"]


def figures() -> list[Path]:
    FIG.mkdir(exist_ok=True)
    out = []
    problem = mcm_gym.Problem(mcm_gym.load_graph("zoo://bert-base-v1"), mcm_gym.get_hardware("ring-8"))
    cand = split_by_work(problem)
    rep = problem.repair(cand)
    fig = partition_figure(problem, rep.partition, candidate=cand,
                           title="BERT-base on ring-8: equal-work split, repaired (score "
                                 f"{problem.evaluate(rep.partition).score[0]:.3f})")
    out.append(FIG / "bert_ring8_balanced.png")
    fig.savefig(out[-1])
    res = get_searcher("dp").search(problem, budget=8, seed=0)
    fig = partition_figure(problem, res.partition, title=f"BERT-base on ring-8: stage DP (score {res.score:.3f})")
    out.append(FIG / "bert_ring8_dp.png")
    fig.savefig(out[-1])
    tiny = mcm_gym.Problem(mcm_gym.load_graph("tiny://attention-v1"), mcm_gym.get_hardware("ring-4"))
    rng = np.random.default_rng(0)
    cand = rng.integers(0, 4, tiny.n)
    rep = tiny.repair(cand)
    fig = partition_figure(tiny, rep.partition, candidate=cand,
                           title=f"repair of a random candidate: {rep.changes} nodes moved ({rep.status})")
    out.append(FIG / "tiny_repair.png")
    fig.savefig(out[-1])
    return out


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def api() -> str:
    lines = ["# API reference", "", "Generated from the docstrings by `python docs/make_docs.py`; "
             "`help(obj)` shows the full text.", ""]
    for name in API_MODULES:
        mod = importlib.import_module(name)
        lines += [f"## `{name}`", "", _first_paragraph(mod.__doc__), ""]
        public = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for attr in public:
            obj = getattr(mod, attr, None)
            if obj is None or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", name) != name:
                continue
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = "(...)"
            kind = "class" if inspect.isclass(obj) else "def"
            lines.append(f"- `{kind} {attr}{sig if len(sig) < 140 else '(...)'}`: {_first_paragraph(obj.__doc__)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    for p in figures():
        print(f"wrote {p.relative_to(HERE.parent)}")
    atomic_write_text(HERE / "api.md", api())
    print("wrote docs/api.md")


if __name__ == "__main__":
    main()
