"""How far off the latency predictor was last time: `profiles/<profile>.prediction-checks.json`.

After `run` profiles a pair it planned, each role's predicted latency (at its budget percentile)
is stored beside the measured one, per family and predictor (`record_check`). `plan` prints the
last check of the predictor it is using (`last_check`, `check_line`), so a user sees whether the
plan's latencies can be trusted before training. A calibrated predictor's checks are matched by
its fit (`predictor_id`: model + coefficients), so a new calibration starts a new record.
Standard library only.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json, read_json_object

if TYPE_CHECKING:
    from seekdeploy.plan.predictor import LatencyPredictor
    from seekdeploy.profiles.schema import HardwareProfile



def checks_path(profile: HardwareProfile, folder: str | Path = layout.PROFILES_DIR) -> Path:
    """`<folder>/<profile>.prediction-checks.json` (folder relative to the working directory)."""
    return Path(folder) / f"{profile.name}{layout.PREDICTION_CHECKS_SUFFIX}"


def predictor_id(description: dict[str, Any]) -> str:
    """A short identity of a predictor from its `describe()` (where its file lies aside): the
    roofline's figures, or a fit's model, coefficients and tail ratios."""
    key = {k: v for k, v in description.items() if k != "source"}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def record_check(profile: HardwareProfile, family: str, predictor: dict[str, Any], run: str,
                 roles: dict[str, dict[str, float]], folder: str | Path = layout.PROFILES_DIR) -> Path:
    """Store one check: `roles` = {role: {"predicted_ms", "measured_ms", "percentile"}}."""
    path = checks_path(profile, folder)
    document = read_json_object(path)
    if document.get("kind") != layout.CHECKS_KIND:
        document = {"kind": layout.CHECKS_KIND, "checks": {}}
    entry = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "run": run, "predictor": predictor.get("kind"), "predictor_id": predictor_id(predictor),
             "roles": {role: {**figures, "error_percent": round(error_percent(figures), 1)}
                       for role, figures in roles.items()}}
    document.setdefault("checks", {}).setdefault(family, {})[entry["predictor_id"]] = entry
    return atomic_write_json(path, document)


def error_percent(figures: dict[str, float]) -> float:
    """(predicted - measured) / measured, in percent."""
    return 100.0 * (figures["predicted_ms"] - figures["measured_ms"]) / figures["measured_ms"]


def last_check(profile: HardwareProfile, family: str, predictor: LatencyPredictor,
               folder: str | Path = layout.PROFILES_DIR) -> dict[str, Any] | None:
    """The stored check of this family and predictor, or None."""
    document = read_json_object(checks_path(profile, folder))
    return ((document.get("checks") or {}).get(family) or {}).get(predictor_id(predictor.describe()))


def check_line(check: dict[str, Any] | None, predictor_kind: str) -> str:
    """One line for `plan`: how far off this predictor was on the last run it planned."""
    if not check:
        return f"last time: no run planned with this {predictor_kind} predictor has been profiled yet"
    roles = ", ".join(f"{role} p{figures['percentile']:g} predicted {figures['predicted_ms']:.3f} ms, measured "
                      f"{figures['measured_ms']:.3f} ms ({error_percent(figures):+.0f}%)"
                      for role, figures in check["roles"].items())
    return f"last time ({check['run']}, {check['created'][:10]}): {roles}"
