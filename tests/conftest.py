"""Shared fixtures: hard-coded tiny instances, and the Hypothesis profiles.

Profiles: ``dev`` (default: 60 examples) and ``ci`` (200 examples, derandomised, the default when
the ``CI`` environment variable is set); pick one with ``HYPOTHESIS_PROFILE=ci``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from mcm_gym.core.graph import Edge, Graph, Node
from mcm_gym.core.hardware import Hardware, uniform

settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

try:  # small networks on 2 cores: one torch thread is several times faster than two contending
    import torch

    torch.set_num_threads(1)
except ImportError:  # torch is an optional extra
    pass


@pytest.fixture
def chain4() -> Graph:
    """a -> b -> c -> d; FLOPs, weights (bytes) and outputs (bytes) are small integers."""
    nodes = [Node("a", "matmul", 10, 4, 2), Node("b", "matmul", 20, 6, 3),
             Node("c", "matmul", 10, 2, 1), Node("d", "add", 5, 1, 1)]
    return Graph(nodes, [Edge("a", "b"), Edge("b", "c"), Edge("c", "d")], name="chain4")


@pytest.fixture
def diamond() -> Graph:
    """s -> {x, y} -> t plus the skip edge s -> t: a diamond with two triangles (s, x, t) and
    (s, y, t)."""
    nodes = [Node("s", "input", 0, 0, 4), Node("x", "matmul", 8, 5, 2),
             Node("y", "matmul", 8, 5, 2),
             Node("t", "add", 2, 1, 1)]
    edges = [Edge("s", "x"), Edge("s", "y"), Edge("x", "t"), Edge("y", "t"), Edge("s", "t", 3)]
    return Graph(nodes, edges, name="diamond")


@pytest.fixture
def small_hw() -> Hardware:
    """3 identical chips on a ring, 10 bytes of SRAM each (memory binds for the graphs above)."""
    return uniform(3, peak_flops=10, sram_bytes=10, link_bandwidth=2, link_latency=0.5,
                   name="small-ring-3")
