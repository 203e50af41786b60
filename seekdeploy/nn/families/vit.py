"""ViT family: specs and configs (what is elastic, what is fixed, how it is spelled), layers, default
pair, search grid and FAMILY. Torch-free: the models are in `_vit_model.py` and `_vit_static.py`.

A `ViTSpec` names one sub-network: `embed_dim` (width of the residual stream), `heads` (attention
heads, each `head_dim = embed_dim // heads` wide; the head dim is fixed within a supernet so that
a head is the prefix unit), `depth` (transformer blocks) and `mlp_ratio` (MLP hidden width
`mlp_ratio * embed_dim`, a whole number). The patch size and the pooling (class token or token
mean) are constants of the supernet, carried in the spec so that a spec alone describes a static
network. Text form: ``vit:embed=96;heads=4;depth=4;mlp=2`` (the long field names work too, and
``patch=8;pooling=mean`` when they differ from the defaults 4 and cls).

Layers (`describe_vit_layers`): MACs count every multiply-accumulate of the patch convolution
(P x E x C x p x p for P patches), of every Linear (per block q, k, v and the output projection,
4 x T x E x E for T tokens; the MLP, 2 x T x E x H; the head, E x K) and of the two attention
matmuls Q.K^T and A.V (2 x T x T x E over all heads). LayerNorm, softmax, GELU, bias and residual
adds, the attention scale and the mean pooling are elementwise layers without MACs, which is
exactly what `torch.utils.flop_counter.FlopCounterMode` counts, so FLOPs = 2 x MACs equals its
total.

Search grid: heads 1-16 at the default head dim (24, so embed 24-384) x MLP ratio 1-4 x depth
1-16; patch and pooling fixed.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from seekdeploy.errors import SpecError
from seekdeploy.nn.family import Family
from seekdeploy.nn.grid import SpecGrid
from seekdeploy.nn.layers import Layer, LayerRecorder
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec, require_positive

FAMILY_NAME = "vit"
DEFAULT_PATCH_SIZE = 4
GRID_HEADS = tuple(range(1, 17))
GRID_MLP_RATIOS = (1.0, 2.0, 3.0, 4.0)
GRID_DEPTHS = tuple(range(1, 17))

# Short text keys -> field names; `to_text` writes the short ones.
_ALIASES = {"embed": "embed_dim", "mlp": "mlp_ratio", "patch": "patch_size", "pool": "pooling"}


class Pooling(str, enum.Enum):
    """How the token sequence becomes one feature vector: the class token or the token mean."""

    CLS = "cls"
    MEAN = "mean"


def _format_number(value: float) -> str:
    # 2.0 prints as "2" so that the text form reads like what the user typed.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _resolve_aliases(fields: Mapping[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in fields.items():
        name = _ALIASES.get(key, key)
        if name in resolved:
            raise SpecError(f"vit: {name!r} is given twice (as {key!r} and under another name)")
        resolved[name] = value
    return resolved


@dataclass(frozen=True)
class ViTSpec(SubnetSpec):
    """One ViT sub-network: embed dim, heads (of a fixed head dim), depth and MLP ratio."""

    family: ClassVar[str] = FAMILY_NAME

    embed_dim: int
    heads: int
    depth: int
    mlp_ratio: float
    patch_size: int = DEFAULT_PATCH_SIZE
    pooling: Pooling = Pooling.CLS

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ViTSpec:
        """Build from JSON or parsed text; accepts the short keys embed, mlp, patch, pool."""
        return super().from_fields(_resolve_aliases(fields))

    def validate(self) -> None:
        """Raise SpecError unless this is a buildable ViT (embed divisible by heads, whole MLP)."""
        require_positive("ViTSpec", "embed_dim, heads, depth and patch_size",
                         (self.embed_dim, self.heads, self.depth, self.patch_size))
        if self.embed_dim % self.heads:
            raise SpecError(
                f"ViTSpec: embed_dim {self.embed_dim} is not divisible by heads {self.heads}; "
                "use embed_dim = heads x head_dim (e.g. embed=96;heads=4 for head dim 24)"
            )
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
            raise SpecError(f"ViTSpec: mlp_ratio must be a positive number, got {ratio!r}")
        hidden = ratio * self.embed_dim
        if not math.isfinite(hidden) or abs(hidden - round(hidden)) > 1e-6 or round(hidden) < 1:
            raise SpecError(
                f"ViTSpec: mlp_ratio {ratio} x embed_dim {self.embed_dim} = {hidden:g} is not a "
                "whole number of MLP hidden units; pick a ratio such as 1, 1.5, 2 or 4"
            )
        object.__setattr__(self, "mlp_ratio", float(ratio))  # 2 and 2.0 give one JSON form
        try:
            object.__setattr__(self, "pooling", Pooling(self.pooling))
        except ValueError:
            raise SpecError(f"ViTSpec: pooling must be one of "
                            f"{[p.value for p in Pooling]}, got {self.pooling!r}") from None

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.embed_dim // self.heads

    @property
    def mlp_hidden(self) -> int:
        """MLP hidden width of every block."""
        return int(round(self.mlp_ratio * self.embed_dim))

    def to_text(self) -> str:
        """The CLI form, e.g. ``vit:embed=96;heads=4;depth=4;mlp=2`` (constants when not default)."""
        text = (f"{FAMILY_NAME}:embed={self.embed_dim};heads={self.heads};depth={self.depth};"
                f"mlp={_format_number(self.mlp_ratio)}")
        if self.patch_size != DEFAULT_PATCH_SIZE:
            text += f";patch={self.patch_size}"
        if self.pooling is not Pooling.CLS:
            text += f";pool={self.pooling.value}"
        return text

    def contains(self, other: SubnetSpec) -> bool:
        """True when `other` is a prefix sub-network of this spec.

        Same patch size, pooling and head dim; no more heads, blocks or MLP hidden units. The MLP
        is compared by hidden units, not by ratio: embed 48 with ratio 4 (192 units) is nested in
        embed 96 with ratio 2 (192 units).
        """
        return (
            isinstance(other, ViTSpec)
            and (other.patch_size, other.pooling, other.head_dim)
            == (self.patch_size, self.pooling, self.head_dim)
            and other.heads <= self.heads
            and other.depth <= self.depth
            and other.mlp_hidden <= self.mlp_hidden
        )


@dataclass(frozen=True)
class ViTConfig(FamilyConfig):
    """The ViT supernet: its largest sub-network (every other spec is a prefix of it)."""

    family: ClassVar[str] = FAMILY_NAME

    embed_dim: int = 96
    heads: int = 4
    depth: int = 4
    mlp_ratio: float = 2.0
    patch_size: int = DEFAULT_PATCH_SIZE
    pooling: Pooling = Pooling.CLS

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ViTConfig:
        """Build from JSON; accepts the short keys embed, mlp, patch, pool."""
        return super().from_fields(_resolve_aliases(fields))

    def __post_init__(self) -> None:
        spec = self.max_spec()  # validates every field, with ViTSpec's messages
        object.__setattr__(self, "mlp_ratio", spec.mlp_ratio)
        object.__setattr__(self, "pooling", spec.pooling)

    def max_spec(self) -> ViTSpec:
        """The spec of the whole supernet."""
        return ViTSpec(self.embed_dim, self.heads, self.depth, self.mlp_ratio,
                       self.patch_size, self.pooling)

    @property
    def head_dim(self) -> int:
        """The fixed width of one head; every subnet's embed_dim is a multiple of it."""
        return self.embed_dim // self.heads


def default_pair() -> tuple[ViTConfig, ViTSpec, ViTSpec]:
    """Small CPU-trainable pair at 32 x 32: supernet embed 96, 4 heads of 24, depth 4, MLP x2,
    patch 4 (the motivated spec is the whole supernet); base embed 48, 2 heads, depth 2, MLP x2."""
    config = ViTConfig(embed_dim=96, heads=4, depth=4, mlp_ratio=2.0, patch_size=4)
    base = ViTSpec(embed_dim=48, heads=2, depth=2, mlp_ratio=2.0, patch_size=4)
    return config, base, config.max_spec()


def check_geometry(spec: ViTSpec, *, num_classes: int, in_channels: int, image_size: int) -> None:
    """Raise SpecError unless the input geometry fits a ViT of `spec` (whole patches only)."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                        ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"vit: {name} must be a positive integer, got {value!r}")
    if image_size % spec.patch_size:
        raise SpecError(
            f"vit: image size {image_size} is not a multiple of the patch size {spec.patch_size}; "
            "resize the input (the profile's input size) or choose a patch size that divides it"
        )


def count_tokens(spec: ViTSpec, image_size: int) -> int:
    """Sequence length T: one token per patch, plus the class token when pooling is 'cls'."""
    return (image_size // spec.patch_size) ** 2 + (1 if spec.pooling is Pooling.CLS else 0)


def describe_vit_layers(spec: ViTSpec, *, in_channels: int, image_size: int, num_classes: int) -> list[Layer]:
    """The layers of `spec`'s static ViT in forward order (see the module doc for what is counted)."""
    check_geometry(spec, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    width, hidden, heads, patch = spec.embed_dim, spec.mlp_hidden, spec.heads, spec.patch_size
    tokens = count_tokens(spec, image_size)
    cls_token = spec.pooling is Pooling.CLS
    record = LayerRecorder()
    # The patch conv carries its bias, the position embedding and the class token.
    record.conv(in_channels, width, patch, image_size, stride=patch, same_padding=False,
                extra_params=width + tokens * width + (width if cls_token else 0))
    record.elementwise(tokens * width, inputs=2)  # + position embedding
    for _ in range(spec.depth):
        record.elementwise(tokens * width, params=2 * width)  # LayerNorm
        for _ in range(3):  # q, k, v
            record.linear(width, width, tokens)
        # Q.K^T: (h, T, d) x (h, d, T) -> (h, T, T); softmax; A.V: (h, T, T) x (h, T, d) -> (h, T, d)
        record.matmul(tokens * tokens * width, 2 * tokens * width, heads * tokens * tokens)
        record.elementwise(heads * tokens * tokens)  # scale + softmax
        record.matmul(tokens * tokens * width, heads * tokens * tokens + tokens * width, tokens * width)
        record.linear(width, width, tokens)  # output projection
        record.elementwise(tokens * width, inputs=2)  # residual add
        record.elementwise(tokens * width, params=2 * width)  # LayerNorm
        record.linear(width, hidden, tokens)
        record.elementwise(tokens * hidden)  # GELU
        record.linear(hidden, width, tokens)
        record.elementwise(tokens * width, inputs=2)  # residual add
    record.elementwise(tokens * width, params=2 * width)  # final LayerNorm
    record.linear(width, num_classes)
    return record.layers


def vit_search_grid() -> SpecGrid:
    """The planner's ViT grid around the default supernet (see the module doc)."""
    default = default_pair()[0].max_spec()
    shapes = [dataclasses.replace(default, embed_dim=heads * default.head_dim, heads=heads, depth=1, mlp_ratio=mlp)
              for heads, mlp in itertools.product(GRID_HEADS, GRID_MLP_RATIOS)]
    return SpecGrid(FAMILY_NAME, (("heads", GRID_HEADS), ("mlp", GRID_MLP_RATIOS)), tuple(shapes), GRID_DEPTHS, 1,
                    scalar_depth=True)


FAMILY = Family(
    name=FAMILY_NAME,
    description="vision transformer: patch embedding; embed dim, heads, depth, MLP ratio elastic",
    spec_type=ViTSpec,
    config_type=ViTConfig,
    describe_layers=describe_vit_layers,
    default_pair=default_pair,
    models="seekdeploy.nn.families._vit_model",
    search_grid=vit_search_grid,
    # A copied embedding feature changes every LayerNorm's mean and variance, and a fused qkv
    # row is not a channel of its own.
    clones_channels=False,
)
