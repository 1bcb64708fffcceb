"""mcm-gym: partition ML computation graphs across the chiplets of a multi-chip module.

``import mcm_gym`` registers the Gymnasium environment ``MCMPartition-v0``.
"""

from __future__ import annotations

from .constraints import Violation
from .cost import CostModel, Evaluation
from .datasets import GraphGenerator, layered_dag, list_graphs, load_graph
from .graph import Edge, Graph, GraphError, Node
from .hardware import Chip, Constraints, Hardware, HardwareError, Link, get_hardware, list_presets
from .problem import InfeasibleError, Problem
from .repair import RepairConfig, RepairResult, greedy_repair, repair

__version__ = "0.1.0"

__all__ = [
    "Chip", "Constraints", "CostModel", "Edge", "Evaluation", "Graph", "GraphError", "GraphGenerator",
    "Hardware", "HardwareError", "InfeasibleError", "Link", "Node", "Problem", "RepairConfig",
    "RepairResult", "Violation", "get_hardware", "greedy_repair", "layered_dag", "list_graphs",
    "list_presets", "load_graph", "repair",
]


def _register() -> None:
    import gymnasium as gym

    if "MCMPartition-v0" not in gym.registry:
        gym.register(id="MCMPartition-v0", entry_point="mcm_gym.env:MCMPartitionEnv")


_register()
