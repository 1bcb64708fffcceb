"""A masked random agent driven only through the public Gymnasium API.

Run: ``python agents/random_agent.py --graph tiny://attention-v1 --hardware ring-4 --episodes 5``
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import mcm_gym  # noqa: F401  (registers MCMPartition-v0)


def run(graph: str, hardware: str, episodes: int, seed: int) -> list[float]:
    """Play ``episodes`` episodes choosing uniformly among allowed chips; return the rewards."""
    env = gym.make("MCMPartition-v0", graph=graph, hardware=hardware)
    rng = np.random.default_rng(seed)
    rewards = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        done = False
        while not done:
            allowed = np.flatnonzero(obs["action_mask"])
            obs, reward, done, _, info = env.step(int(rng.choice(allowed)))
        rewards.append(float(reward))
        print(f"episode {ep}: score {reward:.4f}  repair {info['repair_status']} "
              f"({info['changes']} changes)")
    return rewards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--graph", default="tiny://attention-v1")
    ap.add_argument("--hardware", default="ring-4")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rewards = run(args.graph, args.hardware, args.episodes, args.seed)
    print(f"mean score {np.mean(rewards):.4f} over {len(rewards)} episodes")


if __name__ == "__main__":
    main()
