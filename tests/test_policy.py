"""The learned partitioner: GNN extractor, training library, checkpoints, RLSearch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mcm_gym import Problem, get_hardware, load_graph
from mcm_gym.env.partition_env import MCMPartitionEnv
from mcm_gym.learn.extractor import GNNExtractor, policy_kwargs
from mcm_gym.learn.train import TrainConfig, evaluate_policy_on, finetune, load_model, read_sidecar, save_atomic, train

torch.set_num_threads(1)  # 2 cores: thread contention makes small networks several times slower

ROOT = Path(__file__).resolve().parent.parent
TINY = ["tiny://attention-v1", "tiny://diamond-v1"]


def _batch(observations: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack observations the way SB3 hands them to the extractor (every Box as float32)."""
    return {k: torch.as_tensor(np.stack([o[k] for o in observations])).float() for k in observations[0]}


def _obs(graph: str, hardware: str = "ring-4", steps: int = 2, **padding: int) -> dict[str, np.ndarray]:
    env = MCMPartitionEnv(graph, hardware, **padding)
    obs, _ = env.reset(seed=0)
    for _ in range(steps):  # a few placements so the dynamic features are not all zero
        obs, *_ = env.step(int(np.flatnonzero(env.action_masks())[0]))
    return obs


PAD = {"max_nodes": 48, "max_edges": 80, "k_max": 8}


def _space(**padding: int):
    return MCMPartitionEnv("tiny://attention-v1", "ring-4", **(padding or PAD)).observation_space


# ------------------------------------------------------------------------------ extractor
@pytest.mark.parametrize("attention", [False, True])
def test_mixed_sizes_and_all_padding_batch(attention: bool) -> None:
    torch.manual_seed(0)
    ext = GNNExtractor(_space(), attention=attention)
    obs = [_obs("tiny://attention-v1", **PAD), _obs("tiny://diamond-v1", **PAD),
           _obs("generator://layered-dag-v0/3", **PAD)]
    empty = {k: np.zeros_like(v) for k, v in obs[0].items()}
    out = ext(_batch(obs + [empty]))
    assert out.shape == (4, ext.features_dim)
    assert torch.isfinite(out).all()
    alone = ext(_batch([empty]))
    assert torch.isfinite(alone).all()
    (out.sum() + alone.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in ext.parameters() if p.grad is not None)


@pytest.mark.parametrize("attention", [False, True])
def test_samples_do_not_interact_and_padding_is_inert(attention: bool) -> None:
    """A sample's features equal those computed alone, and do not change with the padding size
    (except the padded action mask and chip-state rows, which are the same here)."""
    torch.manual_seed(1)
    ext = GNNExtractor(_space(), attention=attention).eval()
    obs = [_obs("tiny://attention-v1", **PAD), _obs("generator://layered-dag-v0/5", **PAD)]
    with torch.no_grad():
        both = ext(_batch(obs))
        for i, o in enumerate(obs):
            assert torch.allclose(both[i], ext(_batch([o]))[0], atol=1e-5)
        small_pad = {"max_nodes": 15, "max_edges": 18, "k_max": 8}
        small = GNNExtractor(_space(**small_pad), attention=attention).eval()
        small.load_state_dict(ext.state_dict())  # the weights do not depend on the padding
        got = small(_batch([_obs("tiny://attention-v1", **small_pad)]))
    assert got.shape == both[:1].shape
    assert torch.allclose(got[0], both[0], atol=1e-5)


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
@pytest.mark.parametrize("kw", [{}, {"hidden": 16, "layers": 1, "chip_hidden": 4},
                                {"attention": True, "heads": 2, "hidden": 8, "layers": 0}])
def test_features_dim_is_the_real_width(mode: str, kw: dict) -> None:
    env = MCMPartitionEnv("tiny://diamond-v1", "ring-4", mode=mode, k_max=6)
    ext = GNNExtractor(env.observation_space, **kw)
    obs, _ = env.reset(seed=0)
    assert ext(_batch([obs])).shape == (1, ext.features_dim)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    ext = GNNExtractor(_space(), attention=True)
    out = ext(_batch([_obs("tiny://attention-v1", **PAD), _obs("generator://layered-dag-v0/1", **PAD)]))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in ext.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_extractor_rejects_foreign_spaces() -> None:
    from gymnasium import spaces

    with pytest.raises(ValueError, match="node_features"):
        GNNExtractor(spaces.Dict({"x": spaces.Box(0, 1, (3,))}))
    with pytest.raises(ValueError, match="divisible"):
        GNNExtractor(_space(), hidden=10, heads=4, attention=True)


def test_policy_kwargs_build_a_maskable_ppo() -> None:
    from sb3_contrib import MaskablePPO

    pk = policy_kwargs(hidden=16, layers=2)
    assert pk["features_extractor_class"] is GNNExtractor
    env = MCMPartitionEnv("tiny://diamond-v1", "ring-4")
    model = MaskablePPO("MultiInputPolicy", env, policy_kwargs=pk, n_steps=16, batch_size=8, seed=0)
    assert isinstance(model.policy.features_extractor, GNNExtractor)
    assert model.policy.features_extractor.hidden == 16


# ------------------------------------------------------------------------------ config
def test_config_from_yaml_errors_and_coercion(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("graphs: [tiny://chain-v1]\nlerning_rate: 1e-3\n")
    with pytest.raises(ValueError, match="lerning_rate.*did you mean 'learning_rate'"):
        TrainConfig.from_yaml(p)
    p.write_text("hardware: [ring-4]\n")
    with pytest.raises(ValueError, match="missing required field.*graphs"):
        TrainConfig.from_yaml(p)
    p.write_text("graphs: tiny://chain-v1\nlearning_rate: 1e-3\nn_steps: 64.0\nmax_wall_time: 1e2\n"
                 "extractor: {hidden: 8}\n")
    cfg = TrainConfig.from_yaml(p)
    assert cfg.graphs == ["tiny://chain-v1"] and cfg.learning_rate == 1e-3 and cfg.n_steps == 64
    assert cfg.max_wall_time == 100.0
    p.write_text("graphs: [tiny://chain-v1]\nextractor: {hiden: 8}\n")
    with pytest.raises(ValueError, match="unknown extractor option"):
        TrainConfig.from_yaml(p)
    with pytest.raises(ValueError, match="vec_env"):
        TrainConfig(graphs=["tiny://chain-v1"], vec_env="threads")


@pytest.mark.parametrize("name", ["pretrain_layered.yaml", "bert_ring8.yaml"])
def test_bundled_configs_resolve(name: str) -> None:
    from mcm_gym.learn.train import resolve_instances

    cfg = TrainConfig.from_yaml(ROOT / "agents" / "configs" / name)
    inst = resolve_instances(cfg)
    assert inst.graphs and inst.eval_pairs
    assert all(g.n <= inst.max_nodes for g in inst.graphs)
    assert json.loads(json.dumps(cfg.to_dict()))["graphs"] == cfg.to_dict()["graphs"]


# ------------------------------------------------------------------------------ training library
def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(graphs=TINY + ["generator://layered-dag-v0/0:2"], hardware=["ring-4"], k_max=4,
                total_timesteps=128, n_steps=64, batch_size=32, n_epochs=2,
                extractor={"hidden": 16, "layers": 2, "chip_hidden": 4}, net_arch=[32],
                eval_every=64, checkpoint_every=64, eval_graphs=["generator://layered-dag-v0/50"],
                seed=3, out_dir=str(out))
    base.update(kw)
    return TrainConfig(**base)


def _params(path: Path) -> np.ndarray:
    model = load_model(path)
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()]).numpy()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training run shared by the tests below: 128 timesteps, checkpoints every 64."""
    out = tmp_path_factory.mktemp("run")
    return train(_cfg(out), progress=False)


def test_run_writes_atomic_checkpoints_and_sidecars(run: Path) -> None:
    out = run.parent
    names = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert not [n for n in names if "tmp" in n or n.startswith(".")], names
    assert (out / "checkpoints" / "step_0000000064.zip").exists()
    side = read_sidecar(run)
    assert side["format"] == "mcm-gym-train/1" and side["kind"] == "train"
    assert side["timesteps"] == 128 and side["config"]["seed"] == 3
    curve = side["curve"]
    assert [pt["timesteps"] for pt in curve] == [0, 64, 128]
    assert all("eval_mean_score" in pt for pt in curve)
    assert all(pt["wall_time"] >= 0 for pt in curve)
    assert 0 < side["best"]["score"] <= 1 and side["episodes"] > 0
    model = load_model(out / "checkpoints" / "step_0000000064.zip")
    assert model.num_timesteps == 64


def test_save_atomic_leaves_no_partial_file(tmp_path: Path, run: Path) -> None:
    model = load_model(run)
    target = tmp_path / "ckpt.zip"
    save_atomic(model, target)
    good = target.read_bytes()

    def broken_save(path, *a, **k):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    model.save = broken_save  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        save_atomic(model, target)
    assert target.read_bytes() == good  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.zip"]


def test_resume_continues_the_timestep_count(run: Path, tmp_path: Path) -> None:
    ckpt = run.parent / "checkpoints" / "step_0000000064.zip"
    final = train(_cfg(tmp_path, total_timesteps=192), resume_from=ckpt, progress=False)
    side = read_sidecar(final)
    assert side["timesteps"] == 192 and side["parent"] == str(ckpt)
    ts = [pt["timesteps"] for pt in side["curve"]]
    assert ts[:2] == [0, 64] and ts[-1] == 192 and ts == sorted(ts)
    assert side["episodes"] > read_sidecar(ckpt)["episodes"]
    assert load_model(final).num_timesteps == 192


def test_same_seed_same_result(run: Path, tmp_path: Path) -> None:
    again = train(_cfg(tmp_path / "a"), progress=False)
    assert np.array_equal(_params(run), _params(again))
    strip = [{k: v for k, v in pt.items() if k != "wall_time"} for pt in read_sidecar(run)["curve"]]
    assert strip == [{k: v for k, v in pt.items() if k != "wall_time"}
                     for pt in read_sidecar(again)["curve"]]
    other = train(_cfg(tmp_path / "b", seed=4), progress=False)
    assert not np.array_equal(_params(run), _params(other))


def test_finetune_round_trip_on_a_larger_graph(run: Path, tmp_path: Path) -> None:
    """Pre-trained with max_nodes 15..48 padding; fine-tuned and evaluated on other sizes."""
    final = finetune(run, "tiny://chain-v1", "ring-4", total_timesteps=96, out_dir=tmp_path / "ft",
                     n_steps=48, batch_size=24, eval_every=48, progress=False)
    side = read_sidecar(final)
    assert side["kind"] == "finetune" and side["parent"] == str(run)
    assert side["config"]["graphs"] == ["tiny://chain-v1"] and side["timesteps"] == 96
    assert side["curve"][0]["timesteps"] == 0 and side["curve"][0]["eval_mean_score"] > 0
    base, tuned = _params(run), _params(final)
    assert base.shape == tuned.shape and not np.array_equal(base, tuned)
    res = evaluate_policy_on(final, "generator://layered-dag-v0/7", "ring-4", episodes=2)
    pr = Problem(load_graph("generator://layered-dag-v0/7"), get_hardware("ring-4"))
    assert res["mean_score"] > 0 and len(res["partitions"]) == 2
    assert pr.is_valid(np.array(res["best_partition"]))
    assert abs(pr.scores(np.array(res["best_partition"]))[0] - res["best_score"]) < 1e-9
    with pytest.raises(ValueError, match="k_max"):
        evaluate_policy_on(final, "tiny://chain-v1", "ring-8")


def test_evaluate_policy_on_is_deterministic(run: Path) -> None:
    a = evaluate_policy_on(run, "tiny://attention-v1", "ring-4", episodes=2)
    b = evaluate_policy_on(load_model(run), "tiny://attention-v1", "ring-4", episodes=1)
    assert a["scores"][0] == a["scores"][1] == b["scores"][0]
    assert set(a["repair"]) >= {"status", "mean_changes", "mean_time_s"}


def test_train_ppo_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    cfg = _cfg(tmp_path / "s", total_timesteps=64, eval_every=0, checkpoint_every=0).to_dict()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    main = runpy.run_path(str(ROOT / "agents" / "train_ppo.py"))["main"]
    assert main([str(tmp_path / "c.yaml"), "--no-progress", "--timesteps", "32"]) == 0
    assert read_sidecar(tmp_path / "s" / "final.zip")["timesteps"] == 64  # one whole rollout
    assert "best training score" in capsys.readouterr().out


# ------------------------------------------------------------------------------ RLSearch
def test_rl_search_spends_exactly_the_budget_and_is_reproducible(run: Path) -> None:
    from mcm_gym.learn.rl_search import RLSearch

    pr = Problem(load_graph("tiny://diamond-v1"), get_hardware("ring-4"))
    kw = {"extractor": {"hidden": 16, "layers": 1}, "net_arch": [16]}
    a = RLSearch(**kw).search(pr, budget=10, seed=5)
    b = RLSearch(**kw).search(pr, budget=10, seed=5)
    assert a.evaluations == len(a.trace) == 10 and a.method == "rl"
    assert a.trace == b.trace and a.score == b.score > 0
    assert pr.is_valid(a.partition)
    assert a.extra["deterministic_score"] is not None
    tuned = RLSearch(checkpoint=run).search(pr, budget=6, seed=0)
    assert tuned.evaluations == 6 and tuned.extra["checkpoint"] == str(run)
    raw = RLSearch(use_repair=False, **kw).search(pr, budget=5, seed=0)
    assert raw.evaluations == 5


# ------------------------------------------------------------------------------ learning
@pytest.mark.expensive
def test_short_training_improves_the_deterministic_score(tmp_path: Path) -> None:
    """About a minute on 2 idle cores: the deterministic policy gets better on its training graphs
    (mean score about 0.42 untrained, 0.60 after 6144 steps)."""
    graphs = TINY + ["generator://layered-dag-v0/0:6"]
    cfg = TrainConfig(graphs=graphs, hardware=["ring-4"], eval_graphs=graphs, total_timesteps=6144,
                      n_steps=256, batch_size=64, n_epochs=4, learning_rate=2e-3,
                      extractor={"hidden": 32, "layers": 2}, eval_every=3072, checkpoint_every=0,
                      seed=0, out_dir=str(tmp_path))
    curve = read_sidecar(train(cfg, progress=False))["curve"]
    before, after = curve[0]["eval_mean_score"], curve[-1]["eval_mean_score"]
    assert after > before + 0.05, (before, after)


def test_cli_train_finetune_and_partition_with_a_policy(tmp_path, capsys) -> None:
    from mcm_gym.cli import main

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("graphs: [tiny://chain-v1, tiny://diamond-v1]\nhardware: [ring-4]\nk_max: 4\n"
                   "total_timesteps: 256\nn_steps: 128\nbatch_size: 64\nn_epochs: 1\neval_every: 0\n"
                   "checkpoint_every: 0\nextractor: {hidden: 16, layers: 1}\nseed: 0\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "final.zip"
    assert ckpt.exists()
    assert main(["finetune", str(ckpt), "--graph", "tiny://attention-v1", "--hardware", "ring-4",
                 "--timesteps", "128", "--out", str(tmp_path / "ft"), "--no-progress"]) == 0
    out = tmp_path / "r.json"
    assert main(["partition", "--graph", "tiny://attention-v1", "--hardware", "ring-4", "--policy",
                 str(tmp_path / "ft" / "final.zip"), "--budget", "3", "--out", str(out)]) == 0
    assert "policy:final" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    assert main(["partition", "--policy", str(tmp_path / "missing.zip")]) == 2


def test_shipped_pretrained_policy_partitions_a_fresh_graph(capsys) -> None:
    from mcm_gym.cli import main

    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--policy", "pretrained",
                 "--budget", "2"]) == 0
    assert "policy:pretrained-v2" in capsys.readouterr().out
