"""The planner's shape rule: specs in the family's proportions (compound scaling), not any shape.

Maximising FLOPs over a free grid finds that the cheapest FLOPs are high-resolution ones and
returns shapes no one trains (`depth=18,18,1` on the Orin Nano). So the planner only considers
specs that scale the family's reference shape (its default supernet) the way EfficientNet's
compound scaling does (Tan & Le 2019, resolution fixed by the profile):

- **Per-stage depths keep the reference's proportions**: `depth[s] = max(1, round(delta * ref[s]))`
  for one depth multiplier `delta` (ResNet `3,3,3` scales to `k,k,k`; MBConv `1,2,2,2` to
  `1,1,1,1`, `2,3,3,3`, `2,4,4,4`, ...). Widths already scale together on every family's grid
  (one multiplier for all stages).
- **Depth and width scale together**: with `delta = sum(depth) / sum(ref depth)` and
  `omega = sum(width) / sum(ref width)` (ViT: embed dim), compound scaling sets
  `delta = ALPHA ** phi` and `omega = BETA ** phi`; a spec is in proportion when the `phi` its depth
  implies and the `phi` its width implies differ by at most `PHI_BAND` (depth within ALPHA ** 3 =
  1.73x of the rule's depth for that width). A spec at the least depth (one block a stage) that
  is too narrow even for that is in proportion too: the rule would ask for less than one block.

Axes the rule does not tie (MBConv's expand ratio, ViT's MLP ratio) stay free. `ShapeRule.FREE`
switches the rule off: a max-FLOPs search over any shape, the baseline the rule is compared with.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from seekdeploy.plan.defaults import DEFAULT_SHAPE_RULE, ShapeRule  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from seekdeploy.nn.grid import SpecGrid
    from seekdeploy.nn.spec import SubnetSpec

# EfficientNet's grid-searched constants (depth alpha, width beta; resolution is the profile's).
ALPHA, BETA = 1.2, 1.1
PHI_BAND = 3.0
PROPORTIONS = "proportions"  # the reason a step up was refused (RolePlan.limits)




@functools.lru_cache(maxsize=8)
def reference_spec(family: str) -> SubnetSpec:
    """The family's reference shape: its default supernet."""
    from seekdeploy.nn.registry import default_pair

    return default_pair(family)[0].max_spec()


def _depths(spec: Any) -> tuple[int, ...]:
    return (spec.depth,) if isinstance(spec.depth, int) else tuple(spec.depth)


def _width_total(spec: Any) -> float:
    # The family's channel count: a ViT's embed dim, else its `width` (one number or one a stage).
    # A family with neither has no width to scale: its depth alone decides (see `multipliers`).
    if hasattr(spec, "embed_dim"):
        return float(spec.embed_dim)
    width = getattr(spec, "width", None)
    if width is None:
        return math.nan
    return float(width) if isinstance(width, (int, float)) else float(sum(width))


def multipliers(spec: SubnetSpec, family: str) -> tuple[float, float]:
    """(depth multiplier delta, width multiplier omega) of `spec` against the family's reference."""
    reference = reference_spec(family)
    delta = sum(_depths(spec)) / sum(_depths(reference))
    return delta, _width_total(spec) / _width_total(reference)


def depth_pattern(reference: tuple[int, ...], delta: float) -> tuple[int, ...]:
    """The per-stage depths of `reference` scaled by `delta` (half up, at least one block)."""
    return tuple(max(1, math.floor(d * delta + 0.5)) for d in reference)


@functools.lru_cache(maxsize=32)
def depth_patterns(family: str, cap: int) -> frozenset[tuple[int, ...]]:
    """Every per-stage depth vector in the reference's proportions with no stage above `cap`."""
    reference = _depths(reference_spec(family))
    patterns = set()
    for step in range(1, 100 * cap + 1):
        pattern = depth_pattern(reference, step / 100.0)
        if max(pattern) > cap:
            break
        patterns.add(pattern)
    return frozenset(patterns)


def _balanced(delta: np.ndarray, omega: np.ndarray, least_depth: np.ndarray) -> np.ndarray:
    phi_depth = np.log(delta) / math.log(ALPHA)
    phi_width = np.where(np.isnan(omega), phi_depth, np.log(omega) / math.log(BETA))  # no width: balanced
    # One block a stage is as shallow as a spec gets: a spec so narrow that the rule asks for less
    # than that is in proportion at the least depth.
    gap = phi_depth - phi_width
    return (np.abs(gap) <= PHI_BAND) | (least_depth & (gap > PHI_BAND))


def in_proportion(spec: SubnetSpec, family: str) -> bool:
    """Whether `spec` is in the family's proportions (see the module doc)."""
    depths = _depths(spec)
    if len(depths) > 1 and depths not in depth_patterns(family, max(max(depths), 1)):
        return False
    delta, omega = multipliers(spec, family)
    return bool(_balanced(np.array([delta]), np.array([omega]), np.array([max(depths) == 1]))[0])


def grid_mask(grid: SpecGrid, family: str) -> np.ndarray:
    """(N,) bool over `grid` (flat, row-major over its axes): which specs are in proportion."""
    shapes = len(grid.shape_axes)
    multi = np.unravel_index(np.arange(len(grid)), grid.dims)
    shape_of = np.ravel_multi_index(multi[:shapes], grid.dims[:shapes])
    values = np.asarray(grid.depth_values)
    depth = np.stack([values[index] for index in multi[shapes:]])  # (stages, N)
    reference = _depths(reference_spec(family))
    omega_of_shape = np.array([_width_total(shape) / _width_total(reference_spec(family)) for shape in grid.shapes])
    delta = depth.sum(axis=0) / float(sum(reference))
    mask = _balanced(delta, omega_of_shape[shape_of], depth.max(axis=0) == 1)
    if depth.shape[0] > 1:
        index_of = {int(v): i for i, v in enumerate(values)}
        codes = np.ravel_multi_index(tuple(multi[shapes:]), grid.dims[shapes:])
        wanted = [np.ravel_multi_index(tuple(index_of[d] for d in pattern), grid.dims[shapes:])
                  for pattern in depth_patterns(family, int(values.max())) if all(d in index_of for d in pattern)]
        allowed = np.isin(codes, np.asarray(wanted, dtype=codes.dtype))
        mask &= allowed
    return mask


def specs_mask(specs: list[SubnetSpec], family: str) -> np.ndarray:
    """(N,) bool: which of `specs` are in proportion."""
    return np.array([in_proportion(spec, family) for spec in specs], dtype=bool)


def scaled_neighbors(grid: SpecGrid, family: str, index: int) -> list[tuple[str, int | None]]:
    """The steps up from grid spec `index` that keep the proportions' per-stage pattern: one step
    up each shape axis (same depths), and "depth" (the next depth pattern, same shape); None where
    the grid ends. A step may still leave the depth-width band: the caller reports that."""
    shapes = len(grid.shape_axes)
    multi = list(np.unravel_index(int(index), grid.dims))
    out: list[tuple[str, int | None]] = []
    for axis in range(shapes):
        name = grid.axes[axis][0]
        if multi[axis] + 1 >= grid.dims[axis]:
            out.append((name, None))
            continue
        up = list(multi)
        up[axis] += 1
        out.append((name, int(np.ravel_multi_index(up, grid.dims))))
    values = list(grid.depth_values)
    depth = tuple(values[int(i)] for i in multi[shapes:])
    deeper = sorted((p for p in depth_patterns(family, max(values))
                     if sum(p) > sum(depth) and all(a >= b for a, b in zip(p, depth))), key=sum)
    if grid.scalar_depth:
        nxt = (depth[0] + 1,) if depth[0] + 1 in values else None
    else:
        nxt = deeper[0] if deeper else None
    if nxt is None:
        out.append(("depth", None))
    else:
        up = multi[:shapes] + [values.index(d) for d in nxt]
        out.append(("depth", int(np.ravel_multi_index(up, grid.dims))))
    return out
