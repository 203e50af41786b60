"""Specs and configs: what a family's sub-network and supernet are, parsed and checked (no torch).

A `SubnetSpec` fully describes a static network (given input channels, image size and class
count): architectural constants that are not elastic (kernel sizes, strides, activation, SE ratio)
are spec fields too, so `describe_layers(spec)` and `build_static(spec)` need nothing else. A
`FamilyConfig` holds a supernet's construction arguments; `max_spec()` is its largest network.
Both are frozen dataclasses built from JSON or CLI text by `from_fields` with errors that name
the key. Torch-free, so the planner and the CLI can read specs without loading torch.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from seekdeploy.errors import SpecError, did_you_mean


class Activation(str, enum.Enum):
    """The activation of a convolutional family (static models use the stock module of that name)."""

    RELU = "relu"
    SILU = "silu"



def _convert_field(cls_name: str, name: str, hint: Any, value: Any) -> Any:
    """Convert a JSON/text value to the annotated field type, or raise a SpecError naming it."""
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_convert_scalar(typing.get_args(hint)[0], item) for item in items)
        return _convert_scalar(hint, value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{cls_name}: bad value {value!r} for {name!r}: {exc}") from None


def _convert_scalar(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [member.value for member in hint]
        text = (value if isinstance(value, str) else str(value)).strip().lower()  # a str enum: its value
        if text not in allowed:
            raise ValueError(f"expected one of {allowed}{did_you_mean(text, allowed)}")
        return hint(text)
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected an integer")
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if hint is float:
        return float(value)
    if hint is bool:
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    return value


class _FieldsMixin:
    """Typed construction from a mapping (JSON or parsed text) with clear errors."""

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Any:
        """Build from a mapping of field name to value; unknown or missing keys are SpecErrors."""
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        kwargs, problems = {}, []  # every problem of the mapping, reported together
        for key, value in fields.items():
            if key == "family":
                continue
            if key not in known:
                problems.append(f"unknown key {key!r}{did_you_mean(key, known)}; "
                                f"allowed keys: {', '.join(known)}")
                continue
            try:
                kwargs[key] = _convert_field(cls.__name__, key, hints[key], value)
            except SpecError as exc:
                problems.append(str(exc).removeprefix(f"{cls.__name__}: "))
        missing = [key for key in required if key not in kwargs and key not in fields]
        if missing:
            problems.append(f"missing {', '.join(missing)} (required: {', '.join(required)})")
        if problems:
            raise SpecError(f"{cls.__name__}: {'; '.join(problems)}")
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the family name first."""
        out: dict[str, Any] = {"family": getattr(self, "family")}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, enum.Enum):
                value = value.value
            out[f.name] = value
        return out


@dataclass(frozen=True)
class SubnetSpec(_FieldsMixin):
    """One static network of a family; subclasses are frozen dataclasses and validate themselves.

    Subclasses set `family`, implement `validate()` (raise SpecError) and `contains(other)`.
    `to_text()` gives the CLI form `family:key=v,v;key=v`.
    """

    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SpecError when the spec is not a buildable network."""

    def contains(self, other: SubnetSpec) -> bool:
        """True when `other` is a prefix sub-network of this spec (same family and constants)."""
        raise NotImplementedError

    def to_text(self) -> str:
        """The CLI text form, e.g. `resnet:depth=3,3,3;width=16,32,64`."""
        parts = []
        for key, value in self.to_json().items():
            if key == "family":
                continue
            text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{key}={text}")
        return f"{self.family}:" + ";".join(parts)

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class FamilyConfig(_FieldsMixin):
    """Construction arguments of a family's supernet; `max_spec()` is the largest network in it."""

    family: ClassVar[str] = ""

    def max_spec(self) -> SubnetSpec:
        """The spec of the whole supernet."""
        raise NotImplementedError


def require_positive(cls_name: str, name: str, values: tuple[int, ...] | int, minimum: int = 1) -> None:
    """Raise SpecError unless every value is an integer >= minimum."""
    items = values if isinstance(values, tuple) else (values,)
    if not items or any(not isinstance(v, int) or v < minimum for v in items):
        raise SpecError(f"{cls_name}: {name} must be integers >= {minimum}, got {values!r}")


def require_same_length(cls_name: str, **fields: tuple) -> None:
    """Raise SpecError unless all per-stage tuples have the same length."""
    lengths = {name: len(value) for name, value in fields.items()}
    if len(set(lengths.values())) > 1:
        raise SpecError(f"{cls_name}: per-stage fields need one value per stage, got lengths {lengths}")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of `divisor`, never below it nor 10 % below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def ceil_int(value: float) -> int:
    """Ceiling as int (for depth multipliers)."""
    return int(math.ceil(value - 1e-9))
