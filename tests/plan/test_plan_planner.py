"""The pair planner on a synthetic predictor with known answers, and its errors.

The FLOPs rule (budgets, pair ratio, nesting, errors) is tested over any shape (`ShapeRule.FREE`)
against brute force; the shape rule itself is `test_plan_proportions.py`'s."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pytest

from seekdeploy.nn import estimate_cost
from seekdeploy.plan.planner import PlanError, evaluate_spec, plan_pair
from seekdeploy.plan.predictor import LatencyPredictor, input_geometry
from seekdeploy.plan.proportions import ShapeRule
from seekdeploy.plan.space import spec_grid
from seekdeploy.profiles.loader import load_profile
from seekdeploy.profiles.schema import Budget
from seekdeploy.roles import Role

PROFILE = load_profile("x86-cpu")
FREE = ShapeRule.FREE
GEOMETRY = input_geometry(PROFILE)


class FlopsPredictor(LatencyPredictor):
    """Known answer: 1 ms per 10 MFLOPs, no tail."""

    kind = "synthetic"

    def predict_latency_ms(self, spec: Any) -> float:
        return estimate_cost(spec, **GEOMETRY).flops / 10e6

    def tail_factor(self, percentile: float, typical_ms: object = None) -> float:
        return 1.0


def _with_budgets(base: Budget, motivated: Budget) -> Any:
    return dataclasses.replace(PROFILE, budgets={Role.BASE: base, Role.MOTIVATED: motivated})


def _subset(family: str, count: int = 300) -> list[Any]:
    """A seeded sample of the grid plus its smallest spec (the quadratic brute force stays fast)."""
    grid = spec_grid(family)
    picks = np.random.default_rng(0).choice(len(grid), size=count, replace=False)
    return [grid.spec_at(0), *(grid.spec_at(int(i)) for i in picks)]


def _brute_force(profile: Any, family: str, predictor: LatencyPredictor, ratio: float = 0.5) -> tuple[int, int]:
    """(motivated FLOPs, base FLOPs) of the best pair, by exhaustive search over all pairs."""
    evaluated = [evaluate_spec(spec, profile, predictor) for spec in _subset(family)]

    def fits(c, role):
        budget = profile.budget(role)
        return (c.latency_ms[role] <= budget.latency_ms
                and (budget.file_size_mib is None or c.file_size_mib <= budget.file_size_mib)
                and (budget.peak_memory_mib is None or c.memory_mib <= budget.peak_memory_mib))

    best = (0, 0)
    for m in (c for c in evaluated if fits(c, Role.MOTIVATED)):
        bases = [b.flops for b in evaluated if fits(b, Role.BASE) and b.spec != m.spec and m.spec.contains(b.spec)
                 and b.flops <= ratio * m.flops]
        if bases:
            best = max(best, (m.flops, max(bases)))
    return best


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_planner_picks_the_largest_feasible_nested_pair(family: str, ratio: float) -> None:
    profile = _with_budgets(Budget(latency_ms=2.0), Budget(latency_ms=8.0))
    predictor = FlopsPredictor(profile)
    plan = plan_pair(profile, family, predictor, candidates=_subset(family), max_base_ratio=ratio, shape=FREE)
    base, motivated = plan.base.candidate, plan.motivated.candidate
    assert motivated.spec.contains(base.spec) and base.spec != motivated.spec
    assert base.flops <= ratio * motivated.flops
    assert base.latency_ms[Role.BASE] <= 2.0 and motivated.latency_ms[Role.MOTIVATED] <= 8.0
    assert (motivated.flops, base.flops) == _brute_force(profile, family, predictor, ratio)
    assert plan.base.margins()["latency_ms"] == pytest.approx(2.0 - base.flops / 10e6)
    whole = plan_pair(profile, family, predictor, max_base_ratio=ratio, shape=FREE)  # the whole grid
    assert whole.search_seconds < 5.0 and whole.motivated.candidate.flops >= motivated.flops
    assert whole.base.candidate.flops <= ratio * whole.motivated.candidate.flops


def test_file_size_budget_binds_when_latency_does_not() -> None:
    profile = _with_budgets(Budget(latency_ms=1e6, file_size_mib=0.05), Budget(latency_ms=1e6, file_size_mib=0.5))
    plan = plan_pair(profile, "resnet", FlopsPredictor(profile), shape=FREE)
    assert plan.base.candidate.file_size_mib <= 0.05
    assert plan.motivated.candidate.file_size_mib <= 0.5
    assert "file size" in plan.motivated.limited_by() and "latency p95" not in plan.motivated.limited_by()
    subset = plan_pair(profile, "resnet", FlopsPredictor(profile), candidates=_subset("resnet"), shape=FREE)
    assert (subset.motivated.candidate.flops, subset.base.candidate.flops) == \
        _brute_force(profile, "resnet", FlopsPredictor(profile))


def test_unbounded_budgets_stop_at_the_grid_cap_on_every_axis() -> None:
    profile = _with_budgets(Budget(latency_ms=1e9), Budget(latency_ms=1e9))
    plan = plan_pair(profile, "vit", FlopsPredictor(profile), shape=FREE)
    grid = spec_grid("vit")
    assert plan.motivated.candidate.spec == grid.spec_at(len(grid) - 1)  # the grid's largest spec
    assert plan.motivated.limits == {name: ["grid cap"] for name, _ in grid.axes}
    assert plan.grid_limited and plan.to_json()["grid_caps"] == {"heads": 16, "mlp": 4.0, "depth": 16}


def test_plan_json_round_trips_specs() -> None:
    from seekdeploy.nn import spec_from_json

    profile = _with_budgets(Budget(latency_ms=2.0), Budget(latency_ms=8.0))
    data = json.loads(json.dumps(plan_pair(profile, "vit", FlopsPredictor(profile)).to_json()))
    base, motivated = spec_from_json(data["base"]["spec_json"]), spec_from_json(data["motivated"]["spec_json"])
    assert motivated.contains(base)
    assert data["predictor"]["kind"] == "synthetic"


def test_infeasible_budget_names_the_tightest_budget_and_the_smallest_prediction() -> None:
    profile = _with_budgets(Budget(latency_ms=0.001), Budget(latency_ms=50.0))
    predictor = FlopsPredictor(profile)
    smallest = spec_grid("resnet").spec_at(0)  # every axis at its least
    with pytest.raises(PlanError) as raised:
        plan_pair(profile, "resnet", predictor, shape=FREE)
    message = str(raised.value)
    assert "tightest budget is the base latency p95 <= 0.001 ms" in message
    assert str(smallest) in message
    assert f"{predictor.predict_latency_ms(smallest):.3f} ms" in message


def test_no_pair_under_the_ratio_says_which_budget_to_change_and_that_change_works() -> None:
    # The motivated budget fits only specs under 2x the smallest base's FLOPs.
    smallest = estimate_cost(spec_grid("resnet").spec_at(0), **GEOMETRY).flops / 10e6
    profile = _with_budgets(Budget(latency_ms=smallest * 1.01), Budget(latency_ms=smallest * 1.5))
    predictor = FlopsPredictor(profile)
    with pytest.raises(PlanError) as raised:
        plan_pair(profile, "resnet", predictor, shape=FREE)
    message = str(raised.value)
    assert "with the base at most 0.5x the motivated model's FLOPs" in message
    match = re.search(r"Raise the motivated latency p95 budget from [\d.]+ ms to at least ([\d.]+) ms", message)
    assert match, message
    raised_budget = float(match.group(1)) * 1.001  # the printed figure is rounded to 3 digits
    fixed = plan_pair(_with_budgets(profile.budget(Role.BASE), Budget(latency_ms=raised_budget)), "resnet", predictor,
                      shape=FREE)
    assert fixed.base.candidate.flops <= 0.5 * fixed.motivated.candidate.flops
    # The suggested ratio is the least (to 2 decimals) that gives a pair.
    ratio = float(re.search(r"--max-base-ratio ([\d.]+)", message).group(1))
    assert plan_pair(profile, "resnet", predictor, max_base_ratio=ratio, shape=FREE).flops_ratio <= ratio
    with pytest.raises(PlanError):
        plan_pair(profile, "resnet", predictor, max_base_ratio=ratio - 0.01, shape=FREE)


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
def test_grid_costs_equal_exact_evaluation_and_nesting(family: str) -> None:
    from seekdeploy.plan.grid_costs import cost_grid
    from seekdeploy.plan.predictor import CalibratedPredictor, RooflinePredictor

    grid = spec_grid(family)
    rng = np.random.default_rng(1)
    picks = [int(i) for i in rng.choice(len(grid), size=25, replace=False)] + [0, len(grid) - 1]
    for predictor in (RooflinePredictor(PROFILE), CalibratedPredictor(PROFILE, "padded-macs-8", [0.01] * 13 + [0.05]),
                      FlopsPredictor(PROFILE)):
        costs = cost_grid(grid, PROFILE, predictor)
        for index in picks:
            exact = evaluate_spec(grid.spec_at(index), PROFILE, predictor)
            assert costs.flops[index] == exact.flops and costs.params[index] == exact.params
            assert costs.typical_ms[index] == pytest.approx(exact.typical_latency_ms, rel=1e-9)
            assert costs.memory_mib[index] == pytest.approx(exact.memory_mib, rel=1e-9)
            assert costs.file_size_mib[index] == pytest.approx(exact.file_size_mib, rel=1e-9)
    for outer in picks[:6]:
        nested = costs.nested_in(outer)
        for inner in picks + [int(i) for i in rng.choice(len(grid), size=40)]:
            assert nested[inner] == grid.spec_at(outer).contains(grid.spec_at(inner))


def test_memory_budget_can_be_the_tightest() -> None:
    profile = _with_budgets(Budget(latency_ms=100.0), Budget(latency_ms=100.0, peak_memory_mib=0.0001))
    with pytest.raises(PlanError, match="motivated peak memory <= 0.0001 MiB"):
        plan_pair(profile, "vit", FlopsPredictor(profile), shape=FREE)


def test_plan_cli_prints_json_and_clear_errors(run_cli, tmp_cwd, tmp_path) -> None:
    done = run_cli("plan", "--profile", "x86-cpu", "--arch", "resnet", "--roofline", "--json")
    assert done.exit_code == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["predictor"]["kind"] == "roofline"
    assert plan["motivated"]["margins"]["latency_ms"] >= 0 and plan["base"]["margins"]["latency_ms"] >= 0
    text = (load_profile("x86-cpu").source_path).read_text()
    tight = tmp_path / "tight.yaml"
    tight.write_text(text.replace("name: x86-cpu", "name: tight").replace("aliases: [cpu, local]", "aliases: []")
                     .replace("latency_ms: 1.0", "latency_ms: 0.0001"))
    failed = run_cli("plan", "--profile", str(tight), "--arch", "resnet")
    assert failed.exit_code == 1
    assert "tightest budget is the base latency p95" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_no_pair_on_a_calibration_with_a_busy_tail_says_to_recalibrate_when_quiet() -> None:
    from seekdeploy.plan.predictor import CalibratedPredictor

    profile = _with_budgets(Budget(latency_ms=0.001), Budget(latency_ms=50.0))
    busy = CalibratedPredictor(profile, "padded-macs-8", [0.01] * 13 + [0.05], tail_ratios={"95": 1.94})
    with pytest.raises(PlanError, match=r"tail of 1.94x the typical latency: the machine was busy"):
        plan_pair(profile, "resnet", busy)
    quiet = CalibratedPredictor(profile, "padded-macs-8", [0.01] * 13 + [0.05], tail_ratios={"95": 1.2})
    with pytest.raises(PlanError) as raised:
        plan_pair(profile, "resnet", quiet)
    assert "busy" not in str(raised.value)


def test_a_calibrated_plan_leaves_headroom_under_each_latency_budget() -> None:
    """A motivated spec predicted at 95 % of its budget is within reach of the plan without headroom
    (it picks that spec or a larger one); the calibrated plan stays under (1 - headroom) of every
    latency budget and so picks a smaller one."""
    from seekdeploy.plan.predictor import CALIBRATED_PLAN_HEADROOM, CalibratedPredictor

    class Exact(CalibratedPredictor):
        plan_headroom = 0.0

    coefficients = [0.01] * 13 + [0.05]
    loose = plan_pair(PROFILE, "resnet", Exact(PROFILE, "padded-macs-8", coefficients, {"95": 1.2}))
    predicted = loose.motivated.candidate.latency_ms[Role.MOTIVATED]
    profile = _with_budgets(PROFILE.budget(Role.BASE), Budget(latency_ms=predicted / 0.95))
    unspared = plan_pair(profile, "resnet", Exact(profile, "padded-macs-8", coefficients, {"95": 1.2}))
    assert unspared.motivated.candidate.flops >= loose.motivated.candidate.flops
    planned = plan_pair(profile, "resnet", CalibratedPredictor(profile, "padded-macs-8", coefficients, {"95": 1.2}))
    assert planned.latency_headroom == CALIBRATED_PLAN_HEADROOM > 0
    for role in (Role.BASE, Role.MOTIVATED):
        budget = profile.budget(role).latency_ms
        assert planned.role(role).candidate.latency_ms[role] <= (1 - CALIBRATED_PLAN_HEADROOM) * budget
    assert planned.motivated.candidate.flops < loose.motivated.candidate.flops
    assert any(line.startswith("headroom:  planned to 90%") for line in planned.summary_lines())


def test_no_pair_because_of_the_headroom_says_what_budget_would_admit_the_pair() -> None:
    """The only motivated candidate is under its budget but inside the headroom: the error names
    the budget that would admit it (its prediction plus the headroom), not an empty change."""
    from seekdeploy.nn import parse_spec
    from seekdeploy.plan.predictor import CALIBRATED_PLAN_HEADROOM, CalibratedPredictor

    small, large = parse_spec("resnet", "depth=1,1,1;width=8,8,16"), parse_spec("resnet", "depth=2,2,2;width=16,32,64")
    predictor = CalibratedPredictor(PROFILE, "padded-macs-8", [0.01] * 13 + [0.05], {"95": 1.2})
    small_ms, large_ms = (predictor.predict_percentile_ms(spec, 95) for spec in (small, large))
    profile = _with_budgets(Budget(latency_ms=small_ms / (1 - CALIBRATED_PLAN_HEADROOM) * 1.01),
                            Budget(latency_ms=large_ms / 0.95))
    with pytest.raises(PlanError) as raised:
        plan_pair(profile, "resnet", predictor, candidates=[small, large])
    needed = large_ms / (1 - CALIBRATED_PLAN_HEADROOM)
    assert (f"Raise the motivated latency p95 budget from {large_ms / 0.95:g} ms to at least {needed:.3g} ms "
            f"(predicted {large_ms:.3g} ms + the plan's 10% headroom)") in str(raised.value)


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
def test_the_predicted_file_size_is_the_exported_files(family: str, tmp_path) -> None:
    """The planner's file size (weights plus the graph's own bytes) is within 5 KiB of the real
    export of the smallest grid spec and the family's default motivated model."""
    from seekdeploy.export.onnx_export import export_onnx
    from seekdeploy.nn import build_static
    from seekdeploy.nn.registry import default_pair
    from seekdeploy.plan.candidates import MIB

    geometry = input_geometry(PROFILE)
    shape = (1, PROFILE.input.channels, PROFILE.input.height, PROFILE.input.width)
    for index, spec in enumerate((spec_grid(family).spec_at(0), default_pair(family)[1])):
        path = tmp_path / f"{index}.onnx"
        export_onnx(build_static(spec, **geometry).eval(), path, input_shape=shape, opset=18)
        predicted = evaluate_spec(spec, PROFILE, RooflineLike(PROFILE)).file_size_mib * MIB
        assert abs(predicted - path.stat().st_size) <= 5 * 1024, (spec, predicted, path.stat().st_size)


class RooflineLike(LatencyPredictor):
    """Any latency: only the file size is checked."""

    kind = "synthetic"

    def predict_latency_ms(self, spec: Any) -> float:
        return 1.0
