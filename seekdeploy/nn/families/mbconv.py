"""MBConv family (MobileNetV2/EfficientNet inverted residuals): spec, config, layers, scaling, grid,
FAMILY. Torch-free: the models are in `_mbconv_model.py`, imported when a model is first built.

Layout: a 3x3 stem convolution to `stem` channels (stride 1); per stage `depth[i]` inverted
residual blocks of `width[i]` output channels: a 1x1 expansion to `in * expand[i]` channels
(absent when expand is 1), a `kernel[i]` depthwise convolution (stride `stride[i]` in the first
block of the stage), optional squeeze-excitation (`se` > 0: reduce to `max(1, int(in * se))`
channels, as EfficientNet sizes it from the block input), a 1x1 linear projection, and a residual
add when the block keeps shape; then a 1x1 head convolution to `head` channels, global average
pooling and a linear classifier. `kernel`, `stride`, `se` and `act` are architectural constants
(equal in nested specs); the other fields are elastic.

Search grid: width multiplier 0.5-3 (stem, stage widths and head) x one expand ratio 2-6 for
every stage that expands x depth 1-8 per stage; kernel, stride, SE and activation stay the
default supernet's (they are constants a nested pair must share).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from seekdeploy.errors import SpecError
from seekdeploy.nn.family import Family
from seekdeploy.nn.grid import SpecGrid, distinct_values, round_to_8
from seekdeploy.nn.layers import Layer, LayerRecorder
from seekdeploy.nn.spec import (Activation, FamilyConfig, SubnetSpec, ceil_int, make_divisible,
                                require_positive, require_same_length)

FAMILY_NAME = "mbconv"
GRID_WIDTH_MULTIPLIERS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
GRID_EXPANDS = (2, 3, 4, 6)
GRID_DEPTHS = tuple(range(1, 9))


@dataclass(frozen=True)
class MBConvSpec(SubnetSpec):
    """One MBConv network; empty `kernel`/`stride` mean 3 everywhere / (1, 2, 2, …)."""

    family = FAMILY_NAME
    stem: int
    depth: tuple[int, ...]
    width: tuple[int, ...]
    expand: tuple[int, ...]
    head: int
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    se: float = 0.0
    act: Activation = Activation.SILU

    def __post_init__(self) -> None:
        stages = len(self.depth)
        if not self.kernel:
            object.__setattr__(self, "kernel", (3,) * stages)
        if not self.stride:
            object.__setattr__(self, "stride", (1,) + (2,) * (stages - 1))
        object.__setattr__(self, "act", Activation(self.act))
        super().__post_init__()

    def validate(self) -> None:
        name = "MBConvSpec"
        for field in ("stem", "depth", "width", "expand", "head", "kernel", "stride"):
            require_positive(name, field, getattr(self, field))
        require_same_length(name, depth=self.depth, width=self.width, expand=self.expand,
                            kernel=self.kernel, stride=self.stride)
        if any(k % 2 == 0 for k in self.kernel):
            raise SpecError(f"{name}: kernel sizes must be odd, got {self.kernel}")
        if any(s not in (1, 2) for s in self.stride):
            raise SpecError(f"{name}: strides must be 1 or 2, got {self.stride}")
        if not 0.0 <= self.se < 1.0:
            raise SpecError(f"{name}: se (squeeze-excitation ratio) must be in [0, 1), got {self.se}")

    def contains(self, other: SubnetSpec) -> bool:
        if not isinstance(other, MBConvSpec) or len(other.depth) != len(self.depth):
            return False
        constants = ("kernel", "stride", "se", "act")
        if any(getattr(other, c) != getattr(self, c) for c in constants):
            return False
        # A stage without an expansion layer cannot run one, and vice versa.
        if any((o == 1) != (s == 1) for o, s in zip(other.expand, self.expand)):
            return False
        mine = (self.stem, self.head, *self.depth, *self.width, *self.expand)
        theirs = (other.stem, other.head, *other.depth, *other.width, *other.expand)
        return all(o <= s for o, s in zip(theirs, mine))


@dataclass(frozen=True)
class MBConvConfig(FamilyConfig):
    """The supernet: the largest network (same fields as `MBConvSpec`); `se` > 0 adds SE layers."""

    family = FAMILY_NAME
    stem: int = 16
    depth: tuple[int, ...] = (1, 2, 2, 2)
    width: tuple[int, ...] = (16, 24, 40, 80)
    expand: tuple[int, ...] = (1, 6, 6, 6)
    head: int = 320
    kernel: tuple[int, ...] = (3, 3, 5, 3)
    stride: tuple[int, ...] = (1, 2, 2, 2)
    se: float = 0.25
    act: Activation = Activation.SILU

    def max_spec(self) -> MBConvSpec:
        return MBConvSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def __post_init__(self) -> None:
        try:
            self.max_spec()
        except SpecError as exc:
            raise SpecError(str(exc).replace("MBConvSpec", "MBConvConfig")) from None


def block_stride(spec: MBConvSpec, stage: int, block: int) -> int:
    """Stride of a block: the stage's stride in its first block, 1 after."""
    return spec.stride[stage] if block == 0 else 1


def se_channels(in_channels: int, ratio: float) -> int:
    """Squeeze-excitation width, from the block's input width (EfficientNet's convention)."""
    return max(1, int(in_channels * ratio))


def describe_mbconv_layers(spec: MBConvSpec, *, in_channels: int, image_size: int,
                           num_classes: int) -> list[Layer]:
    """The layers of the static MBConv network of `spec` in forward order (see `seekdeploy.nn.layers`)."""
    record = LayerRecorder()
    silu = spec.act is Activation.SILU  # SiLU exports as Sigmoid + Mul, which do not fuse into Conv

    def act(elements: int) -> None:
        if silu:
            record.elementwise(elements, inputs=2)

    size = record.conv(in_channels, spec.stem, 3, image_size, norm=True)
    act(spec.stem * size * size)
    channels = spec.stem
    for stage, (depth, width, expand) in enumerate(zip(spec.depth, spec.width, spec.expand)):
        for block in range(depth):
            hidden = channels * expand
            if expand != 1:
                record.conv(channels, hidden, 1, size, norm=True)
                act(hidden * size * size)
            stride, size_in = block_stride(spec, stage, block), size
            size = record.conv(hidden, hidden, spec.kernel[stage], size, stride, groups=hidden, norm=True)
            act(hidden * size * size)
            if spec.se > 0:
                reduced = se_channels(channels, spec.se)
                record.elementwise(hidden, inputs=size * size)  # squeeze: average pool
                record.conv(hidden, reduced, 1, 1, bias=True)
                act(reduced)
                record.conv(reduced, hidden, 1, 1, bias=True)
                record.elementwise(hidden * size * size, inputs=2)  # sigmoid gate multiply
            record.conv(hidden, width, 1, size, norm=True)
            if stride == 1 and channels == width and size_in == size:
                record.elementwise(width * size * size, inputs=2)  # residual add
            channels = width
    record.conv(channels, spec.head, 1, size, norm=True)
    act(spec.head * size * size)
    record.elementwise(spec.head, inputs=size * size)  # global average pooling
    record.linear(spec.head, num_classes)
    return record.layers


def compound_scale(spec: MBConvSpec, phi: float, alpha: float = 1.2, beta: float = 1.1, *,
                   divisor: int = 8) -> MBConvSpec:
    """EfficientNet compound scaling: depths x alpha**phi (rounded up), widths x beta**phi
    (rounded to multiples of `divisor`); resolution scaling is the profile's input, not the spec's.
    """
    if alpha < 1.0 or beta < 1.0:
        raise SpecError(f"compound_scale: alpha and beta must be >= 1, got alpha={alpha}, beta={beta}")
    depth_mult, width_mult = alpha ** phi, beta ** phi
    return dataclasses.replace(
        spec,
        stem=make_divisible(spec.stem * width_mult, divisor),
        depth=tuple(max(1, ceil_int(d * depth_mult)) for d in spec.depth),
        width=tuple(make_divisible(w * width_mult, divisor) for w in spec.width),
        head=make_divisible(spec.head * width_mult, divisor),
    )


def default_mbconv_pair() -> tuple[MBConvConfig, MBConvSpec, MBConvSpec]:
    """Small EfficientNet-like supernet (~11 M MACs at 32x32); base = half width, one block per
    stage, expand 3; motivated = the whole supernet."""
    config = MBConvConfig()
    base = dataclasses.replace(config.max_spec(), stem=8, depth=(1, 1, 1, 1), width=(8, 16, 24, 40),
                               expand=(1, 3, 3, 3), head=160)
    return config, base, config.max_spec()


def mbconv_search_grid() -> SpecGrid:
    """The planner's MBConv grid around the default supernet (see the module doc)."""
    default = default_mbconv_pair()[0].max_spec()
    ones = (1,) * len(default.depth)

    def scaled(multiplier: float) -> MBConvSpec:
        return dataclasses.replace(default, depth=ones, stem=round_to_8(default.stem * multiplier),
                                   head=round_to_8(default.head * multiplier),
                                   width=tuple(round_to_8(w * multiplier) for w in default.width))

    multipliers, _ = distinct_values(GRID_WIDTH_MULTIPLIERS, scaled)
    shapes = [dataclasses.replace(scaled(m), expand=tuple(1 if e == 1 else ratio for e in default.expand))
              for m, ratio in itertools.product(multipliers, GRID_EXPANDS)]
    return SpecGrid(FAMILY_NAME, (("width", multipliers), ("expand", GRID_EXPANDS)), tuple(shapes),
                    GRID_DEPTHS, len(ones))


FAMILY = Family(
    name=FAMILY_NAME,
    description="MobileNetV2/EfficientNet inverted residuals; elastic depth, width, expand ratio, "
                "stem and head width; optional squeeze-excitation",
    spec_type=MBConvSpec,
    config_type=MBConvConfig,
    describe_layers=describe_mbconv_layers,
    default_pair=default_mbconv_pair,
    models="seekdeploy.nn.families._mbconv_model",
    search_grid=mbconv_search_grid,
    private_convs=True,
)
