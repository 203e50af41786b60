"""`seekdeploy report` on a tiny real run: train on digits (8x8), export ONNX, profile, report.

The export uses `seekdeploy export` when that command exists, else a minimal export made with the
real `export_onnx` (model.onnx + the manifest fields the report reads).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
from helpers import write_tiny_profile

TINY_SPECS = {"base_spec": "depth=1,1;width=2,4", "motivated_spec": "depth=1,1;width=4,8"}


def _tiny_profile(folder: Path) -> Path:
    """x86-cpu with a 1x8x8 input and a short timing protocol, so profiling takes ~1 s."""
    return write_tiny_profile(folder, name="tiny-report", extra=(
        ("duration_ms: 1000", "duration_ms: 150"), ("min_iterations: 100", "min_iterations: 50"),
        ("warmup_ms: 200", "warmup_ms: 20")))


def _train(run_dir: Path, profile_path: Path) -> None:
    from rich.console import Console

    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.train.config import DeviceChoice, TrainConfig
    from seekdeploy.train.run import train_pair

    config = TrainConfig(epochs=2, batch_size=32, seed=3, condition="streak:k=2,hold=1",
                         device=DeviceChoice.CPU, **TINY_SPECS)
    train_pair(config, run_dir, profile=load_profile(str(profile_path)),
               console=Console(file=io.StringIO()))


def _export(run_dir: Path, export_dir: Path, profile_path: Path) -> None:
    from seekdeploy.cli.main import main

    code = main(["export", str(run_dir), "--format", "onnx", "--profile", str(profile_path),
                 "--out", str(export_dir.parent)])
    assert code == 0, "seekdeploy export failed"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """runs/tiny, exports/tiny with profile.json, the profile YAML (built once per module)."""
    root = tmp_path_factory.mktemp("report")
    profile_path = _tiny_profile(root)
    run_dir, export_dir = root / "runs" / "tiny", root / "exports" / "tiny"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _train(run_dir, profile_path)
    _export(run_dir, export_dir, profile_path)
    from seekdeploy.cli.main import main

    assert main(["profile", str(export_dir), "--profile", str(profile_path)]) == 0
    return {"root": root, "run": run_dir, "export": export_dir, "profile": profile_path}


def test_report_command_writes_valid_json_markdown_and_html(pipeline, run_cli, tmp_path) -> None:
    from seekdeploy.report import validate_report

    out = tmp_path / "out"
    result = run_cli("report", str(pipeline["run"]), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "PASSED" in result.stdout and "cascade:" in result.stdout
    assert "motivated: " in result.stdout and "McNemar p = " in result.stdout
    document = json.loads((out / "report.json").read_text())
    assert validate_report(document) == []
    assert document["schema_version"] == 1
    assert [role["verdict"] for role in document["roles"]] == ["PASS", "PASS"]
    cascade = document["cascade"]
    assert cascade["n_images"] == 359  # the digits test split
    assert cascade["points"][0]["deferred_fraction"] == 0.0
    assert cascade["points"][-1]["deferred_fraction"] == 1.0
    assert cascade["chosen"] is not None  # a 15 ms budget fits these microsecond models
    # The threshold comes from the validation split; every figure of the table from the test split.
    assert (cascade["threshold_split"], cascade["measured_split"]) == ("validation", "test")
    assert cascade["n_validation_images"] > 0
    assert cascade["chosen_on_validation"]["threshold"] == cascade["chosen"]["threshold"]
    assert cascade["chosen"] in cascade["points"]
    # The cascade's end points are the two models alone, measured on the exported ONNX files.
    assert cascade["points"][0]["accuracy"] == pytest.approx(document["roles"][0]["accuracy"]["test_top1"])
    assert cascade["points"][-1]["accuracy"] == pytest.approx(document["roles"][1]["accuracy"]["test_top1"])
    assert document["pair"]["memory_both"]["method"] in ("measured", "estimated")
    # The accuracy gap is exactly the images one model alone gets right.
    split = document["pair"]["test_disagreement"]
    assert split["n_images"] == 359
    gap = (split["motivated_only_right"] - split["base_only_right"]) / split["n_images"]
    assert 100 * gap == pytest.approx(document["pair"]["accuracy_gain_pts"])
    markdown = (out / "report.md").read_text()
    assert f"{split['motivated_only_right']} are right only under the motivated model" in markdown
    assert "## Cascade" in markdown and "The threshold is chosen on the validation split" in markdown
    assert "measured on the test split (359 images)" in markdown
    assert len(document["plots"]) == 4


def test_html_embeds_every_plot_and_references_nothing_outside(pipeline, tmp_path) -> None:
    from seekdeploy.report import write_report

    html_path = write_report(pipeline["run"], pipeline["export"], str(pipeline["profile"]), out_dir=tmp_path)
    html = html_path.read_text()
    document = json.loads((tmp_path / "report.json").read_text())
    images = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(document["plots"]) == 4
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert html.count("<img") == 4
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # payloads may hold '//'
    for marker in ("http://", "https://", "//", "url(", "@import"):
        assert marker not in text, marker
    for plot in document["plots"]:
        assert (tmp_path / plot["file"]).read_bytes().startswith(b"\x89PNG")


def test_predictions_are_cached_and_reused(pipeline) -> None:
    from seekdeploy.report import build_report

    build_report(pipeline["run"], pipeline["export"], with_plots=False)
    cache = pipeline["export"] / "predictions.npz"
    assert cache.is_file()
    again = build_report(pipeline["run"], pipeline["export"], with_plots=False)
    assert again.document["cascade"]["predictions_source"] == "cache"


def test_budgets_come_from_profile_json_without_a_profile(pipeline) -> None:
    from seekdeploy.report import build_report

    from seekdeploy.profiles.loader import load_profile

    motivated_ms = load_profile(pipeline["profile"]).budget("motivated").latency_ms
    document = build_report(pipeline["run"], pipeline["export"], with_plots=False).document
    assert document["roles"][1]["budget"]["latency_ms"] == motivated_ms
    assert document["cascade"]["budget_ms"] == motivated_ms


def test_report_of_a_run_without_export_says_what_is_missing(pipeline, run_cli, tmp_path) -> None:
    result = run_cli("report", str(pipeline["run"]), "--exports", str(tmp_path / "none"),
                     "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["cascade"] is None
    assert [role["verdict"] for role in document["roles"]] == ["NOT MEASURED"] * 2
    assert any("seekdeploy export" in note for note in document["notes"])
    assert {plot["name"] for plot in document["plots"]} == {"training_curves", "training_cost"}


def test_missing_run_is_one_clear_error(run_cli, tmp_path) -> None:
    result = run_cli("report", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_tight_budget_fails_with_exit_3(pipeline, run_cli, tmp_path) -> None:
    # Only the base's latency budget becomes impossible (the first latency_ms in the file).
    text = re.sub(r"latency_ms: [0-9.]+", "latency_ms: 0.000001", pipeline["profile"].read_text(), count=1)
    tight = tmp_path / "tight.yaml"
    tight.write_text(text.replace("name: tiny-report", "name: tight"))
    result = run_cli("report", str(pipeline["run"]), "--exports", str(pipeline["export"]),
                     "--profile", str(tight), "--out", str(tmp_path))
    assert result.exit_code == 3
    document = json.loads((tmp_path / "report.json").read_text())
    assert [role["verdict"] for role in document["roles"]] == ["FAIL", "PASS"]
    assert "FAILED" in result.stdout


def test_several_devices_report_the_newest_or_the_one_chosen(pipeline, tmp_path) -> None:
    import shutil

    from seekdeploy.errors import ConfigError
    from seekdeploy.report import build_report

    export = tmp_path / "exports" / "tiny"
    shutil.copytree(pipeline["export"], export)
    measured = json.loads((export / "profile.json").read_text())
    slower = json.loads(json.dumps(measured))
    for result in slower["results"]:
        result["latency"] = {key: value * 50 if isinstance(value, float) and key.endswith("_ms") else value
                             for key, value in result["latency"].items()}
    (export / "profile.json").unlink()
    (export / "profile.pi@rpi5_2222.json").write_text(json.dumps(slower))
    (export / "profile.jetson.json").write_text(json.dumps(measured))
    os.utime(export / "profile.pi@rpi5_2222.json", (1, 1))  # the Jetson's results are the newest

    def base_latency(document):
        return document["roles"][0]["latency"]

    newest = build_report(pipeline["run"], export, with_plots=False).document
    assert any("choose one with --device" in note and "pi@rpi5_2222" in note for note in newest["notes"])
    chosen = build_report(pipeline["run"], export, with_plots=False, device="pi@rpi5:2222").document
    assert base_latency(chosen) != base_latency(newest)
    assert not any("several devices" in note for note in chosen["notes"])
    with pytest.raises(ConfigError, match=r"no results for device 'orin'.*jetson, pi@rpi5_2222"):
        build_report(pipeline["run"], export, with_plots=False, device="orin")
