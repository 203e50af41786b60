"""Typed hardware profile: what a target device is, how it runs models, and what each role may cost.

A profile is one YAML file (see `profiles/*.yaml`); `seekdeploy.profiles.loader` validates it into
these frozen dataclasses. Units are in the field names. Defaults live here; precedence is
default < YAML file < CLI flag.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seekdeploy.backends import profile_runtime_names
from seekdeploy.roles import Role


# Inference runtimes a profile can declare: one member per backend of `seekdeploy/backends/` that
# devices run (RuntimeName.ONNXRUNTIME == "onnxruntime", .TENSORRT, .OPENVINO, ...); a new backend
# module adds its member, nothing here changes.
RuntimeName = enum.Enum(  # type: ignore[misc]
    "RuntimeName", [(name.upper(), name) for name in profile_runtime_names()], type=str, module=__name__,
)
RuntimeName.__doc__ = "Inference runtimes a profile can declare (the backends in seekdeploy/backends/)."


class Precision(str, enum.Enum):
    """Numeric precision of an exported model."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


@dataclass(frozen=True)
class DeviceSpec:
    """The physical target."""

    cpu_arch: str  # "x86_64" | "aarch64"
    cpu_cores: int
    memory_mib: int
    accelerator: str = "none"  # e.g. "nvidia-ampere-gpu", "nvidia-maxwell-gpu", "none"
    description: str = ""


@dataclass(frozen=True)
class RuntimeSpec:
    """How models run on the target."""

    name: RuntimeName
    precision: Precision = Precision.FP32
    execution_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0  # 0 = the runtime's default (all cores)
    tensorrt_version: str | None = None  # the version the device ships, e.g. "8.6" or "10.3"
    workspace_mib: int = 1024  # TensorRT builder workspace limit
    # INT8 ONNX export: the most the test top-1 may fall below fp32's, in percentage points
    # (None = seekdeploy.export.quantize.DEFAULT_MAX_ACCURACY_DROP_PP; --max-accuracy-drop wins).
    int8_max_accuracy_drop_pp: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """The model input the device is fed: (batch, channels, height, width), NCHW float32."""

    channels: int = 3
    height: int = 32
    width: int = 32
    batch: int = 1
    batch_sweep: tuple[int, ...] = ()  # optional extra batch sizes for `profile --sweep`


@dataclass(frozen=True)
class HardwareFigures:
    """Declared vendor figures used by the roofline latency predictor."""

    peak_gflops: dict[Precision, float]  # dense peak per precision
    memory_bandwidth_gbs: float
    source: str = ""  # where the figures come from (vendor datasheet)


@dataclass(frozen=True)
class Budget:
    """What one role of the pair may cost on this device."""

    latency_ms: float
    latency_percentile: float = 95.0  # the budget applies to this percentile (p95 by default)
    peak_memory_mib: float | None = None
    file_size_mib: float | None = None
    min_accuracy: float | None = None  # top-1 floor in [0, 1]


@dataclass(frozen=True)
class MeasurementProtocol:
    """trtexec-grade timing protocol: warm up for max(time, count), then time max(time, count)."""

    warmup_ms: float = 200.0
    warmup_iterations: int = 10
    duration_ms: float = 1000.0
    min_iterations: int = 50


@dataclass(frozen=True)
class HardwareProfile:
    """One declared target device with its budgets per role."""

    name: str
    device: DeviceSpec
    runtime: RuntimeSpec
    input: InputSpec
    hardware: HardwareFigures
    budgets: dict[Role, Budget]
    measurement: MeasurementProtocol = field(default_factory=MeasurementProtocol)
    aliases: tuple[str, ...] = ()
    description: str = ""
    source_path: Path | None = None  # the file it was loaded from

    def budget(self, role: Role) -> Budget:
        """The budget of `role`."""
        return self.budgets[role]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict in the YAML file's layout (enums as their values, `source_path`
        as a string), for manifests, `profiles show --json` and writing a profile back out."""
        return _plain(self)


def _plain(value: Any) -> Any:
    # Recursive conversion; dataclasses.asdict would keep enum keys and tuples.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
