"""Property: whatever text or JSON is given, the spec parsers (`parse_spec` for every family,
`spec_from_json`, `config_from_json`) and the motivation-condition parser either return a valid
object or raise the project's own `SeekdeployError`, never a stray exception. What does parse
round-trips through its text/JSON form to an equal value."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seekdeploy import nn as sd_nn
from seekdeploy.errors import SeekdeployError
from seekdeploy.train.conditions import create_condition, parse_condition

FAMILIES = sd_nn.list_families()
PAIRS = {family: sd_nn.default_pair(family) for family in FAMILIES}
FIELD_NAMES = sorted({f.name for family in FAMILIES for f in dataclasses.fields(PAIRS[family][2])}
                     | {"embed", "mlp", "ratio", "family"})
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.integers(-3, 70), st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["1e400", "inf", "nan", "-0",
                                                                     "0x10", "１", "٣", "1_0"]))
words = st.one_of(st.sampled_from(["relu", "silu", "gelu", "mean", "cls", "token", "true", ""]),
                  st.text(max_size=6))
value_texts = st.one_of(
    numbers.map(str), words,
    st.lists(st.one_of(numbers.map(str), words), min_size=1, max_size=5).map(",".join))
parts = st.one_of(
    st.tuples(st.sampled_from(FIELD_NAMES), value_texts).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=12))
spec_texts = st.one_of(
    st.tuples(st.one_of(st.sampled_from([f"{f}:" for f in FAMILIES]), st.just(""),
                        st.text(max_size=8).map(lambda t: t + ":")),
              st.lists(parts, max_size=7).map(";".join)).map("".join),
    st.text(max_size=60),
    st.sampled_from([PAIRS[f][2].to_text() for f in FAMILIES] + ["{", "{}", "[1]", "null"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, words),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=10)


@st.composite
def spec_dicts(draw: st.DrawFn) -> Any:
    """A real spec's JSON with fields replaced, removed or added, or arbitrary JSON."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    data = PAIRS[draw(st.sampled_from(FAMILIES))][draw(st.sampled_from([0, 1, 2]))].to_json()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*data, *FIELD_NAMES]))
        action = draw(st.sampled_from(["replace", "delete", "list"]))
        if action == "delete":
            data.pop(key, None)
        elif action == "list":
            data[key] = draw(st.lists(numbers, max_size=6))
        else:
            data[key] = draw(json_values)
    return data


def _check_spec(spec: Any) -> None:
    assert isinstance(spec, sd_nn.SubnetSpec)
    assert spec.contains(spec)
    assert sd_nn.parse_spec(spec.family, spec.to_text()) == spec
    assert sd_nn.spec_from_json(spec.to_json()) == spec


@SETTINGS
@given(family=st.one_of(st.none(), st.sampled_from(FAMILIES), st.text(max_size=8)), text=spec_texts)
def test_parse_spec_returns_a_spec_or_raises_seekdeploy_error(family: str | None, text: str) -> None:
    try:
        spec = sd_nn.parse_spec(family, text)
    except SeekdeployError:
        return
    _check_spec(spec)


@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_parse_spec_of_each_family(family: str, data: st.DataObject) -> None:
    # The default spec's text with one or two fields changed, so many texts parse and round-trip.
    fields = PAIRS[family][2].to_json()
    fields.pop("family")
    for key in data.draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=2)):
        old = fields[key]
        size = len(old) if isinstance(old, list) else 1
        plausible = st.lists(st.integers(0, 9), min_size=size, max_size=size).map(
            lambda values: ",".join(map(str, values)))
        fields[key] = data.draw(st.one_of(plausible, plausible, value_texts))
    text = ";".join(f"{key}={_text(value)}" for key, value in fields.items())
    try:
        spec = sd_nn.parse_spec(family, text)
    except SeekdeployError:
        return
    _check_spec(spec)


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@SETTINGS
@given(data=spec_dicts())
def test_spec_and_config_from_json(data: Any) -> None:
    try:
        spec = sd_nn.spec_from_json(data)
    except SeekdeployError:
        pass
    else:
        _check_spec(spec)
    try:
        config = sd_nn.config_from_json(data)
    except SeekdeployError:
        return
    assert config.max_spec().contains(config.max_spec())
    assert sd_nn.config_from_json(config.to_json()) == config


def test_spec_json_of_every_default_pair_round_trips() -> None:
    # Guards the generators: they start from values that really parse.
    for family, (config, base, motivated) in PAIRS.items():
        assert sd_nn.config_from_json(config.to_json()) == config
        for spec in (base, motivated):
            _check_spec(spec)


condition_parts = st.one_of(
    st.tuples(st.sampled_from(["k", "hold", "p", "reference", "q", ""]),
              st.one_of(numbers.map(str), words)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=8))
condition_texts = st.one_of(
    st.tuples(st.sampled_from(["streak", "random", "matched", "never", "always", "streek", ""]),
              st.sampled_from([":", "", " : ", "::"]),
              st.lists(condition_parts, max_size=4).map(",".join)).map("".join),
    st.text(max_size=40))


@SETTINGS
@given(text=condition_texts, seed=st.integers(0, 2**31))
def test_condition_text_parses_or_raises_seekdeploy_error(text: str, seed: int) -> None:
    try:
        name, values = parse_condition(text)
    except SeekdeployError:
        return
    assert isinstance(name, str) and isinstance(values, dict)
    try:
        # `matched` reads its reference file here; a made-up path must be a clear error too.
        condition = create_condition(text, seed=seed)
    except SeekdeployError:
        assert name == "matched"
        return
    first = condition.decide(0)
    condition.observe_base_loss(1.0)
    condition.load_state_dict(condition.state_dict())
    assert first.role.value in ("base", "motivated")
