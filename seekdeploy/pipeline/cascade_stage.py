"""The cascade stage of `seekdeploy run`: `export --cascade` on the fresh export, then (on this machine)
the cascade's timing over the test split, so the report can set it beside each model alone.

Current when cascade/manifest.json names this checkpoint and the role files the cascade was proven
against are the ones in the export now, its cascade.onnx is the file the manifest describes, and (for
a local run) its profile.json is newer than the manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seekdeploy import layout
from seekdeploy._io import read_json_object, sha256_file
from seekdeploy.layout import ExportLayout

if TYPE_CHECKING:
    from seekdeploy.pipeline.context import PipelineContext


def _mtime(path) -> float:
    return path.stat().st_mtime if path.exists() else float("-inf")


def is_current_cascade(context: PipelineContext) -> str | None:
    """Skip reason for the cascade stage (see module docstring), or None when it must run."""
    export = ExportLayout(context.export_dir)
    cascade = export.cascade
    manifest = read_json_object(cascade.manifest)
    checkpoint = context.run_dir / layout.CHECKPOINT
    if manifest.get("kind") != layout.CASCADE_KIND or not cascade.onnx.is_file() or not checkpoint.is_file():
        return None
    if manifest.get(layout.CHECKPOINT_SHA256) != sha256_file(checkpoint):
        return None
    for role, recorded in (manifest.get("roles_onnx_sha256") or {}).items():
        path = export.role(role).onnx()
        if not path.is_file() or sha256_file(path) != recorded:
            return None
    if (manifest.get("files", {}).get(layout.CASCADE_ONNX) or {}).get("sha256") != sha256_file(cascade.onnx):
        return None
    if not context.config.hosts and _mtime(cascade.profile_document) <= _mtime(cascade.manifest):
        return None
    return f"{cascade.folder} was built and proven from this export"


def execute_cascade(context: PipelineContext) -> str:
    """Build and prove cascade.onnx (threshold for accuracy, chosen on validation); time it locally."""
    from seekdeploy.export.cascade_export import export_cascade
    from seekdeploy.export.cascade_threshold import CascadeTarget

    result = export_cascade(context.run_dir, context.export_dir, target=CascadeTarget())
    for notice in result.notices:
        context.say(f"[cascade] note: {notice}")
    test, size = result.manifest["test"], result.manifest["size"]
    detail = (f"{layout.CASCADE_DIR}/{layout.CASCADE_ONNX} {size['ratio_to_motivated']:.2f}x the motivated file, "
              f"threshold {result.manifest['threshold']:.3g}: test top-1 {test['top1']:.1%} at "
              f"{test['escalation_rate']:.1%} escalation, decisions = the two-file cascade")
    if context.config.hosts:
        return detail + " (timed on the devices only through `seekdeploy profile` there)"
    from seekdeploy.measure.cascade_timing import profile_export_cascade

    document = profile_export_cascade(context.export_dir, context.profile)
    ratio = document["ratios"]["cascade_mean_over_motivated_mean"]
    return detail + (f"; mean {document['cascade']['mean_ms']:.3f} ms = {ratio:.2f}x the motivated model's "
                     "(batch 1, test images)") + budget_clause(document.get("budget"))


def budget_clause(budget: dict | None) -> str:
    """The stage line's clause on the motivated role's latency budget, judged on the cascade's
    measured distribution ("" when the profile sets none)."""
    if not budget:
        return ""
    figure = f"p{budget['percentile']:g} {budget['measured_ms']:.3f} ms"
    if budget["passed"]:
        return f"; {figure} within the motivated budget {budget['latency_ms']:g} ms"
    return (f"; {figure} OVER the motivated budget {budget['latency_ms']:g} ms "
            "(an escalated image runs both models)")
