"""The spec space the planner and the calibration search: one grid per family, a product of axes.

- resnet: one width multiplier for all stages (0.25-4 x the default supernet's 16/32/64 widths,
  multiples of 8) x depth 1-18 per stage, independently (18 blocks a stage is ResNet-110; 9 is
  ResNet-56).
- mbconv: width multiplier 0.5-3 (stem, stage widths and head) x one expand ratio 2-6 for every
  stage that expands x depth 1-8 per stage; kernel, stride, SE and activation stay the default
  supernet's (they are constants a nested pair must share).
- vit: heads 1-16 at the default head dim (24, so embed 24-384) x MLP ratio 1-4 x depth 1-16;
  patch and pooling fixed.

The largest value of each axis is the grid's documented cap: when the planner's choice sits on it,
the plan names "grid cap" as what bounded that role. A grid is `shapes` (every combination of the
non-depth axes, each as a spec of depth 1) times the depth axes; blocks after a stage's first are
identical, which is what lets `plan.grid_costs` cost the whole grid from a few specs per shape.

`design_specs` draws a calibration design from a grid: the corners (smallest, largest,
shallow-wide, deep-narrow) plus seeded random picks, within the part of the grid a profile's
budgets can reach when a profile is given.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from seekdeploy.errors import SpecError

WIDTH_MULTIPLIERS = {"resnet": (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0),
                     "mbconv": (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)}
RESNET_DEPTHS = tuple(range(1, 19))
MBCONV_DEPTHS = tuple(range(1, 9))
MBCONV_EXPANDS = (2, 3, 4, 6)
VIT_HEADS = tuple(range(1, 17))
VIT_DEPTHS = tuple(range(1, 17))
VIT_MLP_RATIOS = (1.0, 2.0, 3.0, 4.0)
# How far past the largest latency budget (roofline-predicted) a profile's calibration design reaches.
DESIGN_REACH = 2.0


@dataclass(frozen=True)
class SpecGrid:
    """A family's planning grid: `shapes` (row-major over `shape_axes`) x a depth per stage."""

    family: str
    shape_axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (name, values) of the non-depth axes
    shapes: tuple[Any, ...]  # one spec per shape, depth 1 everywhere
    depth_values: tuple[int, ...]
    stages: int  # depth axes: one per stage (resnet, mbconv) or one (vit)

    @property
    def axes(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """Every axis, shape axes first, as (name, values)."""
        names = ("depth",) if self.family == "vit" else tuple(f"depth[{i}]" for i in range(self.stages))
        return self.shape_axes + tuple((name, self.depth_values) for name in names)

    @property
    def dims(self) -> tuple[int, ...]:
        """The number of values on each axis of `axes`."""
        return tuple(len(values) for _, values in self.axes)

    def __len__(self) -> int:
        return int(np.prod(self.dims))

    def spec(self, shape: int, depth: tuple[int, ...]) -> Any:
        """The spec of shape number `shape` at per-stage `depth` (depth values, not indices)."""
        value = int(depth[0]) if self.family == "vit" else tuple(int(d) for d in depth)
        return dataclasses.replace(self.shapes[shape], depth=value)

    def spec_at(self, index: int) -> Any:
        """The spec at flat (row-major over `axes`) index `index`."""
        multi = np.unravel_index(int(index), self.dims)
        shape = int(np.ravel_multi_index(multi[:len(self.shape_axes)], self.dims[:len(self.shape_axes)]))
        return self.spec(shape, tuple(self.depth_values[int(i)] for i in multi[len(self.shape_axes):]))

    def __iter__(self) -> Iterator[Any]:
        return (self.spec_at(i) for i in range(len(self)))

    def caps(self) -> dict[str, Any]:
        """The largest value of every axis (what "grid cap" refers to)."""
        return {name: values[-1] for name, values in self.axes}


def _round8(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


def _distinct(values: tuple[Any, ...], build: Any) -> tuple[tuple[Any, ...], list[Any]]:
    # Drop an axis value whose specs equal the previous value's (small defaults round alike).
    kept, specs = [], []
    for value in values:
        spec = build(value)
        if not specs or spec != specs[-1]:
            kept.append(value)
            specs.append(spec)
    return tuple(kept), specs


def _resnet_grid(default: Any) -> SpecGrid:
    ones = (1,) * len(default.depth)
    multipliers, shapes = _distinct(WIDTH_MULTIPLIERS["resnet"], lambda m: dataclasses.replace(
        default, depth=ones, width=tuple(_round8(w * m) for w in default.width)))
    return SpecGrid("resnet", (("width", multipliers),), tuple(shapes), RESNET_DEPTHS, len(ones))


def _mbconv_grid(default: Any) -> SpecGrid:
    ones = (1,) * len(default.depth)

    def scaled(multiplier: float) -> Any:
        return dataclasses.replace(default, depth=ones, stem=_round8(default.stem * multiplier),
                                   head=_round8(default.head * multiplier),
                                   width=tuple(_round8(w * multiplier) for w in default.width))

    multipliers, _ = _distinct(WIDTH_MULTIPLIERS["mbconv"], scaled)
    shapes = [dataclasses.replace(scaled(m), expand=tuple(1 if e == 1 else ratio for e in default.expand))
              for m, ratio in itertools.product(multipliers, MBCONV_EXPANDS)]
    return SpecGrid("mbconv", (("width", multipliers), ("expand", MBCONV_EXPANDS)), tuple(shapes),
                    MBCONV_DEPTHS, len(ones))


def _vit_grid(default: Any) -> SpecGrid:
    shapes = [dataclasses.replace(default, embed_dim=heads * default.head_dim, heads=heads, depth=1, mlp_ratio=mlp)
              for heads, mlp in itertools.product(VIT_HEADS, VIT_MLP_RATIOS)]
    return SpecGrid("vit", (("heads", VIT_HEADS), ("mlp", VIT_MLP_RATIOS)), tuple(shapes), VIT_DEPTHS, 1)


_GRIDS = {"resnet": _resnet_grid, "mbconv": _mbconv_grid, "vit": _vit_grid}


@functools.lru_cache(maxsize=8)
def spec_grid(family: str) -> SpecGrid:
    """The planning grid of `family` (built around the family's default supernet)."""
    from seekdeploy import nn as sd_nn

    name = sd_nn.get_family(family).name
    if name not in _GRIDS:
        raise SpecError(f"the planner has no spec grid for family {name!r}; it supports {', '.join(_GRIDS)}. "
                        "Pass --base and --motivated specs explicitly")
    return _GRIDS[name](sd_nn.default_pair(name)[0].max_spec())


def design_specs(family: str, count: int, *, seed: int = 0, exclude: frozenset = frozenset(),
                 corners: bool = True, profile: Any = None) -> list[Any]:
    """A calibration design of `count` specs: the grid's corners, then seeded random picks.

    With `profile`, only specs whose roofline-predicted latency (and memory and file size) are
    within `DESIGN_REACH` x the profile's largest budget are drawn (the part of the grid the
    planner can choose from; timing ResNet-110s for a 3 ms budget would waste the calibration). Corners are the smallest and
    the largest spec (by FLOPs) and the shallow-wide and deep-narrow extremes; `exclude` removes
    specs (e.g. those of another design) so a held-out set never overlaps the fit; `corners=False`
    draws random picks only (a held-out test set).
    """
    grid = spec_grid(family)
    flops, reachable = _design_pool(grid, profile)
    pool = np.flatnonzero(reachable)
    if count < 1 or pool.size == 0:
        raise SpecError(f"a calibration design needs at least one spec (asked {count}, {pool.size} available)")
    chosen: list[Any] = []
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


def _design_pool(grid: SpecGrid, profile: Any) -> tuple[np.ndarray, np.ndarray]:
    # (FLOPs of every grid spec, which specs a design may use).
    from seekdeploy.plan.grid_costs import cost_grid
    from seekdeploy.plan.predictor import RooflinePredictor

    reference = profile if profile is not None else _reference_profile()
    costs = cost_grid(grid, reference, RooflinePredictor(reference))
    if profile is None or not getattr(profile, "budgets", None):
        return costs.flops, np.ones(len(grid), dtype=bool)
    budgets = profile.budgets.values()
    reachable = costs.typical_ms <= DESIGN_REACH * max(budget.latency_ms for budget in budgets)
    for figure, key in ((costs.memory_mib, "peak_memory_mib"), (costs.file_size_mib, "file_size_mib")):
        limits = [getattr(budget, key) for budget in budgets]
        if None not in limits:
            reachable &= figure <= DESIGN_REACH * max(limits)
    return costs.flops, reachable


def _reference_profile() -> Any:
    # FLOPs do not depend on the device; any shipped profile gives the 3x32x32 input geometry.
    from seekdeploy.profiles.loader import load_profile

    return load_profile("x86-cpu")
