"""Calibration files: fingerprint checks (stale/foreign ignored with a warning) and a real round trip."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

from seekdeploy.plan.calibration_file import (CalibrationWarning, calibration_path, load_predictor,
                                              local_fingerprint, write_calibration)
from seekdeploy.plan.predictor import FIT_MODELS, CalibratedPredictor, RooflinePredictor
from seekdeploy.plan.space import design_specs
from seekdeploy.profiles.loader import load_profile
from seekdeploy.profiles.schema import MeasurementProtocol

PROFILE = load_profile("x86-cpu")
ENTRY = {"model": "roofline-scaled", "coefficients": [0.5, 0.5, 0.01, 0.02], "tail_ratios": {"95": 1.1}}


def _write(tmp_path: Path, **changes) -> Path:
    fingerprint = {**local_fingerprint(PROFILE), **changes}
    return write_calibration(calibration_path(PROFILE, tmp_path), fingerprint, "resnet", ENTRY)


def test_matching_calibration_is_used(tmp_path) -> None:
    path = _write(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        predictor = load_predictor(PROFILE, "resnet", path)
    assert isinstance(predictor, CalibratedPredictor)
    assert predictor.tail_factor(95) == 1.1


@pytest.mark.parametrize(("key", "value"), [("cpu_model", "Some Other CPU 9000"),
                                            ("runtime_version", "0.0.1"), ("cpu_cores", 128)])
def test_foreign_or_stale_calibration_is_ignored_with_a_warning(tmp_path, key, value) -> None:
    path = _write(tmp_path, **{key: value})
    with pytest.warns(CalibrationWarning, match=f"{key}: {value!r}"):
        predictor = load_predictor(PROFILE, "resnet", path)
    assert isinstance(predictor, RooflinePredictor)


def test_editing_the_profile_runtime_makes_the_calibration_stale(tmp_path) -> None:
    path = _write(tmp_path)
    edited = dataclasses.replace(PROFILE, runtime=dataclasses.replace(PROFILE.runtime, threads=1))
    with pytest.warns(CalibrationWarning, match="threads"):
        assert isinstance(load_predictor(edited, "resnet", path), RooflinePredictor)


def test_remote_calibration_is_not_compared_with_this_cpu(tmp_path) -> None:
    path = _write(tmp_path, host="pi@rpi5", cpu_model="Cortex-A76", machine="aarch64")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        assert isinstance(load_predictor(PROFILE, "resnet", path), CalibratedPredictor)


def test_missing_family_and_garbage_files_fall_back_with_a_warning(tmp_path) -> None:
    path = _write(tmp_path)
    with pytest.warns(CalibrationWarning, match="no fit for family 'vit'"):
        assert isinstance(load_predictor(PROFILE, "vit", path), RooflinePredictor)
    path.write_text("{not json")
    with pytest.warns(CalibrationWarning, match="cannot read"):
        assert isinstance(load_predictor(PROFILE, "resnet", path), RooflinePredictor)


def test_no_calibration_file_is_silent_roofline(tmp_cwd) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        assert isinstance(load_predictor(PROFILE, "resnet"), RooflinePredictor)


def test_calibration_round_trip_on_a_tiny_design(tmp_cwd) -> None:
    """Real exports timed by onnxruntime with a short protocol, fitted, stored, loaded back."""
    pytest.importorskip("onnxruntime")
    from seekdeploy.plan.calibration import calibrate_profile

    protocol = MeasurementProtocol(warmup_ms=10, warmup_iterations=3, duration_ms=40, min_iterations=10)
    design = design_specs("resnet", 6, seed=3)
    result = calibrate_profile(PROFILE, "resnet", design=design, opset=17, protocol=protocol)
    assert result.path.resolve() == tmp_cwd / "profiles" / "x86-cpu.latency.json"
    document = json.loads(result.path.read_text())
    entry = document["families"]["resnet"]
    assert entry["model"] == result.fit.model and len(entry["measurements"]) == 6
    assert document["fingerprint"]["cpu_model"] == local_fingerprint(PROFILE)["cpu_model"]
    assert set(entry["fit"]["heldout_mape_by_model"]) == set(FIT_MODELS)
    assert all(m["median_ms"] > 0 for m in entry["measurements"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        loaded = load_predictor(PROFILE, "resnet")
    assert isinstance(loaded, CalibratedPredictor)
    for spec in design:
        assert loaded.predict_latency_ms(spec) == pytest.approx(result.predictor.predict_latency_ms(spec))
