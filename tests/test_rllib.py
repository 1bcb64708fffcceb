"""RLlib PPO on the env (optional extra ``mcm-gym[rllib]``, which pins gymnasium 1.2.2, so CI runs this
file in an environment of its own: see .ci/run)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray.rllib")


@pytest.mark.expensive
def test_rllib_ppo_trains(tmp_path):
    from mcm_gym.learn.rllib import train_rllib_ppo

    returns = train_rllib_ppo(graph="tiny://attention-v1", hardware="ring-4", iterations=2, seed=0)
    assert len(returns) == 2
    assert all(0.0 < r <= 1.0 for r in returns), returns
