"""The ``mcm-gym`` command line: a thin layer over the library (all logic lives in importable code)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym._io import atomic_write_text
from mcm_gym.bench.results import read_records, record_problem, validate_record
from mcm_gym.core.graph import GraphError
from mcm_gym.core.hardware import HardwareError, get_hardware, list_presets
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.instances.zoo import DEFAULT_PRESETS
from mcm_gym.learn.checkpoints import PRETRAINED, resolve_checkpoint
from mcm_gym.search.base import SearchResult, format_result, get_searcher, known_searchers


def policy_search(problem: Problem, checkpoint: str, budget: int, seed: int, split: str = "head") -> SearchResult:
    """Inference with a trained policy, no training: a one-shot policy (``.pt``,
    :class:`mcm_gym.learn.oneshot_search.OneShotSearch` with ``train=False``) gives its greedy candidate
    (``split="dp"``: its order split by the stage DP, stages head only), then samples; a MaskablePPO one
    (:class:`mcm_gym.learn.evaluation.PolicySearch`) one deterministic episode, then sampled ones. Each
    repaired partition is one evaluation."""
    from mcm_gym.learn.oneshot_search import OneShotSearch, is_oneshot_checkpoint

    if is_oneshot_checkpoint(checkpoint):
        res = OneShotSearch(checkpoint, train=False, split=split).search(problem, budget=budget, seed=seed)
        res.method = f"policy:{Path(checkpoint).stem}" + (f":split={split}" if split != "head" else "")
        return res
    if split != "head":
        raise ValueError(f"--split {split} applies to one-shot stages checkpoints (.pt), not {checkpoint}")
    from mcm_gym.learn.evaluation import policy_search as run_policy

    return run_policy(problem, checkpoint, budget, seed)


def _cmd_partition(args: argparse.Namespace) -> int:
    graph = load_graph(args.graph)
    hw = get_hardware(args.hardware or graph.metadata.get("default_hardware") or "ring-8")
    problem = Problem(graph, hw)
    if args.policy:  # zero-shot by default: one greedy episode plus repair
        budget = 1 if args.budget is None else args.budget
        res = policy_search(problem, resolve_checkpoint(args.policy), budget, args.seed, args.split)
    else:
        if args.split != "head":
            raise ValueError("--split applies to --policy (a one-shot stages checkpoint)")
        budget = 32 if args.budget is None else args.budget
        res = get_searcher(args.method).search(problem, budget=budget, seed=args.seed)
    if args.polish:
        from mcm_gym.search.polish import polish_result

        res = polish_result(problem, res, args.polish)
    print(format_result(problem, res))
    if "split_fallback" in res.extra:
        print(f"split     {res.extra['split_fallback']}")
    if "widened_k_max" in res.extra:
        w = res.extra["widened_k_max"]
        print(f"policy    trained on at most {w['from']} chips, widened to {w['to']} (widen_policy; never trained "
              f"on that many)")
    if "polish" in res.extra:
        info = res.extra["polish"]
        print(f"polish    {info['skipped']}" if "skipped" in info else
              f"polish    {info['start_score']:.4f} -> {res.score:.4f}: {info['moves']} moves taken, "
              f"{info['evaluations']} of {args.polish} evaluations, stopped at {info['stop']}")
    from mcm_gym.bench import leaderboard

    gap = leaderboard.gaps(problem, res.score) if res.partition is not None else None
    if gap is not None:
        print(f"leaderboard best known {gap['best_score']:.4f} (gap {100 * gap['gap_to_best']:.2f}%), proven bound "
              f"{gap['bound_score']:.4f} (gap {100 * gap['gap_to_bound']:.2f}%)")
    if args.out:
        rec = res.to_dict()
        for what, spec in (("graph", args.graph), ("hardware", args.hardware)):
            if spec and Path(spec).is_file():  # a file, not an id: record where to find it again
                rec[f"{what}_file"] = str(Path(spec).resolve())
        atomic_write_text(args.out, json.dumps(rec) + "\n")
        print(f"wrote {args.out}")
    return 0 if res.partition is not None else 1


def _cmd_graphs(args: argparse.Namespace) -> int:
    from mcm_gym.instances import zoo

    action = args.action or "list"
    if action == "list":
        from mcm_gym.search import fits

        # --hardware: also say on which presets (all defaults when none is named) a valid partition exists
        presets = None if args.hardware is None else (args.hardware or list(zoo.DEFAULT_PRESETS))
        print(f"{'id':<26} {'nodes':>6} {'GFLOP':>8} {'weights MB':>11} {'largest MB':>11} {'dtype':>9} "
              f"{'split':>8}  {'fits' if presets else 'default hardware'}")
        for r in zoo.graph_table():
            last = (", ".join(h for h in presets if fits(load_graph(r["id"]), h)) or "-") if presets else \
                (r["default_hardware"] or "-")
            print(f"{r['id']:<26} {r['nodes']:>6} {r['gflops']:>8.2f} {r['weight_mb']:>11.1f} "
                  f"{r['max_node_weight_mb']:>11.1f} {r['dtype'] or '-':>9} {r['split'] or '-':>8}  {last}")
        return 0
    if action == "show":
        print(zoo.show_graph(args.id))
        return 0
    g = zoo.import_model(args.spec, args.out, name=args.name, graph_id=args.id, dtype=args.dtype,
                         dtype_bytes=args.dtype_bytes, coarsen_to=args.coarsen_to)
    print(zoo.show_graph(g))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from mcm_gym.bench import leaderboard

    bad = 0
    for path in args.files:
        if leaderboard.is_leaderboard(path):
            for key, ok, msg in leaderboard.validate(path):
                bad += not ok
                print(f"{path}: {key}: {'OK ' if ok else 'BAD'} {msg}")
            continue
        records = read_records(path)
        if not records:
            raise ValueError(f"{path}: no result records in the file (empty, or a CSV header only)")
        for i, rec in enumerate(records):
            if isinstance(rec, dict):  # --graph / --hardware stand in for the record's own
                rec = {**rec, **{f"{w}_file": v for w, v in (("graph", args.graph), ("hardware", args.hardware))
                                 if v}}
            ok, msg = validate_record(rec)
            bad += not ok
            print(f"{path}:{i + 1}: {'OK ' if ok else 'BAD'} {msg}")
    return 1 if bad else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mcm_gym.learn.checkpoints import curve_table, read_sidecar
    from mcm_gym.learn.config import TrainConfig
    from mcm_gym.learn.evaluation import evaluate_policy_on
    from mcm_gym.learn.train import TrainingInterrupted, train

    cfg = TrainConfig.from_yaml(args.config)
    changes = {"out_dir": args.out, "total_timesteps": args.timesteps, "seed": args.seed,
               "max_wall_time": args.max_wall_time, "checkpoint_every": args.checkpoint_every}
    cfg = cfg.replace(**{k: v for k, v in changes.items() if v is not None})
    try:
        final = train(cfg, resume_from=args.resume, progress=not args.no_progress)
    except TrainingInterrupted as stop:
        out = f" --out {args.out}" if args.out else ""
        print(f"mcm-gym: interrupted; saved {stop.checkpoint}. Resume with:\n"
              f"  mcm-gym train {args.config}{out} --resume {stop.checkpoint}", file=sys.stderr)
        return 130
    side = read_sidecar(final) or {}
    print(curve_table(side.get("curve", [])))
    print(f"best training score {side.get('best', {}).get('score', 0.0):.4f}; wrote {final}")
    if args.graph:
        res = evaluate_policy_on(final, args.graph, args.hardware)
        print(f"zero-shot on {res['graph_id']} / {res['hardware_id']}: score {res['mean_score']:.4f}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from mcm_gym.learn.checkpoints import curve_table, read_sidecar
    from mcm_gym.learn.train import TrainingInterrupted, finetune

    try:
        final = finetune(resolve_checkpoint(args.checkpoint), args.graph, args.hardware, args.timesteps,
                         out_dir=args.out, seed=args.seed, progress=not args.no_progress)
    except TrainingInterrupted as stop:
        print(f"mcm-gym: interrupted; saved {stop.checkpoint} (fine-tune it further with "
              f"mcm-gym finetune {stop.checkpoint} --graph {args.graph})", file=sys.stderr)
        return 130
    side = read_sidecar(final) or {}
    print(curve_table(side.get("curve", [])))
    print(f"wrote {final}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from mcm_gym.viz import partition_figure, save_figure

    records = read_records(args.result)
    if not records:
        raise ValueError(f"{args.result}: no result records")
    if not 1 <= args.row <= len(records):
        raise ValueError(f"--row must be in 1..{len(records)}, got {args.row}")
    rec = records[args.row - 1]
    if rec.get("partition") is None:
        raise ValueError(f"{args.result}:{args.row}: the record has no partition to show")
    problem = record_problem(rec)
    p = np.asarray(rec["partition"])
    fig = partition_figure(problem, p, title=f"{rec['graph_id']} on {rec['hardware_id']}: "
                                             f"{rec.get('method', '')} seed {rec.get('seed', '')}")
    print(f"wrote {save_figure(fig, args.out)}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mcm_gym.bench import format_table, plot_traces, run_bench, summarize

    out = Path(args.out)
    if out.exists() and not out.is_dir():  # checked before any run, so no finished run is lost to it
        raise ValueError(f"--out {out}: a folder is expected (results.csv, table.md and the plot go in it), "
                         f"and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    if args.suite:
        return _bench_suite(args)
    csv_path, png_path, md_path = out / "results.csv", out / "best_score.png", out / "table.md"
    total = len(args.graphs) * len(args.hardware) * len(args.methods) * len(args.seeds)
    bar = _progress_bar(total)

    def progress(i: int, n: int, cell: Any) -> None:
        bar.set_postfix_str(f"{cell.method} {cell.graph} {cell.hardware} seed {cell.seed}")
        bar.update(1)

    # --ray: the same grid as Ray tasks, on a local cluster or the one at the address
    executor = {"executor": "ray", "address": args.ray, "max_retries": args.max_retries,
                "num_cpus": args.ray_cpus} if args.ray else {}
    try:
        rows = run_bench(args.graphs, args.hardware, args.methods, args.seeds, args.budget,
                         out_csv=csv_path, progress=progress, resume=not args.no_resume, **executor)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: the finished rows are in {csv_path}", file=sys.stderr)
        return 130
    bar.close()
    table = format_table(summarize(rows))
    print(table)
    atomic_write_text(md_path, table + "\n")
    plot_traces(rows, png_path)
    print(f"wrote {csv_path}, {md_path}, {png_path}")
    failures = rows.failures
    for cell, msg in failures:
        print(f"FAILED {cell.method} {cell.graph} {cell.hardware} seed {cell.seed}: {msg}", file=sys.stderr)
    return 1 if failures else 0


def _bench_suite(args: argparse.Namespace) -> int:
    """``bench --suite``: every method on every instance of the suite, with gaps to the leaderboard.
    The table file is rewritten (atomically) after every instance, so an interrupted or failing run
    keeps its finished rows; an instance a method cannot run is a ``failed`` row, and the exit code
    is then 1."""
    from mcm_gym.bench.leaderboard import evaluate

    lines: list[str] = []
    path = Path(args.out) / f"{args.suite.split('://')[-1]}.md"

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)
        atomic_write_text(path, "\n".join(lines) + "\n")

    failed: list[str] = []
    try:
        for method in args.methods:
            for seed in args.seeds:
                rows = evaluate(method, args.suite, budget=args.budget, seed=seed, out=out)
                failed += [f"{r['method']} {r['instance']} seed {seed}: {r['failed']}" for r in rows if "failed" in r]
                out("")
    except KeyboardInterrupt:
        print(f"interrupted: the finished rows are in {path}", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from mcm_gym.bench import leaderboard

    path = leaderboard.update(args.suites, time_limit=args.time_limit, path=args.out, progress=lambda key, e: print(
        f"{key}: best {e['best']['score']:.4f} ({e['best']['method']}), bound {e['bound']['score']:.4f} "
        f"({e['bound']['method']}, {e['bound']['stop']})", flush=True))
    print(f"wrote {path}")
    return 0


def _method_spec(spec: str) -> str:
    """argparse type of ``--method`` / a ``--methods`` entry: a known method, optionally with
    ``:key=value`` options; the searcher is built here, so a bad option value stops the command
    before any run."""
    try:
        get_searcher(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    except ImportError as e:  # a learned method without its extra
        raise argparse.ArgumentTypeError(missing_extra(e)) from None
    return spec


def whole_count(unit: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``unit`` (e.g. ``"orders"``), >= 0."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {unit}, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0 {unit}, got {value}")
        return value

    return parse


#: argparse type of ``--polish``: a count of evaluations, >= 0.
evaluation_count = whole_count("evaluations")


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="run", dynamic_ncols=True)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        class _Plain:
            def __init__(self) -> None:
                self.i = 0

            def set_postfix_str(self, s: str) -> None:
                self.s = s

            def update(self, k: int) -> None:
                self.i += k
                print(f"[{self.i}/{total}] {self.s}", file=sys.stderr)

            def close(self) -> None:
                pass

        return _Plain()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mcm-gym", description="Partition ML graphs across MCM chiplets.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("partition", help="partition a graph on a hardware preset and print the result")
    p.add_argument("--graph", default="zoo://bert-base-v1",
                   help="graph id, short name or mcm-graph/1 JSON file (default: zoo://bert-base-v1)")
    p.add_argument("--hardware", default=None,
                   help="preset (ring-8, mesh-6x6) or JSON/YAML file (default: the graph's default)")
    p.add_argument("--method", default="random", type=_method_spec, metavar="METHOD",
                   help=f"{', '.join(known_searchers())}, optionally with options as in `bench`, e.g. "
                        "oneshot:head=stages or sa:t_start=0.1 (default random)")
    p.add_argument("--budget", type=int, default=None,
                   help="evaluated partitions (default 32; with --policy 1: zero-shot, one greedy episode + repair)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--polish", type=evaluation_count, default=0, metavar="N",
                   help="then polish the result with up to N more evaluations: steepest descent over one-node "
                        "moves to a neighbouring chip (mcm_gym.search.polish); default 0: none")
    p.add_argument("--out", help="write the result as a JSON line (replayable with `validate`)")
    p.add_argument("--policy", help="use a trained policy instead of --method, no training: a one-shot "
                                    "checkpoint (.pt), a MaskablePPO one (.zip) or "
                                    f"{', '.join(PRETRAINED)} (shipped); --budget candidates (default 1: "
                                    "zero-shot), the first greedy, then samples")
    p.add_argument("--split", choices=("head", "dp"), default="head",
                   help="with --policy (stages head): how its greedy candidate ends its stages: head (its own "
                        "ends, default) or dp (its order split by the stage DP; still one candidate)")
    p.set_defaults(func=_cmd_partition)
    t = sub.add_parser("train", help="pre-train a MaskablePPO + GNN policy from a YAML config (mcm-gym[rl])")
    t.add_argument("config", help="YAML training config (sections instances, env, ppo, policy, bc, eval; see "
                                  "mcm_gym.learn.config), e.g. agents/configs/pretrain_bc.yaml")
    t.add_argument("--out", help="output folder (overrides out_dir)")
    t.add_argument("--timesteps", type=int, help="overrides total_timesteps")
    t.add_argument("--seed", type=int)
    t.add_argument("--max-wall-time", type=float, help="stop after this many seconds")
    t.add_argument("--checkpoint-every", type=int, help="save checkpoints/step_<timesteps>.zip every this many "
                   "timesteps (overrides checkpoint_every; 0: only best.zip and final.zip). Ctrl-C saves "
                   "interrupted.zip and prints how to resume")
    t.add_argument("--resume", help="continue from this checkpoint")
    t.add_argument("--graph", help="also report the final policy's zero-shot score on this graph")
    t.add_argument("--hardware", help="hardware for --graph")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)
    f = sub.add_parser("finetune", help="fine-tune a checkpoint on one graph (mcm-gym[rl])")
    f.add_argument("checkpoint", help="a MaskablePPO checkpoint (.zip) or pretrained-v2 (a one-shot .pt such as "
                                      "pretrained is fine-tuned by bench --methods oneshot:checkpoint=...)")
    f.add_argument("--graph", required=True)
    f.add_argument("--hardware", help="default: the graph's default preset")
    f.add_argument("--timesteps", type=int, default=20_000)
    f.add_argument("--out", help="output folder")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=_cmd_finetune)
    g = sub.add_parser("graphs", help="list, show or import graphs")
    gsub = g.add_subparsers(dest="action")
    gl = gsub.add_parser("list", help="bundled graphs: sizes, FLOPs, weights, split, default hardware")
    gl.add_argument("--hardware", nargs="*", help="also search for a valid partition on these presets (e.g. "
                    f"{' '.join(list_presets())}; none named: the zoo's {len(DEFAULT_PRESETS)} defaults)")
    gs = gsub.add_parser("show", help="one graph: totals, op histogram, largest nodes, source")
    gs.add_argument("id", help="graph id, short name or JSON file")
    gi = gsub.add_parser("import", help="import a model: .onnx file, .json graph, or module:function "
                                        "returning (model, example_inputs)")
    gi.add_argument("spec")
    gi.add_argument("--out", help="write the graph (mcm-graph/1 JSON) here")
    gi.add_argument("--name")
    gi.add_argument("--id", help="graph id to record, e.g. user://my-model-v1")
    gi.add_argument("--dtype", default="bfloat16", help="dtype for torch models (default bfloat16)")
    gi.add_argument("--dtype-bytes", type=int, help="store weights/activations at this many bytes")
    gi.add_argument("--coarsen-to", type=int, help="merge nodes until at most this many remain")
    g.set_defaults(func=_cmd_graphs, hardware=None)
    b = sub.add_parser("bench", help="run methods x graphs x hardware x seeds at an equal budget")
    b.add_argument("--graphs", nargs="+", default=["zoo://bert-base-v1"])
    b.add_argument("--hardware", nargs="+", default=["ring-8"])
    b.add_argument("--methods", nargs="+", default=["random", "sa", "greedy", "dp"], type=_method_spec,
                   help=f"methods ({', '.join(known_searchers())}), each optionally with options, e.g. "
                        "oneshot:checkpoint=pretrained, rl:checkpoint=pretrained-v2 or sa:t_start=0.1")
    b.add_argument("--budget", type=int, default=200, help="evaluated partitions per run")
    b.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    b.add_argument("--out", default="results/bench", help="folder for results.csv, table.md, best_score.png")
    b.add_argument("--no-resume", action="store_true", help="rerun cells already in results.csv")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the cells as Ray tasks: alone, on a new local cluster; with an address "
                        "(auto, host:port, ray://host:10001), on that cluster (needs mcm-gym[ray])")
    b.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    b.add_argument("--max-retries", type=int, default=2, help="Ray retries of a crashed cell (default 2)")
    b.add_argument("--suite", help="run the methods on a suite's instances instead (suite://paper-v1, zoo-v2, "
                                   "heldout-v1), each row with its gap to the leaderboard's best and bound")
    b.set_defaults(func=_cmd_bench)
    lb = sub.add_parser("leaderboard", help="regenerate the leaderboard: dp and exact on every suite instance")
    lb.add_argument("--suites", nargs="+",
                    default=["suite://paper-v1", "suite://zoo-v2", "suite://heldout-v1", "suite://hard-v1"])
    lb.add_argument("--time-limit", type=float, default=60.0, help="seconds per exact solve (default 60)")
    lb.add_argument("--out", help="leaderboard file (default: the one shipped in mcm_gym/bench)")
    lb.set_defaults(func=_cmd_leaderboard)
    sh = sub.add_parser("show", help="draw a result (partition --out JSON, or a bench results.csv row)")
    sh.add_argument("result")
    sh.add_argument("--row", type=int, default=1, help="which record (1-based; default 1)")
    sh.add_argument("--out", default="partition.png", help="PNG file to write")
    sh.set_defaults(func=_cmd_show)
    v = sub.add_parser("validate", help="re-score result files (bench CSV or JSON lines) and check them")
    v.add_argument("files", nargs="+")
    v.add_argument("--graph", help="graph file the records were made on (default: the record's graph id or file)")
    v.add_argument("--hardware", help="hardware file the records were made on (default: the record's)")
    v.set_defaults(func=_cmd_validate)
    x = sub.add_parser("experiment", help="the paper's experiments (tables + plots): search, finetune, "
                                          "zeroshot, ablation (see mcm_gym.bench.experiments)")
    x.add_argument("name", choices=["search", "finetune", "zeroshot", "ablation"])
    x.add_argument("--out", default="results/experiments",
                   help="folder for results.csv (shared by the experiments), NAME.md and plots "
                        "(default results/experiments)")
    x.add_argument("--graph", help="graph (search, finetune, ablation)")
    x.add_argument("--hardware", help="hardware preset or file (search, finetune, ablation)")
    x.add_argument("--pairs", nargs="+", metavar="GRAPH@HARDWARE", help="held-out instances (zeroshot)")
    x.add_argument("--suite", help="held-out instances from a suite, e.g. suite://heldout-v1 (zeroshot)")
    x.add_argument("--checkpoint", help="pre-trained policy (default: the shipped 'pretrained', the one-shot "
                                        "policy; a MaskablePPO .zip such as pretrained-v2 runs the rl learner)")
    x.add_argument("--learner", choices=["oneshot", "rl"], help="learner without a checkpoint (ablation; "
                                                                "default oneshot)")
    x.add_argument("--budget", type=int, help="evaluated partitions per run")
    x.add_argument("--scratch-budget", type=int, help="evaluations of the learner from scratch (finetune, zeroshot)")
    x.add_argument("--seeds", nargs="+", type=int)
    x.set_defaults(func=_cmd_experiment)
    return ap


def _cmd_experiment(args: argparse.Namespace) -> int:
    from mcm_gym.bench.experiments import EXPERIMENTS

    fn = EXPERIMENTS[args.name]
    kw: dict[str, Any] = {}
    if args.pairs:
        if args.name != "zeroshot":
            raise ValueError("--pairs is for the zeroshot experiment")
        pairs = []
        for p in args.pairs:
            g, at, h = p.rpartition("@")
            if not at or not g or not h:
                raise ValueError(f"--pairs entry {p!r} is not GRAPH@HARDWARE")
            pairs.append((g, h))
        kw["pairs"] = pairs
    for opt in ("graph", "hardware", "checkpoint", "learner", "suite", "budget", "scratch_budget", "seeds"):
        v = getattr(args, opt, None)
        if v is not None:
            kw[opt] = v
    if args.name == "zeroshot" and "seeds" in kw:
        if len(kw["seeds"]) != 1:
            raise ValueError("zeroshot takes one seed")
        kw["seed"] = kw.pop("seeds")[0]
    import inspect

    known = set(inspect.signature(fn).parameters)
    bad = sorted(k for k in kw if k not in known)
    if bad:
        flags = ", ".join("--" + b.replace("_", "-") for b in bad)
        raise ValueError(f"experiment {args.name} has no option(s) {flags}")
    out = Path(args.out)

    def progress(i: int, n: int, cell: Any) -> None:  # one line per finished run (several grids)
        print(f"[{i}/{n}] {cell.method} {cell.graph} {cell.hardware} seed {cell.seed}", file=sys.stderr)

    report = fn(out, progress=progress, **kw)
    print(report)
    print(f"wrote the report (.md) and plots into {out}, runs into {out / 'results.csv'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (GraphError, HardwareError, ValueError) as exc:
        print(f"mcm-gym: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional dependency is missing
        print(f"mcm-gym: error: {missing_extra(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mcm-gym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a directory given as a file, no permission, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mcm-gym: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


#: Top-level module of an optional dependency -> the extra that installs it.
EXTRAS = {"torch": "rl", "stable_baselines3": "rl", "sb3_contrib": "rl", "matplotlib": "viz", "onnx": "onnx",
          "transformers": "torch", "ray": "ray", "tensorboard": "rl"}


def missing_extra(exc: ImportError) -> str:
    """The message for a missing optional dependency: which extra to install."""
    text = str(exc)
    if "pip install" in text:  # the raising code already says how
        return text
    top = (exc.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return text
    return f"this needs the {top!r} package: pip install 'mcm-gym[{extra}]' ({text})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
