"""`seekdeploy export --precision int8` for CPU targets on a real (tiny) trained run: a QDQ model
with per-channel int8 weights, calibrated on training images, proven by top-1 agreement and its
test top-1 drop; a refused export leaves nothing behind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from seekdeploy._io import sha256_file
from seekdeploy.errors import ExportError
from seekdeploy.export.parity import TOLERANCES, ParityTolerance, accuracy, compare_logits, run_onnx
from seekdeploy.profiles.schema import Precision
from helpers import cli_in_process, train_tiny_run, write_tiny_profile

CALIBRATION_IMAGES = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    # Pinned training (one role per batch, seed 1): the tests below need a model that some INT8
    # calibration costs test images while still agreeing with fp32, and whose export's own
    # calibration passes; a 1-epoch tiny model meets that for some seeds only (seeds 0, 2 and 3
    # do not after the step-type and BN-staleness changes), so the seed is part of the setup.
    return train_tiny_run(tmp_path_factory.mktemp("runs") / "tiny", epochs=1, batch_size=64, seed=1,
                          condition="random:p=0.3", motivated_step="alone",
                          base_spec="depth=1,1;width=4,8", motivated_spec="depth=1,2;width=8,16")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("exports")
    code, stdout, stderr = cli_in_process("export", str(trained), "--out", str(out), "--precision", "int8",
                                          "--calibration-images", str(CALIBRATION_IMAGES))
    assert code == 0, stderr
    return SimpleNamespace(run=trained, dir=out / "tiny", stdout=stdout)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _eval_data(run_dir: Path, calibration_images: int = CALIBRATION_IMAGES):
    from seekdeploy.export.static_models import load_eval_data
    from seekdeploy.train.checkpoint import load_run

    return load_eval_data(load_run(run_dir), calibration_images=calibration_images)


def _scales(path: Path) -> dict[str, np.ndarray]:
    proto = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith("_scale")}


def test_int8_file_is_a_per_channel_qdq_model_that_runs(exported):
    for role in ("base", "motivated"):
        path = exported.dir / role / "model.int8.onnx"
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        ops = [node.op_type for node in proto.graph.node]
        assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
        int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        conv_weights = [t for t in int8_weights if len(t.dims) == 4]  # (out, in, kh, kw)
        assert conv_weights, "every conv weight is stored as int8"
        scales = _scales(path)
        for weight in conv_weights:  # per output channel: one scale per filter
            assert scales[weight.name.replace("_quantized", "_scale")].shape == (weight.dims[0],)
        manifest = _manifest(exported.dir / role)
        assert manifest["files"]["model.int8.onnx"] == {
            "kind": "onnx-qdq", "precision": "int8", "sha256": sha256_file(path), "bytes": path.stat().st_size}
        recipe = manifest["int8"]
        assert recipe["format"] == "QDQ" and recipe["calibration_split"] == "train"
        assert recipe["calibration_images"] == CALIBRATION_IMAGES and recipe["calibration_method"] == "minmax"


def test_agreement_and_accuracy_drop_are_measured_and_within_limits(exported):
    data = _eval_data(exported.run)
    for role in ("base", "motivated"):
        folder = exported.dir / role
        proof = _manifest(folder)["parity"]["files"]["model.int8.onnx"]
        fp32_val = run_onnx(folder / "model.onnx", data.val_images)
        int8_val = run_onnx(folder / "model.int8.onnx", data.val_images)
        agreement = compare_logits(fp32_val, int8_val).top1_agreement
        assert agreement >= TOLERANCES[Precision.INT8].min_top1_agreement
        assert proof["vs_static"]["top1_agreement"] == pytest.approx(agreement, abs=0.02)
        assert proof["vs_static"]["max_abs"] > 1e-4  # really quantized, not an fp32 copy
        fp32_top1 = accuracy(run_onnx(folder / "model.onnx", data.test_images), data.test_labels)
        int8_top1 = accuracy(run_onnx(folder / "model.int8.onnx", data.test_images), data.test_labels)
        drop = proof["accuracy_drop"]
        assert drop["int8_test_top1"] == pytest.approx(int8_top1) == proof["test_top1"]
        assert drop["fp32_test_top1"] == pytest.approx(fp32_top1)
        assert drop["drop_pp"] == pytest.approx(100 * (fp32_top1 - int8_top1))
        assert drop["drop_pp"] <= drop["allowed_drop_pp"] == 1.0 and drop["allowed_from"] == "default"
    assert "test top-1 drop" in exported.stdout and "PASSED" in exported.stdout


def test_calibration_used_training_images_only(exported, tmp_path):
    from seekdeploy.export.quantize import CalibrationMethod, quantize_int8

    # Re-quantizing with the first training images reproduces the export's activation scales
    # exactly; calibrating on test images gives different ones.
    data = _eval_data(exported.run)
    folder = exported.dir / "motivated"
    train = quantize_int8(folder / "model.onnx", tmp_path / "train.onnx", data.calibration_images,
                          CalibrationMethod.MINMAX)
    test = quantize_int8(folder / "model.onnx", tmp_path / "test.onnx", data.test_images[:CALIBRATION_IMAGES],
                         CalibrationMethod.MINMAX)
    exported_scales, train_scales, test_scales = (_scales(p) for p in (folder / "model.int8.onnx", train.path, test.path))
    assert exported_scales.keys() == train_scales.keys()
    assert all(np.array_equal(exported_scales[k], train_scales[k]) for k in exported_scales)
    assert any(not np.array_equal(exported_scales[k], test_scales[k]) for k in exported_scales)


def _losing_setting(run_dir: Path, folder: Path, tmp_path: Path) -> tuple[str, str, int, float]:
    # A (role, calibration method, image count) whose INT8 model loses test top-1, and the loss in
    # pp, found by quantizing exactly as the export does (a few candidates, ~1 s each).
    from seekdeploy.export.quantize import CalibrationMethod, quantize_int8

    for count in (1, 4, CALIBRATION_IMAGES):
        data = _eval_data(run_dir, calibration_images=count)
        for role in ("motivated", "base"):
            fp32_logits = run_onnx(folder / role / "model.onnx", data.test_images)
            fp32 = accuracy(fp32_logits, data.test_labels)
            for method in CalibrationMethod:
                path = quantize_int8(folder / role / "model.onnx", tmp_path / f"{role}.{method.value}.{count}.onnx",
                                     data.calibration_images, method).path
                int8_logits = run_onnx(path, data.test_images)
                drop_pp = 100 * (fp32 - accuracy(int8_logits, data.test_labels))
                # Only a setting the agreement check passes (with margin) is refused for its drop.
                agreement = float(np.mean(np.argmax(int8_logits, 1) == np.argmax(fp32_logits, 1)))
                if drop_pp > 0 and agreement >= 0.975:
                    return role, method.value, count, drop_pp
    raise AssertionError("precondition: some INT8 calibration of this tiny model loses test images "
                         "while agreeing with fp32")


def test_a_drop_above_the_allowed_one_is_refused_and_leaves_nothing(exported, tmp_path):
    role, method, count, drop_pp = _losing_setting(exported.run, exported.dir, tmp_path / "probe")
    # The profile allows no drop at all; the CLI option wins over it.
    profile = write_tiny_profile(tmp_path, extra=(("precision: fp32", "precision: fp32\n  int8_max_accuracy_drop_pp: 0.0"),))
    out = tmp_path / "fresh" / "exports"
    args = ("export", str(exported.run), "--roles", role, "--precision", "int8", "--profile", str(profile),
            "--calibration-method", method, "--calibration-images", str(count), "--out", str(out))
    code, stdout, stderr = cli_in_process(*args)
    assert code == 1 and "Traceback" not in stderr, stderr
    assert f"{role} model.int8.onnx loses {drop_pp:.2f} percentage points" in stderr
    assert "profile tiny-test (runtime.int8_max_accuracy_drop_pp)" in stderr and "nothing was exported" in stderr
    assert not (tmp_path / "fresh").exists()  # not even the empty output folders
    code, stdout, stderr = cli_in_process(*args, "--max-accuracy-drop", f"{drop_pp + 0.01:.4f}")
    assert code == 0, stderr
    drop = _manifest(out / "tiny" / role)["parity"]["files"]["model.int8.onnx"]["accuracy_drop"]
    assert drop["allowed_from"] == "--max-accuracy-drop" and drop["drop_pp"] == pytest.approx(drop_pp)


def test_poor_agreement_is_refused_and_keeps_the_previous_export(exported, tmp_path):
    import shutil

    from seekdeploy.export.export_run import export_run
    from seekdeploy.export.options import parse_export_options

    shutil.copytree(exported.dir, tmp_path / "tiny")
    before = {p.name: sha256_file(p) for p in (tmp_path / "tiny" / "base").iterdir()}
    strict = dict(TOLERANCES)
    strict[Precision.INT8] = ParityTolerance(max_abs=1e-6, min_top1_agreement=0.97)
    options = parse_export_options(roles="base", precision="int8", out_dir=tmp_path,
                                   calibration_images=CALIBRATION_IMAGES)
    with pytest.raises(ExportError, match="model.int8.onnx.*int8 parity check"):
        export_run(exported.run, dataclasses.replace(options, tolerances=strict))
    assert {p.name: sha256_file(p) for p in (tmp_path / "tiny" / "base").iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["base", "motivated", "pair.json"]


@pytest.mark.parametrize(("args", "message"), [
    (("--precision", "int8", "--profile", "jetson-nano"), "use --format onnx,tensorrt"),
    (("--precision", "int8", "--calibration-method", "entrpy"), "did you mean 'entropy'"),
    (("--precision", "int8", "--calibration-images", "0"), "--calibration-images"),
])
def test_bad_int8_options_are_refused_before_any_work(trained, tmp_path, args, message):
    code, _, stderr = cli_in_process("export", str(trained), "--out", str(tmp_path / "out"), *args)
    assert code != 0 and message in stderr and "Traceback" not in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_report_section_sets_int8_beside_fp32_with_measured_latency(exported, tmp_path, run_cli):
    import shutil

    from seekdeploy.report.cpu_precisions import cpu_rows, cpu_section

    export = tmp_path / "tiny"
    shutil.copytree(exported.dir, export)
    profile = write_tiny_profile(tmp_path, extra=(("duration_ms: 1000", "duration_ms: 50"),
                                                  ("min_iterations: 100", "min_iterations: 20"),
                                                  ("latency_ms: 1.0", "latency_ms: 50.0")))
    for name in ("model.onnx", "model.int8.onnx"):
        done = run_cli("profile", str(export / "base" / name), "--profile", str(profile), "--role", "base",
                       "--repeats", "1")
        assert done.exit_code == 0, done.stdout + done.stderr
    manifests = {role: _manifest(export / role) for role in ("base", "motivated")}
    rows = {(r["role"], r["precision"], r["runtime"]): r for r in cpu_section(export, manifests)["rows"]}
    int8, fp32 = rows[("base", "int8", "onnxruntime")], rows[("base", "fp32", "onnxruntime")]
    assert int8["batch"] == fp32["batch"] == 1 and int8["p50_ms"] > 0 and fp32["p50_ms"] > 0
    assert int8["ratio_vs_fp32"] == pytest.approx(int8["p50_ms"] / fp32["p50_ms"])
    assert int8["test_top1"] == manifests["base"]["parity"]["files"]["model.int8.onnx"]["test_top1"]
    assert int8["file_kib"] == pytest.approx((export / "base" / "model.int8.onnx").stat().st_size / 1024)
    assert rows[("motivated", "int8", "onnxruntime")]["p50_ms"] is None  # not measured: shown as "-"
    assert any(cells[:3] == ["base", "int8", "onnxruntime"] and cells[-1].endswith("x") for cells in cpu_rows(
        cpu_section(export, manifests)))


def test_an_int8_cpu_profile_times_and_judges_the_int8_copy(exported, tmp_path, run_cli):
    from seekdeploy.runtime.targets import find_targets, for_precision

    targets = for_precision(find_targets(exported.dir), "onnxruntime", "int8")
    assert [t.model_path.name for t in targets] == ["model.int8.onnx", "model.int8.onnx"]
    for target in targets:  # a min_accuracy budget is judged on the INT8 model's own test top-1
        assert target.accuracy == _manifest(exported.dir / target.role)["parity"]["files"]["model.int8.onnx"]["test_top1"]
    assert [t.model_path.name for t in for_precision(find_targets(exported.dir), "tensorrt", "int8")] == ["model.onnx"] * 2
    profile = write_tiny_profile(tmp_path, extra=(("precision: fp32", "precision: int8"), ("fp32: 40.0", "int8: 40.0"),
                                                  ("duration_ms: 1000", "duration_ms: 50"),
                                                  ("min_iterations: 100", "min_iterations: 20"),
                                                  ("latency_ms: 1.0", "latency_ms: 50.0")))
    out = tmp_path / "profile.json"
    done = run_cli("profile", str(exported.dir), "--profile", str(profile), "--repeats", "1", "--out", str(out))
    assert done.exit_code == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    assert [(r["role"], r["model_file"], r["precision"]) for r in results] == [
        ("base", "model.int8.onnx", "int8"), ("motivated", "model.int8.onnx", "int8")]
