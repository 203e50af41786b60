"""ViT subnet specs and supernet configs: what is elastic, what is fixed, and how it is spelled.

A `ViTSpec` names one sub-network: `embed_dim` (width of the residual stream), `heads` (attention
heads, each `head_dim = embed_dim // heads` wide; the head dim is fixed within a supernet so that
a head is the prefix unit), `depth` (transformer blocks) and `mlp_ratio` (MLP hidden width
`mlp_ratio * embed_dim`, a whole number). The patch size and the pooling (class token or token
mean) are constants of the supernet, carried in the spec so that a spec alone describes a static
network. Text form: ``vit:embed=96;heads=4;depth=4;mlp=2`` (the long field names work too, and
``patch=8;pooling=mean`` when they differ from the defaults 4 and cls).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from seekdeploy.errors import SpecError
from seekdeploy.nn.base import FamilyConfig, SubnetSpec, require_positive

FAMILY_NAME = "vit"
DEFAULT_PATCH_SIZE = 4

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
            object.__setattr__(self, "pooling", Pooling(getattr(self.pooling, "value", self.pooling)))
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
