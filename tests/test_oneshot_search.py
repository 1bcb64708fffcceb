"""One-shot checkpoints (save / load without unpickling), the ``oneshot`` search method, multi-instance
training with instance draws, behaviour cloning, pre-training, and the shipped ``pretrained``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sb3_contrib")

from mcm_gym.cli import main  # noqa: E402
from mcm_gym.core.hardware import get_hardware  # noqa: E402
from mcm_gym.core.problem import Problem  # noqa: E402
from mcm_gym.instances.catalog import load_graph  # noqa: E402
from mcm_gym.instances.zoo import split_ids  # noqa: E402
from mcm_gym.learn.checkpoints import load_model, resolve_checkpoint  # noqa: E402
from mcm_gym.learn.oneshot import STAGE_ORDERS, STAGE_ORDERS_ALL, oneshot_policy_kwargs  # noqa: E402
from mcm_gym.learn.oneshot_search import (  # noqa: E402
    ADAPT_ORDERS,
    FINETUNE_NODE_ENTROPY,
    OneShotSearch,
    load_oneshot,
    save_oneshot,
    widen_policy,
)
from mcm_gym.learn.oneshot_train import (  # noqa: E402
    OneShotTrainConfig,
    greedy_candidates,
    greedy_partitions,
    greedy_scores,
    imitate_oneshot,
    obs_batch,
    oneshot_envs,
    policy_for_envs,
    policy_orders,
    train_oneshot,
)
from mcm_gym.search import get_searcher  # noqa: E402

LAYERED = "generator://layered-dag-v0/47"
SMALL = {"hidden": 16, "layers": 1, "sharpness": 3.0}


def _problem(g: str = LAYERED, h: str = "ring-4") -> Problem:
    return Problem(load_graph(g), get_hardware(h))


def _policy(k_max: int = 4):
    return policy_for_envs(oneshot_envs([(LAYERED, "ring-4")], k_max=k_max), oneshot_policy_kwargs(**SMALL))


def test_checkpoint_round_trip_keeps_weights_and_answers(tmp_path: Path) -> None:
    run = train_oneshot([(LAYERED, "ring-4")], OneShotTrainConfig(max_samples=64, samples_per_graph=16,
                                                                   policy=SMALL, seed=0))
    path = save_oneshot(run.policy, tmp_path / "p.pt", {"note": "unit test"})
    back = load_oneshot(path)
    a, b = run.policy.state_dict(), back.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    envs = oneshot_envs([(LAYERED, "ring-4"), ("tiny://attention-v1", "ring-4")], k_max=4, common_padding=False)
    for x, y in zip(greedy_candidates(run.policy, envs), greedy_candidates(back, envs), strict=True):
        assert np.array_equal(x, y)
    assert json.loads((tmp_path / "p.json").read_text())["note"] == "unit test"


class _Trap:
    """Pickled by reference: torch.load only rebuilds it when it unpickles arbitrary objects."""

    rebuilt = False

    def __init__(self) -> None:
        self.armed = True  # a non-empty state, so unpickling calls __setstate__

    def __setstate__(self, state: dict) -> None:
        _Trap.rebuilt = True


def test_loading_never_unpickles_and_names_bad_files(tmp_path: Path, monkeypatch) -> None:
    path = save_oneshot(_policy(), tmp_path / "p.pt")
    real_load, calls = torch.load, []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_oneshot(path)
    assert calls == [True]
    # a valid checkpoint plus an object of a custom class: loads only if torch unpickled it
    trap = tmp_path / "trap.pt"
    torch.save({**real_load(path, weights_only=True), "extra": _Trap()}, trap)
    with pytest.raises(ValueError, match="trap.pt: not a one-shot checkpoint"):
        load_oneshot(trap)
    assert not _Trap.rebuilt
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a one-shot checkpoint"):
        load_oneshot(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ValueError, match="format 'mcm-gym-oneshot/1' expected"):
        load_oneshot(other)
    with pytest.raises(ValueError, match="one-shot policy, not a MaskablePPO checkpoint"):
        load_model(path)


def test_a_malformed_checkpoint_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    blob = torch.load(save_oneshot(_policy(), tmp_path / "p.pt"), weights_only=True)
    key = next(iter(blob["state_dict"]))
    broken = {"no-k-max.pt": {k: v for k, v in blob.items() if k != "k_max"},
              "no-state.pt": {k: v for k, v in blob.items() if k != "state_dict"},
              "shape.pt": {**blob, "state_dict": {**blob["state_dict"], key: torch.zeros(3, 1, 7)}}}
    for name, b in broken.items():
        torch.save(b, tmp_path / name)
        with pytest.raises(ValueError, match=f"{name}: malformed one-shot checkpoint"):
            load_oneshot(tmp_path / name)


def test_oneshot_search_spends_exactly_its_budget_and_is_seeded(tmp_path: Path) -> None:
    pr = _problem()
    for budget in (1, 7, 40):
        res = get_searcher("oneshot:hidden=16,layers=1").search(pr, budget=budget, seed=3)
        assert len(res.trace) == budget and res.partition is not None
        assert pr.evaluate(res.partition).score[0] == pytest.approx(res.score)
    a = get_searcher("oneshot:hidden=16,layers=1").search(pr, budget=40, seed=3)
    b = get_searcher("oneshot:hidden=16,layers=1").search(pr, budget=40, seed=3)
    assert a.trace == b.trace
    path = save_oneshot(_policy(), tmp_path / "p.pt")
    zero = OneShotSearch(str(path)).search(pr, budget=1, seed=0)
    expect = greedy_scores(load_oneshot(path), [(LAYERED, "ring-4")])[0]
    assert zero.score == pytest.approx(expect)  # the first evaluation of a checkpoint is its greedy answer
    tuner = OneShotSearch(str(path))
    tuned = tuner.search(pr, budget=30, seed=0)
    assert tuned.trace[0] == pytest.approx(expect) and len(tuned.trace) == 30
    assert tuned.score > expect + 0.05  # fine-tuning finds better partitions than the untrained greedy one
    assert tuned.extra == {"temperature": 1.0, "node_entropy": FINETUNE_NODE_ENTROPY}
    start = load_oneshot(path).state_dict()
    assert tuner.last_policy is not None
    assert any(not torch.equal(start[k], v) for k, v in tuner.last_policy.state_dict().items())
    sampler = OneShotSearch(str(path), train=False)
    sampled = sampler.search(pr, budget=10, seed=0)
    assert len(sampled.trace) == 10 and sampled.trace[0] == pytest.approx(expect)
    assert sampled.extra == {"temperature": 1.0, "node_entropy": None}  # no fine-tuning: no flattening
    assert sampler.last_policy is not None
    assert all(torch.equal(start[k], v) for k, v in sampler.last_policy.state_dict().items())
    wide = OneShotSearch(str(path)).search(_problem(h="ring-8"), budget=4, seed=0)  # more chips: widened
    assert wide.extra["widened_k_max"] == {"from": 4, "to": 8} and len(wide.trace) == 4
    assert "widened_k_max" not in zero.extra


def test_oneshot_without_repair_scores_invalid_candidates_zero() -> None:
    pr = _problem("zoo://bert-base-v1", "ring-8")
    res = get_searcher("oneshot:hidden=16,layers=1,sharpness=1.0,use_repair=false").search(pr, budget=16, seed=0)
    with_repair = get_searcher("oneshot:hidden=16,layers=1,sharpness=1.0").search(pr, budget=16, seed=0)
    assert res.score < with_repair.score and with_repair.score > 0.5


def test_instance_draws_follow_the_weights() -> None:
    inst = [(LAYERED, "ring-4"), ("tiny://diamond-v1", "ring-4"), ("tiny://chain-v1", "ring-4")]
    seen: list[int] = []
    cfg = OneShotTrainConfig(max_samples=200, samples_per_graph=4, instances_per_update=1, policy=SMALL, seed=0)
    train_oneshot(inst, cfg, weights=[0.0, 1.0, 0.0], on_sample=lambda i, s, p: seen.append(i))
    assert set(seen) == {1} and len(seen) >= 200
    seen.clear()
    train_oneshot(inst, cfg, on_sample=lambda i, s, p: seen.append(i))
    assert set(seen) == {0, 1, 2}
    with pytest.raises(ValueError, match="weights"):
        train_oneshot(inst, cfg, weights=[1.0, 0.0])
    # every instance in every update: nothing is drawn, so the weights' zeros are no error
    every = OneShotTrainConfig(max_samples=8, samples_per_graph=2, instances_per_update=3, policy=SMALL)
    assert train_oneshot(inst, every, weights=[1.0, 0.0, 0.0]).samples == 8
    with pytest.raises(ValueError, match="fewer than instances_per_update"):
        train_oneshot(inst, OneShotTrainConfig(instances_per_update=2, policy=SMALL), weights=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="instances_per_update"):
        OneShotTrainConfig(instances_per_update=0)


def test_training_never_exceeds_its_budget() -> None:
    """The last update samples only what is left and skips greedy candidates beyond the budget."""
    for inst in ([(LAYERED, "ring-4")], [(LAYERED, "ring-4"), ("tiny://diamond-v1", "ring-4")]):
        for budget in (1, 3, 5, 6, 7, 11):
            seen: list[int] = []
            cfg = OneShotTrainConfig(max_samples=budget, samples_per_graph=4, policy=SMALL, seed=0)
            run = train_oneshot(inst, cfg, on_sample=lambda i, s, p, seen=seen: seen.append(i))
            assert run.samples == len(seen) == budget, (len(inst), budget)


def test_cloning_a_teacher_fits_its_partition() -> None:
    """Behaviour cloning drives the greedy candidate to the teacher's partition on the graph it saw."""
    from mcm_gym.search.dp import best_split

    pr = _problem()
    teacher, _ = best_split(pr, np.arange(pr.graph.n))
    assert teacher is not None
    pol = imitate_oneshot([(LAYERED, "ring-4")], [teacher], epochs=150, learning_rate=1e-2,
                          policy_kwargs=oneshot_policy_kwargs(**SMALL))
    got = greedy_candidates(pol, oneshot_envs([(LAYERED, "ring-4")], k_max=pol.k_max))[0]
    assert np.mean(got == teacher) >= 0.95
    with pytest.raises(ValueError, match="teacher partition has shape"):
        imitate_oneshot([(LAYERED, "ring-4")], [teacher[:3]], epochs=1)
    # a stages-head teacher that leaves a chip empty is cloned renumbered, and says so
    gap = np.where(np.asarray(teacher) >= 1, np.asarray(teacher) + 1, 0).clip(max=3)
    stages = oneshot_policy_kwargs(**SMALL, head="stages")
    with pytest.warns(UserWarning, match=r"leaves chips \[1\] empty; the stages head clones it"):
        imitate_oneshot([(LAYERED, "ring-4")], [gap], epochs=1, policy_kwargs=stages)


def test_pretraining_writes_a_selected_checkpoint_that_names_its_instances(tmp_path: Path) -> None:
    from mcm_gym.learn.oneshot_pretrain import PretrainConfig, pretrain_oneshot

    cfg = PretrainConfig(hardware=["ring-4"], generator_seeds=[0, 1, 2], zoo=False, val_seeds=[950], bc_epochs=2,
                         wall_time=60.0, samples=120, val_every=1, policy=SMALL,
                         rl={"samples_per_graph": 8, "instances_per_update": 2})
    policy, side = pretrain_oneshot(cfg, tmp_path, log=lambda _: None)
    assert (tmp_path / "best.pt").exists() and (tmp_path / "final.pt").exists()
    assert side["instances"] == [[f"generator://layered-dag-v0/{s}", "ring-4"] for s in (0, 1, 2)]
    assert side["selected"]["val_mean"] == max(p["val_mean"] for p in side["curve"])
    assert side["bc"]["epochs"] == 2 and len(side["bc"]["losses"]) == 2
    heldout = set(split_ids("heldout"))
    assert not heldout & {g for g, _ in side["instances"] + side["validation"]}
    with pytest.raises(ValueError, match="not in the train split"):
        PretrainConfig(generator_seeds=[1000])
    with pytest.raises(ValueError, match="overlap"):
        PretrainConfig(generator_seeds=[950], val_seeds=[950])
    with pytest.raises(ValueError, match="val_seeds must name"):
        PretrainConfig(val_seeds=[])
    with pytest.raises(ValueError, match="val_every must be >= 1"):
        PretrainConfig(val_every=0)
    with pytest.raises(ValueError, match="not zoo graphs of the train split"):
        PretrainConfig(val_zoo=["zoo://bert-base-v1"])  # held out


def test_zoo_validation_graphs_are_held_out_of_training() -> None:
    from mcm_gym.learn.oneshot_pretrain import PretrainConfig, training_instances

    train_zoo = [g for g in split_ids("train", generators=False)]
    held = train_zoo[:1]
    zoo_all, _ = training_instances(PretrainConfig(hardware=["ring-4"], generator_seeds=[0]))
    zoo_less, _ = training_instances(PretrainConfig(hardware=["ring-4"], generator_seeds=[0], val_zoo=held))
    assert {g for g, _ in zoo_all} - {g for g, _ in zoo_less} <= set(held)
    assert not {g for g, _ in zoo_less} & set(held)


def test_pretraining_guards_its_validation(tmp_path: Path, monkeypatch) -> None:
    """A validation reference of 0 is dropped (all of them: an error); the start is validated too, so
    a run without any update returns it."""
    from mcm_gym.learn import oneshot_pretrain
    from mcm_gym.learn.oneshot_pretrain import PretrainConfig, pretrain_oneshot

    cfg = PretrainConfig(hardware=["ring-4"], generator_seeds=[0], zoo=False, val_seeds=[950, 951], wall_time=0.0,
                         policy=SMALL, rl={"samples_per_graph": 4})
    monkeypatch.setattr(oneshot_pretrain, "_reference", lambda val: [0.0] * len(val))
    with pytest.raises(ValueError, match="no validation instance"):
        pretrain_oneshot(cfg, tmp_path / "a", log=lambda _: None)
    monkeypatch.setattr(oneshot_pretrain, "_reference", lambda val: [0.0, 0.5])
    logged: list[str] = []
    policy, side = pretrain_oneshot(cfg, tmp_path / "b", log=logged.append)
    assert side["validation"] == [["generator://layered-dag-v0/951", "ring-4"]]
    assert side["selected"]["update"] == 0 and side["selected"]["samples"] == 0
    assert side["selected"]["mean_score"] is None  # strict JSON: no NaN
    assert json.loads((tmp_path / "b" / "final.json").read_text())["final"]["update"] == 0
    assert any("dropped 1" in m for m in logged) and any(m.startswith("update 0:") for m in logged)
    assert policy.k_max == load_oneshot(tmp_path / "b" / "final.pt").k_max


def test_shipped_pretrained_is_the_one_shot_policy(capsys) -> None:
    path = resolve_checkpoint("pretrained")
    assert path.endswith("pretrained-v9.pt") and resolve_checkpoint("pretrained-v9") == path
    policy = load_oneshot(path)
    assert policy.head == "stages" and policy.balance == "rest" and policy.speed_prior > 0
    assert (policy.prior, policy.extra_orders, policy.orders) == ("work", 24, STAGE_ORDERS_ALL)
    v8 = load_oneshot(resolve_checkpoint("pretrained-v8"))  # the one before, by its name: four orders
    v7 = load_oneshot(resolve_checkpoint("pretrained-v7"))
    assert v8.orders == v7.orders == STAGE_ORDERS
    assert {k: v.shape for k, v in v7.state_dict().items()} == {k: v.shape for k, v in v8.state_dict().items()}
    assert not all(torch.equal(v, v8.state_dict()[k]) for k, v in v7.state_dict().items())
    v6 = load_oneshot(resolve_checkpoint("pretrained-v6"))
    assert (v6.head, v6.prior, v6.extra_orders) == ("stages", "work", 24)
    v5 = load_oneshot(resolve_checkpoint("pretrained-v5"))
    assert (v5.prior, v5.extra_orders) == ("pipeline", 0)
    v4 = load_oneshot(resolve_checkpoint("pretrained-v4"))  # the one before, by its name, as it was trained
    assert v4.head == "stages" and (v4.balance, v4.speed_prior) == ("global", 0.0)
    assert load_oneshot(resolve_checkpoint("pretrained-v3")).head == "nodes"  # the one before, by its name
    side = json.loads(Path(path).with_suffix(".json").read_text())
    heldout = set(split_ids("heldout"))
    assert side["instances"] and not heldout & {g for g, _ in side["instances"]}
    assert policy.cost_model == "mcm-cost/2"
    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--policy", "pretrained"]) == 0
    out = capsys.readouterr().out
    assert "policy:pretrained-v9" in out and "(seed 0, 1 evaluations" in out
    assert resolve_checkpoint("pretrained-v2").endswith("pretrained-v2.zip")  # the sequential one, by its name
    from mcm_gym.learn.evaluation import PolicySearch

    assert PolicySearch().name == "policy:pretrained-v2"  # the sequential searcher's default loads
    with pytest.raises(ValueError, match="one-shot policy, not a MaskablePPO checkpoint"):
        get_searcher("rl:checkpoint=pretrained").search(_problem(), budget=2)


def test_shipped_priors_are_an_untrained_stages_policy(capsys) -> None:
    """``priors``: a stages policy whose output layers are zero, so its greedy candidate is a fresh
    policy's (whatever the GNN weights); the CLI runs it zero-shot."""
    priors = load_oneshot(resolve_checkpoint("priors"))
    assert priors.head == "stages" and resolve_checkpoint("priors-v2") == resolve_checkpoint("priors")
    assert priors.orders == STAGE_ORDERS_ALL and load_oneshot(resolve_checkpoint("priors-v1")).orders == STAGE_ORDERS
    heads = priors.mlp_extractor
    assert all(not layer.weight.detach().any() and not layer.bias.detach().any() for layer in heads.output_layers())
    inst = [("generator://layered-dag-v0/1001", "ring-4")]
    envs = oneshot_envs(inst, k_max=priors.k_max)
    torch.manual_seed(123)
    fresh = policy_for_envs(envs, oneshot_policy_kwargs(head="stages", hidden=16, layers=1))
    assert np.array_equal(greedy_candidates(priors, envs)[0], greedy_candidates(fresh, envs)[0])
    assert main(["partition", "--graph", "tiny://diamond-v1", "--hardware", "ring-4", "--policy", "priors"]) == 0
    assert "policy:priors-v2" in capsys.readouterr().out


def test_zeroshot_experiment_takes_a_suite_and_reports_against_sa(tmp_path: Path) -> None:
    from mcm_gym.bench import experiments
    from mcm_gym.bench.suites import Instance, register_suite

    register_suite("suite://test-zeroshot-v1", "two tiny instances",
                   [Instance.of("tiny://attention-v1", "ring-4"), Instance.of("tiny://diamond-v1", "ring-4")])
    report = experiments.run_zeroshot(tmp_path, suite="suite://test-zeroshot-v1", scratch_budget=3, baselines=("sa",))
    assert "| tiny://attention-v1 | ring-4 |" in report and "| tiny://diamond-v1 | ring-4 |" in report
    assert "below simulated annealing at 3 evaluations on" in report and "Zero-shot time per instance" in report
    zs = json.loads((tmp_path / "zeroshot.json").read_text())
    assert len(zs) == 2 and all(v["seconds"] > 0 and v["partition"] is not None for v in zs.values())
    register_suite("suite://test-zeroshot-switches-v1", "switched",
                   [Instance.of("tiny://attention-v1", "ring-4", {"triangle": True})])
    with pytest.raises(ValueError, match="changed constraint switches"):
        experiments.run_zeroshot(tmp_path / "x", suite="suite://test-zeroshot-switches-v1")


def test_temperature_spreads_the_samples_not_the_greedy_candidate() -> None:
    with pytest.raises(ValueError, match="temperature"):
        OneShotTrainConfig(temperature=0.0)
    inst = [(LAYERED, "ring-4")]
    got = {}
    for t in (1.0, 8.0):
        cfg = OneShotTrainConfig(max_samples=64, samples_per_graph=64, learning_rate=1e-9, policy=SMALL, temperature=t)
        run = train_oneshot(inst, cfg)
        got[t] = run.curve[0]["mean_score"], greedy_candidates(run.policy, oneshot_envs(inst, k_max=4))[0]
    assert np.array_equal(got[1.0][1], got[8.0][1])  # (learning rate ~0: the same greedy candidate)
    assert got[8.0][0] < got[1.0][0]  # flatter samples repair to worse partitions on average


def test_sampling_without_training_needs_a_checkpoint(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="train=False needs a checkpoint"):
        OneShotSearch(train=False)
    with pytest.raises(SystemExit) as exc:  # checked while the arguments are parsed, before any run
        main(["bench", "--graphs", "tiny://diamond-v1", "--hardware", "ring-4", "--methods", "oneshot:train=false",
              "--budget", "2", "--out", str(tmp_path / "x.csv")])
    assert exc.value.code == 2 and "needs a checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_node_temperatures_spread_sharp_nodes_to_the_entropy_and_keep_the_argmax() -> None:
    from mcm_gym.learn.oneshot_train import node_temperatures

    logits = torch.tensor([[50.0, 0.0, -1e9, -1e9], [0.1, 0.0, 0.05, -1e9], [0.0, 30.0, 20.0, -1e9]])
    t = node_temperatures(logits, 0.3)
    assert torch.all(t >= 1.0) and t[1] == pytest.approx(1.0, abs=1e-6)  # already spread: left alone
    ent = torch.distributions.Categorical(logits=logits / t[:, None]).entropy()
    assert ent[0] == pytest.approx(0.3, abs=1e-3) and ent[2] == pytest.approx(0.3, abs=1e-3)
    assert torch.equal((logits / t[:, None]).argmax(dim=1), logits.argmax(dim=1))
    with pytest.raises(ValueError, match="node_entropy"):
        OneShotTrainConfig(node_entropy=0.0)


@pytest.mark.parametrize("train", [False, True])
def test_oneshot_search_polishes_its_greedy_partition_within_the_budget(train: bool) -> None:
    """``polish=N``: the greedy partition, then up to N polish moves, then samples or fine-tuning, all
    within the budget; the polished score is reached right after the polish."""
    pr = _problem(h="mesh-2x2")
    plain = OneShotSearch("priors", train=False).search(pr, budget=1, seed=0)
    got = get_searcher(f"oneshot:checkpoint=priors,train={train},polish=15").search(pr, budget=30, seed=0)
    info = got.extra["polish"]
    assert len(got.trace) == 30 and 1 <= info["evaluations"] <= 15
    assert info["start_score"] == pytest.approx(plain.score) and info["score"] >= plain.score
    assert got.trace[info["evaluations"]] == pytest.approx(info["score"])  # after 1 + N evaluations
    assert got.score >= info["score"] - 1e-12
    with pytest.raises(ValueError, match="polish needs a checkpoint"):
        OneShotSearch(None, polish=5)


def test_oneshot_search_adapts_its_orders_within_the_budget_and_seeded() -> None:
    """``adapt_orders=N`` (fine-tuning and from scratch): exactly the budget, seeded, and the first
    update's orders come from the greedy (here polished) partition, whose score the run keeps."""
    pr = _problem(h="mesh-2x2")
    for method in ("oneshot:checkpoint=priors,polish=10,adapt_orders=8", "oneshot:head=stages,adapt_orders=8"):
        a = get_searcher(method).search(pr, budget=40, seed=1)
        b = get_searcher(method).search(pr, budget=40, seed=1)
        assert len(a.trace) == 40 and a.trace == b.trace and a.score == max(a.trace)
        assert a.extra["adapt_orders"] == 8
    assert get_searcher("oneshot:head=stages").search(pr, budget=20, seed=0).extra["adapt_orders"] == ADAPT_ORDERS
    assert "adapt_orders" not in get_searcher("oneshot:head=stages,adapt_orders=0").search(pr, budget=20).extra
    assert "adapt_orders" not in OneShotSearch("priors", train=False).search(pr, budget=5).extra
    with pytest.raises(ValueError, match="adapt_orders must be >= 0"):
        OneShotSearch(None, adapt_orders=-2)


def test_fine_tuning_adapts_its_first_orders_around_the_polished_partition(monkeypatch) -> None:
    """The first update's orders come from the zero-shot partition polished (tie-breaking moves
    included), and later ones from the best partition so far."""
    from mcm_gym.learn import oneshot_train
    from mcm_gym.search.polish import polish

    pr = Problem(load_graph("generator://layered-dag-v0/1007"), get_hardware("mesh-2x2"))
    [(_, zero)] = greedy_partitions(load_oneshot(resolve_checkpoint("priors")), [(pr.graph, pr.hardware)])
    assert zero is not None
    done = polish(pr, zero, 10)
    assert done.moves >= 1  # an instance where the polish moves
    seen: list[np.ndarray] = []
    real = oneshot_train.policy_orders

    def spy(policy, problem, around=None, count=0, rng=None):
        if around is not None:
            seen.append(np.array(around))
        return real(policy, problem, around=around, count=count, rng=rng)

    monkeypatch.setattr(oneshot_train, "policy_orders", spy)
    res = get_searcher("oneshot:checkpoint=priors,polish=10,adapt_orders=8").search(pr, budget=60, seed=0)
    assert len(seen) >= 2 and np.array_equal(seen[0], done.partition)
    assert all(float(pr.evaluate(p).score[0]) >= done.score - 1e-12 for p in seen)  # always the best so far
    assert res.score >= done.score - 1e-12


@pytest.mark.parametrize("head", ["nodes", "stages"])
def test_a_widened_policy_keeps_its_distribution_where_it_fits_and_runs_on_more_chips(head: str) -> None:
    """``widen_policy``: on hardware the policy was built for, every candidate keeps its
    log-probability (the new stage counts and chips are masked there); on more chips it samples
    valid-sized candidates, and its new stage-count logits are the largest trained one's."""
    torch.manual_seed(0)
    pol = policy_for_envs(oneshot_envs([(LAYERED, "ring-4")], k_max=4),
                          oneshot_policy_kwargs(**SMALL, head=head))
    with torch.no_grad():  # the last layers start at zero: give them weights, or widening is trivial
        for layer in pol.mlp_extractor.output_layers():
            layer.weight.normal_(0.0, 0.5)
            layer.bias.normal_(0.0, 0.5)
    assert widen_policy(pol, 4) is pol
    with pytest.raises(ValueError, match="below the policy's K_max=4"):
        widen_policy(pol, 3)
    wide = widen_policy(pol, 8)
    assert wide.k_max == 8 and wide.head == head
    pr = _problem(h="ring-4")
    dists = []
    for p, k in ((pol, 4), (wide, 8)):
        obs, masks = obs_batch(oneshot_envs([(LAYERED, "ring-4")], k_max=k, common_padding=False))
        with torch.no_grad():
            dists.append(p.candidates(obs, masks, pr.n, orders=policy_orders(p, pr)))
    cands = dists[0].sample(32, torch.Generator().manual_seed(1))
    assert torch.equal(dists[0].mode(), dists[1].mode())
    torch.testing.assert_close(dists[0].log_prob(cands), dists[1].log_prob(cands))
    if head == "nodes":  # rows d, log beta, u_0 .. u_7: the four new chips' offsets are the trained ones' mean
        u = wide.state_dict()["mlp_extractor.node_head.2.weight"]
        torch.testing.assert_close(u[6:], u[2:6].mean(dim=0).expand(4, -1))
    else:
        g = wide.state_dict()["mlp_extractor.count_head.2.bias"]
        assert torch.equal(g[4:8], g[3].expand(4)) and torch.equal(g[8:], pol.state_dict()[
            "mlp_extractor.count_head.2.bias"][4:])
    big = _problem(h="ring-8")
    obs, masks = obs_batch(oneshot_envs([(LAYERED, "ring-8")], k_max=8, common_padding=False))
    with torch.no_grad():
        many = wide.candidates(obs, masks, big.n, orders=policy_orders(wide, big)).sample(64, torch.Generator())
    assert int(many.max()) <= 7 and int(many.max()) >= 4  # it uses chips the narrow policy never had


def test_partition_with_a_policy_on_more_chips_says_it_was_widened(capsys) -> None:
    assert main(["partition", "--graph", LAYERED, "--hardware", "mesh-4x4", "--policy", "pretrained"]) == 0
    out = capsys.readouterr().out
    assert "trained on at most 8 chips, widened to 16" in out and "16 chips" in out
    assert main(["partition", "--graph", LAYERED, "--hardware", "ring-4", "--policy", "pretrained"]) == 0
    assert "widened" not in capsys.readouterr().out


def test_zero_shot_in_a_batch_gives_what_each_instance_gives_alone(monkeypatch) -> None:
    """``greedy_partitions`` widens per instance: a 16-chip instance in the batch does not change the
    8-chip policy's orders or answer on a 4-chip one (the order budget shrinks with K_max^2)."""
    from mcm_gym.learn import oneshot, oneshot_train

    pol = load_oneshot(resolve_checkpoint("priors"))
    small = ("generator://layered-dag-v0/1002", "ring-4")
    n = load_graph(small[0]).n
    monkeypatch.setattr(oneshot, "STAGE_ORDER_BUDGET", 28 * 64 * n)  # all 28 orders at K_max 8, 7 at 16
    seen: list[tuple[int, int]] = []
    real = oneshot_train.policy_orders

    def spy(policy, problem, *a, **k):
        got = real(policy, problem, *a, **k)
        seen.append((problem.num_chips, int(got.orders.shape[0])))
        return got

    monkeypatch.setattr(oneshot_train, "policy_orders", spy)
    both = greedy_partitions(pol, [small, (LAYERED, "mesh-4x4")])
    assert seen[0] == (4, 28)
    [(_, alone)] = greedy_partitions(pol, [small])
    assert alone is not None and np.array_equal(both[0][1], alone)
    pr, big = both[1]
    assert big is not None and pr.num_chips == 16 and bool(pr.is_valid(big))
    assert pol.k_max == 8  # the caller's policy is not widened in place
