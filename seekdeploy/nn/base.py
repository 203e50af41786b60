"""The contract every elastic model family implements: spec, config, cost, supernet, family entry.

The **weights map** is the prefix map. A sub-network described by a `SubnetSpec` uses, in every
layer of the supernet, the first k output channels and the first k' input channels of the full
weight (the first h heads, the first d features), the first n blocks of every stage, and the
first k entries of every BatchNorm's affine parameters and running statistics. Base and motivated
model therefore share one parameter storage; nothing is copied during training.

A spec fully describes a static network (given input channels, image size and class count):
architectural constants that are not elastic (kernel sizes, strides, activation, SE ratio) are
spec fields too, so `estimate_cost(spec)` and `build_static(spec)` need nothing else.

`Supernet.slice_map` and `to_static` are derived from the family's plain `build_static`
constructor: the static model mirrors the supernet's module names, so each static tensor is the
prefix of the supernet tensor with the same name (BatchNorm statistics `running_mean` come from
`running_mean_<role>`). Families with a different layout override `static_source_name`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from seekdeploy.errors import SpecError, did_you_mean

BN_STAT_NAMES = ("running_mean", "running_var", "num_batches_tracked")
SHARED_ROLE = "shared"
DEFAULT_BN_ROLES = ("base", "motivated")
_BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1}


class Activation(str, enum.Enum):
    """The activation of a convolutional family (static models use the stock module of that name)."""

    RELU = "relu"
    SILU = "silu"


@dataclass(frozen=True)
class Cost:
    """Analytic cost of one static network at batch 1.

    `params` is exact (equals `sum(p.numel())` of the static model). `macs` counts the
    multiply-accumulates of every convolution and linear layer (bias adds, BatchNorm, activations,
    pooling, residual adds and the SE gate multiply are not counted, as `FlopCounterMode` does not
    count them either); `flops = 2 * macs`. `activation_bytes` is the SUM of the fp32 outputs of
    every convolution and linear layer (what a runtime without buffer reuse allocates);
    `peak_activation_bytes` is the largest input + output pair of a single such layer (a lower
    bound on any runtime's peak).
    """

    params: int
    macs: int
    activation_bytes: int
    peak_activation_bytes: int

    @property
    def flops(self) -> int:
        """Forward FLOPs: two per multiply-accumulate."""
        return 2 * self.macs

    def weight_bytes(self, precision: str | enum.Enum = "fp32") -> int:
        """Bytes of the weights stored at `precision` (fp32 4, fp16 2, int8 1 byte per parameter)."""
        key = str(getattr(precision, "value", precision)).lower()
        if key not in _BYTES_PER_PARAM:
            raise SpecError(
                f"unknown precision {precision!r}{did_you_mean(key, _BYTES_PER_PARAM)}; "
                f"use one of {', '.join(_BYTES_PER_PARAM)}"
            )
        return self.params * _BYTES_PER_PARAM[key]

    def to_json(self) -> dict[str, int]:
        """Plain dict for manifests and reports."""
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
        }


class CostCounter:
    """Accumulates `Cost` layer by layer; families call `conv`/`linear` in forward order."""

    def __init__(self) -> None:
        self.params = 0
        self.macs = 0
        self.activation_elements = 0
        self.peak_elements = 0

    def conv(self, in_ch: int, out_ch: int, kernel: int, size_in: int, stride: int = 1,
             groups: int = 1, bias: bool = False) -> int:
        """Count a square same-padded convolution; return the output spatial size."""
        size_out = (size_in + 2 * (kernel // 2) - kernel) // stride + 1
        weights = out_ch * (in_ch // groups) * kernel * kernel
        self.params += weights + (out_ch if bias else 0)
        self.macs += weights * size_out * size_out
        self._activation(in_ch * size_in * size_in, out_ch * size_out * size_out)
        return size_out

    def linear(self, in_features: int, out_features: int, tokens: int = 1, bias: bool = True) -> None:
        """Count a linear layer applied to `tokens` vectors."""
        self.params += in_features * out_features + (out_features if bias else 0)
        self.macs += in_features * out_features * tokens
        self._activation(in_features * tokens, out_features * tokens)

    def norm(self, features: int) -> None:
        """Count the affine parameters of a BatchNorm/LayerNorm (its compute is not counted)."""
        self.params += 2 * features

    def _activation(self, in_elements: int, out_elements: int) -> None:
        self.activation_elements += out_elements
        self.peak_elements = max(self.peak_elements, in_elements + out_elements)

    def result(self) -> Cost:
        """The accumulated cost (fp32 activations)."""
        return Cost(self.params, self.macs, 4 * self.activation_elements, 4 * self.peak_elements)


# --------------------------------------------------------------------------- specs and configs


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
        text = str(getattr(value, "value", value)).strip().lower()
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
        kwargs = {}
        for key, value in fields.items():
            if key == "family":
                continue
            if key not in known:
                raise SpecError(
                    f"{cls.__name__}: unknown key {key!r}{did_you_mean(key, known)}; "
                    f"allowed keys: {', '.join(known)}"
                )
            kwargs[key] = _convert_field(cls.__name__, key, hints[key], value)
        missing = [key for key in required if key not in kwargs]
        if missing:
            raise SpecError(f"{cls.__name__}: missing {', '.join(missing)} (required: {', '.join(required)})")
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


# --------------------------------------------------------------------------- supernet


class Supernet(nn.Module):
    """Base class of every family's weight-sharing supernet (the motivated model's storage).

    Subclasses build their modules in `__init__` (calling `super().__init__(...)` first) and
    implement `forward_spec(x, spec, bn_role)`. `forward(x, spec=None, bn_role=None)` validates
    the spec (cached) and the role, then calls it.
    """

    def __init__(self, family: str, config: FamilyConfig, *, num_classes: int, in_channels: int,
                 image_size: int, bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__()
        bn_roles = tuple(bn_roles)
        if not bn_roles or len(set(bn_roles)) != len(bn_roles) or not all(r.isidentifier() for r in bn_roles):
            raise SpecError(f"bn_roles must be distinct identifiers such as ('base', 'motivated') or "
                            f"('shared',), got {bn_roles!r}")
        self.family = family
        self.config = config
        self.max_spec = config.max_spec()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.bn_roles = bn_roles
        self._checked_specs: set[SubnetSpec] = {self.max_spec}
        self._slice_maps: dict[tuple[SubnetSpec, str], dict[str, tuple[slice, ...] | None]] = {}

    def construction_kwargs(self) -> dict[str, Any]:
        """Everything `create_supernet` needs to rebuild this supernet (for checkpoints)."""
        return {"family": self.family, "config": self.config.to_json(), "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size,
                "bn_roles": list(self.bn_roles)}

    def check_spec(self, spec: SubnetSpec | None) -> SubnetSpec:
        """Return the spec (None = max spec) or raise SpecError if this supernet cannot run it."""
        if spec is None:
            return self.max_spec
        if spec in self._checked_specs:
            return spec
        if getattr(spec, "family", None) != self.family:
            raise SpecError(f"spec {spec} is not a {self.family!r} spec")
        if not self.max_spec.contains(spec):
            raise SpecError(f"spec {spec} does not fit inside this supernet ({self.max_spec}); "
                            "use smaller depths/widths or a larger supernet config")
        self._checked_specs.add(spec)
        return spec

    def check_role(self, bn_role: str | None) -> str:
        """Return the BN statistics role to use; with one role (shared BN) every role maps to it."""
        if bn_role is None or len(self.bn_roles) == 1 and bn_role in (*DEFAULT_BN_ROLES, SHARED_ROLE):
            return self.bn_roles[0]
        role = str(getattr(bn_role, "value", bn_role))
        if role not in self.bn_roles:
            raise SpecError(f"unknown BN role {role!r}{did_you_mean(role, self.bn_roles)}; "
                            f"this supernet keeps statistics for {', '.join(self.bn_roles)}")
        return role

    def forward(self, x: torch.Tensor, spec: SubnetSpec | None = None,
                bn_role: str | None = None) -> torch.Tensor:
        """Logits of the sub-network `spec` (None = whole supernet) using `bn_role`'s BN statistics."""
        return self.forward_spec(x, self.check_spec(spec), self.check_role(bn_role))

    def forward_spec(self, x: torch.Tensor, spec: SubnetSpec, bn_role: str) -> torch.Tensor:
        """Family forward at a validated spec and role."""
        raise NotImplementedError

    def static_source_name(self, static_name: str, bn_role: str) -> str:
        """Name of the supernet tensor whose prefix is the static tensor `static_name`."""
        module, _, leaf = static_name.rpartition(".")
        if leaf in BN_STAT_NAMES:
            return f"{module}.{leaf}_{bn_role}" if module else f"{leaf}_{bn_role}"
        return static_name

    def static_shapes(self, spec: SubnetSpec) -> dict[str, torch.Size]:
        """Shapes of the static model's state (built on the meta device: no memory, no init cost)."""
        from seekdeploy.nn.registry import get_family

        with torch.device("meta"):
            static = get_family(self.family).build_static(
                spec, num_classes=self.num_classes, in_channels=self.in_channels,
                image_size=self.image_size)
        return {name: tensor.shape for name, tensor in static.state_dict().items()}

    def slice_map(self, spec: SubnetSpec | None = None,
                  bn_role: str | None = None) -> dict[str, tuple[slice, ...] | None]:
        """For every parameter and buffer name, the prefix region `spec` uses (None = unused).

        BN statistics of roles other than `bn_role` (None = first role) are None. The map is
        cached per (spec, role); the tuples index the full tensor (`tensor[slices]`).
        """
        spec, role = self.check_spec(spec), self.check_role(bn_role)
        key = (spec, role)
        if key not in self._slice_maps:
            used = {self.static_source_name(name, role): tuple(slice(0, n) for n in shape)
                    for name, shape in self.static_shapes(spec).items()}
            names = [n for n, _ in self.named_parameters()] + [n for n, _ in self.named_buffers()]
            unknown = sorted(set(used) - set(names))
            if unknown:
                raise RuntimeError(f"static model of {spec} has tensors the supernet lacks: {unknown[:5]}")
            self._slice_maps[key] = {name: used.get(name) for name in names}
        return dict(self._slice_maps[key])


# --------------------------------------------------------------------------- family entry


@dataclass(frozen=True)
class Family:
    """A registered model family: its types and the functions the shared code calls.

    `build_supernet(config, *, num_classes, in_channels, image_size, bn_roles) -> Supernet` and
    `build_static(spec, *, num_classes, in_channels, image_size) -> nn.Module` (a plain
    constructor of stock layers whose state names mirror the supernet's);
    `estimate_cost(spec, *, in_channels, image_size, num_classes) -> Cost`;
    `default_pair() -> (config, base_spec, motivated_spec)`; `reorganize(supernet)` permutes
    channels by importance in place (None = not supported).
    """

    name: str
    description: str
    spec_type: type[SubnetSpec]
    config_type: type[FamilyConfig]
    build_supernet: Callable[..., Supernet]
    build_static: Callable[..., nn.Module]
    estimate_cost: Callable[..., Cost]
    default_pair: Callable[[], tuple[FamilyConfig, SubnetSpec, SubnetSpec]]
    reorganize: Callable[[Supernet], None] | None = None
