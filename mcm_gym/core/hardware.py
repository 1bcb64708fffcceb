"""Multi-chip-module hardware: chips, links, routing, constraint switches and named presets.

Units: ``peak_flops`` in FLOP/s, ``sram_bytes`` in bytes, ``mem_bw`` and link ``bandwidth`` in
bytes/s, link ``latency`` in seconds.

Chip ``k`` is the ``k``-th stage of the pipeline: the constraints speak of chip indices, and the
topology maps indices to physical positions. Routing is fixed by the topology:

* ``ring``: one directed link ``k -> (k+1) mod K`` per chip; a tensor from chip ``i`` to chip ``j``
  crosses links ``i, i+1, ..., j-1`` (mod K), i.e. wraps around when ``j < i``.
* ``chain``: links in both directions between neighbours; straight routes.
* ``mesh``: chips on an ``R x C`` grid in snake (boustrophedon) order so that consecutive stages are
  neighbours; links in both directions between grid neighbours; dimension-ordered XY routes
  (along the row first, then along the column).
* ``custom``: the links given; shortest routes by hop count (ties broken by the smallest link index).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym.core.ids import InstanceIdError, parse_id

__all__ = [
    "Chip",
    "Link",
    "ConstraintSwitches",
    "Hardware",
    "HardwareError",
    "PRESETS",
    "get_hardware",
    "list_presets",
]

CONSTRAINT_NAMES = ("dataflow", "memory", "contiguous", "neighbor_only", "triangle")


class HardwareError(ValueError):
    """A hardware profile is malformed, unknown, or cannot hold a graph."""


@dataclass(frozen=True)
class Chip:
    """One chiplet: ``peak_flops`` (FLOP/s), ``sram_bytes`` (bytes), optional ``mem_bw`` (bytes/s)."""

    peak_flops: float
    sram_bytes: float
    mem_bw: float | None = None

    def __post_init__(self) -> None:
        for name in ("peak_flops", "sram_bytes"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise HardwareError(f"chip field {name!r} must be a finite number > 0, got {v!r}")
        if self.mem_bw is not None and (not math.isfinite(self.mem_bw) or self.mem_bw <= 0):
            raise HardwareError(f"chip field 'mem_bw' must be > 0 or null, got {self.mem_bw!r}")


@dataclass(frozen=True)
class Link:
    """A directed link ``src -> dst`` between chip indices; ``bandwidth`` bytes/s, ``latency`` s."""

    src: int
    dst: int
    bandwidth: float
    latency: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.bandwidth) or self.bandwidth <= 0:
            raise HardwareError(f"link {self.src}->{self.dst}: bandwidth must be > 0, got {self.bandwidth!r}")
        if not math.isfinite(self.latency) or self.latency < 0:
            raise HardwareError(f"link {self.src}->{self.dst}: latency must be >= 0, got {self.latency!r}")


@dataclass(frozen=True)
class ConstraintSwitches:
    """Which constraint families are enforced (see DESIGN section 4 and ``mcm_gym.core.constraints``).

    ``activation_memory``: when on, the memory constraint also counts the ``out_bytes`` of every node
    on the chip (activation buffers), not just its ``weight_bytes``.
    """

    dataflow: bool = True
    memory: bool = True
    contiguous: bool = True
    neighbor_only: bool = False
    triangle: bool = False
    activation_memory: bool = False

    def enabled(self) -> tuple[str, ...]:
        return tuple(c for c in CONSTRAINT_NAMES if getattr(self, c))


@dataclass(frozen=True, eq=False)
class Hardware:
    """An MCM: chips in pipeline order, links, routing topology and constraint switches.

    ``serialize_comm``: when True a chip's stage time is its compute time plus the time of the links it
    drives (no overlap of compute and transfer); by default they overlap and the bottleneck is the max
    over chips and links.
    """

    chips: tuple[Chip, ...]
    links: tuple[Link, ...]
    topology: str = "custom"
    name: str = "custom"
    id: str | None = None
    grid: tuple[int, int] | None = None
    constraints: ConstraintSwitches = field(default_factory=ConstraintSwitches)
    serialize_comm: bool = False
    source: str = "user-defined"

    def __post_init__(self) -> None:
        object.__setattr__(self, "chips", tuple(self.chips))
        object.__setattr__(self, "links", tuple(self.links))
        if len(self.chips) == 0:
            raise HardwareError("hardware needs at least one chip (got a chip count of 0)")
        k = len(self.chips)
        if k > MAX_CHIPS:
            raise HardwareError(f"hardware has {k} chips; at most {MAX_CHIPS} are supported")
        for ln in self.links:
            if not (0 <= ln.src < k and 0 <= ln.dst < k) or ln.src == ln.dst:
                raise HardwareError(f"link {ln.src}->{ln.dst} does not join two distinct chips of 0..{k - 1}")
        if self.topology not in TOPOLOGIES:
            raise HardwareError(f"unknown topology {self.topology!r}: use one of {', '.join(TOPOLOGIES)}")
        if self.topology == "mesh":
            if self.grid is None or self.grid[0] * self.grid[1] != k:
                raise HardwareError(f"mesh needs grid=(rows, cols) with rows*cols == {k}")
        _ = self.routes  # validates connectivity

    # ------------------------------------------------------------------ arrays
    @property
    def num_chips(self) -> int:
        return len(self.chips)

    @property
    def num_links(self) -> int:
        return len(self.links)

    @cached_property
    def peak_flops(self) -> np.ndarray:
        return np.array([c.peak_flops for c in self.chips], dtype=np.float64)

    @cached_property
    def sram_bytes(self) -> np.ndarray:
        return np.array([c.sram_bytes for c in self.chips], dtype=np.float64)

    @cached_property
    def mem_bw(self) -> np.ndarray:
        """Memory bandwidth per chip in bytes/s (``inf`` where not modelled)."""
        return np.array([np.inf if c.mem_bw is None else c.mem_bw for c in self.chips])

    @cached_property
    def link_bandwidth(self) -> np.ndarray:
        return np.array([ln.bandwidth for ln in self.links], dtype=np.float64)

    @cached_property
    def link_latency(self) -> np.ndarray:
        return np.array([ln.latency for ln in self.links], dtype=np.float64)

    @property
    def total_sram_bytes(self) -> float:
        return float(self.sram_bytes.sum())

    @cached_property
    def positions(self) -> tuple[tuple[int, int], ...]:
        """(row, col) of each chip: snake order on a mesh, ``(0, k)`` otherwise."""
        if self.topology == "mesh" and self.grid is not None:
            return tuple(_snake(self.grid[1], k) for k in range(self.num_chips))
        return tuple((0, k) for k in range(self.num_chips))

    @cached_property
    def routes(self) -> np.ndarray:
        """``routes[a, b, l]`` is True when a tensor from chip ``a`` to chip ``b`` crosses link ``l``;
        shape ``(K, K, L)``."""
        k, nl = self.num_chips, self.num_links
        r = np.zeros((k, k, nl), dtype=bool)
        lid = {(ln.src, ln.dst): i for i, ln in enumerate(self.links)}
        for a in range(k):
            for b in range(k):
                if a == b:
                    continue
                path = self._path(a, b, lid)
                if path is None:
                    raise HardwareError(f"{self.name}: no route from chip {a} to chip {b}")
                for hop in zip(path[:-1], path[1:], strict=True):
                    if hop not in lid:
                        raise HardwareError(f"{self.name}: route {a}->{b} needs missing link {hop}")
                    r[a, b, lid[hop]] = True
        return r

    def _path(self, a: int, b: int, lid: Mapping[tuple[int, int], int]) -> list[int] | None:
        k = self.num_chips
        if self.topology == "ring":
            return [(a + i) % k for i in range(((b - a) % k) + 1)]
        if self.topology == "chain":
            step = 1 if b > a else -1
            return list(range(a, b + step, step))
        if self.topology == "mesh":
            pos = self.positions
            at = {p: i for i, p in enumerate(pos)}
            (r0, c0), (r1, c1) = pos[a], pos[b]
            path = [a]
            c = c0
            while c != c1:
                c += 1 if c1 > c else -1
                path.append(at[(r0, c)])
            r = r0
            while r != r1:
                r += 1 if r1 > r else -1
                path.append(at[(r, c1)])
            return path
        # custom: BFS by hop count, neighbours in link order
        adj: dict[int, list[int]] = {}
        for ln in self.links:
            adj.setdefault(ln.src, []).append(ln.dst)
        prev = {a: a}
        frontier = [a]
        while frontier and b not in prev:
            nxt = []
            for u in frontier:
                for w in adj.get(u, []):
                    if w not in prev:
                        prev[w] = u
                        nxt.append(w)
            frontier = nxt
        if b not in prev:
            return None
        path = [b]
        while path[-1] != a:
            path.append(prev[path[-1]])
        return path[::-1]

    @cached_property
    def link_driver(self) -> np.ndarray:
        """Chip that drives (sends on) each link, shape ``(L,)``."""
        return np.array([ln.src for ln in self.links], dtype=np.int64)

    # ------------------------------------------------------------------ helpers
    def with_constraints(self, **switches: bool) -> Hardware:
        """A copy with some constraint switches changed, e.g. ``hw.with_constraints(triangle=True)``.
        The id records the switches that differ from the defaults (``preset://ring-8-v1?triangle=on``),
        so results made on the copy replay on it (:func:`get_hardware` reads such ids)."""
        for key in switches:
            if key not in CONSTRAINT_NAMES + ("activation_memory",):
                raise HardwareError(f"unknown constraint {key!r}; known: {', '.join(CONSTRAINT_NAMES)}")
        cons = replace(self.constraints, **switches)
        hw_id = self.id
        if hw_id is not None:
            default = ConstraintSwitches()
            diff = [f"{k}={'on' if getattr(cons, k) else 'off'}" for k in SWITCH_NAMES
                    if getattr(cons, k) != getattr(default, k)]
            hw_id = hw_id.split("?")[0] + ("?" + "&".join(diff) if diff else "")
        return replace(self, constraints=cons, id=hw_id)

    def __repr__(self) -> str:
        return (f"Hardware(name={self.name!r}, topology={self.topology!r}, chips={self.num_chips}, "
                f"links={self.num_links}, constraints={self.constraints.enabled()})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "mcm-hardware/1",
            "name": self.name,
            "id": self.id,
            "topology": self.topology,
            "grid": list(self.grid) if self.grid else None,
            "source": self.source,
            "serialize_comm": self.serialize_comm,
            "constraints": asdict(self.constraints),
            "chips": [asdict(c) for c in self.chips],
            "links": [asdict(ln) for ln in self.links],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str = "hardware document") -> Hardware:
        """Build from a dict. ``links`` may be omitted for ring/chain/mesh: then every link gets
        ``link_bandwidth`` and ``link_latency`` from the document."""
        if not isinstance(doc, Mapping):
            raise HardwareError(f"{source}: expected an object, got {type(doc).__name__}")
        try:
            return cls._from_dict(doc, source)
        except HardwareError as exc:
            text = str(exc)
            raise HardwareError(text if text.startswith(source) else f"{source}: {text}") from None

    @classmethod
    def _from_dict(cls, doc: Mapping[str, Any], source: str) -> Hardware:
        try:
            chips_doc = doc["chips"]
        except KeyError:
            raise HardwareError(f"{source}: missing field 'chips'") from None
        if isinstance(chips_doc, Mapping):  # {"count": K, "peak_flops": ..., ...}
            chips_doc = dict(chips_doc)
            count = chips_doc.pop("count", None)
            if not isinstance(count, int) or isinstance(count, bool):
                raise HardwareError(f"{source}: 'chips.count' must be an integer, got {count!r}")
            if not 1 <= count <= MAX_CHIPS:
                raise HardwareError(f"{source}: chip count must lie in 1..{MAX_CHIPS}, got {count}")
            chips_doc = [chips_doc] * count
        if not isinstance(chips_doc, list):
            raise HardwareError(f"{source}: 'chips' must be a list or an object with 'count'")
        chips = []
        for i, c in enumerate(chips_doc):
            if not isinstance(c, Mapping):
                raise HardwareError(f"{source}: chip #{i} must be an object, got {c!r}")
            try:
                chips.append(Chip(**c))
            except (TypeError, HardwareError) as exc:
                raise HardwareError(f"{source}: chip #{i}: {exc}") from None
        topology = doc.get("topology", "custom")
        if topology not in TOPOLOGIES:
            raise HardwareError(f"{source}: unknown topology {topology!r}; use one of {', '.join(TOPOLOGIES)} "
                                f"(custom takes explicit 'links')")
        grid_doc = doc.get("grid")
        if grid_doc is not None and not (isinstance(grid_doc, (list, tuple)) and len(grid_doc) == 2
                                         and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                                 for x in grid_doc)):
            raise HardwareError(f"{source}: 'grid' must be [rows, cols] with two integers >= 1, got {grid_doc!r}")
        grid = (int(grid_doc[0]), int(grid_doc[1])) if grid_doc is not None else None
        if "links" in doc and doc["links"] is not None:
            if not isinstance(doc["links"], list) or not all(isinstance(ln, Mapping) for ln in doc["links"]):
                raise HardwareError(f"{source}: 'links' must be a list of objects {{src, dst, bandwidth, latency}}")
            try:
                links = [Link(**ln) for ln in doc["links"]]
            except TypeError as exc:
                raise HardwareError(f"{source}: link: {exc}") from None
        else:
            for key in ("link_bandwidth",):
                if key not in doc:
                    raise HardwareError(f"{source}: give 'links' or '{key}'")
            links = _standard_links(topology, len(chips), grid, float(doc["link_bandwidth"]),
                                    float(doc.get("link_latency", 0.0)))
        cons = doc.get("constraints") or {}
        if not isinstance(cons, Mapping):
            raise HardwareError(f"{source}: 'constraints' must map names to true/false (e.g. "
                                f"{{triangle: true}}), got {type(cons).__name__} {cons!r}")
        unknown = set(cons) - set(CONSTRAINT_NAMES) - {"activation_memory"}
        if unknown:
            raise HardwareError(f"{source}: unknown constraint(s) {sorted(unknown)}; known: "
                                f"{', '.join(CONSTRAINT_NAMES)}, activation_memory")
        bad = sorted(k for k, v in cons.items() if not isinstance(v, bool))
        if bad:
            raise HardwareError(f"{source}: constraint switches must be true or false: {', '.join(bad)}")
        return cls(chips=tuple(chips), links=tuple(links), topology=topology,
                   name=str(doc.get("name", "custom")), id=doc.get("id"), grid=grid,  # type: ignore[arg-type]
                   constraints=ConstraintSwitches(**cons), serialize_comm=bool(doc.get("serialize_comm", False)),
                   source=str(doc.get("source", "user-defined")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Hardware:
        """Load a JSON or YAML hardware file."""
        path = Path(path)
        if not path.exists():
            raise HardwareError(f"hardware file not found: {path}")
        if path.is_dir():
            raise HardwareError(f"{path} is a directory, not a hardware file (JSON or YAML)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise HardwareError(f"{path}: not a text file; a hardware file is JSON or YAML") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
            else:
                doc = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - parse errors of either library
            raise HardwareError(f"{path}: cannot parse: {exc}") from None
        return cls.from_dict(doc, source=str(path))


def _yaml_loader() -> Any:
    """A ``yaml.SafeLoader`` that also reads ``1e12`` and ``1.0e12`` as floats (YAML 1.2 style);
    plain PyYAML follows YAML 1.1 and reads them as strings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
                   r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"),
        list("-+0123456789."))
    return Loader


def _snake(cols: int, k: int) -> tuple[int, int]:
    r, c = divmod(k, cols)
    return (r, c if r % 2 == 0 else cols - 1 - c)


def _standard_links(topology: str, k: int, grid: tuple[int, int] | None, bw: float,
                    lat: float) -> list[Link]:
    if topology == "ring":
        return [Link(i, (i + 1) % k, bw, lat) for i in range(k)] if k > 1 else []
    if topology == "chain":
        out = []
        for i in range(k - 1):
            out += [Link(i, i + 1, bw, lat), Link(i + 1, i, bw, lat)]
        return out
    if topology == "mesh":
        if grid is None or grid[0] * grid[1] != k:
            raise HardwareError(f"mesh needs grid=(rows, cols) with rows*cols == {k}")
        at = {_snake(grid[1], i): i for i in range(k)}
        out = []
        for (r, c), i in sorted(at.items(), key=lambda x: x[1]):
            for dr, dc in ((0, 1), (1, 0)):
                j = at.get((r + dr, c + dc))
                if j is not None:
                    out += [Link(i, j, bw, lat), Link(j, i, bw, lat)]
        return out
    raise HardwareError(f"topology {topology!r} needs explicit 'links'")


#: Every switch of :class:`ConstraintSwitches`, in a fixed order (ids list them in it).
SWITCH_NAMES = ("dataflow", "memory", "contiguous", "neighbor_only", "triangle", "activation_memory")
TOPOLOGIES = ("ring", "chain", "mesh", "custom")
#: The most chips a hardware profile may have: routing tables grow as K^3 (K x K chip pairs x K links).
MAX_CHIPS = 256


# ---------------------------------------------------------------------------- presets
# Figures are illustrative unless a source is given; each preset says which.
MiB = 1 << 20

RING_CHIP = Chip(peak_flops=32e12, sram_bytes=45 * MiB, mem_bw=1.0e12)
RING_LINK_BW = 25e9  # bytes/s
RING_LINK_LAT = 500e-9  # s
RING_SOURCE = (
    "Paper-like (Xie et al., MLSys 2022: chips on a 1D ring, limited SRAM per chip, low-bandwidth "
    "links). Figures are illustrative, not the paper's: 32 TFLOP/s bf16 and 1 TB/s SRAM bandwidth "
    "per chip, 45 MiB SRAM per chip (BERT-base's word-embedding table, 46.9 MB at bf16, just fits one "
    "chip; its weights fill 58% of ring-8's SRAM, the most a ring of 8 equal chips allows while that "
    "table fits), 25 GB/s and 500 ns per link."
)

SIMBA_CHIP = Chip(peak_flops=4e12, sram_bytes=48 * MiB, mem_bw=0.5e12)
SIMBA_LINK_BW = 12.5e9
SIMBA_LINK_LAT = 20e-9
SIMBA_SOURCE = (
    "Simba-like (Shao et al., MICRO 2019: 36 chiplets on a 6x6 mesh, about 4 TOPS each, "
    "ground-referenced-signalling links). 4 TOPS per chiplet follows Simba; SRAM (48 MiB per chiplet, "
    "Simba has about 1 MB), SRAM bandwidth (0.5 TB/s) and links (12.5 GB/s, 20 ns) are illustrative, "
    "raised so that transformer-size graphs fit."
)


def ring(k: int) -> Hardware:
    """Paper-like ``ring-K``: ``k`` identical chips on a unidirectional 1D ring."""
    if not 1 <= k <= MAX_CHIPS:
        raise HardwareError(f"ring needs 1..{MAX_CHIPS} chips, got {k}")
    return Hardware(chips=(RING_CHIP,) * k, links=tuple(_standard_links("ring", k, None, RING_LINK_BW,
                                                                          RING_LINK_LAT)),
                    topology="ring", name=f"ring-{k}", id=f"preset://ring-{k}-v1", source=RING_SOURCE)


def mesh(rows: int, cols: int) -> Hardware:
    """Simba-like ``mesh-RxC``: chiplets on a 2D mesh with XY routing, pipeline in snake order."""
    if rows < 1 or cols < 1 or rows * cols > MAX_CHIPS:
        raise HardwareError(f"mesh needs rows, cols >= 1 and at most {MAX_CHIPS} chips, got {rows}x{cols}")
    k = rows * cols
    return Hardware(chips=(SIMBA_CHIP,) * k,
                    links=tuple(_standard_links("mesh", k, (rows, cols), SIMBA_LINK_BW, SIMBA_LINK_LAT)),
                    topology="mesh", grid=(rows, cols), name=f"mesh-{rows}x{cols}",
                    id=f"preset://mesh-{rows}x{cols}-v1", source=SIMBA_SOURCE)


def hring(k: int) -> Hardware:
    """``hring-K``: ``ring-K`` whose chips differ in speed, stepping evenly from 16 to 48 TFLOP/s along
    the pipeline (illustrative: a mix of chiplet bins; SRAM, SRAM bandwidth and links as ``ring-K``)."""
    base = ring(k)
    speeds = np.linspace(16e12, 48e12, k) if k > 1 else np.array([32e12])
    chips = tuple(replace(RING_CHIP, peak_flops=float(f)) for f in speeds)
    return replace(base, chips=chips, name=f"hring-{k}", id=f"preset://hring-{k}-v1",
                   source=RING_SOURCE + " Heterogeneous: chip speeds step evenly from 16 to 48 TFLOP/s.")


PRESETS: dict[str, str] = {
    "ring-N": "paper-like 1D ring of N chips (v1), e.g. ring-8",
    "hring-N": "ring-N with chip speeds stepping from 16 to 48 TFLOP/s (v1), e.g. hring-4",
    "mesh-RxC": "Simba-like R x C mesh (v1), e.g. mesh-6x6",
}

_PRESET_RE = re.compile(r"^(ring|hring|mesh)-(\d+)(?:x(\d+))?(?:-v(\d+))?$")  # a preset's name, after preset://


def list_presets() -> list[str]:
    """Names of common presets (any ``ring-N`` and ``mesh-RxC`` is accepted)."""
    return ["ring-4", "ring-8", "ring-16", "mesh-2x2", "mesh-4x4", "mesh-6x6"]


def get_hardware(spec: str | os.PathLike[str] | Hardware | Mapping[str, Any]) -> Hardware:
    """Resolve ``spec``: a :class:`Hardware`, a preset name (``ring-8``, ``mesh-6x6``,
    ``preset://ring-8-v1``), a dict, or a path to a JSON/YAML file."""
    if isinstance(spec, Hardware):
        return spec
    if isinstance(spec, Mapping):
        return Hardware.from_dict(spec)
    s = str(spec)
    if "?" in s and not os.path.exists(s):  # switches on top: preset://ring-8-v1?triangle=on&contiguous=off
        base, _, query = s.partition("?")
        switches: dict[str, bool] = {}
        for item in filter(None, query.split("&")):
            key, eq, value = item.partition("=")
            if not eq or value not in ("on", "off") or key not in SWITCH_NAMES:
                raise HardwareError(f"bad constraint switch {item!r} in {s!r}: use name=on or name=off with a "
                                    f"name of {', '.join(SWITCH_NAMES)}")
            switches[key] = value == "on"
        return get_hardware(base).with_constraints(**switches)
    try:
        pid = parse_id(s)
    except InstanceIdError as exc:
        raise HardwareError(f"unknown hardware {s!r}: {exc}") from None
    if pid.scheme not in ("", "preset"):
        raise HardwareError(f"{s!r} is a {pid.scheme}:// id, not hardware: use a preset (ring-8, "
                            f"preset://ring-8-v1), mesh-RxC or a path to a JSON/YAML file")
    m = _PRESET_RE.match(pid.name)
    if m:
        kind, a, b, ver = m.groups()
        if ver is not None and ver != "1":
            raise HardwareError(f"unknown preset version in {s!r}: only v1 exists")
        if kind == "ring" and b is None:
            return ring(int(a))
        if kind == "hring" and b is None:
            return hring(int(a))
        if kind == "mesh" and b is not None:
            return mesh(int(a), int(b))
    if os.path.exists(s):
        return Hardware.load(s)
    raise HardwareError(f"unknown hardware preset {s!r}: use ring-N (e.g. ring-8), mesh-RxC "
                        f"(e.g. mesh-6x6) or a path to a JSON/YAML file")


def uniform(k: int, *, peak_flops: float, sram_bytes: float, link_bandwidth: float,
            link_latency: float = 0.0, mem_bw: float | None = None, topology: str = "ring",
            grid: tuple[int, int] | None = None, name: str | None = None,
            constraints: ConstraintSwitches | None = None) -> Hardware:
    """A custom MCM of ``k`` identical chips on a standard topology."""
    if k < 1:
        raise HardwareError(f"hardware needs at least one chip (got a chip count of {k})")
    chip = Chip(peak_flops=peak_flops, sram_bytes=sram_bytes, mem_bw=mem_bw)
    return Hardware(chips=(chip,) * k,
                    links=tuple(_standard_links(topology, k, grid, link_bandwidth, link_latency)),
                    topology=topology, grid=grid, name=name or f"custom-{topology}-{k}",
                    constraints=constraints or ConstraintSwitches())

