"""A family's planning grid: a product of axes, declared by the family, searched by the planner.

A grid is `shapes` (every combination of the non-depth axes, each as a spec of depth 1) times one
depth axis per stage (or one depth axis for a family whose depth is a single number). Blocks after
a stage's first are identical, which is what lets `seekdeploy.plan.grid_costs` cost the whole
grid from a few specs per shape. The largest value of each axis is the grid's documented cap: when
the planner's choice sits on it, the plan names "grid cap" as what bounded that role.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SpecGrid:
    """A family's planning grid: `shapes` (row-major over `shape_axes`) x a depth per stage."""

    family: str
    shape_axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (name, values) of the non-depth axes
    shapes: tuple[Any, ...]  # one spec per shape, depth 1 everywhere
    depth_values: tuple[int, ...]
    stages: int  # depth axes: one per stage, or one when `scalar_depth`
    scalar_depth: bool = False  # the spec's `depth` is one int (vit), not a tuple per stage

    @property
    def axes(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """Every axis, shape axes first, as (name, values)."""
        names = ("depth",) if self.scalar_depth else tuple(f"depth[{i}]" for i in range(self.stages))
        return self.shape_axes + tuple((name, self.depth_values) for name in names)

    @property
    def dims(self) -> tuple[int, ...]:
        """The number of values on each axis of `axes`."""
        return tuple(len(values) for _, values in self.axes)

    def __len__(self) -> int:
        return int(np.prod(self.dims))

    def spec(self, shape: int, depth: tuple[int, ...]) -> Any:
        """The spec of shape number `shape` at per-stage `depth` (depth values, not indices)."""
        value = int(depth[0]) if self.scalar_depth else tuple(int(d) for d in depth)
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


def round_to_8(value: float) -> int:
    """A channel count for a width multiplier: the nearest multiple of 8, at least 8."""
    return max(8, int(round(value / 8.0)) * 8)


def distinct_values(values: tuple[Any, ...], build: Callable[[Any], Any]) -> tuple[tuple[Any, ...], list[Any]]:
    """Drop an axis value whose spec equals the previous value's (small defaults round alike);
    returns the kept values and their specs."""
    kept, specs = [], []
    for value in values:
        spec = build(value)
        if not specs or spec != specs[-1]:
            kept.append(value)
            specs.append(spec)
    return tuple(kept), specs
