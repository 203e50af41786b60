"""What `seekdeploy export` may be asked for: one declarative table of formats and the precisions
each allows (ONNX, plus the own artifact of each runtime backend whose `ExportStep` has a `format`),
and `parse_export_options`, which validates every option before any work starts.

Nothing is silently changed: an unknown format, precision or role is an error with a suggestion,
and a precision no requested format can produce is an error that says which format can.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seekdeploy.backends import list_backends
from seekdeploy.errors import ConfigError, did_you_mean
from seekdeploy.layout import EXPORTS_DIR
from seekdeploy.export.parity import TOLERANCES, ParityTolerance
from seekdeploy.export.quantize import DEFAULT_CALIBRATION_IMAGES, CalibrationMethod, Int8Settings
from seekdeploy.profiles.schema import Precision
from seekdeploy.roles import ROLE_NAMES, Role


ONNX_FORMAT = "onnx"  # every export writes ONNX: every runtime's input
MIN_OPSET = 13


def format_precisions() -> dict[str, tuple[Precision, ...]]:
    """The one table: format -> precisions it can produce. ONNX carries fp32 and an fp16 or INT8
    (QDQ, for CPU runtimes) copy; each backend whose export step has a `format` (TensorRT: engines) adds
    its row from `ExportStep.precisions`. Every INT8 kind is calibrated on real training images.
    The formats are open (a new backend adds one), so they are strings checked against this table."""
    table = {ONNX_FORMAT: (Precision.FP32, Precision.FP16, Precision.INT8)}
    for backend in list_backends():
        step = backend.export_step
        if step is not None and step.format:
            table[step.format] = tuple(Precision(p) for p in step.precisions)
    return table


@dataclass(frozen=True)
class ExportOptions:
    """Validated options of one export. `precision` None = fp32 ONNX, the profile's engine precision."""

    roles: tuple[Role, ...] = (Role.BASE, Role.MOTIVATED)
    formats: tuple[str, ...] = (ONNX_FORMAT,)
    precision: Precision | None = None
    profile: str | None = None
    out_dir: Path = Path(EXPORTS_DIR)
    opset: int | None = None
    static_batch: bool = False
    tolerances: Mapping[Precision, ParityTolerance] = field(default_factory=lambda: dict(TOLERANCES))
    max_parity_images: int = 512
    int8: Int8Settings = field(default_factory=Int8Settings)

    def wants(self, export_format: str | None) -> bool:
        """True when `export_format` was asked for (None, a backend without a format: never)."""
        return export_format is not None and export_format in self.formats

    def own_int8_formats(self) -> list[str]:
        """The formats asked for, other than ONNX, that build an INT8 artifact by themselves."""
        table = format_precisions()
        return [f for f in self.formats if f != ONNX_FORMAT and Precision.INT8 in table.get(f, ())]

    def onnx_precisions(self) -> tuple[Precision, ...]:
        """Precisions of the ONNX files: fp32 always (every other artifact is built from it), plus
        fp16, or INT8 QDQ when no format that is INT8 by itself (an engine) is asked for."""
        if not self.wants(ONNX_FORMAT):
            return (Precision.FP32,)
        if self.precision is Precision.FP16:
            return (Precision.FP32, Precision.FP16)
        if self.precision is Precision.INT8 and not self.own_int8_formats():
            return (Precision.FP32, Precision.INT8)
        return (Precision.FP32,)


def _split(text: str, what: str) -> list[str]:
    items = [item.strip().lower() for item in str(text).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{what} is empty; give a comma-separated list")
    return list(dict.fromkeys(items))


def _parse_enum(kind: type[enum.Enum], text: str, option: str) -> enum.Enum:
    return kind(_parse_choice(text, [member.value for member in kind], option))


def _parse_choice(text: str, allowed: list[str], option: str) -> str:
    if text not in allowed:
        raise ConfigError(f"unknown {option} {text!r}{did_you_mean(text, allowed)}; "
                          f"choose from {', '.join(allowed)}")
    return text


def supported_table() -> str:
    """`onnx: fp32, fp16; tensorrt: fp32, fp16, int8` — for error messages and help."""
    return "; ".join(f"{fmt}: {', '.join(p.value for p in precisions)}"
                     for fmt, precisions in format_precisions().items())


def parse_export_options(*, roles: str = ",".join(ROLE_NAMES), formats: str = ONNX_FORMAT,
                         precision: str | None = None, profile: str | None = None,
                         out_dir: str | Path = EXPORTS_DIR, opset: int | None = None,
                         static_batch: bool = False, max_parity_images: int = 512,
                         calibration_method: str = CalibrationMethod.MINMAX.value,
                         calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
                         max_accuracy_drop_pp: float | None = None) -> ExportOptions:
    """Validate CLI-style option text into `ExportOptions`; `ConfigError` naming the fix otherwise."""
    role_list = tuple(_parse_enum(Role, r, "role") for r in _split(roles, "roles"))
    table = format_precisions()
    format_list = tuple(_parse_choice(f, list(table), "format") for f in _split(formats, "format"))
    chosen = None
    if precision is not None:
        chosen = _parse_enum(Precision, precision.strip().lower(), "precision")
        if not any(chosen in table[f] for f in format_list):
            asked = ",".join(format_list)
            raise ConfigError(
                f"--precision {chosen.value} cannot be produced with --format {asked}; supported: "
                f"{supported_table()}"
            )
    if opset is not None and opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset} is too old; use {MIN_OPSET} or newer")
    if max_parity_images < 1:
        raise ConfigError(f"max_parity_images must be >= 1, got {max_parity_images}")
    method = _parse_enum(CalibrationMethod, str(calibration_method).strip().lower(), "calibration method")
    int8 = Int8Settings(calibration_method=method, calibration_images=int(calibration_images),
                        max_accuracy_drop_pp=max_accuracy_drop_pp)
    return ExportOptions(roles=role_list, formats=format_list, precision=chosen, profile=profile,
                         out_dir=Path(out_dir), opset=opset, static_batch=static_batch,
                         max_parity_images=max_parity_images, int8=int8)
