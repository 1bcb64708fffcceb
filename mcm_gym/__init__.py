"""mcm-gym: partition ML computation graphs across the chiplets of a multi-chip module.

``import mcm_gym`` registers the Gymnasium environment ``MCMPartition-v0``. The package is layered,
each layer importing only from those before it: ``_io`` (atomic files, locks), ``core`` (graph,
hardware, cost, constraints, encoding, repair, problem), ``instances`` (ids, generators, zoo,
importers), ``viz``, ``env``, ``search``, ``learn``, ``bench``, then ``cli`` (see docs/design.md).
"""

from __future__ import annotations

from mcm_gym.core.constraints import Violation
from mcm_gym.core.cost import CostModel, Evaluation
from mcm_gym.core.graph import Edge, Graph, GraphError, Node
from mcm_gym.core.hardware import (
    Chip,
    ConstraintSwitches,
    Hardware,
    HardwareError,
    Link,
    get_hardware,
    list_presets,
)
from mcm_gym.core.problem import InfeasibleError, Problem
from mcm_gym.core.repair import RepairConfig, RepairResult, greedy_repair, repair
from mcm_gym.instances import GraphGenerator, layered_dag, list_graphs, load_graph

__version__ = "0.1.0"

#: The former name of :class:`ConstraintSwitches` (kept so that existing code keeps working).
Constraints = ConstraintSwitches

__all__ = [
    "Chip", "ConstraintSwitches", "Constraints", "CostModel", "Edge", "Evaluation", "Graph", "GraphError",
    "GraphGenerator", "Hardware", "HardwareError", "InfeasibleError", "Link", "Node", "Problem", "RepairConfig",
    "RepairResult", "Violation", "get_hardware", "greedy_repair", "layered_dag", "list_graphs",
    "list_presets", "load_graph", "repair",
]


def _register() -> None:
    import gymnasium as gym

    if "MCMPartition-v0" not in gym.registry:
        gym.register(id="MCMPartition-v0", entry_point="mcm_gym.env:MCMPartitionEnv")


_register()
