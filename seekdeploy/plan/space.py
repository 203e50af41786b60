"""The spec space the planner and the calibration search: each family's grid, and designs drawn from it.

Every family declares its own planning grid (`Family.search_grid`, a `seekdeploy.nn.grid.SpecGrid`
around its default supernet: the axes and their caps are documented in the family's module);
`spec_grid` fetches it from the registry, once per family.

`design_specs` draws a calibration design from a grid: the corners (smallest, largest,
shallow-wide, deep-narrow) plus seeded random picks, within the part of the grid a profile's
budgets can reach when a profile is given. `focus_specs` adds, once a first fit exists, the specs
it predicts at `FOCUS_FRACTIONS` of each latency budget: where the planner's choice will land.
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from seekdeploy.errors import SpecError
from seekdeploy.nn.grid import SpecGrid
from seekdeploy.plan.defaults import ShapeRule

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec
    from seekdeploy.profiles.schema import HardwareProfile

# How far past the largest latency budget (roofline-predicted) a profile's calibration design reaches.
DESIGN_REACH = 2.0
# A design draws from at least this many times its size of specs (the fastest by the roofline
# where fewer are within reach).
DESIGN_POOL_FACTOR = 2
# Where `focus_specs` aims, as fractions of each role's latency budget (predicted at its percentile):
# the largest spec the planner picks lands just under 1.0, and its neighbours a step down.
FOCUS_FRACTIONS = (0.8, 1.0)


@functools.lru_cache(maxsize=8)
def spec_grid(family: str) -> SpecGrid:
    """The planning grid of `family`, as the family declares it."""
    from seekdeploy.nn.registry import search_grid

    return search_grid(family)


def design_specs(family: str, count: int, *, seed: int = 0, exclude: frozenset = frozenset(),
                 corners: bool = True, profile: HardwareProfile | None = None,
                 shape: ShapeRule = ShapeRule.FREE) -> list[SubnetSpec]:
    """A calibration design of `count` specs: the grid's corners, then seeded random picks.

    With `profile`, only specs whose roofline-predicted latency (and memory and file size) are
    within `DESIGN_REACH` x the profile's largest budget are drawn (the part of the grid the
    planner can choose from; timing ResNet-110s for a 3 ms budget would waste the calibration). Corners are the smallest and
    the largest spec (by FLOPs) and the shallow-wide and deep-narrow extremes; `exclude` removes
    specs (e.g. those of another design) so a held-out set never overlaps the fit; `corners=False`
    draws random picks only (a held-out test set). `shape` draws only specs that shape rule allows
    (`proportions.grid_mask`; `DEFAULT_SHAPE_RULE`: where the default planner chooses).
    """
    grid = spec_grid(family)
    flops, typical_ms, reachable = _design_pool(grid, profile)
    allowed = _allowed(grid, family, shape)
    pool = np.flatnonzero(reachable & allowed)
    if pool.size < DESIGN_POOL_FACTOR * count:
        # Budgets below the roofline's floor (it predicts 3-8x what a CPU measures): the specs the
        # roofline ranks fastest, since its order is still right where its scale is not.
        candidates = np.flatnonzero(allowed)
        pool = candidates[np.argsort(typical_ms[candidates], kind="stable")[:DESIGN_POOL_FACTOR * count]]
    if count < 1 or pool.size == 0:
        raise SpecError(f"a calibration design needs at least one spec (asked {count}, {pool.size} available)")
    chosen: list[SubnetSpec] = []
    if corners:
        depth = np.unravel_index(pool, grid.dims)[len(grid.shape_axes):]
        total_depth = np.sum(depth, axis=0)
        extremes = [pool[np.argmin(flops[pool])], pool[np.argmax(flops[pool])],
                    pool[np.lexsort((-flops[pool], total_depth))[0]],  # shallowest, then widest
                    pool[np.lexsort((flops[pool], -total_depth))[0]]]  # deepest, then narrowest
        chosen = [spec for spec in dict.fromkeys(grid.spec_at(i) for i in extremes) if spec not in exclude]
        chosen = chosen[:count]
    order = list(pool)
    random.Random(seed).shuffle(order)
    for index in order:
        if len(chosen) >= count:
            break
        spec = grid.spec_at(index)
        if spec not in exclude and spec not in chosen:
            chosen.append(spec)
    return chosen


def _allowed(grid: SpecGrid, family: str, shape: ShapeRule) -> np.ndarray:
    # (N,) bool: the grid specs `shape` allows.
    from seekdeploy.plan.proportions import grid_mask

    return grid_mask(grid, family, shape)


def _design_pool(grid: SpecGrid, profile: HardwareProfile | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # (FLOPs and roofline latency of every grid spec, which specs a design may use).
    from seekdeploy.plan.grid_costs import cost_grid
    from seekdeploy.plan.predictor import RooflinePredictor

    reference = profile if profile is not None else _reference_profile()
    costs = cost_grid(grid, reference, RooflinePredictor(reference))
    if profile is None or not getattr(profile, "budgets", None):
        return costs.flops, costs.typical_ms, np.ones(len(grid), dtype=bool)
    budgets = profile.budgets.values()
    reachable = costs.typical_ms <= DESIGN_REACH * max(budget.latency_ms for budget in budgets)
    for figure, key in ((costs.memory_mib, "peak_memory_mib"), (costs.file_size_mib, "file_size_mib")):
        limits = [getattr(budget, key) for budget in budgets]
        if None not in limits:
            reachable &= figure <= DESIGN_REACH * max(limits)
    return costs.flops, costs.typical_ms, reachable


def _reference_profile() -> Any:
    # FLOPs do not depend on the device; any shipped profile gives the 3x32x32 input geometry.
    from seekdeploy.profiles.loader import load_profile

    return load_profile("x86-cpu")


def focus_specs(family: str, profile: HardwareProfile, predictor: Any, count: int, *,
                exclude: frozenset = frozenset(), shape: ShapeRule = ShapeRule.FREE) -> list[SubnetSpec]:
    """Up to `count` specs that `predictor` places at `FOCUS_FRACTIONS` of each latency budget.

    The targets go round the roles (the base's 0.8, the motivated model's 0.8, the base's 1.0, ...)
    so a small `count` still covers every role; each picks the spec, not in `exclude` and not
    already picked, whose predicted latency at the budget's percentile is nearest the target (in
    ratio). `shape` keeps to the specs that shape rule allows (as in `design_specs`).
    """
    from seekdeploy.plan.grid_costs import cost_grid

    grid = spec_grid(family)
    typical = cost_grid(grid, profile, predictor).typical_ms
    allowed = _allowed(grid, family, shape)
    budgets = list(profile.budgets.values())
    predicted = [typical * predictor.tail_factor(budget.latency_percentile, typical) for budget in budgets]
    targets = [(index, fraction * budget.latency_ms) for fraction in FOCUS_FRACTIONS
               for index, budget in enumerate(budgets)]
    chosen: list[SubnetSpec] = []
    for index, target in targets[:max(0, count)]:
        miss = np.where(allowed, np.abs(np.log(predicted[index] / target)), np.inf)
        for position in np.argsort(miss, kind="stable"):
            if not np.isfinite(miss[position]):
                break
            spec = grid.spec_at(int(position))
            if spec not in exclude and spec not in chosen:
                chosen.append(spec)
                break
    return chosen
