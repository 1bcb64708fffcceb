"""The Gymnasium environment ``MCMPartition-v0`` (:class:`MCMPartitionEnv`).

Layer: imports core, instances and viz.
"""

from __future__ import annotations

from mcm_gym.env.partition_env import CHIP_FEATURES, NODE_FEATURES, InvalidActionError, MCMPartitionEnv

__all__ = ["CHIP_FEATURES", "NODE_FEATURES", "InvalidActionError", "MCMPartitionEnv"]
