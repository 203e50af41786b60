"""The calibrate stage of `seekdeploy run`: it measures the target once and reuses it; a stale or
foreign calibration is ignored with a warning and replaced; --no-calibrate, a trained run and a
target this machine cannot time skip it; the prediction checks `plan` reports are recorded."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from helpers import write_tiny_profile
from seekdeploy.pipeline import PipelineConfig, Stage, open_context
from seekdeploy.pipeline import calibrate as calibrate_stage
from seekdeploy.pipeline.context import run_stage
from seekdeploy.plan.defaults import DEFAULT_SHAPE_RULE

COEFFICIENTS = [0.001] * 13 + [0.01]  # "padded-macs-8": 13 layer-kind features and a constant


@pytest.fixture()
def calibrations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict]:
    """Replace the measurement by a fit written as `calibrate_profile` writes it; record each call."""
    from seekdeploy.plan import calibration
    from seekdeploy.plan.calibration_file import calibration_path, local_fingerprint, write_calibration

    calls: list[dict] = []

    def fake_calibrate(profile, family, **options):
        calls.append({"family": family, **options})
        entry = {"model": "padded-macs-8", "coefficients": COEFFICIENTS, "tail_ratios": {"95": 1.2}}
        path = write_calibration(calibration_path(profile), local_fingerprint(profile), family, entry)
        fit = types.SimpleNamespace(model="padded-macs-8", heldout_mape_percent=4.0)
        return types.SimpleNamespace(path=path, fit=fit, fit_suspect=False, measurements=[None] * 12,
                                     tail_ratios={"95": 1.2})

    monkeypatch.setattr(calibration, "calibrate_profile", fake_calibrate)
    monkeypatch.chdir(tmp_path)
    return calls


def _context(tmp_path: Path, said: list[str], **config: object):
    profile = write_tiny_profile(tmp_path, name="tiny-cal")
    options = {"profile": str(profile), "name": "demo", "runs_dir": tmp_path / "runs",
               "exports_dir": tmp_path / "exports"} | config
    return open_context(PipelineConfig(**options), console=None, say=said.append)


def _stage(context):
    return run_stage(context, Stage.CALIBRATE, lambda: calibrate_stage.is_current_calibrate(context),
                     lambda: calibrate_stage.execute_calibrate(context))


def test_run_calibrates_once_and_reuses_it(tmp_path: Path, calibrations: list[dict]) -> None:
    said: list[str] = []
    first = _stage(_context(tmp_path, said))
    assert first.ran and "tiny-cal.latency.json" in first.detail
    assert calibrations == [{"family": "resnet", "specs": calibrate_stage.QUICK_SPECS, "host": None,
                             "protocol": calibrations[0]["protocol"], "rounds": calibrate_stage.QUICK_ROUNDS,
                             "shape": DEFAULT_SHAPE_RULE, "focus": calibrate_stage.QUICK_FOCUS}]
    assert calibrations[0]["protocol"].duration_ms <= calibrate_stage.QUICK_DURATION_MS
    again = _stage(_context(tmp_path, said))
    assert not again.ran and "matches this machine" in again.detail and len(calibrations) == 1
    # Training plans with it: the predictor `train` loads is the calibration just written.
    from seekdeploy.plan.calibration_file import load_predictor
    from seekdeploy.profiles.loader import load_profile

    assert load_predictor(load_profile(tmp_path / "tiny-cal.yaml"), "resnet").kind == "calibrated"
    # Another family has no fit in the file: it is calibrated too (the file keeps both).
    other = _stage(_context(tmp_path, said, arch="vit", name="demo-vit"))
    assert other.ran and [call["family"] for call in calibrations] == ["resnet", "vit"]
    assert any("has no fit for family 'vit'" in line for line in said)
    stored = json.loads((tmp_path / "profiles" / "tiny-cal.latency.json").read_text())
    assert sorted(stored["families"]) == ["resnet", "vit"]


@pytest.mark.parametrize("change", ["cpu_model", "profile_digest"])
def test_a_stale_or_foreign_calibration_is_ignored_with_a_warning_and_replaced(
        tmp_path: Path, calibrations: list[dict], change: str) -> None:
    said: list[str] = []
    _stage(_context(tmp_path, said))
    path = tmp_path / "profiles" / "tiny-cal.latency.json"
    document = json.loads(path.read_text())
    document["fingerprint"][change] = "another machine's"
    path.write_text(json.dumps(document))
    again = _stage(_context(tmp_path, said))
    assert again.ran and len(calibrations) == 2
    warning = next(line for line in said if line.startswith("[calibrate] warning: ignoring calibration"))
    assert change in warning and "another machine's" in warning
    assert json.loads(path.read_text())["fingerprint"][change] != "another machine's"


def test_no_calibrate_a_trained_run_and_an_untimeable_target_skip_it(tmp_path: Path, calibrations: list[dict]) -> None:
    said: list[str] = []
    skipped = _stage(_context(tmp_path, said, calibrate=False))
    assert not skipped.ran and skipped.detail.startswith("--no-calibrate")
    context = _context(tmp_path, said)
    (context.run_dir / "checkpoint.pt").write_bytes(b"")  # an interrupted run is resumed, not re-planned
    assert "already planned" in _stage(context).detail
    trt = write_tiny_profile(tmp_path, name="tiny-trt", extra=(("name: onnxruntime", "name: tensorrt"),))
    untimeable = _stage(_context(tmp_path, said, profile=str(trt), name="trt"))
    assert not untimeable.ran and "cannot be timed on this machine" in untimeable.detail
    assert calibrations == []


def test_a_failed_calibration_leaves_the_roofline_to_plan(tmp_path: Path, calibrations: list[dict],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from seekdeploy.errors import RuntimeBackendError
    from seekdeploy.plan import calibration

    def broken(*args, **kwargs):
        raise RuntimeBackendError("onnxruntime is broken here")

    monkeypatch.setattr(calibration, "calibrate_profile", broken)
    said: list[str] = []
    outcome = _stage(_context(tmp_path, said))
    assert outcome.ran and "roofline" in outcome.detail
    assert any("onnxruntime is broken here" in line for line in said)


def test_prediction_checks_are_recorded_for_plan(tmp_path: Path, calibrations: list[dict]) -> None:
    from seekdeploy.plan.predictor import RooflinePredictor
    from seekdeploy.plan.track_record import check_line, last_check
    from seekdeploy.profiles.loader import load_profile

    said: list[str] = []
    context = _context(tmp_path, said)
    profile = load_profile(tmp_path / "tiny-cal.yaml")
    predictor = RooflinePredictor(profile)
    (context.run_dir / "manifest.json").write_text(json.dumps({
        "predicted_latency_ms": {"base": 0.2, "motivated": 0.5}, "latency_percentile": {"base": 95, "motivated": 95},
        "predicted_typical_ms": {"base": 0.16, "motivated": 0.4}, "latency_predictor": predictor.describe()}))
    results = [{"role": role, "latency": {"p95_ms": ms, "median_ms": median}}
               for role, ms, median in (("base", 0.25, 0.2), ("motivated", 0.5, 0.4))]
    context.outcome = [types.SimpleNamespace(error=None, results=results)]
    line = calibrate_stage.record_prediction_checks(context)
    assert line == ("predicted vs measured: base p95 0.200 / 0.250 ms (-20%); median 0.160 / 0.200 ms (-20%), "
                    "motivated p95 0.500 / 0.500 ms (+0%); median 0.400 / 0.400 ms (+0%)")
    check = last_check(profile, "resnet", predictor)
    assert check["roles"]["base"]["error_percent"] == -20.0 and check["run"] == "demo"
    assert check["roles"]["motivated"]["predicted_median_ms"] == 0.4
    assert "base p95 predicted 0.200 ms, measured 0.250 ms (-20%)" in check_line(check, "roofline")
    assert last_check(profile, "vit", predictor) is None
