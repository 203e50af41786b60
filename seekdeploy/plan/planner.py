"""The pair planner: the largest motivated spec and the largest base nested in it that fit the budgets.

Every spec of the family's grid (`space.spec_grid`) is costed once: FLOPs and parameters
(`estimate_cost`), predicted latency at each role's budget percentile (the predictor's typical
latency x its tail factor), predicted memory (weights at the profile precision + every layer's
output activations at that precision and batch: what a runtime without buffer reuse holds; the
interpreter's own memory is not included) and file size (weights at the profile precision). The
motivated model is the feasible spec with the most FLOPs that has a feasible base nested in it; the
base is the feasible spec strictly nested in it (not equal) with the most FLOPs. Ties go to the
lower predicted latency. `PairPlan.grid_limited` says the motivated is the grid's largest spec: the
search grid, not the budget, bounded it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seekdeploy.errors import SpecError
from seekdeploy.plan.predictor import LatencyPredictor, bytes_per_element, input_geometry, profile_precision
from seekdeploy.profiles.schema import Role

MIB = 1024.0 * 1024.0


class PlanError(SpecError):
    """No nested pair of the family meets the profile's budgets."""


@dataclass(frozen=True)
class Candidate:
    """One spec with its cost and predictions; latency is at each role's budget percentile."""

    spec: Any
    params: int
    flops: int
    typical_latency_ms: float
    latency_ms: dict[Role, float]
    memory_mib: float
    file_size_mib: float


@dataclass(frozen=True)
class RolePlan:
    """The chosen spec of one role with its predictions and the margin to each of its budgets."""

    role: Role
    candidate: Candidate
    budget: Any

    def margins(self) -> dict[str, float]:
        """Budget minus prediction for latency (ms), memory and file size (MiB); absent budgets omitted."""
        out = {"latency_ms": self.budget.latency_ms - self.candidate.latency_ms[self.role]}
        if self.budget.peak_memory_mib is not None:
            out["memory_mib"] = self.budget.peak_memory_mib - self.candidate.memory_mib
        if self.budget.file_size_mib is not None:
            out["file_size_mib"] = self.budget.file_size_mib - self.candidate.file_size_mib
        return out

    def to_json(self) -> dict[str, Any]:
        """The role's plan for `plan --json` and run manifests."""
        c = self.candidate
        return {"spec": c.spec.to_text(), "spec_json": c.spec.to_json(), "params": c.params, "flops": c.flops,
                "predicted_latency_ms": c.latency_ms[self.role], "typical_latency_ms": c.typical_latency_ms,
                "latency_percentile": self.budget.latency_percentile, "budget_latency_ms": self.budget.latency_ms,
                "predicted_memory_mib": c.memory_mib, "predicted_file_size_mib": c.file_size_mib,
                "margins": self.margins()}


@dataclass(frozen=True)
class PairPlan:
    """The planned pair: motivated contains base, both predicted within their budgets."""

    profile: str
    family: str
    predictor: dict[str, Any]
    base: RolePlan
    motivated: RolePlan
    searched: int
    search_seconds: float
    grid_limited: bool = False

    def role(self, role: Role | str) -> RolePlan:
        """The plan of `role`."""
        return self.base if Role(role) is Role.BASE else self.motivated

    def to_json(self) -> dict[str, Any]:
        """The whole plan as a JSON-ready dict."""
        return {"kind": "seekdeploy.plan", "profile": self.profile, "family": self.family,
                "predictor": self.predictor, "searched_specs": self.searched,
                "search_seconds": round(self.search_seconds, 3), "grid_limited": self.grid_limited,
                "base": self.base.to_json(), "motivated": self.motivated.to_json()}


def evaluate_spec(spec: Any, profile: Any, predictor: LatencyPredictor) -> Candidate:
    """Cost and predictions of one spec on `profile`."""
    from seekdeploy.nn import estimate_cost

    cost = estimate_cost(spec, **input_geometry(profile))
    typical = predictor.predict_latency_ms(spec)
    latency = {role: typical * predictor.tail_factor(budget.latency_percentile)
               for role, budget in profile.budgets.items()}
    element_bytes = bytes_per_element(profile)
    weights = cost.weight_bytes(profile_precision(profile))
    activations = cost.activation_bytes // 4 * element_bytes * profile.input.batch
    return Candidate(spec, cost.params, cost.flops, typical, latency, (weights + activations) / MIB, weights / MIB)


def violations(candidate: Candidate, role: Role, budget: Any) -> dict[str, float]:
    """Budget name -> predicted / limit for every budget `candidate` exceeds in `role`."""
    checks = {f"latency p{budget.latency_percentile:g}": (candidate.latency_ms[role], budget.latency_ms),
              "peak memory": (candidate.memory_mib, budget.peak_memory_mib),
              "file size": (candidate.file_size_mib, budget.file_size_mib)}
    return {name: value / limit for name, (value, limit) in checks.items()
            if limit is not None and value > limit}


def plan_pair(profile: Any, family: str, predictor: LatencyPredictor | None = None, *,
              candidates: Sequence[Any] | None = None) -> PairPlan:
    """Pick the motivated spec with the most FLOPs, and the base nested in it with the most FLOPs,
    whose predictions meet the profile's budgets; raise `PlanError` when no pair fits.

    `predictor` defaults to `load_predictor(profile, family)` (the calibration when valid, else
    the roofline); `candidates` defaults to the family's grid.
    """
    from seekdeploy.plan.space import spec_grid

    if predictor is None:
        from seekdeploy.plan.calibration_file import load_predictor

        predictor = load_predictor(profile, family)
    specs = list(candidates) if candidates is not None else list(spec_grid(family))
    started = time.perf_counter()  # after the grid: model-code imports are not search time
    if not specs:
        raise PlanError(f"no candidate specs to plan {family!r} with")
    evaluated = [evaluate_spec(spec, profile, predictor) for spec in specs]
    budgets = {role: profile.budget(role) for role in (Role.BASE, Role.MOTIVATED)}
    feasible = {role: sorted((c for c in evaluated if not violations(c, role, budget)),
                             key=lambda c: (-c.flops, c.typical_latency_ms))
                for role, budget in budgets.items()}
    for motivated in feasible[Role.MOTIVATED]:
        # A strict sub-network: a "pair" of two equal models would train nothing by motivation.
        base = next((c for c in feasible[Role.BASE]
                     if c.spec != motivated.spec and motivated.spec.contains(c.spec)), None)
        if base is not None:
            return PairPlan(profile.name, family, predictor.describe(),
                            RolePlan(Role.BASE, base, budgets[Role.BASE]),
                            RolePlan(Role.MOTIVATED, motivated, budgets[Role.MOTIVATED]),
                            len(specs), time.perf_counter() - started,
                            grid_limited=motivated.flops == max(c.flops for c in evaluated))
    raise _infeasible_error(profile, family, evaluated, budgets, predictor)


def _infeasible_error(profile: Any, family: str, evaluated: list[Candidate], budgets: dict[Role, Any],
                      predictor: LatencyPredictor) -> PlanError:
    smallest = min(evaluated, key=lambda c: (c.flops, c.typical_latency_ms))
    worst_role, worst_name, worst_ratio = Role.BASE, "", 0.0
    for role, budget in budgets.items():
        for name, ratio in violations(smallest, role, budget).items():
            if ratio > worst_ratio:
                worst_role, worst_name, worst_ratio = role, name, ratio
    if not worst_name:  # the smallest fits every budget alone, yet no pair nests: report the base
        worst_name = f"latency p{budgets[Role.BASE].latency_percentile:g}"
    budget = budgets[worst_role]
    limit = {"peak memory": f"{budget.peak_memory_mib} MiB", "file size": f"{budget.file_size_mib} MiB"}
    limit_text = limit.get(worst_name, f"{budget.latency_ms} ms")
    return PlanError(
        f"no {family} pair fits profile {profile.name}: the tightest budget is the {worst_role.value} "
        f"{worst_name} <= {limit_text} ({worst_ratio:.2f}x over for the smallest spec). The smallest spec "
        f"{smallest.spec} is predicted at {smallest.latency_ms[worst_role]:.3f} ms "
        f"(p{budget.latency_percentile:g}, {predictor.kind} predictor), {smallest.memory_mib:.2f} MiB memory, "
        f"{smallest.file_size_mib:.3f} MiB file. Relax the budget in the profile, calibrate it on the device "
        f"(`seekdeploy calibrate --profile {profile.name}`) if the prediction is pessimistic, or try another --arch")


def predict_roles(profile: Any, family: str, specs: dict[Role, Any],
                  predictor: LatencyPredictor | None = None) -> dict[str, Any] | None:
    """Predicted latency at each role's budget percentile for the given specs, for run manifests:
    `{"predicted_latency_ms": {role: ms}, "latency_percentile": {role: p}, "latency_predictor": {...}}`.

    None when `profile` declares no hardware figures or budgets (nothing to predict against).
    """
    if getattr(profile, "hardware", None) is None or not getattr(profile, "budgets", None):
        return None
    if predictor is None:
        from seekdeploy.plan.calibration_file import load_predictor

        predictor = load_predictor(profile, family)
    percentiles = {Role(role): profile.budget(role).latency_percentile for role in specs}
    return {"predicted_latency_ms": {Role(role).value: predictor.predict_percentile_ms(spec, percentiles[Role(role)])
                                     for role, spec in specs.items()},
            "latency_percentile": {role.value: p for role, p in percentiles.items()},
            "latency_predictor": predictor.describe()}
