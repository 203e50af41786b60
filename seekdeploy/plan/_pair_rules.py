"""The planner's rule on cost tables: which specs fit, which pair to pick, what bound each role, and
the error that says which budget to change when no pair exists.

A cost table is either a whole grid (`grid_costs.GridCosts`) or an explicit list of specs
(`ListCosts`, for tests and callers with their own candidates); both expose the same arrays and
`spec(i)`, `nested_in(i)` and `neighbors(i)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seekdeploy.plan.proportions import PROPORTIONS, ShapeRule, grid_mask, shape_steps, specs_mask
from seekdeploy.profiles.schema import Budget, HardwareProfile
from seekdeploy.roles import Role

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec
    from seekdeploy.plan.candidates import Candidate
    from seekdeploy.plan.grid_costs import GridCosts
    from seekdeploy.plan.predictor import LatencyPredictor

GRID_CAP, PAIR_RATIO, NESTING = "grid cap", "pair ratio", "nesting"
# A calibrated p95/typical ratio above this says the device was busy while it was measured (the
# roofline assumes 1.25; the quick calibration at load average 8-9 on a 2-core VM measured 1.94).
BUSY_TAIL_FACTOR = 1.5


class ListCosts:
    """The cost table of an explicit list of specs (duplicates dropped); no axes, so no neighbors."""

    def __init__(self, specs: Sequence[SubnetSpec], profile: HardwareProfile, predictor: LatencyPredictor) -> None:
        from seekdeploy.plan.candidates import evaluate_spec

        self.specs = list(dict.fromkeys(specs))
        evaluated = [evaluate_spec(spec, profile, predictor) for spec in self.specs]
        self.params = np.array([c.params for c in evaluated], dtype=np.float64)
        self.flops = np.array([c.flops for c in evaluated], dtype=np.float64)
        self.memory_mib = np.array([c.memory_mib for c in evaluated])
        self.file_size_mib = np.array([c.file_size_mib for c in evaluated])
        self.typical_ms = np.array([c.typical_latency_ms for c in evaluated])

    def __len__(self) -> int:
        return len(self.specs)

    def spec(self, index: int) -> SubnetSpec:
        """The spec at `index`."""
        return self.specs[int(index)]

    def nested_in(self, index: int) -> np.ndarray:
        """(N,) bool: the specs nested in spec `index` (itself included)."""
        outer = self.specs[int(index)]
        return np.array([outer.contains(spec) for spec in self.specs], dtype=bool)

    def neighbors(self, index: int) -> list[tuple[str, int | None]]:
        """A list has no axes: nothing is one step up."""
        return []


def cost_table(profile: HardwareProfile, family: str, predictor: LatencyPredictor,
               candidates: Sequence[SubnetSpec] | None) -> ListCosts | GridCosts:
    """The family's whole grid, or the given candidate specs, costed on `profile`."""
    if candidates is not None:
        return ListCosts(candidates, profile, predictor)
    from seekdeploy.plan.grid_costs import cost_grid
    from seekdeploy.plan.space import spec_grid

    return cost_grid(spec_grid(family), profile, predictor)


def over_budget(table: ListCosts | GridCosts, predictor: LatencyPredictor, budget: Budget) -> dict[str, np.ndarray]:
    """Budget name -> (N,) bool: which specs break that budget of one role."""
    from seekdeploy.plan.candidates import planned_file_limit, planned_latency_limit

    latency = table.typical_ms * predictor.tail_factor(budget.latency_percentile, table.typical_ms)
    out = {f"latency p{budget.latency_percentile:g}": latency > planned_latency_limit(budget, predictor.plan_headroom)}
    if budget.peak_memory_mib is not None:
        out["peak memory"] = table.memory_mib > budget.peak_memory_mib
    if budget.file_size_mib is not None:
        out["file size"] = table.file_size_mib > planned_file_limit(budget)
    return out


def _fits(over: dict[str, np.ndarray]) -> np.ndarray:
    return ~np.logical_or.reduce(list(over.values()))


def _best(table: ListCosts | GridCosts, indices: np.ndarray) -> int:
    # The most FLOPs; ties to the lower predicted latency.
    return int(indices[np.lexsort((table.typical_ms[indices], -table.flops[indices]))[0]])


def shape_mask(table: ListCosts | GridCosts, family: str, rule: ShapeRule) -> np.ndarray | None:
    """(N,) bool: the specs the shape rule allows (`proportions`), or None when every shape is."""
    if ShapeRule(rule) is ShapeRule.FREE:
        return None
    if hasattr(table, "grid"):
        return grid_mask(table.grid, family, rule)
    return specs_mask(table.specs, family, rule)


def pick_pair(table: ListCosts | GridCosts, over: dict[Role, dict[str, np.ndarray]], ratio: float,
              shaped: np.ndarray | None = None) -> tuple[int, int] | None:
    """(motivated index, base index) by the planner's rule, or None when no pair satisfies it;
    `shaped` (from `shape_mask`) restricts both roles to the specs the shape rule allows."""
    allowed_shape = np.ones(len(table), dtype=bool) if shaped is None else shaped
    fits_motivated = np.flatnonzero(_fits(over[Role.MOTIVATED]) & allowed_shape)
    fits_base = _fits(over[Role.BASE]) & allowed_shape
    if fits_motivated.size == 0 or not fits_base.any():
        return None
    smallest_base = table.flops[fits_base].min()
    ranked = fits_motivated[np.lexsort((table.typical_ms[fits_motivated], -table.flops[fits_motivated]))]
    found: list[tuple[int, int]] = []
    for motivated in ranked:
        if table.flops[motivated] * ratio < smallest_base:
            break  # every later one is smaller still
        if found and (table.flops[motivated], table.typical_ms[motivated]) != \
                (table.flops[found[0][0]], table.typical_ms[found[0][0]]):
            break  # past the motivated specs tied with the first that has a base
        allowed = fits_base & table.nested_in(motivated) & (table.flops <= ratio * table.flops[motivated])
        allowed[motivated] = False  # a strict sub-network: a pair of equal models trains nothing by motivation
        if allowed.any():
            found.append((int(motivated), _best(table, np.flatnonzero(allowed))))
    if not found:
        return None
    # Among equally large motivated specs, the one with the largest base.
    return min(found, key=lambda pair: (-table.flops[pair[1]], table.typical_ms[pair[1]]))


def role_limits(table: ListCosts | GridCosts, role: Role, index: int, over: dict[Role, dict[str, np.ndarray]],
                motivated: int, ratio: float, shaped: np.ndarray | None = None,
                rule: ShapeRule = ShapeRule.FREE) -> dict[str, list[str]]:
    """Axis name -> why the spec one step up that axis was not this role's choice (a budget, the
    pair rule, nesting, the depth-width band of shape rule `rule` or the grid's cap). The steps are
    those `rule` can take (`proportions.shape_steps`); `shaped` is its mask (`shape_mask`)."""
    nested = table.nested_in(motivated) if role is Role.BASE else None
    limits = {}
    steps = table.neighbors(index)
    if shaped is not None and hasattr(table, "grid"):
        steps = shape_steps(table.grid, table.grid.family, index, rule)
    for axis, up in steps:
        if up is None:
            limits[axis] = [GRID_CAP]
            continue
        reasons = [name for name, mask in over[role].items() if mask[up]]
        if nested is not None and not nested[up]:
            reasons.append(NESTING)
        if role is Role.BASE and table.flops[up] > ratio * table.flops[motivated]:
            reasons.append(PAIR_RATIO)
        if shaped is not None and not shaped[up]:
            reasons.append(PROPORTIONS)
        # A larger motivated spec within its budgets was passed over only for want of a base.
        limits[axis] = reasons or [PAIR_RATIO]
    return limits


def _limit_text(name: str, budget: Budget) -> str:
    if name == "peak memory":
        return f"{budget.peak_memory_mib:g} MiB"
    if name == "file size":
        return f"{budget.file_size_mib:g} MiB"
    return f"{budget.latency_ms:g} ms"


def _predicted_text(name: str, candidate: Candidate, role: Role, latency_headroom: float = 0.0) -> str:
    # The budget that would admit `candidate`: its prediction, and for latency the planner's headroom on top.
    if name == "peak memory":
        return f"{candidate.memory_mib:.3g} MiB"
    if name == "file size":
        return f"{candidate.file_size_mib:.3g} MiB"
    headroom = f" (predicted {candidate.latency_ms[role]:.3g} ms + the plan's {latency_headroom:.0%} headroom)" \
        if latency_headroom else ""
    return f"{candidate.latency_ms[role] / (1.0 - latency_headroom):.3g} ms{headroom}"


def no_pair_error(profile: HardwareProfile, family: str, table: ListCosts | GridCosts, over: dict[Role, dict[str, np.ndarray]],
                  budgets: dict[Role, Budget], predictor: LatencyPredictor, ratio: float,
                  shaped: np.ndarray | None = None) -> Exception:
    """The PlanError for a table where `pick_pair` found nothing, naming the budget to change."""
    from seekdeploy.plan.candidates import PlanError, evaluate_spec, violations

    allowed_shape = np.ones(len(table), dtype=bool) if shaped is None else shaped
    fits = {role: _fits(masks) & allowed_shape for role, masks in over.items()}
    if not fits[Role.BASE].any() or not fits[Role.MOTIVATED].any():
        return _too_tight_error(profile, family, table, budgets, predictor)
    smallest = evaluate_spec(table.spec(int(np.flatnonzero(fits[Role.BASE])[
        np.argmin(table.flops[fits[Role.BASE]])])), profile, predictor)
    largest = evaluate_spec(table.spec(_best(table, np.flatnonzero(fits[Role.MOTIVATED]))), profile, predictor)
    needed_flops = smallest.flops / ratio
    needed_ratio = math.ceil(100.0 * smallest.flops / largest.flops) / 100.0
    looser = f"allow a larger base with --max-base-ratio {needed_ratio:g}" if needed_ratio <= 1.0 else ""
    head = (f"no {family} pair fits profile {profile.name} with the base at most {ratio:g}x the motivated model's "
            f"FLOPs: the smallest base within the base budgets ({smallest.spec}, {smallest.flops / 1e6:.1f} MFLOP) "
            f"needs a motivated model of at least {needed_flops / 1e6:.1f} MFLOP, but the largest spec within the "
            f"motivated budgets ({largest.spec}) has {largest.flops / 1e6:.1f} MFLOP. ")
    if predictor.kind == "roofline":
        head += (f"These are roofline predictions, which can be several times what the device measures: "
                 f"`seekdeploy calibrate --profile {profile.name}` times it for a plan. ")
    enough = np.flatnonzero((table.flops >= needed_flops) & allowed_shape)
    if enough.size == 0:
        return PlanError(head + f"No spec of the grid has that many FLOPs: {looser or 'plan another --arch'}")
    budget = budgets[Role.MOTIVATED]
    cheapest = evaluate_spec(table.spec(int(enough[np.argmin(table.typical_ms[enough])])), profile, predictor)
    headroom = predictor.plan_headroom
    broken = violations(cheapest, Role.MOTIVATED, budget, headroom)
    changes = " and ".join(f"the motivated {name} budget from {_limit_text(name, budget)} to at least "
                           f"{_predicted_text(name, cheapest, Role.MOTIVATED, headroom)}" for name in broken)
    return PlanError(head + f"Raise {changes} (the cheapest spec with enough FLOPs, {cheapest.spec}, is "
                     f"predicted there by the {predictor.kind} predictor)" + (f", or {looser}" if looser else ""))


def _too_tight_error(profile: HardwareProfile, family: str, table: ListCosts | GridCosts, budgets: dict[Role, Budget],
                     predictor: LatencyPredictor) -> Exception:
    # No spec at all fits one role: name the budget the smallest spec misses by the widest margin.
    from seekdeploy.plan.candidates import PlanError, evaluate_spec, violations

    smallest = evaluate_spec(table.spec(_smallest(table)), profile, predictor)
    worst_role, worst_name, worst_ratio = Role.BASE, "", 0.0
    for role, budget in budgets.items():
        for name, over_by in violations(smallest, role, budget, predictor.plan_headroom).items():
            if over_by > worst_ratio:
                worst_role, worst_name, worst_ratio = role, name, over_by
    if not worst_name:  # the smallest fits every budget alone, yet nothing nests: report the base
        worst_name = f"latency p{budgets[Role.BASE].latency_percentile:g}"
    budget = budgets[worst_role]
    tail = float(predictor.tail_factor(budget.latency_percentile, smallest.typical_latency_ms))
    busy = (f". The calibration measured a p{budget.latency_percentile:g} tail of {tail:.2f}x the typical "
            "latency: the machine was busy then; calibrate again when it is quiet"
            if predictor.kind == "calibrated" and tail > BUSY_TAIL_FACTOR else "")
    return PlanError(
        f"no {family} pair fits profile {profile.name}: the tightest budget is the {worst_role.value} "
        f"{worst_name} <= {_limit_text(worst_name, budget)} ({worst_ratio:.2f}x over for the smallest spec). "
        f"The smallest spec {smallest.spec} is predicted at {smallest.latency_ms[worst_role]:.3f} ms "
        f"(p{budget.latency_percentile:g}, {predictor.kind} predictor), {smallest.memory_mib:.2f} MiB memory, "
        f"{smallest.file_size_mib:.3f} MiB file. Relax the budget in the profile, calibrate it on the device "
        f"(`seekdeploy calibrate --profile {profile.name}`) if the prediction is pessimistic, or try another --arch"
        + busy)


def _smallest(table: ListCosts | GridCosts) -> int:
    return int(np.lexsort((table.typical_ms, table.flops))[0])
