"""The planner's shape rules: the default (graded) and proportional rules allow exactly the specs
the rule says, every shipped profile x family plans a pair each rule allows, the graded rule
excludes shapes starved at low resolution, and on a quiet VM's calibration the graded pick is the
max-FLOPs pick."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from seekdeploy.plan.calibration_file import load_calibrated
from seekdeploy.plan.planner import plan_pair
from seekdeploy.plan.predictor import RooflinePredictor
from seekdeploy.plan.proportions import (ALPHA, BETA, DEFAULT_SHAPE_RULE, PHI_BAND, ShapeRule, allows_shape,
                                         depth_pattern, grid_mask, reference_spec, shape_steps)
from seekdeploy.plan.space import spec_grid
from seekdeploy.profiles.loader import list_profiles, load_profile
from seekdeploy.roles import Role

PROFILES = [profile.name for profile in list_profiles()]
FAMILIES = ("resnet", "mbconv", "vit")
RULES = (ShapeRule.GRADED, ShapeRule.PROPORTIONAL)
# The calibration of x86-cpu-demo that `seekdeploy run` measured on a quiet 2-vCPU VM (other work
# paused, 2026-12-06), with which docs/planning.md compares the rules' picks by training them.
QUIET_VM_CALIBRATION = Path(__file__).resolve().parents[1] / "fixtures" / "x86-cpu-demo.quiet-2vcpu.latency.json"


def _depths(spec) -> tuple[int, ...]:
    return (spec.depth,) if isinstance(spec.depth, int) else tuple(spec.depth)


def _channels(spec) -> float:
    if hasattr(spec, "embed_dim"):
        return float(spec.embed_dim)
    return float(spec.width) if isinstance(spec.width, int) else float(sum(spec.width))


@functools.lru_cache(maxsize=8)
def _scaled_patterns(family: str) -> frozenset[tuple[int, ...]]:
    """The reference's per-stage depths times every depth multiplier 0.01, 0.02, ... 20."""
    pattern = _depths(reference_spec(family))
    return frozenset(depth_pattern(pattern, step / 100) for step in range(1, 2001))


def _allowed_by_hand(depths: tuple[int, ...], channels: float, family: str, rule: ShapeRule) -> bool:
    """The rule written out again, spec by spec, independently of `proportions`' numpy code."""
    reference = reference_spec(family)
    if rule is ShapeRule.GRADED:
        if any(deeper < shallower for shallower, deeper in zip(depths, depths[1:])):
            return False  # a stage shallower than the one before it
        least_depth = min(depths) == 1
    else:
        if len(depths) > 1 and depths not in _scaled_patterns(family):
            return False  # not one depth multiplier times the reference's pattern
        least_depth = max(depths) == 1
    phi_depth = math.log(sum(depths) / sum(_depths(reference))) / math.log(ALPHA)
    phi_width = math.log(channels / _channels(reference)) / math.log(BETA)
    gap = phi_depth - phi_width
    return abs(gap) <= PHI_BAND or (least_depth and gap > PHI_BAND)


def _allowed(spec, family: str, rule: ShapeRule) -> bool:
    return _allowed_by_hand(_depths(spec), _channels(spec), family, rule)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_grid_mask_equals_the_rule_checked_spec_by_spec(family: str, rule: ShapeRule) -> None:
    grid = spec_grid(family)
    mask = grid_mask(grid, family, rule)
    depth_axes = len(grid.axes) - len(grid.shape_axes)
    expected = [_allowed_by_hand(depths, _channels(shape), family, rule)  # row-major: shapes, then depths
                for shape in grid.shapes for depths in itertools.product(grid.depth_values, repeat=depth_axes)]
    assert mask.tolist() == expected
    assert 0 < mask.sum() < len(grid)
    rng = np.random.default_rng(0)  # the per-spec rule (lists of candidates) agrees too
    for index in np.concatenate([rng.choice(np.flatnonzero(mask), 100), rng.choice(len(grid), 100)]):
        assert allows_shape(grid.spec_at(int(index)), family, rule) == bool(mask[index])


def test_the_proportional_specs_are_graded_too() -> None:
    for family in FAMILIES:
        grid = spec_grid(family)
        graded, proportional = (grid_mask(grid, family, rule) for rule in RULES)
        assert not (proportional & ~graded).any()
        assert graded.sum() > proportional.sum() or grid.scalar_depth  # one depth: the same rule


def test_the_default_shape_rule_is_graded() -> None:
    assert DEFAULT_SHAPE_RULE is ShapeRule.GRADED


class QuietVmPredictor(RooflinePredictor):
    """The roofline / 6: about what a quiet 2-core VM measures (the roofline predicts 3-8x that),
    for profiles whose budgets only a calibration can plan (x86-cpu-demo)."""

    def predict_latency_ms(self, spec) -> float:
        return super().predict_latency_ms(spec) / 6.0


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_profile_plans_a_pair_the_shape_rule_allows(profile_name: str, family: str, rule: ShapeRule) -> None:
    profile = load_profile(profile_name)
    predictor = (QuietVmPredictor if profile_name == "x86-cpu-demo" else RooflinePredictor)(profile)
    plan = plan_pair(profile, family, predictor) if rule is DEFAULT_SHAPE_RULE else \
        plan_pair(profile, family, predictor, shape=rule)
    base, motivated = plan.base.candidate.spec, plan.motivated.candidate.spec
    for spec in (base, motivated):
        assert _allowed(spec, family, rule), spec
        if rule is ShapeRule.GRADED:
            assert list(_depths(spec)) == sorted(_depths(spec)), spec  # depth never decreases
    assert motivated.contains(base) and base != motivated
    assert plan.to_json()["shape_rule"] == rule.value
    assert plan.summary_lines()[1].startswith(f"shape:     {rule.value} (")


def test_the_graded_rule_excludes_shapes_starved_at_low_resolution() -> None:
    resnet, mbconv = reference_spec("resnet"), reference_spec("mbconv")
    for width in ((8, 16, 32), (16, 32, 64), (64, 128, 256)):
        for depth in ((18, 18, 1), (12, 1, 1), (3, 2, 1), (2, 1, 1), (5, 5, 4)):
            spec = dataclasses.replace(resnet, depth=depth, width=width)
            assert not allows_shape(spec, "resnet", ShapeRule.GRADED), spec
            assert allows_shape(spec, "resnet", ShapeRule.FREE)
    assert not allows_shape(dataclasses.replace(mbconv, depth=(4, 1, 1, 1)), "mbconv", ShapeRule.GRADED)
    # Depth growing toward the low resolutions is graded (and not proportional for ResNet).
    for depth, width in (((1, 1, 5), (16, 32, 64)), ((1, 1, 3), (8, 16, 32)), ((4, 18, 18), (32, 64, 128))):
        spec = dataclasses.replace(resnet, depth=depth, width=width)
        assert allows_shape(spec, "resnet", ShapeRule.GRADED), spec
        assert not allows_shape(spec, "resnet", ShapeRule.PROPORTIONAL), spec
    # Balanced still: too deep or too wide for the other is refused.
    assert not allows_shape(dataclasses.replace(resnet, depth=(2, 9, 18), width=(16, 32, 64)), "resnet",
                            ShapeRule.GRADED)
    assert not allows_shape(dataclasses.replace(resnet, depth=(2, 2, 2), width=(128, 256, 512)), "resnet",
                            ShapeRule.GRADED)


def test_the_reference_shape_and_its_compound_scalings_are_allowed() -> None:
    for family in FAMILIES:
        for rule in RULES:
            assert allows_shape(reference_spec(family), family, rule)
    resnet = reference_spec("resnet")
    for rule in RULES:
        assert not allows_shape(dataclasses.replace(resnet, depth=(18, 18, 1)), "resnet", rule)
        assert not allows_shape(dataclasses.replace(resnet, depth=(1, 1, 1), width=(64, 128, 256)), "resnet", rule)
        assert allows_shape(dataclasses.replace(resnet, depth=(5, 5, 5), width=(24, 48, 96)), "resnet", rule)


def test_the_jetson_resnet_is_not_starved_of_its_last_stage() -> None:
    profile = load_profile("jetson")
    free = plan_pair(profile, "resnet", RooflinePredictor(profile), shape=ShapeRule.FREE)
    assert free.motivated.candidate.spec.depth == (18, 18, 1)  # what max-FLOPs picks
    graded = plan_pair(profile, "resnet", RooflinePredictor(profile))
    proportional = plan_pair(profile, "resnet", RooflinePredictor(profile), shape=ShapeRule.PROPORTIONAL)
    depth = graded.motivated.candidate.spec.depth
    assert list(depth) == sorted(depth) and depth[-1] > 1
    depth = proportional.motivated.candidate.spec.depth
    assert len(set(depth)) == 1 and depth[0] > 1


def _resnet_index(width_multiplier: float, depths: tuple[int, ...]) -> int:
    grid = spec_grid("resnet")
    axes = (grid.shape_axes[0][1].index(width_multiplier), *(grid.depth_values.index(d) for d in depths))
    return int(np.ravel_multi_index(axes, grid.dims))


def test_a_graded_step_up_is_one_more_block_in_a_stage_that_stays_no_deeper_than_the_next() -> None:
    grid = spec_grid("resnet")
    cap = grid.depth_values[-1]

    def steps(depths: tuple[int, ...]) -> dict[str, tuple[int, ...] | None]:
        found = shape_steps(grid, "resnet", _resnet_index(1.0, depths), ShapeRule.GRADED)
        return {axis: None if up is None else grid.spec_at(up).depth for axis, up in found if axis != "width"}

    assert steps((1, 1, 5)) == {"depth[1]": (1, 2, 5), "depth[2]": (1, 1, 6)}
    assert steps((2, 2, 2)) == {"depth[2]": (2, 2, 3)}
    assert steps((1, 2, 3)) == {"depth[0]": (2, 2, 3), "depth[1]": (1, 3, 3), "depth[2]": (1, 2, 4)}
    assert steps((cap, cap, cap)) == {"depth[2]": None}  # the grid's cap
    proportional = shape_steps(grid, "resnet", _resnet_index(1.0, (2, 2, 2)), ShapeRule.PROPORTIONAL)
    assert [(axis, up if up is None else grid.spec_at(up).depth) for axis, up in proportional][1:] == \
        [("depth", (3, 3, 3))]


@pytest.mark.parametrize(("rule", "depth_axes"), [(ShapeRule.GRADED, {"depth[0]", "depth[1]", "depth[2]"}),
                                                  (ShapeRule.PROPORTIONAL, {"depth"})])
def test_a_step_up_that_leaves_the_band_is_named(rule: ShapeRule, depth_axes: set[str]) -> None:
    profile = load_profile("jetson")
    plan = plan_pair(profile, "resnet", RooflinePredictor(profile), shape=rule)
    assert "width" in plan.motivated.limits and set(plan.motivated.limits) - {"width"} <= depth_axes
    assert "proportions" in plan.motivated.limited_by()


def test_on_the_quiet_vm_calibration_the_default_pick_is_the_max_flops_pick() -> None:
    """docs/planning.md trains these picks: the max-FLOPs pair scored 1.5 pp above the proportional
    one at the same measured latency, and the graded rule picks it."""
    profile = load_profile("x86-cpu-demo")
    budgets = {Role.BASE: dataclasses.replace(profile.budget(Role.BASE), latency_ms=0.32),
               Role.MOTIVATED: dataclasses.replace(profile.budget(Role.MOTIVATED), latency_ms=0.85)}
    profile = dataclasses.replace(profile, budgets=budgets)  # the budgets the experiment planned with
    recorded = json.loads(QUIET_VM_CALIBRATION.read_text())["fingerprint"]  # taken as this device's
    predictor = load_calibrated(profile, "resnet", QUIET_VM_CALIBRATION, fingerprint=recorded)
    assert predictor is not None and predictor.kind == "calibrated"

    def picked(**shape: ShapeRule) -> tuple[str, str]:
        plan = plan_pair(profile, "resnet", predictor, **shape)
        return plan.base.candidate.spec.to_text(), plan.motivated.candidate.spec.to_text()

    free = ("resnet:depth=1,1,3;width=8,16,32", "resnet:depth=1,1,5;width=16,32,64")
    assert picked() == picked(shape=ShapeRule.FREE) == free
    assert picked(shape=ShapeRule.PROPORTIONAL) == ("resnet:depth=1,1,1;width=8,16,32",
                                                    "resnet:depth=2,2,2;width=16,32,64")
