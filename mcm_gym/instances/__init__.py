"""Problem instances: ids, generators, the bundled zoo and its split, importers, coarsening.

Layer: imports only :mod:`mcm_gym.core` (and :mod:`mcm_gym._io`).
"""

from __future__ import annotations

from mcm_gym.core.ids import InstanceId, InstanceIdError, expand_ids, parse_id
from mcm_gym.instances.catalog import graph_dir, list_graphs, load_graph
from mcm_gym.instances.coarsen import Coarsening, coarsen, expand_partition
from mcm_gym.instances.dataset import GraphGenerator
from mcm_gym.instances.generators import FAMILIES, Family, generate, layered_dag
from mcm_gym.instances.importers import from_networkx, from_onnx, from_torch

__all__ = ["FAMILIES", "Coarsening", "Family", "GraphGenerator", "InstanceId", "InstanceIdError", "coarsen",
           "expand_ids", "expand_partition", "from_networkx", "from_onnx", "from_torch", "generate", "graph_dir",
           "layered_dag", "list_graphs", "load_graph", "parse_id"]
