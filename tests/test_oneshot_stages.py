"""The one-shot policy's stages head: a distribution over contiguous splits of the node order
(exact probabilities, its support against the stage DP), training, cloning, checkpoints, and the
errors where it does not apply."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sb3_contrib")

from mcm_gym.core.hardware import get_hardware  # noqa: E402
from mcm_gym.core.problem import Problem  # noqa: E402
from mcm_gym.instances.catalog import load_graph  # noqa: E402
from mcm_gym.learn.oneshot import StageCandidates, oneshot_policy_kwargs  # noqa: E402
from mcm_gym.learn.oneshot_search import OneShotSearch, load_oneshot, save_oneshot  # noqa: E402
from mcm_gym.learn.oneshot_train import (  # noqa: E402
    OneShotTrainConfig,
    greedy_candidates,
    imitate_oneshot,
    obs_batch,
    oneshot_envs,
    policy_for_envs,
    train_oneshot,
)
from mcm_gym.search import get_searcher  # noqa: E402
from mcm_gym.search.dp import best_split  # noqa: E402

LAYERED = "generator://layered-dag-v0/47"
STAGES = {"hidden": 16, "layers": 1, "head": "stages"}


def _splits(n: int, k: int) -> list[np.ndarray]:
    """Every contiguous split of ``n`` nodes into ``m <= k`` non-empty stages on chips ``0 .. m-1``."""
    out = []
    for m in range(1, min(n, k) + 1):
        for ends in itertools.combinations(range(n - 1), m - 1):
            chips = np.zeros(n, dtype=np.int64)
            for e in ends:
                chips[e + 1:] += 1
            out.append(chips)
    return out


def _dist(gen: torch.Generator, n: int, k: int, orders: list[np.ndarray]) -> StageCandidates:
    o = len(orders)
    return StageCandidates(torch.randn(o, generator=gen), torch.as_tensor(np.stack(orders)),
                           torch.randn(k, generator=gen) * 2, torch.randn(o, k, k - 1, n, generator=gen) * 2)


def _support(n: int, k: int, orders: list[np.ndarray]) -> torch.Tensor:
    """Every partition that splits at least one of ``orders`` (node chips, deduplicated)."""
    seen: dict[bytes, np.ndarray] = {}
    for order in orders:
        for by_pos in _splits(n, k):
            chips = np.empty(n, dtype=np.int64)
            chips[order] = by_pos
            seen[chips.tobytes()] = chips
    return torch.as_tensor(np.stack(list(seen.values())))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 4), n_orders=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_stage_distribution_sums_to_one_over_every_split_of_every_order(n: int, k: int, n_orders: int,
                                                                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    orders = [np.arange(n)] + [rng.permutation(n) for _ in range(n_orders - 1)]  # duplicates allowed
    gen = torch.Generator().manual_seed(seed)
    d = _dist(gen, n, k, orders)
    support = _support(n, k, orders)
    assert float(d.log_prob(support).exp().sum()) == pytest.approx(1.0, abs=1e-5)
    keys = {tuple(x) for x in support.tolist()}
    assert {tuple(x) for x in d.sample(64, gen).tolist()} <= keys  # only splits of the orders are drawn
    mode = d.mode()
    assert tuple(mode.tolist()) in keys


def test_sampling_frequencies_match_the_probabilities() -> None:
    gen = torch.Generator().manual_seed(3)
    orders = [np.arange(5), np.array([0, 2, 1, 4, 3])]
    d = _dist(gen, 5, 3, orders)
    support = _support(5, 3, orders)
    probs = d.log_prob(support).exp().numpy()
    draws = d.sample(40_000, gen).numpy()
    freq = np.array([np.mean((draws == s.numpy()).all(axis=1)) for s in support])
    assert np.abs(freq - probs).max() < 0.01


def test_mode_follows_a_strong_cut_score_and_order() -> None:
    bound = torch.zeros(2, 2, 1, 10)
    bound[1, 1, 0, 6] = 20.0  # in order 1, stage 1 of 2 ends after position 6
    order = torch.stack([torch.arange(10), torch.arange(10).flip(0)])  # (not topological: the test only)
    d = StageCandidates(torch.tensor([0.0, 5.0]), order, torch.tensor([0.0, 5.0]), bound)
    assert d.mode().tolist() == [1] * 3 + [0] * 7


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 400), hw=st.sampled_from(["ring-2", "ring-4"]))
def test_best_split_in_the_support_is_the_stage_dp_of_the_order(seed: int, hw: str) -> None:
    """Brute force over the head's support (every split of the node order) finds the stage DP's score."""
    g = load_graph(f"generator://layered-dag-v0/{seed}")
    if g.n > 12:
        return
    pr = Problem(g, get_hardware(hw))
    parts = np.stack(_splits(g.n, pr.num_chips))
    ok = pr.is_valid(parts)
    brute = float(pr.evaluate(parts[ok]).score.max()) if ok.any() else 0.0
    dp_part, _ = best_split(pr, np.arange(g.n))
    dp = float(pr.evaluate(dp_part).score[0]) if dp_part is not None else 0.0
    assert brute == pytest.approx(dp, rel=1e-9)


def test_untrained_stages_head_splits_into_equal_shares_on_every_chip() -> None:
    envs = oneshot_envs([("zoo://bert-base-v1", "ring-8")], k_max=8)
    pol = policy_for_envs(envs, oneshot_policy_kwargs(**STAGES))
    cand = greedy_candidates(pol, envs)[0]
    assert np.all(np.diff(cand) >= 0) and sorted(set(cand.tolist())) == list(range(8))
    obs, _ = obs_batch(envs)
    work = np.diff(np.append(obs["node_features"][0, : len(cand), 7].numpy(), 1.0))  # work_before -> shares
    per_chip = np.bincount(cand, weights=work, minlength=8)
    assert per_chip.max() < 2.5 / 8  # no chip far above its share (the memory share also counts)


def test_stages_head_learns_a_small_dag_to_its_best_split_and_is_seeded() -> None:
    pr = Problem(load_graph(LAYERED), get_hardware("ring-4"))
    dp_part, _ = best_split(pr, np.arange(pr.graph.n))
    target = float(pr.evaluate(dp_part).score[0])
    cfg = OneShotTrainConfig(max_samples=600, samples_per_graph=32, policy=STAGES, seed=1)
    a = train_oneshot([(LAYERED, "ring-4")], cfg)
    b = train_oneshot([(LAYERED, "ring-4")], cfg)
    assert [r["mean_score"] for r in a.curve] == [r["mean_score"] for r in b.curve]
    first = a.curve[0]["mean_score"]
    assert a.best_score[0] >= target - 1e-9  # the best split of the order is found
    assert a.curve[-1]["mean_score"] > first + 0.01  # and the samples move towards it


def test_cloning_a_split_teacher_reproduces_it_and_refuses_others() -> None:
    inst = [(LAYERED, "ring-4")]
    pr = Problem(load_graph(LAYERED), get_hardware("ring-4"))
    teacher, _ = best_split(pr, np.arange(pr.graph.n))
    pol = imitate_oneshot(inst, [teacher], epochs=150, learning_rate=1e-2,
                          policy_kwargs=oneshot_policy_kwargs(**STAGES))
    got = greedy_candidates(pol, oneshot_envs(inst, k_max=pol.k_max))[0]
    assert np.array_equal(got, teacher)
    bad = teacher.copy()
    bad[0] = int(teacher.max())  # the first node on the last chip: not a split of the order
    with pytest.raises(ValueError, match="split"):
        imitate_oneshot(inst, [bad], epochs=1, policy_kwargs=oneshot_policy_kwargs(**STAGES))


def test_stages_checkpoint_round_trip_and_search(tmp_path: Path) -> None:
    run = train_oneshot([(LAYERED, "ring-4")], OneShotTrainConfig(max_samples=64, samples_per_graph=16,
                                                                   policy=STAGES, seed=0))
    back = load_oneshot(save_oneshot(run.policy, tmp_path / "s.pt"))
    assert back.head == "stages"
    envs = oneshot_envs([(LAYERED, "ring-4"), ("tiny://attention-v1", "ring-4")], k_max=4, common_padding=False)
    for x, y in zip(greedy_candidates(run.policy, envs), greedy_candidates(back, envs), strict=True):
        assert np.array_equal(x, y)
    pr = Problem(load_graph(LAYERED), get_hardware("ring-4"))
    res = OneShotSearch(tmp_path / "s.pt").search(pr, budget=40, seed=0)
    assert res.evaluations == 40 and res.extra["node_entropy"] is None  # no per-node logits to flatten
    zero = OneShotSearch(tmp_path / "s.pt", train=False).search(pr, budget=1, seed=0)
    assert zero.score == pytest.approx(float(pr.evaluate(pr.repair(greedy_candidates(back, envs[:1])[0]).partition)
                                             .score[0]))
    fresh = get_searcher("oneshot:head=stages").search(pr, budget=64, seed=0)
    assert fresh.evaluations == 64 and fresh.score > 0


def test_stages_head_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="head must be one of"):
        oneshot_policy_kwargs(head="pointer")
    with pytest.raises(ValueError, match="stages head"):
        train_oneshot([(LAYERED, "ring-4")], OneShotTrainConfig(max_samples=8, samples_per_graph=4, policy=STAGES,
                                                                  target="repaired"))
    envs = oneshot_envs([(LAYERED, "ring-4")], k_max=4)
    pol = policy_for_envs(envs, oneshot_policy_kwargs(**STAGES))
    obs, masks = obs_batch(envs)
    with pytest.raises(ValueError, match="no per-node chip logits"):
        pol.node_logits(obs)  # what MaskablePPO would call
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from mcm_gym.learn.oneshot import OneShotPolicy

    model = MaskablePPO(OneShotPolicy, DummyVecEnv([lambda: envs[0]]), policy_kwargs=oneshot_policy_kwargs(**STAGES),
                        n_steps=4, batch_size=4)
    with pytest.raises(ValueError, match="train_oneshot"):
        model.learn(4)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 300), key_seed=st.integers(0, 10**6))
def test_cut_bytes_along_any_order_match_brute_force(seed: int, key_seed: int) -> None:
    from mcm_gym.env.observation import cut_bytes
    from mcm_gym.search.dp import priority_order

    pr = Problem(load_graph(f"generator://layered-dag-v0/{seed}"), get_hardware("ring-4"))
    g = pr.graph
    order = priority_order(pr, np.random.default_rng(key_seed).random(g.n))
    pos = np.argsort(order)
    brute = [sum(float(g.out_bytes[u]) for u in range(g.n)
                 if pos[u] <= i and any(pos[w] > i for w in g.succs[u])) for i in range(g.n)]
    assert np.allclose(cut_bytes(g, order), brute)
    assert np.allclose(cut_bytes(g), cut_bytes(g, np.arange(g.n)))


def test_stage_orders_are_topological_and_cover_the_head_choices() -> None:
    from mcm_gym.learn.oneshot import STAGE_ORDERS
    from mcm_gym.learn.oneshot_train import stage_orders

    pr = Problem(load_graph("zoo://resnet-50-v1"), get_hardware("ring-4"))
    orders, cuts = stage_orders(pr)
    assert orders.shape == cuts.shape == (len(STAGE_ORDERS), pr.graph.n)
    for o in orders.numpy():
        pos = np.argsort(o)
        assert sorted(o.tolist()) == list(range(pr.graph.n))
        assert np.all(pos[pr.graph.edge_src] < pos[pr.graph.edge_dst])
    assert float(cuts.min()) >= 0 and float(cuts.max()) <= 1


def test_fine_tuning_temperature_reaches_the_stage_entropy_and_keeps_the_greedy_candidate() -> None:
    from mcm_gym.learn.oneshot_search import stage_temperature

    run = train_oneshot([(LAYERED, "ring-4")], OneShotTrainConfig(max_samples=400, samples_per_graph=32,
                                                                   policy=STAGES, seed=0))
    pol = run.policy
    env = oneshot_envs([(LAYERED, "ring-4")], k_max=pol.k_max)[0]
    obs, masks = obs_batch([env])
    from mcm_gym.learn.oneshot_train import policy_orders

    orders = policy_orders(pol, env.problem)

    def dist(t: float) -> StageCandidates:
        with torch.no_grad():
            d = pol.candidates(obs, masks, env.problem.n, t, orders=orders)
        assert isinstance(d, StageCandidates)
        return d

    ends = int(dist(1.0).count.argmax())
    assert ends >= 1
    before = float(dist(1.0).entropy()) / ends
    target = before + 0.5
    t = stage_temperature(pol, env, target)
    assert t > 1.0
    assert float(dist(t).entropy()) / ends == pytest.approx(target, abs=0.02)
    assert torch.equal(dist(t).mode(), dist(1.0).mode())
    assert stage_temperature(pol, env, before / 2) == 1.0  # already that spread: the floor


def test_stage_targets_follow_the_chips_speeds() -> None:
    from mcm_gym.learn.oneshot import stage_targets

    same = stage_targets(torch.ones(4), 4)
    assert torch.allclose(same, stage_targets(None, 4))
    assert torch.allclose(same[3], torch.tensor([0.25, 0.5, 0.75]))
    fast_first = stage_targets(torch.tensor([2.0, 1.0, 1.0, 1.0]), 4)
    assert torch.allclose(fast_first[3], torch.tensor([0.4, 0.6, 0.8]))  # the 2x chip takes 2/5 of the work
    assert torch.allclose(fast_first[1, :1], torch.tensor([2 / 3]))  # m = 2: chips 0 and 1 only


def test_untrained_stages_head_gives_faster_chips_longer_stages() -> None:
    g = "zoo://resnet-50-v1"
    envs = oneshot_envs([(g, "hring-4")], k_max=4)
    pol = policy_for_envs(envs, oneshot_policy_kwargs(**STAGES))
    cand = greedy_candidates(pol, envs)[0]
    pr = envs[0].problem
    work = pr.cost.node_time.min(axis=1)  # s on the fastest chip
    share = np.bincount(cand, weights=work, minlength=4) / work.sum()
    speed = pr.hardware.peak_flops / pr.hardware.peak_flops.sum()
    assert np.argmax(share) == np.argmax(speed) and np.argmin(share) == np.argmin(speed)
