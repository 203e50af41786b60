"""Export a trained run: both roles' static models, ONNX (+ fp16, + ORT-optimized copy), parity
proofs, test accuracy through onnxruntime, TensorRT engines or build scripts, manifests, pair.json.

All-or-nothing: every role folder and pair.json are built inside a hidden staging folder
`exports/<run>/.tmp-export-*`; only when every parity proof passed are the role folders renamed
into place (replacing an older export of the same role) and pair.json written. Any failure
removes the staging folder, so nothing half-written ever sits under a final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seekdeploy._io import TMP_PREFIX, atomic_write_json, safe_name
from seekdeploy.errors import ConfigError, ProfileError
from seekdeploy.export.options import ExportFormat, ExportOptions
from seekdeploy.export.static_models import STATIC_NAME, EvalData, SlicedModel
from seekdeploy.profiles.schema import HardwareProfile, Precision, Role, RuntimeName

PAIR_NAME = "pair.json"
_ONNX_NAMES = {Precision.FP32: "model.onnx", Precision.FP16: "model.fp16.onnx"}
OPTIMIZED_NAME = "model.opt.onnx"


@dataclass(frozen=True)
class RoleExport:
    """One exported role: its final folder and manifest."""

    role: Role
    folder: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` produced, and what the user must be told."""

    export_dir: Path
    roles: list[RoleExport]
    pair: dict[str, Any]
    profile_name: str | None
    opset: int
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    # Everything resolved once, before the first file is written.
    run: Any
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

    for name, reader in (("config.yaml", yaml.safe_load), ("manifest.json", json.loads)):
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


def plan_export(run_dir: str | Path, options: ExportOptions) -> _Plan:
    """Load the run, the profile and the data and resolve every choice; writes nothing."""
    from seekdeploy.export.static_models import load_eval_data
    from seekdeploy.train.checkpoint import load_run

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
    return _Plan(run, run_name, options, profile, profile_name, opset, shape, data)


def export_run(run_dir: str | Path, options: ExportOptions) -> ExportResult:
    """Export the run's roles per `options` into `options.out_dir/<run>/` (see module docstring)."""
    plan = plan_export(run_dir, options)
    notices = _input_notices(plan)
    export_dir = options.out_dir / plan.run_name
    created = _highest_missing(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _export_into(plan, export_dir, notices)
    except BaseException:
        if created is not None:  # a refused first export leaves no empty folders behind either
            shutil.rmtree(created, ignore_errors=True)
        raise


def _highest_missing(folder: Path) -> Path | None:
    # The outermost folder that mkdir(parents=True) would create, or None when `folder` exists.
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _export_into(plan: _Plan, export_dir: Path, notices: list[str]) -> ExportResult:
    from seekdeploy.export.pair import check_pair
    from seekdeploy.export.role_export import export_role
    from seekdeploy.export.static_models import slice_role

    options = plan.options
    _remove_stale_stages(export_dir)
    stage = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}export-", dir=export_dir))
    try:
        sliced = {role: slice_role(plan.run, role, plan.data.val_images) for role in Role}
        pair = check_pair(plan.run.supernet, sliced[Role.BASE], sliced[Role.MOTIVATED])
        roles = []
        for role in options.roles:
            manifest, role_notices = export_role(plan, sliced[role], stage / role.value)
            roles.append(RoleExport(role, export_dir / role.value, manifest))
            notices += role_notices
        pair = {**pair, "run": plan.run_name, "onnx_sha256": _onnx_hashes(roles)}
        _publish(stage, export_dir, roles)
        atomic_write_json(export_dir / PAIR_NAME, pair)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(export_dir, roles, pair, plan.profile_name, plan.opset, notices)


def _onnx_hashes(roles: list[RoleExport]) -> dict[str, str]:
    return {r.role.value: r.manifest["files"]["model.onnx"]["sha256"] for r in roles}


def _input_notices(plan: _Plan) -> list[str]:
    if plan.profile is None:
        return []
    declared = plan.profile.input
    model = plan.input_shape[1:]
    if (declared.channels, declared.height, declared.width) == model:
        return []
    return [f"the run was trained on {model[0]}x{model[1]}x{model[2]} inputs but profile "
            f"{plan.profile.name} declares {declared.channels}x{declared.height}x{declared.width}; "
            "the export keeps the trained input size (retrain for the profile's input to match)"]


def _remove_stale_stages(export_dir: Path) -> None:
    # A killed export leaves its staging folder behind (never anything under a final name);
    # the next export of the same run clears them so they do not pile up.
    for stale in export_dir.glob(f"{TMP_PREFIX}export-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _publish(stage: Path, export_dir: Path, roles: list[RoleExport]) -> None:
    # Each role folder replaces its predecessor with two renames inside one filesystem; the old
    # folder goes into the staging folder, which is removed afterwards. The old pair.json goes
    # first: a kill between the renames and the new pair.json then leaves no pair.json rather
    # than a stale one describing other models.
    (export_dir / PAIR_NAME).unlink(missing_ok=True)
    for entry in roles:
        final = export_dir / entry.role.value
        if final.exists():
            os.replace(final, stage / f"old-{entry.role.value}")
        os.replace(stage / entry.role.value, final)


def slice_run(run_dir: str | Path, roles: tuple[Role, ...], out_dir: str | Path,
              max_parity_images: int = 512) -> list[tuple[SlicedModel, Path]]:
    """`seekdeploy slice`: each role's static model, proven against the supernet, saved as
    `<out_dir>/<run>/<role>/static.pt`. Returns (sliced model, path) per role."""
    from seekdeploy.export.static_models import load_eval_data, save_static, slice_role
    from seekdeploy.train.checkpoint import load_run

    run_name = run_name_of(run_dir)
    run = load_run(run_dir)
    data = load_eval_data(run, max_parity_images, calibration_images=0)
    sliced = [slice_role(run, role, data.val_images) for role in roles]  # prove all, then write
    return [(item, save_static(item, Path(out_dir) / run_name / item.role.value / STATIC_NAME,
                               run_name=run_name, supernet=run.supernet)) for item in sliced]
