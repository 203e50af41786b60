"""ResNet family (CIFAR-style basic blocks): spec, config, analytic cost, default pair.

Layout: a 3x3 stem convolution to `width[0]` channels (stride 1), then one stage per entry of
`depth`/`width`: `depth[i]` basic blocks of `width[i]` channels; the first block of every stage
after the first has stride 2 and a 1x1 projection shortcut; then global average pooling and a
linear classifier. The default supernet is ResNet-20 (3 stages x 3 blocks, widths 16/32/64).
"""

from __future__ import annotations

from dataclasses import dataclass

from seekdeploy.errors import SpecError
from seekdeploy.nn.base import (Cost, CostCounter, FamilyConfig, SubnetSpec, require_positive,
                                require_same_length)

FAMILY_NAME = "resnet"


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


def estimate_resnet_cost(spec: ResNetSpec, *, in_channels: int, image_size: int,
                         num_classes: int) -> Cost:
    """Analytic cost of the static ResNet of `spec` (see `Cost` for what is counted)."""
    counter = CostCounter()
    size = counter.conv(in_channels, spec.width[0], 3, image_size)
    counter.norm(spec.width[0])
    channels = spec.width[0]
    for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
        for block in range(depth):
            stride, size_in = block_stride(stage, block), size
            size = counter.conv(channels, width, 3, size_in, stride)
            counter.norm(width)
            counter.conv(width, width, 3, size)
            counter.norm(width)
            if stride != 1:
                counter.conv(channels, width, 1, size_in, stride)
                counter.norm(width)
            channels = width
    counter.linear(channels, num_classes)
    return counter.result()


def default_resnet_pair() -> tuple[ResNetConfig, ResNetSpec, ResNetSpec]:
    """ResNet-20 supernet; base = half width, two blocks per stage; motivated = the whole supernet."""
    config = ResNetConfig()
    return config, ResNetSpec(depth=(2, 2, 2), width=(8, 16, 32)), config.max_spec()
