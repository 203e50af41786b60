"""The pair planner on a synthetic predictor with known answers, and its errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from seekdeploy.nn import estimate_cost
from seekdeploy.plan.planner import PlanError, evaluate_spec, plan_pair
from seekdeploy.plan.predictor import LatencyPredictor, input_geometry
from seekdeploy.plan.space import spec_grid
from seekdeploy.profiles.loader import load_profile
from seekdeploy.profiles.schema import Budget, Role

PROFILE = load_profile("x86-cpu")
GEOMETRY = input_geometry(PROFILE)


class FlopsPredictor(LatencyPredictor):
    """Known answer: 1 ms per 10 MFLOPs, no tail."""

    kind = "synthetic"

    def predict_latency_ms(self, spec: Any) -> float:
        return estimate_cost(spec, **GEOMETRY).flops / 10e6

    def tail_factor(self, percentile: float) -> float:
        return 1.0


def _with_budgets(base: Budget, motivated: Budget) -> Any:
    return dataclasses.replace(PROFILE, budgets={Role.BASE: base, Role.MOTIVATED: motivated})


def _subset(family: str) -> list[Any]:
    # Every 5th mbconv spec keeps the quadratic brute force fast; the other grids are small.
    grid = list(spec_grid(family))
    return grid[::5] if len(grid) > 1000 else grid


def _brute_force(profile: Any, family: str, predictor: LatencyPredictor) -> tuple[int, int]:
    """(motivated FLOPs, base FLOPs) of the best pair, by exhaustive search over all pairs."""
    evaluated = [evaluate_spec(spec, profile, predictor) for spec in _subset(family)]

    def fits(c, role):
        budget = profile.budget(role)
        return (c.latency_ms[role] <= budget.latency_ms
                and (budget.file_size_mib is None or c.file_size_mib <= budget.file_size_mib)
                and (budget.peak_memory_mib is None or c.memory_mib <= budget.peak_memory_mib))

    best = (0, 0)
    for m in (c for c in evaluated if fits(c, Role.MOTIVATED)):
        bases = [b.flops for b in evaluated if fits(b, Role.BASE) and b.spec != m.spec and m.spec.contains(b.spec)]
        if bases:
            best = max(best, (m.flops, max(bases)))
    return best


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
def test_planner_picks_the_largest_feasible_nested_pair(family: str) -> None:
    profile = _with_budgets(Budget(latency_ms=2.0), Budget(latency_ms=8.0))
    predictor = FlopsPredictor(profile)
    plan = plan_pair(profile, family, predictor, candidates=_subset(family))
    base, motivated = plan.base.candidate, plan.motivated.candidate
    assert motivated.spec.contains(base.spec) and base.spec != motivated.spec
    assert base.latency_ms[Role.BASE] <= 2.0 and motivated.latency_ms[Role.MOTIVATED] <= 8.0
    assert (motivated.flops, base.flops) == _brute_force(profile, family, predictor)
    assert plan.base.margins()["latency_ms"] == pytest.approx(2.0 - base.flops / 10e6)
    assert plan_pair(profile, family, predictor).search_seconds < 5.0  # the whole grid


def test_file_size_budget_binds_when_latency_does_not() -> None:
    profile = _with_budgets(Budget(latency_ms=1e6, file_size_mib=0.05), Budget(latency_ms=1e6, file_size_mib=0.5))
    plan = plan_pair(profile, "resnet", FlopsPredictor(profile))
    assert plan.base.candidate.file_size_mib <= 0.05
    assert plan.motivated.candidate.file_size_mib <= 0.5
    assert (plan.motivated.candidate.flops, plan.base.candidate.flops) == \
        _brute_force(profile, "resnet", FlopsPredictor(profile))
    assert not plan.grid_limited  # the file budget, not the grid, stopped it


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
    smallest = min(spec_grid("resnet"), key=lambda s: estimate_cost(s, **GEOMETRY).flops)
    with pytest.raises(PlanError) as raised:
        plan_pair(profile, "resnet", predictor)
    message = str(raised.value)
    assert "tightest budget is the base latency p95 <= 0.001 ms" in message
    assert str(smallest) in message
    assert f"{predictor.predict_latency_ms(smallest):.3f} ms" in message


def test_memory_budget_can_be_the_tightest() -> None:
    profile = _with_budgets(Budget(latency_ms=100.0), Budget(latency_ms=100.0, peak_memory_mib=0.0001))
    with pytest.raises(PlanError, match="motivated peak memory <= 0.0001 MiB"):
        plan_pair(profile, "vit", FlopsPredictor(profile))


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
