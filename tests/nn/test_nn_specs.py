"""Spec parsing, JSON round trips, nesting and validation errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seekdeploy.errors import SpecError
from seekdeploy.nn import (config_from_json, create_supernet, default_pair, get_family, list_families,
                           parse_spec, spec_from_json)
from seekdeploy.nn.families.mbconv import MBConvSpec, compound_scale
from seekdeploy.nn.families.resnet import ResNetSpec


def test_families_listed():
    assert {"resnet", "mbconv"} <= set(list_families())


@pytest.mark.parametrize("family", ["resnet", "mbconv"])
def test_text_and_json_round_trip(family):
    config, base, motivated = default_pair(family)
    for spec in (base, motivated):
        assert parse_spec(family, spec.to_text()) == spec
        assert parse_spec(None, spec.to_text()) == spec
        assert spec_from_json(json.loads(json.dumps(spec.to_json()))) == spec
        assert parse_spec(family, json.dumps(spec.to_json())) == spec
        assert hash(parse_spec(family, spec.to_text())) == hash(spec)
    assert config_from_json(json.loads(json.dumps(config.to_json()))) == config
    assert motivated.contains(base) and not base.contains(motivated) and motivated.contains(motivated)


def test_resnet_text_without_prefix_and_defaults():
    spec = parse_spec("resnet", "depth=3,3,3; width=16,32,64")
    assert spec == ResNetSpec(depth=(3, 3, 3), width=(16, 32, 64))
    mb = parse_spec("mbconv", "mbconv:stem=8;depth=1,1;width=8,16;expand=1,4;head=32")
    assert mb.kernel == (3, 3) and mb.stride == (1, 2) and mb.se == 0.0 and mb.act.value == "silu"


@pytest.mark.parametrize("text, message", [
    ("resnet:depth=3,3,3", "missing width"),
    ("resnet:depth=3,3,3;widht=16,32,64", "did you mean 'width'"),
    ("resnet:depth=3,3;width=16,32,64", "one value per stage"),
    ("resnet:depth=3,0,3;width=16,32,64", "depth must be integers >= 1"),
    ("resnet:depth=3,x,3;width=16,32,64", "bad value"),
    ("resnet:depth=3,3,3;width=16,32,64;depth=1,1,1", "twice"),
    ("resnet:depth 3", "not 'key=value'"),
    ("resnt:depth=3;width=4", "did you mean 'resnet'"),
    ('{"family": "resnet", "depth": [3,3,3]', "malformed"),
    ("mbconv:stem=8;depth=1,1;width=8,16;expand=1,4;head=32;kernel=3,4", "odd"),
    ("mbconv:stem=8;depth=1,1;width=8,16;expand=1,4;head=32;act=gelu", "expected one of"),
    ("mbconv:stem=8;depth=1,1;width=8,16;expand=1,4;head=32;stride=1,3", "strides must be 1 or 2"),
])
def test_validation_errors_name_the_problem(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(None, text)


def test_every_problem_of_a_spec_is_reported_at_once():
    with pytest.raises(SpecError) as caught:
        parse_spec(None, "resnet:depth=3,x,3;widht=16,32,64;stem=4")
    message = str(caught.value)
    for part in ("bad value '3,x,3'", "did you mean 'width'", "unknown key 'stem'", "missing width"):
        assert part in message, message
    # In the order they appear in the text, then what is missing.
    assert message.index("'depth'") < message.index("'widht'") < message.index("'stem'") < message.index("missing")


def test_family_mismatch_and_unknown_family():
    with pytest.raises(SpecError, match="expected a 'mbconv' spec"):
        parse_spec("mbconv", "resnet:depth=1,1,1;width=4,4,4")
    with pytest.raises(SpecError, match="available"):
        get_family("nope")


def test_contains_rules():
    _, base, big = default_pair("mbconv")
    assert not big.contains(dataclasses.replace(base, se=0.0))  # constants must match
    assert not big.contains(dataclasses.replace(base, expand=(2, 3, 3, 3)))  # expansion layer parity
    assert not big.contains(dataclasses.replace(base, head=big.head + 1))
    assert not big.contains(ResNetSpec(depth=(1,), width=(1,)))
    assert not ResNetSpec(depth=(3, 3), width=(8, 8)).contains(ResNetSpec(depth=(1, 1, 1), width=(1, 1, 1)))


def test_supernet_rejects_spec_outside_it():
    config, _, _ = default_pair("resnet")
    net = create_supernet("resnet", config, num_classes=3, in_channels=1, image_size=8)
    with pytest.raises(SpecError, match="does not fit"):
        net.check_spec(ResNetSpec(depth=(4, 1, 1), width=(8, 8, 8)))
    with pytest.raises(SpecError, match="unknown BN role"):
        net.check_role("motivatd")
    with pytest.raises(SpecError, match="positive integer"):
        create_supernet("resnet", config, num_classes=0, in_channels=1, image_size=8)


def test_compound_scale_grows_depth_and_width():
    _, base, _ = default_pair("mbconv")
    scaled = compound_scale(base, 2)
    assert all(s >= b for s, b in zip(scaled.depth, base.depth)) and scaled.depth != base.depth
    assert all(w % 8 == 0 and w >= b for w, b in zip(scaled.width, base.width))
    assert scaled.kernel == base.kernel and isinstance(scaled, MBConvSpec)
    assert compound_scale(base, 0, divisor=1) == base
    with pytest.raises(SpecError):
        compound_scale(base, 1, alpha=0.5)
