"""The stored calibration `profiles/<name>.latency.json`: fingerprint, fits per family, loading.

A calibration is only valid for the device and software it was measured on. Its fingerprint
records the profile (name and a digest of its runtime, input and hardware sections, so editing
threads or precision invalidates it), the runtime and its version, threads and providers, and,
for a local calibration, the CPU model, core count and machine type. Loading compares it with this
machine (or, for one measured over SSH, with the profile only, since the device cannot be probed
offline); any difference makes the file stale or foreign: it is ignored with a
`CalibrationWarning` naming what differs, and prediction falls back to the roofline.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json
from seekdeploy.backends import get_backend
from seekdeploy.plan.predictor import CalibratedPredictor, LatencyPredictor, RooflinePredictor

if TYPE_CHECKING:
    from seekdeploy.profiles.schema import HardwareProfile

SCHEMA_VERSION = 1
LOCAL_HOST = "local"
_DEVICE_KEYS = ("cpu_model", "cpu_cores", "machine")


class CalibrationWarning(UserWarning):
    """A calibration file exists but cannot be used (stale, foreign or unreadable)."""


def calibration_path(profile: HardwareProfile, folder: str | Path = layout.PROFILES_DIR) -> Path:
    """Where `profile`'s calibration lives: `<folder>/<name>.latency.json` (folder relative to CWD)."""
    return Path(folder) / f"{profile.name}{layout.CALIBRATION_SUFFIX}"


def profile_digest(profile: HardwareProfile) -> str:
    """sha256 (16 hex) of the profile sections a latency depends on: runtime, input, hardware."""
    data = profile.to_json()
    relevant = {key: data.get(key) for key in ("runtime", "input", "hardware")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def device_fingerprint(profile: HardwareProfile, environment: dict[str, Any], host: str = LOCAL_HOST) -> dict[str, Any]:
    """The fingerprint of a measurement environment (`collect_environment` output) under `profile`."""
    runtime = get_backend(profile.runtime.name).name
    versions = environment.get("versions") or {}
    return {
        "profile": profile.name,
        "profile_digest": profile_digest(profile),
        "host": host,
        "cpu_model": environment.get("cpu_model"),
        "cpu_cores": environment.get("cpu_cores"),
        "machine": environment.get("machine"),
        "runtime": runtime,
        "runtime_version": versions.get(runtime),
        "threads": int(profile.runtime.threads),
        "providers": list(profile.runtime.execution_providers),
    }


def local_fingerprint(profile: HardwareProfile) -> dict[str, Any]:
    """This machine's fingerprint under `profile` (reads /proc and package metadata; imports nothing heavy)."""
    from seekdeploy.backends import version_distributions
    from seekdeploy.runtime.environment import collect_environment

    runtime = get_backend(profile.runtime.name).name
    environment = collect_environment(runtime, list(profile.runtime.execution_providers), profile.runtime.threads,
                                      distributions=version_distributions())
    return device_fingerprint(profile, environment)


def fingerprint_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: recorded != current' for every fingerprint field that differs.

    Device fields are compared only for a local calibration: one measured over SSH describes the
    remote device, which cannot be probed here.
    """
    keys = [key for key in current if key != "host"]
    if recorded.get("host", LOCAL_HOST) != LOCAL_HOST:
        keys = [key for key in keys if key not in _DEVICE_KEYS]
    return [f"{key}: {recorded.get(key)!r} != {current[key]!r}" for key in keys
            if recorded.get(key) != current[key]]


def read_calibration(path: Path) -> dict[str, Any] | None:
    """The calibration document at `path`, None when absent; unreadable files warn and give None."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        warnings.warn(f"ignoring calibration {path}: cannot read it ({exc}); recalibrate with "
                      "`seekdeploy calibrate`", CalibrationWarning, stacklevel=2)
        return None
    if not isinstance(document, dict) or document.get("kind") != layout.CALIBRATION_KIND \
            or document.get("schema_version") != SCHEMA_VERSION:
        warnings.warn(f"ignoring {path}: not a seekdeploy latency calibration (schema {SCHEMA_VERSION}); "
                      "recalibrate with `seekdeploy calibrate`", CalibrationWarning, stacklevel=2)
        return None
    return document


def write_calibration(path: Path, fingerprint: dict[str, Any], family: str, entry: dict[str, Any]) -> Path:
    """Store `entry` (one family's fit) in the calibration at `path`, atomically.

    Other families' fits are kept when the file's fingerprint equals `fingerprint`; otherwise the
    file is replaced (its fits belong to another device or software version).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        existing = read_calibration(path)
    families = {}
    if existing and existing.get("fingerprint") == fingerprint:
        families = dict(existing.get("families") or {})
    families[family] = entry
    document = {"kind": layout.CALIBRATION_KIND, "schema_version": SCHEMA_VERSION,
                "fingerprint": fingerprint, "families": families}
    return atomic_write_json(path, document)


def load_calibrated(profile: HardwareProfile, family: str, path: str | Path | None = None,
                    fingerprint: dict[str, Any] | None = None) -> CalibratedPredictor | None:
    """The calibrated predictor of `family` on `profile`, or None (with a warning when a file
    exists but is stale, foreign or lacks the family). `fingerprint` defaults to this machine's."""
    path = Path(path) if path is not None else calibration_path(profile)
    document = read_calibration(path)
    if document is None:
        return None
    current = fingerprint if fingerprint is not None else local_fingerprint(profile)
    differences = fingerprint_differences(document.get("fingerprint") or {}, current)
    if differences:
        warnings.warn(f"ignoring calibration {path}: it was measured on another device/software "
                      f"({'; '.join(differences)}); using the roofline prediction. Recalibrate with "
                      f"`seekdeploy calibrate --profile {profile.name}`", CalibrationWarning, stacklevel=2)
        return None
    entry = (document.get("families") or {}).get(family)
    if entry is None:
        warnings.warn(f"calibration {path} has no fit for family {family!r} (it has "
                      f"{', '.join(document.get('families') or {}) or 'none'}); using the roofline. Run "
                      f"`seekdeploy calibrate --profile {profile.name} --arch {family}`",
                      CalibrationWarning, stacklevel=2)
        return None
    return CalibratedPredictor(profile, entry["model"], entry["coefficients"], entry.get("tail_ratios"),
                               source=str(path), tail_curve=entry.get("tail_curve"))


def load_predictor(profile: HardwareProfile, family: str, path: str | Path | None = None,
                   fingerprint: dict[str, Any] | None = None) -> LatencyPredictor:
    """The best usable predictor: the calibration when valid for this device, else the roofline."""
    return load_calibrated(profile, family, path, fingerprint) or RooflinePredictor(profile)
