"""What an export resolves before it writes anything: the run, the target profile (given, or the
one the run records), the ONNX opset the target reads, the exported input shape and the evaluation
data (`plan_export` -> `ExportPlan`). `export_run` and the per-role writers read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from seekdeploy import layout
from seekdeploy._io import safe_name
from seekdeploy.errors import ConfigError, ProfileError
from seekdeploy.export.options import ExportFormat, ExportOptions
from seekdeploy.export.static_models import EvalData, load_eval_data
from seekdeploy.profiles.schema import HardwareProfile, Precision, RuntimeName
from seekdeploy.train.checkpoint import load_run

if TYPE_CHECKING:
    from seekdeploy.train.checkpoint import LoadedRun


@dataclass(frozen=True)
class ExportPlan:
    """Everything an export resolves once, before the first file is written."""

    run: LoadedRun
    run_name: str
    options: ExportOptions
    profile: HardwareProfile | None
    profile_name: str | None
    opset: int
    input_shape: tuple[int, int, int, int]  # (B, C, H, W) of the exported input
    data: EvalData


def run_name_of(run_dir: str | Path) -> str:
    """The run's name (its folder name), refused when it is not a plain name ('..', '.', '')."""
    return safe_name(Path(run_dir).name, "run name (the RUN folder's name)")


def recorded_profile_name(run_dir: Path) -> str | None:
    """The profile a run was trained for (config.yaml, else manifest.json), or None."""
    import json

    for name, reader in ((layout.CONFIG, yaml.safe_load), (layout.MANIFEST, json.loads)):
        path = run_dir / name
        if path.is_file():
            try:
                data = reader(path.read_text(encoding="utf-8"))
            except (ValueError, yaml.YAMLError):
                continue  # an unreadable side file; the checkpoint is what matters
            if isinstance(data, dict) and isinstance(data.get("profile"), str):
                return data["profile"]
    return None


def _resolve_profile(options: ExportOptions, run_dir: Path) -> tuple[HardwareProfile | None, str | None]:
    from seekdeploy.profiles.loader import load_profile

    if options.profile:
        profile = load_profile(options.profile)
        return profile, profile.name
    name = recorded_profile_name(run_dir)
    if options.wants(ExportFormat.TENSORRT):
        if name is None:
            raise ConfigError("--format tensorrt needs a target: pass --profile P (a TensorRT "
                              "profile such as jetson-orin-nano); the run records none")
        profile = load_profile(name)
        return profile, profile.name
    if name is None:
        return None, None
    try:
        return load_profile(name), name
    except ProfileError:
        return None, name  # only recorded in the manifest; nothing depends on its contents


def _resolve_opset(options: ExportOptions, profile: HardwareProfile | None) -> int:
    from seekdeploy.export.onnx_export import DEFAULT_OPSET
    from seekdeploy.export.tensorrt.lint import max_opset_for_tensorrt

    version = profile.runtime.tensorrt_version if profile else None
    if version is None:
        return options.opset or DEFAULT_OPSET
    ceiling = max_opset_for_tensorrt(version)
    if options.opset is None:
        return min(DEFAULT_OPSET, ceiling)
    if options.opset > ceiling and options.wants(ExportFormat.TENSORRT):
        raise ConfigError(f"--opset {options.opset} is newer than TensorRT {version} of profile "
                          f"{profile.name} reads (<= {ceiling}); use --opset {ceiling} or omit it")
    return options.opset


def _refuse_int8_onnx_for_tensorrt(options: ExportOptions, profile: HardwareProfile | None) -> None:
    # A QDQ model is for CPU runtimes; TensorRT calibrates its own INT8 engine from the fp32 ONNX.
    if Precision.INT8 not in options.onnx_precisions() or profile is None:
        return
    if profile.runtime.name is RuntimeName.TENSORRT:
        raise ConfigError(f"--precision int8 --format onnx makes an INT8 QDQ model for ONNX Runtime or "
                          f"OpenVINO, but profile {profile.name} runs TensorRT, which builds its INT8 "
                          "engine from the fp32 ONNX: use --format onnx,tensorrt")


def plan_export(run_dir: str | Path, options: ExportOptions) -> ExportPlan:
    """Load the run, the profile and the data and resolve every choice; writes nothing."""
    run_dir = Path(run_dir)
    run_name = run_name_of(run_dir)
    run = load_run(run_dir)
    profile, profile_name = _resolve_profile(options, run_dir)
    _refuse_int8_onnx_for_tensorrt(options, profile)
    opset = _resolve_opset(options, profile)
    batch = (profile.input.batch if profile else 1) if options.static_batch else 1
    supernet = run.supernet
    shape = (batch, supernet.in_channels, supernet.image_size, supernet.image_size)
    data = load_eval_data(run, options.max_parity_images,
                          calibration_images=options.int8.calibration_images)
    return ExportPlan(run, run_name, options, profile, profile_name, opset, shape, data)
