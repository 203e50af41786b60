"""The planner's shape rule: every shipped profile x family plans a pair in the family's
proportions (per-stage depths in the reference's pattern, depth and width scaled together)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seekdeploy.nn.registry import list_families
from seekdeploy.plan.planner import plan_pair
from seekdeploy.plan.predictor import RooflinePredictor
from seekdeploy.plan.proportions import (ALPHA, BETA, PHI_BAND, ShapeRule, depth_pattern, grid_mask,
                                         in_proportion, multipliers, reference_spec)
from seekdeploy.plan.space import spec_grid
from seekdeploy.profiles.loader import list_profiles, load_profile

PROFILES = [profile.name for profile in list_profiles()]


def _depths(spec) -> tuple[int, ...]:
    return (spec.depth,) if isinstance(spec.depth, int) else tuple(spec.depth)


def _check_shape(spec, family: str) -> None:
    """The rule written out again, independently of `proportions`' vectorized code."""
    reference = _depths(reference_spec(family))
    depths = _depths(spec)
    if len(depths) > 1:  # one depth multiplier gives every stage's depth
        assert any(depth_pattern(reference, step / 100) == depths for step in range(1, 2000)), spec
    delta, omega = multipliers(spec, family)
    gap = math.log(delta) / math.log(ALPHA) - math.log(omega) / math.log(BETA)
    too_narrow_for_one_block = max(depths) == 1 and gap > PHI_BAND
    assert abs(gap) <= PHI_BAND + 1e-9 or too_narrow_for_one_block, spec  # neither too deep nor too wide


class QuietVmPredictor(RooflinePredictor):
    """The roofline / 6: about what a quiet 2-core VM measures (the roofline predicts 3-8x that),
    for profiles whose budgets only a calibration can plan (x86-cpu-demo)."""

    def predict_latency_ms(self, spec) -> float:
        return super().predict_latency_ms(spec) / 6.0


@pytest.mark.parametrize("family", list_families())
@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_profile_plans_a_pair_in_the_familys_proportions(profile_name: str, family: str) -> None:
    profile = load_profile(profile_name)
    predictor = (QuietVmPredictor if profile_name == "x86-cpu-demo" else RooflinePredictor)(profile)
    plan = plan_pair(profile, family, predictor)
    base, motivated = plan.base.candidate.spec, plan.motivated.candidate.spec
    for spec in (base, motivated):
        _check_shape(spec, family)
        assert in_proportion(spec, family)
    assert motivated.contains(base) and base != motivated
    assert plan.to_json()["shape_rule"] == "proportional"


def test_the_jetson_resnet_is_no_longer_starved_of_its_last_stage() -> None:
    profile = load_profile("jetson")
    free = plan_pair(profile, "resnet", RooflinePredictor(profile), shape=ShapeRule.FREE)
    shaped = plan_pair(profile, "resnet", RooflinePredictor(profile))
    assert free.motivated.candidate.spec.depth == (18, 18, 1)  # what max-FLOPs picks (issue 27)
    depth = shaped.motivated.candidate.spec.depth
    assert len(set(depth)) == 1 and depth[0] > 1


@pytest.mark.parametrize("family", list_families())
def test_grid_mask_agrees_with_the_per_spec_rule(family: str) -> None:
    grid = spec_grid(family)
    mask = grid_mask(grid, family)
    assert 0 < mask.sum() < len(grid)
    rng = np.random.default_rng(0)
    picks = np.concatenate([rng.choice(np.flatnonzero(mask), 150), rng.choice(len(grid), 150)])
    for index in picks:
        spec = grid.spec_at(int(index))
        assert in_proportion(spec, family) == bool(mask[index]), spec
        if mask[index]:
            _check_shape(spec, family)


def test_the_reference_shape_and_its_compound_scalings_are_in_proportion() -> None:
    import dataclasses

    for family in list_families():
        assert in_proportion(reference_spec(family), family)
    resnet = reference_spec("resnet")
    assert not in_proportion(dataclasses.replace(resnet, depth=(18, 18, 1)), "resnet")
    assert not in_proportion(dataclasses.replace(resnet, depth=(1, 1, 1), width=(64, 128, 256)), "resnet")
    assert in_proportion(dataclasses.replace(resnet, depth=(5, 5, 5), width=(24, 48, 96)), "resnet")


def test_a_step_up_that_leaves_the_proportions_is_named() -> None:
    profile = load_profile("jetson")
    plan = plan_pair(profile, "resnet", RooflinePredictor(profile))
    assert set(plan.motivated.limits) == {"width", "depth"}  # the scaled directions, not per stage
    assert "proportions" in plan.motivated.limited_by() or "file size" in plan.motivated.limited_by()
