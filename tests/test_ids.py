"""The one id grammar: parsing, printing, ranges, errors, and its users (graphs, hardware, env)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcm_gym import GraphError, HardwareError, get_hardware, load_graph
from mcm_gym.instances import InstanceIdError, expand_ids, parse_id

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}-v[0-9]{1,2}", fullmatch=True)


@given(scheme=st.sampled_from(["zoo", "tiny", "preset"]), name=names)
def test_plain_ids_round_trip(scheme: str, name: str) -> None:
    pid = parse_id(f"{scheme}://{name}")
    assert (pid.scheme, pid.name, pid.seeds, pid.is_range) == (scheme, name, None, False)
    assert str(pid) == f"{scheme}://{name}"


@given(family=names, a=st.integers(0, 10_000), length=st.integers(1, 50))
def test_generator_ranges_expand_to_their_seeds(family: str, a: int, length: int) -> None:
    text = f"generator://{family}/{a}:{a + length}"
    pid = parse_id(text)
    assert str(pid) == (f"generator://{family}/{a}" if length == 1 else text)
    singles = expand_ids([text])
    assert singles == [f"generator://{family}/{s}" for s in range(a, a + length)]
    assert [parse_id(s).seed for s in singles] == list(range(a, a + length))


def test_short_names_and_paths_pass_through() -> None:
    for text in ("bert-base", "ring-8", "graphs/bert-base.json", "./model.json"):
        pid = parse_id(text)
        assert (pid.scheme, pid.name) == ("", text)
    objects = [object(), "tiny://chain-v1"]
    assert expand_ids(objects) == objects


@pytest.mark.parametrize("text, message", [
    ("torus://ring-8-v1", "unknown scheme 'torus'"),
    ("zoo://bert-base", "use zoo://<name>-v<N>"),
    ("generator://layered-dag-v0/x", "bad generator id"),
    ("generator://layered-dag/3", "bad generator id"),
    ("generator://layered-dag-v0/5:5", "empty seed range"),
])
def test_malformed_ids_are_named(text: str, message: str) -> None:
    with pytest.raises(InstanceIdError, match=message):
        parse_id(text)


def test_loaders_use_the_grammar() -> None:
    assert load_graph("generator://layered-dag-v0/3").id == "generator://layered-dag-v0/3"
    with pytest.raises(GraphError, match="stands for 3 graphs"):
        load_graph("generator://layered-dag-v0/0:3")
    with pytest.raises(GraphError, match="unknown generator family 'nope-v1'"):
        load_graph("generator://nope-v1/0")
    assert get_hardware("preset://mesh-2x2-v1").id == get_hardware("mesh-2x2").id == "preset://mesh-2x2-v1"
    with pytest.raises(HardwareError, match="is a zoo:// id, not hardware"):
        get_hardware("zoo://bert-base-v1")
    with pytest.raises(HardwareError, match="only v1 exists"):
        get_hardware("preset://ring-8-v2")
