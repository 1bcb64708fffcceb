"""Instance ids (graphs, generators, hardware presets), parsed in one place. It sits in the core so
that hardware presets use it too; :mod:`mcm_gym.instances` re-exports it.

Grammar (ids are stable and versioned; a change of content gets a new version):

* ``zoo://<name>-v<N>``: a bundled real-model graph; ``tiny://<name>-v<N>``: a small hand-made one;
* ``generator://<family>-v<N>/<seed>``: a random graph, the same for the same seed;
  ``generator://<family>-v<N>/<A>:<B>`` stands for the seeds ``A..B-1`` (a *range*);
* ``preset://<name>-v<N>``: a hardware preset (``preset://ring-8-v1``); ``suite://<name>-v<N>``: a
  benchmark suite (:mod:`mcm_gym.bench.suites`);
* anything else is a short name (``bert-base``, ``ring-8``) or a file path, resolved by the loader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["InstanceId", "InstanceIdError", "parse_id", "expand_ids", "SCHEMES"]

SCHEMES = ("zoo", "tiny", "generator", "preset", "suite")
_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.*)$")
_VERSIONED = re.compile(r"^[A-Za-z0-9_.-]+-v\d+$")
_SEEDS = re.compile(r"^(?P<a>\d+)(?::(?P<b>\d+))?$")


class InstanceIdError(ValueError):
    """A malformed instance id (unknown scheme, missing version, bad seed or range)."""


@dataclass(frozen=True)
class InstanceId:
    """A parsed id. ``scheme`` is one of :data:`SCHEMES`, or ``""`` for a short name or a path
    (then ``name`` holds the text as given); ``seeds`` is set for ``generator://`` ids."""

    scheme: str
    name: str
    seeds: range | None = None

    @property
    def is_range(self) -> bool:
        """Whether this id stands for several instances (``generator://family-v0/A:B``)."""
        return self.seeds is not None and len(self.seeds) != 1

    @property
    def seed(self) -> int:
        """The seed of a single ``generator://`` id."""
        if self.seeds is None or len(self.seeds) != 1:
            raise InstanceIdError(f"{self} is not a single generator instance")
        return self.seeds.start

    def expand(self) -> list[InstanceId]:
        """The single ids this id stands for (itself unless it is a range)."""
        if self.seeds is None or not self.is_range:
            return [self]
        return [InstanceId(self.scheme, self.name, range(s, s + 1)) for s in self.seeds]

    def __str__(self) -> str:
        if not self.scheme:
            return self.name
        if self.seeds is None:
            return f"{self.scheme}://{self.name}"
        s = self.seeds
        tail = str(s.start) if len(s) == 1 else f"{s.start}:{s.stop}"
        return f"{self.scheme}://{self.name}/{tail}"


def parse_id(text: str) -> InstanceId:
    """Parse ``text`` (see the module doc); raises :class:`InstanceIdError` naming what is wrong."""
    if not isinstance(text, str):
        raise InstanceIdError(f"an instance id must be a string, got {type(text).__name__}")
    m = _URI.match(text.strip())
    if m is None:
        return InstanceId("", text)
    scheme, rest = m["scheme"], m["rest"]
    if scheme not in SCHEMES:
        raise InstanceIdError(f"unknown scheme {scheme!r} in {text!r}; use one of "
                              f"{', '.join(s + '://' for s in SCHEMES)}, a short name or a file path")
    if scheme == "generator":
        family, slash, seeds = rest.partition("/")
        sm = _SEEDS.match(seeds) if slash else None
        if not _VERSIONED.match(family) or sm is None:
            raise InstanceIdError(f"bad generator id {text!r}: use generator://<family>-v<N>/<seed> "
                                  f"or generator://<family>-v<N>/<A>:<B> (seeds A..B-1)")
        a = int(sm["a"])
        b = int(sm["b"]) if sm["b"] is not None else a + 1
        if b <= a:
            raise InstanceIdError(f"empty seed range in {text!r}: {a}:{b} (the end is exclusive)")
        return InstanceId(scheme, family, range(a, b))
    if not _VERSIONED.match(rest):
        raise InstanceIdError(f"bad id {text!r}: use {scheme}://<name>-v<N>")
    return InstanceId(scheme, rest)


def expand_ids(specs: Iterable[Any]) -> list[Any]:
    """Replace every generator range in ``specs`` by its single ids (canonical strings); keep other
    entries (objects, short names, paths, other ids) as they are."""
    out: list[Any] = []
    for s in specs:
        if isinstance(s, str):
            pid = parse_id(s)
            if pid.seeds is not None:  # generator ids, ranges expanded, in canonical form
                out += [str(x) for x in pid.expand()]
                continue
        out.append(s)
    return out
