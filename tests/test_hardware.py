"""Hardware: presets, routing, file round trips, errors, Problem's up-front feasibility check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcm_gym.core.graph import Graph, Node
from mcm_gym.core.hardware import Chip, ConstraintSwitches, Hardware, HardwareError, Link, get_hardware, uniform
from mcm_gym.core.problem import InfeasibleError, Problem


def walk(hw: Hardware, a: int, b: int) -> list[int]:
    """Follow the links of route a -> b from a; return the chips visited."""
    links = [hw.links[i] for i in np.flatnonzero(hw.routes[a, b])]
    nxt = {ln.src: ln.dst for ln in links}
    assert len(nxt) == len(links), "a route leaves some chip twice"
    path = [a]
    while path[-1] != b:
        path.append(nxt[path[-1]])
        assert len(path) <= len(links) + 1
    assert len(path) == len(links) + 1  # every link of the route is used once
    return path


def test_ring_8_preset() -> None:
    hw = get_hardware("ring-8")
    assert hw.num_chips == 8 and hw.num_links == 8 and hw.topology == "ring"
    assert hw.id == "preset://ring-8-v1" and hw.name == "ring-8"
    assert get_hardware("preset://ring-8-v1").to_dict() == hw.to_dict()
    assert "illustrative" in hw.source
    assert hw.constraints.enabled() == ("dataflow", "memory", "contiguous")
    assert all(c == hw.chips[0] for c in hw.chips)


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_ring_routes(k: int) -> None:
    hw = uniform(k, peak_flops=1, sram_bytes=1, link_bandwidth=1)
    for ln_i, ln in enumerate(hw.links):
        assert (ln.src, ln.dst) == (ln_i, (ln_i + 1) % k)
    for i in range(k):
        for j in range(k):
            expect = set() if i == j else {(i + t) % k for t in range((j - i) % k)}
            assert set(np.flatnonzero(hw.routes[i, j]).tolist()) == expect, (i, j)
            if i < j:
                assert expect == set(range(i, j))


def test_chain_routes() -> None:
    hw = uniform(4, peak_flops=1, sram_bytes=1, link_bandwidth=1, topology="chain")
    assert walk(hw, 0, 3) == [0, 1, 2, 3]
    assert walk(hw, 3, 1) == [3, 2, 1]


def test_mesh_6x6_preset() -> None:
    hw = get_hardware("mesh-6x6")
    assert hw.num_chips == 36 and hw.grid == (6, 6) and hw.topology == "mesh"
    assert "Simba" in hw.source
    pos = hw.positions
    assert sorted(pos) == [(r, c) for r in range(6) for c in range(6)]
    for i in range(35):  # consecutive pipeline stages are grid neighbours
        (r0, c0), (r1, c1) = pos[i], pos[i + 1]
        assert abs(r0 - r1) + abs(c0 - c1) == 1
    at = {p: i for i, p in enumerate(pos)}
    for a in range(36):
        for b in range(36):
            (r0, c0), (r1, c1) = pos[a], pos[b]
            assert hw.routes[a, b].sum() == abs(r0 - r1) + abs(c0 - c1)
            if a == b:
                continue
            path = [pos[x] for x in walk(hw, a, b)]
            # XY: along the row first (column changes), then along the column
            turn = next(i for i, p in enumerate(path) if p[1] == c1)
            assert all(p[0] == r0 for p in path[:turn + 1])
            assert all(p[1] == c1 for p in path[turn:])
            steps = zip(path, path[1:], strict=False)
            assert all(abs(p[0] - q[0]) + abs(p[1] - q[1]) == 1 for p, q in steps)
    assert at[pos[0]] == 0


@pytest.mark.parametrize("spec", ["torus-8", "ring-4x4", "mesh-8", "ring-8-v2", "bert"])
def test_unknown_preset(spec: str) -> None:
    with pytest.raises(HardwareError, match=f"{spec}") as ei:
        get_hardware(spec)
    msg = str(ei.value)
    assert ("ring-N" in msg and "mesh-RxC" in msg) or "only v1" in msg


def test_zero_chips() -> None:
    with pytest.raises(HardwareError, match="at least one chip"):
        uniform(0, peak_flops=1, sram_bytes=1, link_bandwidth=1)
    with pytest.raises(HardwareError, match=r"chip count must lie in 1..256, got 0"):
        Hardware.from_dict({"chips": {"count": 0, "peak_flops": 1, "sram_bytes": 1},
                            "topology": "ring", "link_bandwidth": 1})
    with pytest.raises(HardwareError, match="at least one chip"):
        Hardware(chips=(), links=())
    with pytest.raises(HardwareError, match=r"ring needs 1..256 chips, got 0"):
        get_hardware("ring-0")


def test_bad_chip_and_link_values() -> None:
    with pytest.raises(HardwareError, match="sram_bytes"):
        Chip(peak_flops=1, sram_bytes=-1)
    with pytest.raises(HardwareError, match="bandwidth"):
        Link(0, 1, 0)
    with pytest.raises(HardwareError, match="no route|missing link"):
        Hardware(chips=(Chip(1, 1),) * 3, links=(Link(0, 1, 1),), topology="custom")


def hetero() -> Hardware:
    chips = (Chip(1e12, 100, None), Chip(2e12, 200, 5e11), Chip(3e12, 50, None))
    links = (Link(0, 1, 1e9, 1e-7), Link(1, 2, 2e9, 0.0), Link(2, 0, 3e9, 2e-7))
    return Hardware(chips=chips, links=links, topology="ring", name="het",
                    constraints=ConstraintSwitches(triangle=True, activation_memory=True),
                    serialize_comm=True)


@pytest.mark.parametrize("make", [lambda: get_hardware("ring-4"), lambda: get_hardware("mesh-2x3"),
                                  hetero])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_file_round_trip(tmp_path: Path, make, suffix: str) -> None:  # noqa: ANN001
    hw = make()
    d = hw.to_dict()
    path = tmp_path / f"hw{suffix}"
    path.write_text(json.dumps(d) if suffix == ".json" else yaml.safe_dump(d))
    back = Hardware.load(path)
    assert back.to_dict() == d
    assert get_hardware(str(path)).to_dict() == d
    assert Hardware.from_dict(d).to_dict() == d
    assert np.array_equal(back.routes, hw.routes)


def test_hand_written_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("name: mine\ntopology: chain\n"
                    "chips: {count: 3, peak_flops: 1.0e12, sram_bytes: 64}\n"
                    "link_bandwidth: 1.0e9\nlink_latency: 1.0e-6\n"
                    "constraints: {neighbor_only: true}\n")
    hw = Hardware.load(path)
    assert hw.num_chips == 3 and hw.num_links == 4 and hw.name == "mine"
    assert hw.sram_bytes.tolist() == [64, 64, 64]
    assert hw.constraints.neighbor_only and hw.constraints.dataflow
    assert hw.link_latency.tolist() == [1e-6] * 4


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match="not found"):
        Hardware.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(HardwareError, match="cannot parse"):
        Hardware.load(bad)
    with pytest.raises(HardwareError, match=r"unknown constraint\(s\) \['skip'\]"):
        Hardware.from_dict({"chips": [{"peak_flops": 1, "sram_bytes": 1}], "links": [],
                            "constraints": {"skip": True}})


def test_with_constraints() -> None:
    hw = get_hardware("ring-4")
    t = hw.with_constraints(triangle=True, contiguous=False)
    assert t.constraints.enabled() == ("dataflow", "memory", "triangle")
    assert hw.constraints.enabled() == ("dataflow", "memory", "contiguous")  # original untouched
    assert t.to_dict()["chips"] == hw.to_dict()["chips"] and t.name == hw.name
    assert hw.with_constraints(activation_memory=True).constraints.activation_memory
    with pytest.raises(HardwareError, match="unknown constraint 'skipping'"):
        hw.with_constraints(skipping=True)


def test_problem_infeasible_total_sram() -> None:
    hw = uniform(3, peak_flops=1, sram_bytes=10, link_bandwidth=1, name="tiny3")
    g = Graph([Node("a", weight_bytes=9), Node("b", weight_bytes=9), Node("c", weight_bytes=13)],
              [])
    with pytest.raises(InfeasibleError, match=r"needs 31 bytes.*'tiny3' has only 30 bytes"):
        Problem(g, hw)
    with pytest.raises(HardwareError):  # InfeasibleError is a HardwareError
        Problem(g, hw)
    Problem(g, hw.with_constraints(memory=False))  # no memory constraint: fine


def test_problem_infeasible_single_node() -> None:
    hw = Hardware(chips=(Chip(1, 10), Chip(1, 12)), links=(Link(0, 1, 1), Link(1, 0, 1)),
                  topology="ring",
                  name="two")
    g = Graph([Node("small", weight_bytes=1), Node("huge", weight_bytes=13)], [("small", "huge")])
    msg = r"node 'huge'.*needs 13 bytes.*largest chip.*12 bytes"
    with pytest.raises(InfeasibleError, match=msg):
        Problem(g, hw)
    g2 = Graph([Node("small", weight_bytes=1), Node("big", weight_bytes=4, out_bytes=9)], [])
    Problem(g2, hw)
    with pytest.raises(InfeasibleError, match=r"node 'big'.*needs 13 bytes"):
        Problem(g2, hw.with_constraints(activation_memory=True))
