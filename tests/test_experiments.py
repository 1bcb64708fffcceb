"""The paper's experiment commands on tiny instances, method specs, and behaviour cloning."""

from __future__ import annotations

import numpy as np
import pytest

from mcm_gym.bench import read_rows
from mcm_gym.cli import main
from mcm_gym.search.base import get_searcher, parse_method

pytest.importorskip("sb3_contrib")

from mcm_gym.bench import experiments
from mcm_gym.learn.checkpoints import versioned_name  # noqa: E402

TINY = "tiny://attention-v1"


def test_parse_method_reads_typed_options():
    assert parse_method("rl") == ("rl", {})
    assert parse_method("rl:checkpoint=pretrained, ent_coef=0.02,use_repair=false") == (
        "rl", {"checkpoint": "pretrained", "ent_coef": 0.02, "use_repair": False})
    with pytest.raises(ValueError, match="not key=value"):
        parse_method("sa:0.1")


def test_get_searcher_with_options_names_itself_by_the_spec():
    s = get_searcher("sa:t_start=0.05")
    assert s.name == "sa:t_start=0.05" and s.t_start == 0.05
    assert get_searcher("sa").name == "sa"
    with pytest.raises(ValueError, match="bad option"):
        get_searcher("sa:nope=1")
    with pytest.raises(ValueError, match="unknown method"):
        get_searcher("annealing:t_start=1")


def test_cli_rejects_unknown_method_spec(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "nope:x=1"])
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_samples_to_reach():
    assert experiments.samples_to_reach([0.1, 0.5, 0.5, 0.9], 0.5, [1.0, 2.0, 3.0, 4.0]) == (2, 2.0)
    assert experiments.samples_to_reach([0.1, 0.2], 0.5) == (None, None)
    assert experiments.samples_to_reach([0.7], 0.5) == (1, None)


def test_ablation_experiment_writes_table_plot_and_replayable_rows(tmp_path):
    report = experiments.run_ablation(tmp_path, graph=TINY, hardware="ring-4", budget=6, seeds=[0])
    rows = read_rows(tmp_path / "results.csv")
    assert sorted(r["method"] for r in rows) == ["oneshot", "oneshot:use_repair=false"]
    assert all(r["evaluations"] == 6 and len(r["trace_time"]) == 6 for r in rows)
    assert (tmp_path / "ablation.png").stat().st_size > 0
    assert "| oneshot:use_repair=false | " in report and "n = 6" in report
    assert (tmp_path / "ablation.md").read_text().startswith("# Solver")


def test_ablation_counts_the_samples_each_side_needs(tmp_path, monkeypatch):
    """"x fewer samples": candidates until the without-repair run reaches its score, not its budget."""
    real = experiments._bench
    traces = {"oneshot": [0.5, 0.9, 0.9, 0.9, 0.9, 0.9], "oneshot:use_repair=false": [0.1, 0.2, 0.3, 0.3, 0.3, 0.3]}

    def bench(*args, **kwargs):
        rows = real(*args, **kwargs)
        return [{**r, "trace": traces[r["method"]], "score": traces[r["method"]][-1]} for r in rows]

    monkeypatch.setattr(experiments, "_bench", bench)
    report = experiments.run_ablation(tmp_path, graph=TINY, hardware="ring-4", budget=6, seeds=[0])
    assert "after median 1 candidates (1 of 1 runs); without repair after median 3 (1 of 1 runs): " \
           "**3.0x fewer samples**" in report
    with pytest.raises(ValueError, match="learner 'rl' does not match the checkpoint 'pretrained', a oneshot"):
        experiments.run_ablation(tmp_path / "x", checkpoint="pretrained", learner="rl")
    with pytest.raises(ValueError, match="learner must be"):
        experiments.run_ablation(tmp_path / "y", learner="ppo")


def test_rows_of_a_moving_alias_are_keyed_by_the_version_it_names(tmp_path):
    """``checkpoint=pretrained`` runs as the versioned name it stands for, so a row left by an older
    ``pretrained`` (keyed by the bare alias) is not taken for the current one."""
    from mcm_gym.bench.results import merge_rows
    from mcm_gym.bench.runner import run_bench

    now = versioned_name("pretrained")
    assert now != "pretrained" and now.startswith("pretrained-v") and versioned_name("pretrained-v3") == "pretrained-v3"
    out = tmp_path / "results.csv"
    first = run_bench([TINY], ["ring-4"], ["oneshot:checkpoint=pretrained,train=false"], [0], 1, out_csv=out)
    assert first[0]["method"] == f"oneshot:checkpoint={now},train=false"
    stale = dict(first[0], method="oneshot:checkpoint=pretrained,train=false", score=0.0123)
    merge_rows(out, [stale])
    again = run_bench([TINY], ["ring-4"], ["oneshot:checkpoint=pretrained,train=false"], [0], 1, out_csv=out)
    assert float(again[0]["score"]) == float(first[0]["score"]) != 0.0123


def test_search_experiment_compares_rl_with_the_baselines(tmp_path):
    report = experiments.run_search(tmp_path, graph=TINY, hardware="ring-4", budget=4, seeds=[0], scratch=False)
    methods = {r["method"] for r in read_rows(tmp_path / "results.csv")}
    assert methods == {f"oneshot:checkpoint={versioned_name('pretrained')}", "random", "sa"}
    assert "vs random search" in report and "vs simulated annealing" in report


def test_finetune_experiment_reports_samples_to_the_scratch_score(tmp_path):
    report = experiments.run_finetune(tmp_path, graph=TINY, hardware="ring-4", budget=4, scratch_budget=6,
                                      seeds=[0])
    rows = read_rows(tmp_path / "results.csv")
    # from scratch with the checkpoint's own head (the shipped one has the stages head)
    assert sorted((r["method"], r["budget"]) for r in rows) == [
        (f"oneshot:checkpoint={versioned_name('pretrained')}", 4), ("oneshot:head=stages", 6)]
    assert "Target = the from-scratch final score" in report
    assert (tmp_path / "finetune_time.png").exists()
    experiments.run_finetune(tmp_path / "v3", graph=TINY, hardware="ring-4", budget=2, scratch_budget=3, seeds=[0],
                             checkpoint="pretrained-v3")  # a nodes-head checkpoint: the plain learner
    assert sorted(r["method"] for r in read_rows(tmp_path / "v3" / "results.csv")) == [
        "oneshot", "oneshot:checkpoint=pretrained-v3"]


def test_zeroshot_experiment_refuses_training_graphs_and_reports_ratio(tmp_path):
    report = experiments.run_zeroshot(tmp_path, pairs=[(TINY, "ring-4")], scratch_budget=4, baselines=("random",))
    assert "zero-shot / scratch" in report and "Mean zero-shot / from-scratch ratio" in report
    with pytest.raises(ValueError, match="not held out"):
        experiments.run_zeroshot(tmp_path / "x", pairs=[("generator://layered-dag-v0/3", "ring-4")],
                                 scratch_budget=2, baselines=())
    with pytest.raises(ValueError, match="not held out"):  # a short name of a graph the shipped policy was validated on
        experiments.run_zeroshot(tmp_path / "y", pairs=[("distilbert", "ring-8")], scratch_budget=2, baselines=())


def test_experiment_cli_checks_its_options(tmp_path, capsys):
    assert main(["experiment", "ablation", "--pairs", "a@b", "--out", str(tmp_path)]) == 2
    assert "--pairs is for the zeroshot experiment" in capsys.readouterr().err
    assert main(["experiment", "ablation", "--scratch-budget", "3", "--out", str(tmp_path)]) == 2
    assert "no option(s) --scratch-budget" in capsys.readouterr().err


def test_behaviour_cloning_learns_the_teachers_chips():
    from mcm_gym.core.hardware import get_hardware
    from mcm_gym.env.partition_env import MCMPartitionEnv
    from mcm_gym.instances.catalog import load_graph
    from mcm_gym.learn.imitation import behaviour_clone, collect_demos
    from mcm_gym.learn.model import build_model

    pairs = [(load_graph(f"generator://layered-dag-v0/{s}"), get_hardware("ring-4")) for s in range(4)]
    demos = collect_demos(pairs, k_max=4, teacher="dp", budget=4)
    assert demos.episodes == 4 and len(demos) + demos.dropped == sum(g.n for g, _ in pairs)
    assert len(demos.switches) == len(demos) and any(demos.switches)
    env = MCMPartitionEnv(TINY, "ring-4")
    model = build_model(env, policy={"extractor": {"hidden": 16, "layers": 1}}, seed=0)
    hist = behaviour_clone(model, demos, epochs=8, batch_size=32, learning_rate=3e-3, seed=0)
    assert len(hist) == 8 and all(np.isfinite(h["loss"]) for h in hist)
    assert hist[-1]["nll"] < hist[0]["nll"] and hist[-1]["accuracy"] > hist[0]["accuracy"]


def test_train_with_a_teacher_warm_start_records_it(tmp_path):
    from mcm_gym.learn.train import TrainConfig, read_sidecar, train

    cfg = TrainConfig.from_dict({
        "instances": {"split": "train", "graphs": ["generator://layered-dag-v0/0:3"], "hardware": ["ring-4"]},
        "env": {"k_max": 4}, "bc": {"teacher": "dp", "budget": 2, "epochs": 2, "batch_size": 16},
        "ppo": {"n_steps": 64, "batch_size": 32}, "policy": {"extractor": {"hidden": 16, "layers": 1}},
        "eval": {"split": "heldout", "graphs": ["generator://layered-dag-v0/1000"], "every": 64},
        "total_timesteps": 64, "checkpoint_every": 0, "out_dir": str(tmp_path)})
    side = read_sidecar(train(cfg, progress=False))
    bc = side["bc"]
    assert bc["teacher"] == "dp" and bc["episodes"] == 3 and bc["examples"] > 0 and len(bc["epochs"]) == 2
    assert side["curve"][0]["timesteps"] == 0 and side["curve"][0]["eval_mean_score"] > 0
    best = read_sidecar(tmp_path / "best.zip")  # the best-validated checkpoint, with its curve
    evals = [p["eval_mean_score"] for p in side["curve"] if p.get("eval_mean_score") is not None]
    assert best["curve"][-1]["eval_mean_score"] == max(evals)
    with pytest.raises(ValueError, match="bc.epochs must be >= 1"):
        cfg.replace(bc={"epochs": 0})
    with pytest.raises(ValueError, match="bc.teacher .annealing. is not a search method"):
        cfg.replace(bc={"teacher": "annealing"})


def test_short_finetune_stops_at_the_asked_timesteps(tmp_path):
    from mcm_gym.learn.checkpoints import resolve_checkpoint
    from mcm_gym.learn.config import TrainConfig
    from mcm_gym.learn.train import finetune, read_sidecar

    ckpt = resolve_checkpoint("pretrained-v2")
    shipped = TrainConfig.from_sidecar(read_sidecar(ckpt))
    assert shipped is not None and shipped.ppo["n_steps"] > 40  # the shipped run's rollouts are longer
    side = read_sidecar(finetune(ckpt, "tiny://chain-v1", "ring-4", total_timesteps=40, out_dir=tmp_path,
                                 progress=False, eval={"every": 0}, checkpoint_every=0))
    assert side["timesteps"] == 40 and side["config"]["ppo"]["n_steps"] == 40
    assert side["config"]["bc"]["teacher"] is None  # fine-tuning has no warm start
