"""The pair planner: the best motivated spec, and the best base nested in it at a fraction of its FLOPs.

Every spec of the family's grid (`space.spec_grid`, costed at once by `grid_costs.cost_grid`) has
FLOPs and parameters (`estimate_cost`), a predicted latency at each role's budget percentile (the
predictor's typical latency x its tail factor), a predicted memory (weights at the profile precision
+ every layer's output activations at that precision and batch: what a runtime without buffer reuse
holds; the interpreter's own memory is not included) and a file size (weights at the profile
precision plus the ONNX graph's own bytes, `candidates.ONNX_FILE_*`).

The rule (`_pair_rules.pick_pair`), among the specs the shape rule allows (`proportions`, graded
by default): the motivated model is the spec with the most FLOPs within the motivated budgets that
has a base; the base is the spec with the most FLOPs within the base budgets that is nested in it
and has at most `max_base_ratio` (default 0.5) of its FLOPs, so the pair is two models worth
having, not one model twice. Ties go to the lower predicted latency. Each role then says what
stopped it growing (`RolePlan.limited_by`): a budget, the pair rule, the shape rule, or the grid's
cap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy.plan.candidates import Candidate, PlanError, evaluate_spec, violations
from seekdeploy.plan.defaults import DEFAULT_MAX_BASE_RATIO
from seekdeploy.plan.predictor import LatencyPredictor
from seekdeploy.plan.proportions import DEFAULT_SHAPE_RULE, ShapeRule
from seekdeploy.profiles.schema import Budget, HardwareProfile
from seekdeploy.roles import Role

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec

__all__ = ["Candidate", "PairPlan", "PlanError", "RolePlan", "describe_pair", "evaluate_spec", "plan_pair",
           "predict_roles", "role_line", "violations"]



@dataclass(frozen=True)
class RolePlan:
    """The chosen spec of one role, its predictions, and what stopped it growing.

    `limits` maps each grid axis to why the spec one step up that axis was not chosen: the budgets
    it would break ("latency p95", "peak memory", "file size"), "pair ratio" or "nesting" (a base
    larger than the rule allows or not inside the motivated model), "proportions" (a step the shape
    rule takes that leaves its depth-width band) or "grid cap" (the axis ends).
    """

    role: Role
    candidate: Candidate
    budget: Budget
    limits: dict[str, list[str]] = field(default_factory=dict)

    def margins(self) -> dict[str, float]:
        """Budget minus prediction for latency (ms), memory and file size (MiB); absent budgets omitted."""
        out = {"latency_ms": self.budget.latency_ms - self.candidate.latency_ms[self.role]}
        if self.budget.peak_memory_mib is not None:
            out["memory_mib"] = self.budget.peak_memory_mib - self.candidate.memory_mib
        if self.budget.file_size_mib is not None:
            out["file_size_mib"] = self.budget.file_size_mib - self.candidate.file_size_mib
        return out

    def budget_used(self) -> float:
        """Predicted latency / the latency budget (1.0 = the budget exactly)."""
        return self.candidate.latency_ms[self.role] / self.budget.latency_ms

    def limited_by(self) -> list[str]:
        """Every constraint that stopped this role growing along some axis (sorted, unique)."""
        return sorted({reason for reasons in self.limits.values() for reason in reasons})

    def to_json(self) -> dict[str, Any]:
        """The role's plan for `plan --json` and run manifests."""
        c = self.candidate
        return {"spec": c.spec.to_text(), "spec_json": c.spec.to_json(), "params": c.params, "flops": c.flops,
                "predicted_latency_ms": c.latency_ms[self.role], "typical_latency_ms": c.typical_latency_ms,
                "latency_percentile": self.budget.latency_percentile, "budget_latency_ms": self.budget.latency_ms,
                "budget_used": self.budget_used(), "predicted_memory_mib": c.memory_mib,
                "predicted_file_size_mib": c.file_size_mib, "margins": self.margins(),
                "limited_by": self.limited_by(), "limits": self.limits}


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
    max_base_ratio: float = DEFAULT_MAX_BASE_RATIO
    grid_caps: dict[str, Any] = field(default_factory=dict)
    shape: ShapeRule = DEFAULT_SHAPE_RULE
    latency_headroom: float = 0.0  # share of each latency budget left free (LatencyPredictor.plan_headroom)

    @property
    def grid_limited(self) -> bool:
        """Whether the grid's cap, not only a budget, stopped the motivated model growing."""
        return "grid cap" in self.motivated.limited_by()

    @property
    def flops_ratio(self) -> float:
        """Base FLOPs / motivated FLOPs."""
        return self.base.candidate.flops / self.motivated.candidate.flops

    def summary_lines(self) -> list[str]:
        """The pair's FLOPs ratio against the rule and what bounded each role, as plain lines."""
        lines = [f"pair:      base = {self.flops_ratio:.2f}x the motivated FLOPs (rule: <= {self.max_base_ratio:g}x)",
                 f"shape:     {self.shape.value} ({self.shape.description})"]
        if self.latency_headroom:
            lines.append(f"headroom:  planned to {1 - self.latency_headroom:.0%} of each latency budget, for what "
                         "the prediction misses")
        for role_plan in (self.base, self.motivated):
            limited = ", ".join(_limit_phrase(role_plan, reason) for reason in role_plan.limited_by()) or "-"
            lines.append(f"{role_plan.role.value + ' limited by:':<22} {limited}")
        return lines

    def role(self, role: Role | str) -> RolePlan:
        """The plan of `role`."""
        return self.base if Role(role) is Role.BASE else self.motivated

    def to_json(self) -> dict[str, Any]:
        """The whole plan as a JSON-ready dict."""
        return {"kind": layout.PLAN_KIND, "profile": self.profile, "family": self.family,
                "predictor": self.predictor, "searched_specs": self.searched,
                "search_seconds": round(self.search_seconds, 3), "grid_limited": self.grid_limited,
                "max_base_flops_ratio": self.max_base_ratio, "base_flops_ratio": self.flops_ratio,
                "grid_caps": self.grid_caps, "shape_rule": self.shape.value,
                "latency_headroom": self.latency_headroom,
                Role.BASE.value: self.base.to_json(), Role.MOTIVATED.value: self.motivated.to_json()}


def _limit_phrase(role_plan: RolePlan, reason: str) -> str:
    # "grid cap (width, depth[0])": which axes end there; budgets and rules stand alone.
    if reason != "grid cap":
        return reason
    axes = [axis for axis, reasons in role_plan.limits.items() if reason in reasons]
    return f"grid cap ({', '.join(axes)})"


def role_line(role: Role, candidate: Candidate, budget: Budget) -> str:
    """One role's spec, size and predicted latency against its budget."""
    latency = candidate.latency_ms[role]
    return (f"{role.value + ':':<10} {candidate.spec}  {candidate.params / 1e6:.2f} M params, "
            f"{candidate.flops / 1e6:.1f} MFLOP, predicted p{budget.latency_percentile:g} {latency:.3f} ms of "
            f"{budget.latency_ms:g} ms ({latency / budget.latency_ms:.0%})")


def describe_pair(profile: HardwareProfile, family: str, specs: dict[Role, SubnetSpec]) -> list[str]:
    """What `train` prints before training: each role's spec and predictions, the FLOPs ratio, and
    what bounded each role when the specs are the planner's own choice."""
    from seekdeploy.plan.calibration_file import load_predictor

    predictor = load_predictor(profile, family)
    candidates = {role: evaluate_spec(specs[role], profile, predictor) for role in (Role.BASE, Role.MOTIVATED)}
    lines = [f"plan ({predictor.kind} predictor, profile {profile.name}):"]
    lines += [role_line(role, candidate, profile.budget(role)) for role, candidate in candidates.items()]
    try:
        planned = plan_pair(profile, family, predictor)
    except PlanError:
        planned = None
    if planned is not None and (planned.base.candidate.spec, planned.motivated.candidate.spec) == \
            (specs[Role.BASE], specs[Role.MOTIVATED]):
        return lines + planned.summary_lines()
    ratio = candidates[Role.BASE].flops / candidates[Role.MOTIVATED].flops
    return lines + [f"pair:      base = {ratio:.2f}x the motivated FLOPs (specs given, not planned)"]


def plan_pair(profile: HardwareProfile, family: str, predictor: LatencyPredictor | None = None, *,
              candidates: Sequence[SubnetSpec] | None = None,
              max_base_ratio: float = DEFAULT_MAX_BASE_RATIO,
              shape: ShapeRule | str = DEFAULT_SHAPE_RULE) -> PairPlan:
    """Pick the motivated spec with the most FLOPs, and the base nested in it with the most FLOPs
    and at most `max_base_ratio` of its FLOPs, whose predictions meet the profile's budgets; raise
    `PlanError` (naming the budget to change) when no pair does.

    `predictor` defaults to `load_predictor(profile, family)` (the calibration when valid, else
    the roofline); `candidates` (a list of specs) replaces the family's grid, and then no
    per-axis limits are reported. `shape` is the rule both roles' shapes obey
    (`proportions.ShapeRule`): `GRADED` (the default: depth never decreases toward the
    low-resolution stages, depth and width balanced), `PROPORTIONAL` (the family's depth pattern,
    depth and width scaled together) or `FREE` (any shape).
    """
    from seekdeploy.plan import _pair_rules as rules

    if not 0.0 < max_base_ratio <= 1.0:
        raise PlanError(f"the base's share of the motivated FLOPs must be in (0, 1], got {max_base_ratio:g}")
    if predictor is None:
        from seekdeploy.plan.calibration_file import load_predictor

        predictor = load_predictor(profile, family)
    if candidates is None:
        from seekdeploy.plan.space import spec_grid

        spec_grid(family)  # imports the model code (torch): not search time
    started = time.perf_counter()
    table = rules.cost_table(profile, family, predictor, candidates)
    if len(table) == 0:
        raise PlanError(f"no candidate specs to plan {family!r} with")
    budgets = {role: profile.budget(role) for role in (Role.BASE, Role.MOTIVATED)}
    over = {role: rules.over_budget(table, predictor, budget) for role, budget in budgets.items()}
    shaped = rules.shape_mask(table, family, ShapeRule(shape))
    pair = rules.pick_pair(table, over, max_base_ratio, shaped)
    if pair is None:
        raise rules.no_pair_error(profile, family, table, over, budgets, predictor, max_base_ratio, shaped)
    motivated, base = pair
    plans = {role: RolePlan(role, evaluate_spec(table.spec(index), profile, predictor), budgets[role],
                            rules.role_limits(table, role, index, over, motivated, max_base_ratio, shaped,
                                              ShapeRule(shape)))
             for role, index in ((Role.BASE, base), (Role.MOTIVATED, motivated))}
    caps = table.grid.caps() if hasattr(table, "grid") else {}
    return PairPlan(profile.name, family, predictor.describe(), plans[Role.BASE], plans[Role.MOTIVATED],
                    len(table), time.perf_counter() - started, max_base_ratio, caps, ShapeRule(shape),
                    predictor.plan_headroom)


def predict_roles(profile: HardwareProfile, family: str, specs: dict[Role, SubnetSpec],
                  predictor: LatencyPredictor | None = None) -> dict[str, Any] | None:
    """Predicted latency at each role's budget percentile for the given specs, for run manifests:
    `{"predicted_latency_ms": {role: ms}, "predicted_typical_ms": {role: median ms}, "latency_percentile":
    {role: p}, "latency_predictor": {...}}`.

    None when `profile` declares no hardware figures or budgets (nothing to predict against).
    """
    if getattr(profile, "hardware", None) is None or not getattr(profile, "budgets", None):
        return None
    if predictor is None:
        from seekdeploy.plan.calibration_file import load_predictor

        predictor = load_predictor(profile, family)
    percentiles = {Role(role): profile.budget(role).latency_percentile for role in specs}
    typical = {Role(role): predictor.predict_latency_ms(spec) for role, spec in specs.items()}
    return {"predicted_latency_ms": {role.value: ms * float(predictor.tail_factor(percentiles[role], ms))
                                     for role, ms in typical.items()},
            "predicted_typical_ms": {role.value: ms for role, ms in typical.items()},
            "latency_percentile": {role.value: p for role, p in percentiles.items()},
            "latency_predictor": predictor.describe()}
