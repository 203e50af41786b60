"""The spec space the planner and the calibration search: one sensible grid per family.

- resnet: depth 1-4 per stage (independently) x one width multiplier for all stages (0.25-2 x the
  default supernet's widths, multiples of 8).
- mbconv: depth 1-3 per stage x width multiplier 0.5-2 (stem, stage widths and head) x one
  expand ratio 2-6 for every stage that expands; kernel, stride, SE and activation stay the
  default supernet's (they are constants a nested pair must share).
- vit: heads 1-8 at the default head dim (24) x depth 1-8 x MLP ratio 1-4; patch and pooling fixed.

Every spec of a grid is valid; `design_specs` draws a calibration design from it: the corners
(smallest, largest, shallow-wide, deep-narrow) plus seeded random picks.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from typing import Any

from seekdeploy.errors import SpecError

WIDTH_MULTIPLIERS = {"resnet": (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
                     "mbconv": (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)}
RESNET_DEPTHS = (1, 2, 3, 4)
MBCONV_DEPTHS = (1, 2, 3)
MBCONV_EXPANDS = (2, 3, 4, 6)
VIT_HEADS = tuple(range(1, 9))
VIT_DEPTHS = tuple(range(1, 9))
VIT_MLP_RATIOS = (1.0, 2.0, 3.0, 4.0)


def _round8(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


def _resnet_grid(default: Any) -> list[Any]:
    stages = len(default.depth)
    specs = []
    for multiplier in WIDTH_MULTIPLIERS["resnet"]:
        width = tuple(_round8(w * multiplier) for w in default.width)
        for depth in itertools.product(RESNET_DEPTHS, repeat=stages):
            specs.append(dataclasses.replace(default, depth=depth, width=width))
    return specs


def _mbconv_grid(default: Any) -> list[Any]:
    stages = len(default.depth)
    specs = []
    for multiplier in WIDTH_MULTIPLIERS["mbconv"]:
        scaled = {"stem": _round8(default.stem * multiplier), "head": _round8(default.head * multiplier),
                  "width": tuple(_round8(w * multiplier) for w in default.width)}
        for expand_ratio in MBCONV_EXPANDS:
            expand = tuple(1 if e == 1 else expand_ratio for e in default.expand)
            for depth in itertools.product(MBCONV_DEPTHS, repeat=stages):
                specs.append(dataclasses.replace(default, depth=depth, expand=expand, **scaled))
    return specs


def _vit_grid(default: Any) -> list[Any]:
    head_dim = default.head_dim
    return [dataclasses.replace(default, embed_dim=heads * head_dim, heads=heads, depth=depth, mlp_ratio=mlp)
            for heads in VIT_HEADS for depth in VIT_DEPTHS for mlp in VIT_MLP_RATIOS]


_GRIDS = {"resnet": _resnet_grid, "mbconv": _mbconv_grid, "vit": _vit_grid}


@functools.lru_cache(maxsize=8)
def spec_grid(family: str) -> tuple[Any, ...]:
    """Every spec of `family`'s planning grid (built around the family's default supernet)."""
    from seekdeploy import nn as sd_nn

    name = sd_nn.get_family(family).name
    if name not in _GRIDS:
        raise SpecError(f"the planner has no spec grid for family {name!r}; it supports {', '.join(_GRIDS)}. "
                        "Pass --base and --motivated specs explicitly")
    default = sd_nn.default_pair(name)[0].max_spec()
    return tuple(dict.fromkeys(_GRIDS[name](default)))


def design_specs(family: str, count: int, *, seed: int = 0, exclude: frozenset = frozenset(),
                 size_key: Any = None, corners: bool = True) -> list[Any]:
    """A calibration design of `count` specs: the grid's corners, then seeded random picks.

    Corners are the smallest and largest spec by `size_key` (default: the number of layers and
    total width/heads), and the shallow-wide and deep-narrow extremes. `exclude` removes specs
    (e.g. those of another design) so a held-out set never overlaps the fit; `corners=False`
    draws random picks only (a held-out test set).
    """
    pool = [spec for spec in spec_grid(family) if spec not in exclude]
    if count < 1 or not pool:
        raise SpecError(f"a calibration design needs at least one spec (asked {count}, {len(pool)} available)")
    key = size_key or _size_key
    ranked = sorted(pool, key=key)
    extremes = [ranked[0], ranked[-1], max(pool, key=lambda s: (-_depth_of(s), key(s))),
               max(pool, key=lambda s: (_depth_of(s), -key(s)))]
    chosen = list(dict.fromkeys(extremes))[:count] if corners else []
    rest = [spec for spec in pool if spec not in chosen]
    random.Random(seed).shuffle(rest)
    return chosen + rest[: max(0, count - len(chosen))]


def _depth_of(spec: Any) -> int:
    depth = spec.depth
    return sum(depth) if isinstance(depth, tuple) else int(depth)


def _size_key(spec: Any) -> float:
    # A cheap size proxy (no cost model needed): depth times width.
    if spec.family == "vit":
        return spec.depth * spec.embed_dim * (1 + spec.mlp_ratio)
    width = sum(spec.width) * (max(spec.expand) if hasattr(spec, "expand") else 1)
    return _depth_of(spec) * width
