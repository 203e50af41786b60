"""The planner's shape rules (`ShapeRule`): which specs of a family's grid it may pick.

Maximising FLOPs over any shape finds that the cheapest FLOPs are high-resolution ones and returns
shapes no one trains (`depth=18,18,1` on the Orin Nano: 36 blocks at the two high resolutions, one
at the lowest). Each rule judges a spec against the family's reference shape (its default
supernet); widths already scale together on every family's grid (one multiplier for all stages):

- **graded** (the default): per-stage depths never decrease from one stage to the next, so depth
  grows toward the low-resolution stages as in the references (ResNet `3,3,3`, MBConv `1,2,2,2`):
  `1,1,5` and `4,18,18` are graded, `18,18,1` is not. A family whose depth is one number (ViT)
  has no stages to order. And depth and width are balanced (below), where "the least depth" is a
  shallowest stage of one block.
- **proportional**: per-stage depths keep the reference's pattern, `depth[s] = max(1, round(delta *
  ref[s]))` for one depth multiplier `delta` (ResNet `3,3,3` scales to `k,k,k`; MBConv `1,2,2,2` to
  `1,1,1,1`, `2,3,3,3`, `2,4,4,4`, ...), and depth and width are balanced, where "the least depth"
  is one block in every stage.
- **free**: any shape of the grid (the max-FLOPs search).

**Balanced** is EfficientNet's compound scaling (Tan & Le 2019; the resolution is the profile's
input, not scaled): with `delta = sum(depth) / sum(ref depth)` and `omega = sum(width) / sum(ref
width)` (ViT: embed dim), compound scaling sets `delta = ALPHA ** phi` and `omega = BETA ** phi`; a
spec is balanced when the `phi` its depth implies and the `phi` its width implies differ by at most
`PHI_BAND` (depth within ALPHA ** 3 = 1.73x of the rule's depth for that width). A spec at the
least depth that is too narrow even for that is balanced too: the rule would ask for less than one
block. Axes the rules do not tie (MBConv's expand ratio, ViT's MLP ratio) stay free.

Graded is the default on a measurement: on x86-cpu-demo's quiet-VM calibration
(tests/fixtures/x86-cpu-demo.quiet-2vcpu.latency.json) it plans `1,1,3;8,16,32` in
`1,1,5;16,32,64`, the max-FLOPs pair, whose models scored 1.5 pp above the proportional pair's at
the same measured latency (Fashion-MNIST, 10 epochs, seed 0; docs/planning.md, "Does the
proportional pick train as well as the max-FLOPs pick?").
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
    # At the least depth a spec gets, one so narrow that the rule asks for less depth is balanced.
    gap = phi_depth - phi_width
    return (np.abs(gap) <= PHI_BAND) | (least_depth & (gap > PHI_BAND))


def _is_graded(depths: tuple[int, ...]) -> bool:
    return all(shallow <= deep for shallow, deep in zip(depths, depths[1:]))


def allows_shape(spec: SubnetSpec, family: str, rule: ShapeRule | str) -> bool:
    """Whether shape rule `rule` allows `spec` (see the module doc)."""
    rule = ShapeRule(rule)
    if rule is ShapeRule.FREE:
        return True
    depths = _depths(spec)
    if rule is ShapeRule.GRADED:
        ordered, least_depth = _is_graded(depths), min(depths) == 1
    else:
        ordered = len(depths) == 1 or depths in depth_patterns(family, max(max(depths), 1))
        least_depth = max(depths) == 1
    if not ordered:
        return False
    delta, omega = multipliers(spec, family)
    return bool(_balanced(np.array([delta]), np.array([omega]), np.array([least_depth]))[0])


def _grid_depths(grid: SpecGrid) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    # (every spec's axis indices, its shape number (N,), its per-stage depths (stages, N)).
    shapes = len(grid.shape_axes)
    multi = np.unravel_index(np.arange(len(grid)), grid.dims)
    shape_of = np.ravel_multi_index(multi[:shapes], grid.dims[:shapes])
    values = np.asarray(grid.depth_values)
    return multi, shape_of, np.stack([values[index] for index in multi[shapes:]])


def _in_pattern(grid: SpecGrid, family: str, multi: tuple[np.ndarray, ...]) -> np.ndarray:
    # (N,) bool: whose per-stage depths are one of the reference's scaled patterns.
    shapes = len(grid.shape_axes)
    values = np.asarray(grid.depth_values)
    index_of = {int(v): i for i, v in enumerate(values)}
    codes = np.ravel_multi_index(tuple(multi[shapes:]), grid.dims[shapes:])
    wanted = [np.ravel_multi_index(tuple(index_of[d] for d in pattern), grid.dims[shapes:])
              for pattern in depth_patterns(family, int(values.max())) if all(d in index_of for d in pattern)]
    return np.isin(codes, np.asarray(wanted, dtype=codes.dtype))


def grid_mask(grid: SpecGrid, family: str, rule: ShapeRule | str) -> np.ndarray:
    """(N,) bool over `grid` (flat, row-major over its axes): which specs `rule` allows."""
    rule = ShapeRule(rule)
    if rule is ShapeRule.FREE:
        return np.ones(len(grid), dtype=bool)
    multi, shape_of, depth = _grid_depths(grid)  # depth: (stages, N)
    reference = reference_spec(family)
    omega_of_shape = np.array([_width_total(shape) / _width_total(reference) for shape in grid.shapes])
    delta = depth.sum(axis=0) / float(sum(_depths(reference)))
    least_depth = depth.min(axis=0) == 1 if rule is ShapeRule.GRADED else depth.max(axis=0) == 1
    mask = _balanced(delta, omega_of_shape[shape_of], least_depth)
    if depth.shape[0] > 1:
        mask &= np.all(np.diff(depth, axis=0) >= 0, axis=0) if rule is ShapeRule.GRADED \
            else _in_pattern(grid, family, multi)
    return mask


def specs_mask(specs: list[SubnetSpec], family: str, rule: ShapeRule | str) -> np.ndarray:
    """(N,) bool: which of `specs` `rule` allows."""
    return np.array([allows_shape(spec, family, rule) for spec in specs], dtype=bool)


def shape_steps(grid: SpecGrid, family: str, index: int, rule: ShapeRule | str) -> list[tuple[str, int | None]]:
    """The steps up from grid spec `index` that keep `rule`'s depth order, as (axis name, flat index
    or None where the grid ends): one step up each shape axis (same depths), then in depth

    - graded: one more block in any single stage whose depth then still does not exceed the next
      stage's (axes `depth[s]`);
    - proportional: the next depth pattern, same shape (axis `depth`);
    - a scalar depth (ViT): one more block (axis `depth`).

    A step may still leave the depth-width band: the caller reports that (`PROPORTIONS`)."""
    rule = ShapeRule(rule)
    shapes = len(grid.shape_axes)
    multi = [int(i) for i in np.unravel_index(int(index), grid.dims)]
    out = [_step(grid, multi, axis, grid.axes[axis][0]) for axis in range(shapes)]
    values = list(grid.depth_values)
    depth = tuple(values[i] for i in multi[shapes:])
    if rule is ShapeRule.GRADED and not grid.scalar_depth:
        for stage in range(len(depth)):
            if stage + 1 < len(depth) and depth[stage] >= depth[stage + 1]:
                continue  # one more block here would make this stage deeper than the next
            out.append(_step(grid, multi, shapes + stage, grid.axes[shapes + stage][0]))
        return out
    if grid.scalar_depth:
        nxt = (depth[0] + 1,) if depth[0] + 1 in values else None
    else:
        deeper = sorted((p for p in depth_patterns(family, max(values))
                         if sum(p) > sum(depth) and all(a >= b for a, b in zip(p, depth))), key=sum)
        nxt = deeper[0] if deeper else None
    if nxt is None:
        out.append(("depth", None))
    else:
        up = multi[:shapes] + [values.index(d) for d in nxt]
        out.append(("depth", int(np.ravel_multi_index(up, grid.dims))))
    return out


def _step(grid: SpecGrid, multi: list[int], axis: int, name: str) -> tuple[str, int | None]:
    # One step up `axis` from the spec at axis indices `multi`; None at the axis's cap.
    if multi[axis] + 1 >= grid.dims[axis]:
        return name, None
    up = list(multi)
    up[axis] += 1
    return name, int(np.ravel_multi_index(up, grid.dims))
