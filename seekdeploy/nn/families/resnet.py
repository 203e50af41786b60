"""ResNet family (CIFAR-style basic blocks): spec, config, layers, default pair, search grid, FAMILY.

Torch-free: the models (supernet, static network, reorganization) are in `_resnet_model.py`,
imported when a model is first built.

Layout: a 3x3 stem convolution to `width[0]` channels (stride 1), then one stage per entry of
`depth`/`width`: `depth[i]` basic blocks of `width[i]` channels; the first block of every stage
after the first has stride 2 and a 1x1 projection shortcut; then global average pooling and a
linear classifier. The default supernet is ResNet-20 (3 stages x 3 blocks, widths 16/32/64).

Search grid: one width multiplier for all stages (0.25-4 x the default widths, multiples of 8) x
depth 1-18 per stage, independently (18 blocks a stage is ResNet-110; 9 is ResNet-56).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from seekdeploy.errors import SpecError
from seekdeploy.nn.family import Family
from seekdeploy.nn.grid import SpecGrid, distinct_values, round_to_8
from seekdeploy.nn.layers import Layer, LayerRecorder
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec, require_positive, require_same_length

FAMILY_NAME = "resnet"
GRID_WIDTH_MULTIPLIERS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
GRID_DEPTHS = tuple(range(1, 19))


@dataclass(frozen=True)
class ResNetSpec(SubnetSpec):
    """Per-stage block count (`depth`) and channel count (`width`) of one ResNet."""

    family = FAMILY_NAME
    depth: tuple[int, ...]
    width: tuple[int, ...]

    def validate(self) -> None:
        require_positive("ResNetSpec", "depth", self.depth)
        require_positive("ResNetSpec", "width", self.width)
        require_same_length("ResNetSpec", depth=self.depth, width=self.width)

    def contains(self, other: SubnetSpec) -> bool:
        if not isinstance(other, ResNetSpec) or len(other.depth) != len(self.depth):
            return False
        return all(o <= s for o, s in zip(other.depth + other.width, self.depth + self.width))


@dataclass(frozen=True)
class ResNetConfig(FamilyConfig):
    """The supernet: the largest depth and width per stage (every spec inside it can run)."""

    family = FAMILY_NAME
    depth: tuple[int, ...] = (3, 3, 3)
    width: tuple[int, ...] = (16, 32, 64)

    def max_spec(self) -> ResNetSpec:
        return ResNetSpec(depth=self.depth, width=self.width)

    def __post_init__(self) -> None:
        try:
            self.max_spec()
        except SpecError as exc:
            raise SpecError(str(exc).replace("ResNetSpec", "ResNetConfig")) from None


def block_stride(stage: int, block: int) -> int:
    """Stride of a block: 2 for the first block of every stage after the first."""
    return 2 if stage > 0 and block == 0 else 1


def describe_resnet_layers(spec: ResNetSpec, *, in_channels: int, image_size: int,
                           num_classes: int) -> list[Layer]:
    """The layers of the static ResNet of `spec` in forward order (see `seekdeploy.nn.layers`)."""
    record = LayerRecorder()
    size = record.conv(in_channels, spec.width[0], 3, image_size, norm=True)
    channels = spec.width[0]
    for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
        for block in range(depth):
            stride, size_in = block_stride(stage, block), size
            size = record.conv(channels, width, 3, size_in, stride, norm=True)
            record.conv(width, width, 3, size, norm=True)
            if stride != 1:
                record.conv(channels, width, 1, size_in, stride, norm=True)  # projection shortcut
            record.elementwise(width * size * size, inputs=2)  # residual add (+ ReLU, fused)
            channels = width
    record.elementwise(channels, inputs=size * size)  # global average pooling: (C, H, W) -> (C,)
    record.linear(channels, num_classes)
    return record.layers


def resnet_reused_forward_macs(base: ResNetSpec, spec: ResNetSpec, *, in_channels: int, image_size: int,
                               num_classes: int) -> int:
    """MACs the larger model of an additive pair computes on top of the base's forward
    (`forward_nested`): every convolution's rows beyond the base's, from all channels, each block
    of the larger model alone (its second convolution on the base's rows is held at zero), and the
    classifier's columns beyond the base's."""
    size = image_size
    macs = (spec.width[0] - base.width[0]) * in_channels * 9 * size * size
    channels = spec.width[0]
    for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
        extra = width - base.width[stage]
        for block in range(depth):
            stride = block_stride(stage, block)
            size = (size - 1) // stride + 1
            area = size * size
            if block >= base.depth[stage]:
                macs += width * channels * 9 * area + extra * width * 9 * area
            else:
                macs += extra * channels * 9 * area + extra * width * 9 * area
                if stride != 1:
                    macs += extra * channels * area  # the projection shortcut
            channels = width
    return macs + num_classes * (spec.width[-1] - base.width[-1])


def default_resnet_pair() -> tuple[ResNetConfig, ResNetSpec, ResNetSpec]:
    """ResNet-20 supernet; base = half width, two blocks per stage; motivated = the whole supernet."""
    config = ResNetConfig()
    return config, ResNetSpec(depth=(2, 2, 2), width=(8, 16, 32)), config.max_spec()


def resnet_search_grid() -> SpecGrid:
    """The planner's ResNet grid around the default supernet (see the module doc)."""
    default = default_resnet_pair()[0].max_spec()
    ones = (1,) * len(default.depth)
    multipliers, shapes = distinct_values(GRID_WIDTH_MULTIPLIERS, lambda m: dataclasses.replace(
        default, depth=ones, width=tuple(round_to_8(w * m) for w in default.width)))
    return SpecGrid(FAMILY_NAME, (("width", multipliers),), tuple(shapes), GRID_DEPTHS, len(ones))


FAMILY = Family(
    name=FAMILY_NAME,
    description="CIFAR-style ResNet of basic blocks; elastic depth and width per stage",
    spec_type=ResNetSpec,
    config_type=ResNetConfig,
    describe_layers=describe_resnet_layers,
    default_pair=default_resnet_pair,
    models="seekdeploy.nn.families._resnet_model",
    search_grid=resnet_search_grid,
    reused_forward_macs=resnet_reused_forward_macs,
    private_convs=True,
)
