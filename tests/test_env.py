"""The Gymnasium environment: API checks, masks, determinism, errors, the batch API."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import mcm_gym
from mcm_gym import GraphGenerator
from mcm_gym.env.partition_env import CHIP_FEATURES, NODE_FEATURES, InvalidActionError, MCMPartitionEnv

TINY = "tiny://attention-v1"

try:  # small networks on 2 cores: one torch thread is several times faster than contention
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def run_episode(env: gym.Env, seed: int, policy_seed: int = 0) -> tuple[float, dict]:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(policy_seed)
    rng = np.random.default_rng(policy_seed)
    done, reward = False, 0.0
    while not done:
        if env.unwrapped.mode == "oneshot":
            action = env.action_space.sample()
        else:
            mask = env.unwrapped.action_masks()
            action = int(rng.choice(np.flatnonzero(mask)))
        obs, reward, done, trunc, info = env.step(action)
        assert env.observation_space.contains(obs)
    return reward, info


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_gymnasium_check_env(mode: str) -> None:
    env = gym.make("MCMPartition-v0", graph=TINY, hardware="ring-4", mode=mode)
    gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_default_env_is_bert_on_ring8_and_passes_checkers(mode: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("MCMPartition-v0", mode=mode)
    u = env.unwrapped
    assert u.problem.graph.id == "zoo://bert-base-v1"
    assert u.problem.hardware.name == "ring-8"
    gym_check_env(u, skip_render_check=True)
    sb3_check_env(u, warn=False)


def test_sb3_check_env_tiny_both_modes() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for mode in ("sequential", "oneshot"):
        sb3_check_env(MCMPartitionEnv(TINY, "ring-4", mode=mode), warn=False)


def test_maskable_ppo_learns_without_error() -> None:
    from sb3_contrib import MaskablePPO

    env = gym.make("MCMPartition-v0", graph=TINY, hardware="ring-4")
    model = MaskablePPO("MultiInputPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0)
    model.learn(2048)
    obs, _ = env.reset(seed=1)
    done = False
    while not done:
        action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
        obs, reward, done, _, info = env.step(int(action))
    assert 0 < reward <= 1
    assert info["partition"] is not None


def test_observation_shapes_and_masks() -> None:
    env = MCMPartitionEnv(TINY, "ring-4", max_nodes=20, max_edges=30, k_max=6)
    obs, info = env.reset(seed=0)
    assert obs["node_features"].shape == (20, len(NODE_FEATURES))
    assert obs["chip_state"].shape == (6, len(CHIP_FEATURES))
    assert obs["edge_index"].shape == (2, 30)
    assert obs["node_mask"].sum() == 15 and obs["edge_mask"].sum() == 18
    # padding chips (4, 5) are never allowed
    assert not obs["action_mask"][4:].any()
    np.testing.assert_array_equal(obs["action_mask"].astype(bool), env.action_masks())
    # the first node can only go on chip 0 (contiguous: nothing used yet)
    assert env.action_masks().tolist() == [True, False, False, False, False, False]


def test_masks_follow_dataflow() -> None:
    env = MCMPartitionEnv("tiny://chain-v1", "ring-4")
    env.reset(seed=0)
    env.step(0)
    env.step(1)  # layer1 on chip 1: layer2 must not go back to chip 0
    assert env.action_masks()[:4].tolist() == [False, True, True, False]


def test_action_outside_space_raises_clear_error() -> None:
    env = MCMPartitionEnv(TINY, "ring-4")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="outside the action space"):
        env.step(4)
    with pytest.raises(InvalidActionError):
        env.step(-1)
    one = MCMPartitionEnv(TINY, "ring-4", mode="oneshot")
    one.reset(seed=0)
    with pytest.raises(InvalidActionError):
        one.step(np.full(15, 9))


def test_masked_action_is_reported_not_a_crash() -> None:
    env = MCMPartitionEnv("tiny://chain-v1", "ring-4")
    env.reset(seed=0)
    _, _, done, _, _ = env.step(3)  # first node on chip 3: masked (contiguity)
    assert not done
    while not done:
        _, reward, done, _, info = env.step(0)
    assert info["invalid_actions"] >= 1
    assert info["repair_status"] in ("optimal", "feasible")
    assert env.problem.is_valid(info["partition"])
    assert reward > 0


def test_step_after_end_raises() -> None:
    env = MCMPartitionEnv("tiny://chain-v1", "ring-4", mode="oneshot")
    env.reset(seed=0)
    env.step(np.zeros(6, dtype=np.int64))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6, dtype=np.int64))


def test_final_info_is_complete_and_consistent() -> None:
    env = MCMPartitionEnv(TINY, "ring-4")
    reward, info = run_episode(env, seed=0)
    for key in ("candidate", "partition", "changes", "repair_status", "repair_method", "score",
                "throughput", "bottleneck", "latency", "violations", "lower_bound"):
        assert key in info
    assert reward == pytest.approx(info["score"])
    p = info["partition"]
    assert env.problem.is_valid(p)
    assert info["changes"] == int((p != info["candidate"]).sum())
    assert info["throughput"] == pytest.approx(1 / info["bottleneck"])
    assert set(info["violations"]) >= {"dataflow", "memory", "contiguous"}


@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_same_seed_same_result(mode: str) -> None:
    a = run_episode(MCMPartitionEnv(TINY, "ring-4", mode=mode), seed=3, policy_seed=3)
    b = run_episode(MCMPartitionEnv(TINY, "ring-4", mode=mode), seed=3, policy_seed=3)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1]["partition"], b[1]["partition"])


def test_timing_info_is_opt_in() -> None:
    _, info = run_episode(MCMPartitionEnv(TINY, "ring-4"), seed=0)
    assert "repair_time" not in info
    env = MCMPartitionEnv(TINY, "ring-4", timing=True)
    _, info = run_episode(env, seed=0)
    assert info["repair_time"] == env.last_repair_time >= 0


def test_without_repair_an_invalid_candidate_scores_zero() -> None:
    env = MCMPartitionEnv("tiny://chain-v1", "ring-4", mode="oneshot", use_repair=False)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([3, 2, 1, 0, 0, 0]))  # dataflow violated
    assert reward == 0.0 and info["partition"] is None and info["violations"]["dataflow"] > 0
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([0, 0, 1, 1, 2, 3]))
    assert env.problem.is_valid(info["partition"]) and reward > 0


def test_multi_graph_env_samples_graphs_with_fixed_spaces() -> None:
    gen = mcm_gym.GraphGenerator.layered(range(6))
    env = MCMPartitionEnv(graphs=gen, hardware="ring-4", max_nodes=64, max_edges=128)
    seen = set()
    for s in range(6):
        obs, info = env.reset(seed=s)
        assert env.observation_space.contains(obs)
        seen.add(info["graph_id"])
    assert len(seen) > 1
    reward, info = run_episode(env, seed=11)
    assert 0 <= reward <= 1


def test_graph_too_large_for_padding_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="max_nodes"):
        MCMPartitionEnv(TINY, "ring-4", max_nodes=5)
    with pytest.raises(ValueError, match="k_max"):
        MCMPartitionEnv(TINY, "ring-8", k_max=4)


def test_infeasible_hardware_is_a_clear_error() -> None:
    with pytest.raises(mcm_gym.InfeasibleError, match="SRAM"):
        MCMPartitionEnv("zoo://bert-base-v1", "ring-2")


def test_batch_api_matches_single_evaluations() -> None:
    env = MCMPartitionEnv(TINY, "ring-4")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    batch = np.sort(rng.integers(0, 4, (16, 15)), axis=1)
    out = env.evaluate(batch)
    for i in range(16):
        one = env.evaluate(batch[i])
        assert one["score"][0] == out["score"][i]
        assert one["valid"][0] == out["valid"][i]
    res = env.repair(batch[0])
    assert res.partition is not None and env.problem.is_valid(res.partition)


def test_render_modes() -> None:
    env = MCMPartitionEnv(TINY, "ring-4", render_mode="ansi")
    run_episode(env, seed=0)
    text = env.render()
    assert "score" in text and "chip" in text
    env = MCMPartitionEnv(TINY, "ring-4", render_mode="rgb_array")
    env.reset(seed=0)
    img0 = env.render()
    assert img0.shape == env.render_shape and img0.dtype == np.uint8
    run_episode(env, seed=0)
    img1 = env.render()
    assert img1.shape == img0.shape and not np.array_equal(img0, img1)


def test_env_pickles() -> None:
    env = MCMPartitionEnv(TINY, "ring-4")
    env.reset(seed=0)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.action_masks().tolist() == env.action_masks().tolist()


def test_generator_sizes_the_padding_without_sampling() -> None:
    gen = GraphGenerator.layered(range(5))
    graphs = list(gen)
    env = gym.make("MCMPartition-v0", graphs=gen, hardware="ring-4")
    u = env.unwrapped
    assert (u.max_nodes, u.max_edges) == (max(g.n for g in graphs), max(g.num_edges for g in graphs))
    seen = set()
    for seed in range(12):  # every graph of the generator fits the padding
        env.reset(seed=seed)
        seen.add(u.problem.graph.id)
    assert len(seen) > 1
    env2 = gym.make("MCMPartition-v0", graphs=["generator://layered-dag-v0/0:5"], hardware="ring-4")
    assert env2.unwrapped.max_nodes == u.max_nodes


def test_reset_options_choose_the_instance() -> None:
    env = gym.make("MCMPartition-v0", graph="tiny://chain-v1", hardware="ring-4", max_nodes=64, max_edges=128)
    u = env.unwrapped
    obs, _ = env.reset(seed=0, options={"graph": "tiny://attention-v1"})
    assert u.problem.graph.id == "tiny://attention-v1"
    assert int(obs["node_mask"].sum()) == u.problem.graph.n
    env.reset(seed=1)  # a single-instance env keeps the choice
    assert u.problem.graph.id == "tiny://attention-v1"
    with pytest.raises(ValueError, match="8 chips > k_max=4"):
        env.reset(options={"hardware": "ring-8"})
    env8 = gym.make("MCMPartition-v0", graph="tiny://chain-v1", hardware="ring-4", k_max=8)
    env8.reset(options={"hardware": "ring-8"})
    assert env8.unwrapped.problem.hardware.num_chips == 8
    with pytest.raises(ValueError, match="unknown option.*'benchmark'"):
        env.reset(options={"benchmark": "tiny://chain-v1"})
    with pytest.raises(ValueError, match="nodes > max_nodes"):
        env.reset(options={"graph": "zoo://bert-base-v1"})
    pool = gym.make("MCMPartition-v0", graphs=["tiny://chain-v1", "tiny://diamond-v1"], hardware="ring-4",
                    max_nodes=64, max_edges=128)
    pool.reset(seed=0, options={"graph": "tiny://attention-v1"})
    assert pool.unwrapped.problem.graph.id == "tiny://attention-v1"
    ids = set()
    for s in range(8):  # a pool draws from its own graphs again
        pool.reset(seed=s)
        ids.add(pool.unwrapped.problem.graph.id)
    assert ids <= {"tiny://chain-v1", "tiny://diamond-v1"}
