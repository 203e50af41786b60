"""The TensorRT part of `seekdeploy export` for one role folder: lint, then build or prepare.

Three ways, best first: the TensorRT Python API when `tensorrt` imports here and is the version the
profile declares (engines only run with the release and GPU that built them); `trtexec` on PATH,
through the generated `build_engine.sh` (which refuses a TensorRT other than the profile's); else
only `build_engine.sh` (plus, for INT8, the calibration images it needs) and a notice saying the
engine must be built on the device. Lint findings for the profile's TensorRT version are always
collected.

This module is the TensorRT backend's export step (`Backend.export_step`): the exporter calls
`export_role`, `seekdeploy export` prints `summary_lines`, and `opset_ceiling` caps the ONNX opset;
`seekdeploy export --cascade` calls `export_cascade` (the cascade's build script, `tensorrt.cascade`).
"""

from __future__ import annotations

import enum
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_path
from seekdeploy.errors import ExportError
from seekdeploy.export.tensorrt.calibrator import calibration_cache_path
from seekdeploy.export.tensorrt.engines import engine_filename
from seekdeploy.export.tensorrt.lint import lint_for_tensorrt, max_opset_for_tensorrt
from seekdeploy.export.tensorrt.trtexec import write_build_script
from seekdeploy.profiles.schema import HardwareProfile, Precision

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.backends import Backend
    from seekdeploy.export.cascade_proof import StagedCascade
    from seekdeploy.export.export_plan import ExportPlan
    from seekdeploy.export.static_models import SlicedModel

_TRTEXEC_TIMEOUT_S = 3600
_VERSION_MISMATCH_EXIT = 2  # build_engine.sh's exit code when the device's TensorRT differs


class BuildMethod(str, enum.Enum):
    """How the engine was (or will be) built."""

    PYTHON = "tensorrt-python"
    TRTEXEC = "trtexec"
    SCRIPT_ONLY = layout.ENGINE_SCRIPT


@dataclass(frozen=True)
class TensorRTOutcome:
    """What the TensorRT step did in one role folder."""

    method: BuildMethod
    tensorrt_version: str  # the profile's declared version
    precision: Precision
    engine: str | None  # engine file name when one was built here
    script: str | None
    notice: str  # what the user must know (empty when the engine was built)
    lint: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return {"method": self.method.value, "tensorrt_version": self.tensorrt_version,
                "precision": self.precision.value, "engine": self.engine, "script": self.script,
                "notice": self.notice, "lint": self.lint}


@dataclass(frozen=True)
class BatchRange:
    """The optimization profile's batch sizes."""

    minimum: int
    optimum: int
    maximum: int


def batch_range(profile: HardwareProfile, static_batch: int | None) -> BatchRange:
    """1 .. max(batch, sweep) with the profile's batch as optimum; a static batch pins all three."""
    if static_batch is not None:
        return BatchRange(static_batch, static_batch, static_batch)
    batch = profile.input.batch
    return BatchRange(1, batch, max(batch, *profile.input.batch_sweep))


def lint_findings(onnx_path: Path, trt_version: str) -> list[dict[str, Any]]:
    """`lint_for_tensorrt` findings as plain dicts."""
    return [{"severity": f.severity.value, "code": f.code, "message": f.message, "node": f.node}
            for f in lint_for_tensorrt(onnx_path, trt_version)]


def export_role(backend: Backend, plan: ExportPlan, sliced: SlicedModel, role_dir: Path,
                proofs: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The role's manifest section and notices: the engine (or its build script) when
    `--format tensorrt` was asked for, else only the lint findings when the profile declares a
    TensorRT version, else nothing."""
    profile = plan.profile
    version = profile.runtime.tensorrt_version if profile else None
    if not plan.options.wants(backend.export_step.format):
        if version is None:
            return None, []
        return {"lint_only": True, "tensorrt_version": version,
                "lint": lint_findings(role_dir / layout.ONNX_FP32, version)}, []
    precision = plan.options.precision or profile.runtime.precision
    outcome = prepare_tensorrt(
        role_dir, profile, precision, input_chw=plan.input_shape[1:],
        static_batch=plan.input_shape[0] if plan.options.static_batch else None,
        calibration_images=plan.data.calibration_images)
    return outcome.to_json(), [outcome.notice] if outcome.notice else []


def opset_ceiling(profile: HardwareProfile) -> tuple[int, str] | None:
    """(newest opset the profile's TensorRT parses, "TensorRT <version>"), None without a version."""
    version = profile.runtime.tensorrt_version
    return (max_opset_for_tensorrt(version), f"TensorRT {version}") if version else None


def summary_lines(section: dict[str, Any]) -> list[str]:
    """What `seekdeploy export` prints of a role's TensorRT section: lint, then the engine or script."""
    lint = section["lint"]
    lines = [f"  TensorRT {section['tensorrt_version']} lint: {len(lint)} finding(s)"]
    lines += [f"    {finding['severity'].upper()} {finding['code']}: {finding['message']}" for finding in lint]
    if section.get("engine"):
        lines.append(f"  engine {section['engine']} ({section['method']})")
    elif section.get("script"):
        lines.append(f"  wrote {section['script']} (engine not built here)")
    return lines


def export_cascade(backend: Backend, staged: StagedCascade) -> tuple[dict[str, Any], list[str]]:
    """The cascade manifest's TensorRT section: `build_cascade_engine.sh` written beside
    cascade.onnx, labelled not run (the engine is built on the device)."""
    from seekdeploy.export.tensorrt.cascade import write_engine_script

    return write_engine_script(staged.folder, staged.images.shape[1:]), []


def cascade_summary_lines(section: dict[str, Any]) -> list[str]:
    """What `seekdeploy export --cascade` (and the report) says of the cascade's TensorRT section."""
    return [f"  TensorRT: {section['status']}"]


def prepare_tensorrt(role_dir: Path, profile: HardwareProfile, precision: Precision, *,
                     input_chw: tuple[int, int, int], static_batch: int | None,
                     calibration_images: np.ndarray) -> TensorRTOutcome:
    """Lint `role_dir/model.onnx` for the profile's TensorRT, then build the engine or the script."""
    version = profile.runtime.tensorrt_version
    if not version:
        raise ExportError(f"profile {profile.name} declares no runtime.tensorrt_version; pick a "
                          "TensorRT profile (e.g. --profile jetson-orin-nano) for --format tensorrt")
    onnx_path = role_dir / layout.ONNX_FP32
    lint = lint_findings(onnx_path, version)
    batches = batch_range(profile, static_batch)
    cache_name = None
    if precision is Precision.INT8:
        cache_name = calibration_cache_path(onnx_path).name
    installed = _installed_tensorrt()
    if installed is not None and _same_release(installed, version):
        engine = _build_python(role_dir, profile, precision, batches, calibration_images)
        return TensorRTOutcome(BuildMethod.PYTHON, version, precision, engine, None, "", lint)
    script = write_build_script(
        role_dir, profile_name=profile.name, trt_version=version, precision=precision,
        input_shape=input_chw, batch_min=batches.minimum, batch_opt=batches.optimum,
        batch_max=batches.maximum, workspace_mib=profile.runtime.workspace_mib,
        calib_cache_name=cache_name,
    )
    if precision is Precision.INT8:
        _write_calibration_images(role_dir / layout.CALIBRATION_IMAGES, calibration_images)
    why = (f"TensorRT {installed} is installed here but the profile declares {version}"
           if installed else "TensorRT is not installed here")
    trtexec = shutil.which("trtexec")
    if trtexec and precision is not Precision.INT8:
        return _run_script(script, trtexec, version, precision, lint, engine_filename(
            profile.name, version, precision))
    notice = (f"{why}; no engine was built. Copy {role_dir.name}/ to the {profile.name} device and "
              f"run build_engine.sh there (trtexec, TensorRT {version}, {precision.value})")
    if precision is Precision.INT8:
        notice += (f". INT8 also needs the calibration cache {cache_name}, which only TensorRT can "
                   "compute: run this same `seekdeploy export` where TensorRT is installed (its "
                   "Python builder calibrates on real training images, writes the cache and builds "
                   f"the engine); {layout.CALIBRATION_IMAGES} holds the normalized training images "
                   "it calibrates on")
    return TensorRTOutcome(BuildMethod.SCRIPT_ONLY, version, precision, None, script.name, notice, lint)


def _installed_tensorrt() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt

    return str(tensorrt.__version__)


def _same_release(installed: str, declared: str) -> bool:
    parts = declared.split(".")
    return installed.split(".")[:len(parts)] == parts


def _build_python(role_dir: Path, profile: HardwareProfile, precision: Precision,
                  batches: BatchRange, calibration_images: np.ndarray) -> str:
    from seekdeploy.export.tensorrt.builder import build_engine_python
    from seekdeploy.export.tensorrt.calibrator import create_entropy_calibrator

    onnx_path = role_dir / layout.ONNX_FP32
    calibrator = None
    if precision is Precision.INT8:
        calibrator = create_entropy_calibrator(onnx_path, calibration_images, cache_dir=role_dir)
    engine = role_dir / engine_filename(profile.name, profile.runtime.tensorrt_version or "", precision)
    build_engine_python(onnx_path, engine, precision=precision, batch_min=batches.minimum,
                        batch_opt=batches.optimum, batch_max=batches.maximum,
                        workspace_mib=profile.runtime.workspace_mib, calibrator=calibrator,
                        profile_name=profile.name)
    return engine.name


def _run_script(script: Path, trtexec: str, version: str, precision: Precision,
                lint: list[dict[str, Any]], engine: str) -> TensorRTOutcome:
    environment = {**os.environ, "TRTEXEC": trtexec}
    try:
        done = subprocess.run(["bash", str(script)], cwd=script.parent, env=environment,
                              capture_output=True, text=True, timeout=_TRTEXEC_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"trtexec did not finish within {_TRTEXEC_TIMEOUT_S} s ({script})") from exc
    if done.returncode == _VERSION_MISMATCH_EXIT:
        notice = (f"trtexec here is not TensorRT {version} ({done.stderr.strip()}); no engine was "
                  "built. Run build_engine.sh on the device")
        return TensorRTOutcome(BuildMethod.SCRIPT_ONLY, version, precision, None, script.name, notice, lint)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise ExportError(f"trtexec could not build the engine (exit {done.returncode}):\n" + "\n".join(tail))
    return TensorRTOutcome(BuildMethod.TRTEXEC, version, precision, engine, script.name, "", lint)


def _write_calibration_images(path: Path, images: np.ndarray) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(images, dtype=np.float32))  # (N, C, H, W) normalized
