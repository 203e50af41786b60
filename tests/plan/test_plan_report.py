"""`seekdeploy profile` prints the recorded prediction beside the measurement, with the error."""

from __future__ import annotations

import json

from seekdeploy.plan.report import prediction_lines
from seekdeploy.profiles.loader import load_profile

PROFILE = load_profile("x86-cpu")


def _result(role: str, p95_ms: float) -> dict:
    return {"role": role, "latency": {"median_ms": p95_ms / 2, "p95_ms": p95_ms}}


def test_prediction_from_the_run_manifest_is_printed_with_its_error(tmp_path) -> None:
    export = tmp_path / "exports" / "demo"
    for role in ("base", "motivated"):
        (export / role).mkdir(parents=True)
        (export / role / "manifest.json").write_text(json.dumps({"role": role}))
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "predicted_latency_ms": {"base": 1.5, "motivated": 4.0},
        "latency_percentile": {"base": 95, "motivated": 95}, "latency_predictor": {"kind": "roofline"}}))
    lines = prediction_lines(export, [_result("base", 1.0), _result("motivated", 5.0)], PROFILE)
    assert lines == ["base: predicted p95 1.500 ms (roofline) · measured 1.000 ms · prediction error +50.0%",
                     "motivated: predicted p95 4.000 ms (roofline) · measured 5.000 ms · prediction error -20.0%"]


def test_export_manifest_number_wins_and_absent_prediction_prints_nothing(tmp_path) -> None:
    role_dir = tmp_path / "exports" / "demo" / "base"
    role_dir.mkdir(parents=True)
    (role_dir / "manifest.json").write_text(json.dumps({"predicted_latency_ms": 2.0}))
    lines = prediction_lines(role_dir, [_result("base", 2.0)], PROFILE)
    assert lines == ["base: predicted p95 2.000 ms (?) · measured 2.000 ms · prediction error +0.0%"]
    other = tmp_path / "exports" / "plain"
    (other / "base").mkdir(parents=True)
    assert prediction_lines(other, [_result("base", 2.0)], PROFILE) == []
