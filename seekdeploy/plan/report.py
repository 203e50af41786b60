"""Predicted beside measured: the lines `seekdeploy profile` prints when a manifest records a prediction.

A training run records `predicted_latency_ms` ({role: ms}), `latency_percentile` ({role: p}) and
`latency_predictor` in its manifest; an export manifest may carry the same keys (a number or a
per-role dict). The export's own manifest is read first, then the run manifest (its `run_dir`,
else `runs/<run>` beside `exports/`). Standard library only: the profile command stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy._io import read_json_object
from seekdeploy.layout import MANIFEST, run_dir_of
from seekdeploy.roles import ROLES, Role

if TYPE_CHECKING:
    from seekdeploy.profiles.schema import HardwareProfile


def recorded_latency_ms(value: Any, role: str) -> float | None:
    """A recorded predicted latency in any shape manifests use for it: a number, {role: ms},
    {role: {"latency_ms": ms}} or {"latency_ms": ms}; None when `value` holds none."""
    if isinstance(value, dict):
        value = value.get(role, value.get("latency_ms"))
        if isinstance(value, dict):
            value = value.get("latency_ms")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _role_value(value: Any, role: str) -> Any:
    return value.get(role) if isinstance(value, dict) else value


def find_prediction(export: Path, role: str) -> dict[str, Any] | None:
    """{"latency_ms", "percentile", "predictor"} recorded for `role` of `export`, or None."""
    folder = export if export.is_dir() else export.parent
    role_folder = folder / role if (folder / role).is_dir() else folder  # exports/<run>/<role>
    export_manifest = read_json_object(role_folder / MANIFEST)
    export_dir = role_folder.parent if role_folder.name in ROLES else role_folder
    run_dir = export_manifest.get("run_dir") or str(run_dir_of(export_dir))
    run_manifest = read_json_object(Path(run_dir) / MANIFEST)
    for manifest in (export_manifest, run_manifest):
        latency = recorded_latency_ms(manifest.get("predicted_latency_ms"), role)
        if latency is not None and latency > 0:
            # Export manifests copy the number only; the predictor is described in the run's.
            predictor = manifest.get("latency_predictor") or run_manifest.get("latency_predictor") or {}
            return {"latency_ms": float(latency),
                    "percentile": _role_value(manifest.get("latency_percentile"), role),
                    "predictor": predictor.get("kind", "?") if isinstance(predictor, dict) else str(predictor)}
    return None


def prediction_lines(export: Path, results: list[dict[str, Any]], profile: HardwareProfile) -> list[str]:
    """One 'predicted vs measured, error %' line per result whose role has a recorded prediction."""
    lines = []
    for result in results:
        role = Role(result.get("role") or Role.BASE)
        prediction = find_prediction(Path(export), role)
        if prediction is None:
            continue
        percentile = prediction["percentile"]
        if not isinstance(percentile, (int, float)):
            budgets = getattr(profile, "budgets", {}) or {}
            percentile = next((b.latency_percentile for r, b in budgets.items() if r == role), 95.0)
        latency = result.get("latency") or {}
        key = f"p{float(percentile):g}_ms"
        label, measured = (f"p{float(percentile):g}", latency.get(key)) if key in latency \
            else ("median", latency.get("median_ms"))
        if not isinstance(measured, (int, float)) or measured <= 0:
            continue
        error = 100.0 * (prediction["latency_ms"] - measured) / measured
        lines.append(f"{role}: predicted {label} {prediction['latency_ms']:.3f} ms ({prediction['predictor']}) · "
                     f"measured {measured:.3f} ms · prediction error {error:+.1f}%")
    return lines
