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

from seekdeploy import layout
from seekdeploy._io import TMP_PREFIX, atomic_write_json
from seekdeploy.export.export_plan import ExportPlan, plan_export, run_name_of
from seekdeploy.export.options import ExportOptions
from seekdeploy.export.pair import check_pair
from seekdeploy.export.role_export import export_role
from seekdeploy.export.static_models import SlicedModel, load_eval_data, save_static, slice_role
from seekdeploy.roles import Role
from seekdeploy.train.checkpoint import load_run


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


def _export_into(plan: ExportPlan, export_dir: Path, notices: list[str]) -> ExportResult:
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
        atomic_write_json(export_dir / layout.PAIR, pair)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(export_dir, roles, pair, plan.profile_name, plan.opset, notices)


def _onnx_hashes(roles: list[RoleExport]) -> dict[str, str]:
    return {r.role.value: r.manifest["files"][layout.ONNX_FP32]["sha256"] for r in roles}


def _input_notices(plan: ExportPlan) -> list[str]:
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
    (export_dir / layout.PAIR).unlink(missing_ok=True)
    for entry in roles:
        final = export_dir / entry.role.value
        if final.exists():
            os.replace(final, stage / f"old-{entry.role.value}")
        os.replace(stage / entry.role.value, final)


def slice_run(run_dir: str | Path, roles: tuple[Role, ...], out_dir: str | Path,
              max_parity_images: int = 512) -> list[tuple[SlicedModel, Path]]:
    """`seekdeploy slice`: each role's static model, proven against the supernet, saved as
    `<out_dir>/<run>/<role>/static.pt`. Returns (sliced model, path) per role."""
    run_name = run_name_of(run_dir)
    run = load_run(run_dir)
    data = load_eval_data(run, max_parity_images, calibration_images=0)
    sliced = [slice_role(run, role, data.val_images) for role in roles]  # prove all, then write
    return [(item, save_static(item, Path(out_dir) / run_name / item.role.value / layout.STATIC_MODEL,
                               run_name=run_name, supernet=run.supernet)) for item in sliced]
