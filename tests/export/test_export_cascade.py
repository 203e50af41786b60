"""`seekdeploy export --cascade`: the pair as one ONNX model, proven against the two-file cascade on a
real (tiny) run: parity, threshold override, mixed batches, weight sharing, refusals, timing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import pytest

from seekdeploy.errors import ConfigError, ExportError
from seekdeploy.export.cascade_check import open_cascade, read_cascade_manifest
from seekdeploy.export.cascade_proof import two_file_cascade
from seekdeploy.export.cascade_threshold import CascadeTarget, TargetKind, choose_threshold, parse_cascade_target
from seekdeploy.export.parity import run_onnx
from seekdeploy.layout import ExportLayout
from helpers import cli_in_process


@pytest.fixture(scope="module")
def cascade(tiny_export, tmp_path_factory):
    """A copy of the tiny export with cascade/ built by the library (the shared export stays as it is)."""
    from seekdeploy.export.cascade_export import export_cascade

    export_dir = tmp_path_factory.mktemp("cascade-exports") / tiny_export.dir.name
    shutil.copytree(tiny_export.dir, export_dir)
    result = export_cascade(tiny_export.run, export_dir, target=CascadeTarget())
    return export_dir, result


@pytest.fixture(scope="module")
def test_images(tiny_export):
    from seekdeploy.export.static_models import load_eval_data
    from seekdeploy.train.checkpoint import load_run

    data = load_eval_data(load_run(tiny_export.run), calibration_images=0)
    return data.test_images, data.test_labels


def _role_logits(export_dir: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    layout = ExportLayout(export_dir)
    return run_onnx(layout.role("base").onnx(), images), run_onnx(layout.role("motivated").onnx(), images)


def _middle_threshold(confidence: np.ndarray) -> float:
    values = np.unique(confidence.astype(np.float64))
    return float(np.float32((values[len(values) // 2 - 1] + values[len(values) // 2]) / 2))


def test_cascade_equals_the_two_file_cascade_on_the_whole_test_split(cascade, test_images):
    export_dir, result = cascade
    images, labels = test_images
    base, motivated = _role_logits(export_dir, images)
    session = open_cascade(ExportLayout(export_dir).cascade.onnx, result.manifest)
    for threshold in (None, _middle_threshold(session.run(images).confidence)):
        used = session.threshold if threshold is None else threshold
        outputs = session.run(images, threshold=threshold, batch_size=32)
        logits, answered_by, confidence = two_file_cascade(base, motivated, used, "softmax")
        assert np.array_equal(outputs.answered_by, answered_by)
        assert np.abs(outputs.logits - logits).max() <= 1e-4
        assert np.abs(outputs.confidence - confidence).max() <= 1e-5
    manifest = result.manifest
    assert manifest["test"]["n"] == len(labels)
    expected = float(np.mean(session.run(images).logits.argmax(1) == labels))
    assert manifest["test"]["top1"] == pytest.approx(expected)
    assert 0.0 <= manifest["test"]["escalation_rate"] <= 1.0
    proofs = manifest["parity"]["overrides"]
    assert len(proofs) == 3 and all(p["decisions_differing"] == 0 for p in proofs.values())
    assert 0 < sorted(p["escalated"] for p in proofs.values())[1] < len(labels)  # the mixed proof is mixed


def test_cascade_loads_alone_and_stores_shared_weights_once(cascade, tmp_path):
    export_dir, result = cascade
    lonely = tmp_path / "cascade.onnx"
    shutil.copy(ExportLayout(export_dir).cascade.onnx, lonely)  # no other file beside it
    session = ort.InferenceSession(str(lonely), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "answered_by", "confidence"]
    size = result.manifest["size"]
    # Smaller than the two files together, the base's shared weights not stored twice. On a model
    # this small the graphs (the base's with BatchNorm unfolded, the Slices, the gate) are most of
    # the file, so the 1.1x-the-motivated-file target is checked on real runs (docs/cascade.md).
    assert result.manifest["weight_sharing"]["bytes_saved"] > 0
    assert size["cascade_bytes"] < size["motivated_bytes"] + size["base_bytes"]
    sharing = result.manifest["weight_sharing"]
    assert sharing["shared_count"] >= 5  # every conv weight of the base is a slice
    assert any(name.endswith("running_mean") for name in sharing["private"])  # per-role BN stays the base's own
    ops = {node.op_type for node in onnx.load(str(lonely)).graph.node}
    assert {"If", "Slice", "Softmax", "Less"} <= ops


def test_threshold_override_at_run_time(cascade, test_images):
    export_dir, result = cascade
    images, _ = test_images
    base, motivated = _role_logits(export_dir, images[:40])
    session = open_cascade(ExportLayout(export_dir).cascade.onnx)
    stored = session.run(images[:40])
    assert session.threshold == pytest.approx(result.manifest["threshold"])
    none = session.run(images[:40], threshold=0.0)
    assert not none.answered_by.any() and np.abs(none.logits - base).max() <= 1e-4
    every = session.run(images[:40], threshold=1.5)
    assert every.answered_by.all() and np.abs(every.logits - motivated).max() <= 1e-4
    assert np.array_equal(stored.answered_by, (stored.confidence < np.float32(session.threshold)).astype(np.int64))


def test_batch_with_mixed_decisions_runs_only_the_unsure_through_the_motivated_model(cascade, test_images):
    export_dir, _ = cascade
    images, _ = test_images
    session = open_cascade(ExportLayout(export_dir).cascade.onnx)
    batch = images[:16]
    threshold = _middle_threshold(session.run(batch).confidence)
    mixed = session.run(batch, threshold=threshold, batch_size=16)  # one run of 16
    assert 0 < mixed.answered_by.sum() < 16
    one_by_one = session.run(batch, threshold=threshold, batch_size=1)
    assert np.array_equal(mixed.answered_by, one_by_one.answered_by)
    assert np.abs(mixed.logits - one_by_one.logits).max() <= 1e-5
    base, motivated = _role_logits(export_dir, batch)
    rows = mixed.answered_by.astype(bool)
    assert np.abs(mixed.logits[rows] - motivated[rows]).max() <= 1e-4
    assert np.abs(mixed.logits[~rows] - base[~rows]).max() <= 1e-4


def test_corrupt_or_mismatched_cascade_files_are_refused(cascade, tmp_path):
    export_dir, result = cascade
    source = ExportLayout(export_dir).cascade.onnx
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(ExportError, match="corrupt|truncated|invalid"):
        open_cascade(truncated)
    with pytest.raises(ExportError, match="not a seekdeploy cascade"):
        open_cascade(ExportLayout(export_dir).role("motivated").onnx())
    changed = onnx.load(str(source))
    changed.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.asarray(0.9, np.float32), "threshold"))
    other = tmp_path / "cascade.onnx"
    onnx.save(changed, str(other))
    with pytest.raises(ExportError, match="does not match its manifest"):
        open_cascade(other, result.manifest)
    with pytest.raises(ExportError, match="no cascade manifest"):
        read_cascade_manifest(tmp_path)


def test_export_refuses_a_role_export_of_another_checkpoint(cascade, tiny_export, tmp_path):
    from seekdeploy.export.cascade_export import export_cascade

    export_dir = tmp_path / "exports" / "tiny"
    shutil.copytree(cascade[0], export_dir)
    manifest_path = ExportLayout(export_dir).role("base").manifest
    manifest = json.loads(manifest_path.read_text())
    manifest["checkpoint_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="no current export"):
        export_cascade(tiny_export.run, export_dir, target=CascadeTarget())


def test_threshold_choice_on_validation():
    confidence = np.array([0.2, 0.3, 0.6, 0.9, 0.95])
    base_ok = np.array([False, False, True, True, True])
    motivated_ok = np.array([True, True, True, True, False])  # motivated top-1 0.8
    chosen = choose_threshold(CascadeTarget(), confidence, base_ok, motivated_ok)
    # one escalation reaches the motivated model's 0.8 (two would give 1.0, but cost more)
    assert chosen["escalation_rate"] == pytest.approx(0.2) and chosen["top1"] == pytest.approx(0.8)
    assert 0.2 < chosen["threshold"] < 0.3
    latency = {"base": 1.0, "motivated": 4.0}
    tight = choose_threshold(CascadeTarget(TargetKind.LATENCY, budget_ms=1.9), confidence, base_ok,
                             motivated_ok, latency)
    assert tight["escalation_rate"] == pytest.approx(0.2) and tight["expected_latency_ms"] <= 1.9
    with pytest.raises(ConfigError, match="no threshold keeps"):
        choose_threshold(CascadeTarget(TargetKind.LATENCY, budget_ms=0.5), confidence, base_ok, motivated_ok, latency)


@pytest.mark.parametrize("images, epsilon_pp, floor", [(200, 0.1, 0.10), (2000, 0.1, 0.0), (200, 1.0, 0.0)])
def test_a_validation_split_too_small_to_see_epsilon_escalates_a_tenth(images, epsilon_pp, floor):
    # Both models right on every validation image: the split sees no difference at any escalation.
    confidence = np.linspace(0.3, 1.0, images)
    right = np.ones(images, dtype=bool)
    chosen = choose_threshold(CascadeTarget(epsilon_pp=epsilon_pp), confidence, right, right)
    assert chosen["escalation_floor"] == floor
    assert chosen["escalation_rate"] == pytest.approx(floor)
    assert np.mean(confidence < chosen["threshold"]) == pytest.approx(floor)
    latency = {"base": 1.0, "motivated": 4.0}  # a latency target has no floor
    assert choose_threshold(CascadeTarget(TargetKind.LATENCY, budget_ms=1.0), confidence, right, right,
                            latency)["escalation_rate"] == 0.0


@pytest.mark.parametrize("text", ["speed", "latency", "accuracy:x", "latency:-1"])
def test_bad_cascade_targets_are_refused_with_the_fix(text):
    with pytest.raises(ConfigError, match="accuracy:EPS_PP"):
        parse_cascade_target(text)


def test_cli_refuses_a_bad_target_before_exporting(tiny_run, tmp_path):
    code, _, stderr = cli_in_process("export", str(tiny_run), "--out", str(tmp_path), "--cascade",
                                     "--cascade-target", "speed")
    assert code == 1 and "--cascade-target" in stderr and "Traceback" not in stderr
    assert not any(tmp_path.iterdir())


def test_cascade_profile_times_real_images_per_path(cascade, test_images):
    from seekdeploy.measure.cascade_timing import profile_cascade

    export_dir, _ = cascade
    images, labels = test_images
    document = profile_cascade(export_dir, images[:30], labels[:30], passes=1)
    assert document["n_images"] == 30 and document["batch"] == 1
    assert document["cascade"]["n"] == 30 and document["cascade"]["p95_ms"] >= document["cascade"]["p50_ms"]
    assert document["paths"]["base"].get("n", 0) + document["paths"]["motivated"].get("n", 0) == 30
    assert len(document["frontier"]) == 21
    assert ExportLayout(export_dir).cascade.profile_document.is_file()


def _latencies_ms(stats: dict) -> list[float]:
    return [value for key, value in stats.items() if key.endswith("_ms")]


def test_cascade_profile_times_openvino_the_same_way(cascade, test_images):
    pytest.importorskip("openvino", reason="OpenVINO is not installed here: nothing to time")
    from seekdeploy.measure.cascade_timing import profile_cascade, summary_lines
    from seekdeploy.report.cascade_model import deployed_cascade_section, summary_lines as report_lines

    export_dir, _ = cascade
    images, labels = test_images
    document = profile_cascade(export_dir, images[:30], labels[:30], passes=2)
    openvino = document["openvino"]
    assert openvino["run"] is True and openvino["device"] == "CPU" and openvino["threads"] == 1
    assert openvino["decisions_equal_onnxruntime"] is True
    assert openvino["escalation_rate"] == document["escalation_rate"]
    assert {role: stats.get("n", 0) for role, stats in openvino["paths"].items()} == {
        role: stats.get("n", 0) for role, stats in document["paths"].items()}
    assert sum(stats.get("n", 0) for stats in openvino["paths"].values()) == 30
    timed = [openvino["cascade"], *openvino["alone"].values(), *(s for s in openvino["paths"].values() if s.get("n"))]
    assert all(stats["n"] > 0 and stats["p95_ms"] >= stats["p50_ms"] for stats in timed)
    assert all(latency > 0 for stats in timed for latency in _latencies_ms(stats))
    assert openvino["ratios"]["cascade_mean_over_motivated_mean"] == pytest.approx(
        openvino["cascade"]["mean_ms"] / openvino["alone"]["motivated"]["mean_ms"])
    assert json.loads(ExportLayout(export_dir).cascade.profile_document.read_text())["openvino"] == openvino
    line = next(line for line in summary_lines(document) if "OpenVINO" in line)
    assert f"cascade mean {openvino['cascade']['mean_ms']:.3f} ms" in line and "decisions equal" in line
    assert line.strip() in report_lines(deployed_cascade_section(export_dir, []))


def test_cascade_profile_says_why_openvino_was_not_timed(cascade, test_images, monkeypatch):
    import seekdeploy.backends.openvino
    from seekdeploy.measure.cascade_timing import profile_cascade, summary_lines

    monkeypatch.setattr(seekdeploy.backends.openvino, "openvino_installed", lambda: False)
    export_dir, _ = cascade
    images, labels = test_images
    document = profile_cascade(export_dir, images[:8], labels[:8], passes=1)
    reason = "OpenVINO is not installed here (pip install 'seekdeploy[openvino]')"
    assert document["openvino"] == {"run": False, "reason": reason}
    assert document["cascade"]["n"] == 8  # onnxruntime's timing is there all the same
    assert json.loads(ExportLayout(export_dir).cascade.profile_document.read_text())["openvino"]["run"] is False
    assert f"  OpenVINO: not timed ({reason})" in summary_lines(document)


def test_openvino_runs_the_cascade(cascade):
    openvino = cascade[1].manifest["openvino"]
    if not openvino["run"]:
        pytest.skip(openvino["reason"])
    assert openvino["decisions_differing"] == 0 and openvino["logits_max_abs"] <= 1e-4
    # Compared in f32: OpenVINO's default on a CPU with bf16 units (AMX) is bf16.
    assert openvino["inference_precision"] == "f32"


def test_tensorrt_path_is_written_and_labelled_not_run(cascade, tmp_path):
    export_dir, result = cascade
    tensorrt = result.manifest["tensorrt"]
    assert tensorrt["run"] is False and "not run" in tensorrt["status"]
    script = ExportLayout(export_dir).cascade.engine_script.read_text()
    assert "trtexec" in script and "--onnx=cascade.onnx" in script
    pytest.importorskip("tensorrt", reason="TensorRT is not installed here: the cascade engine cannot be built")
    from seekdeploy.export.tensorrt.cascade import build_cascade_engine

    build_cascade_engine(ExportLayout(export_dir).cascade.onnx, tmp_path / "cascade.engine")


def test_each_backend_says_its_line_on_the_cascade_in_the_report(cascade):
    from seekdeploy.report.cascade_model import deployed_cascade_section, markdown_lines

    export_dir, result = cascade
    section = deployed_cascade_section(export_dir, [])
    openvino, tensorrt = result.manifest["openvino"], result.manifest["tensorrt"]
    assert section["runtimes"] == [
        f"OpenVINO {openvino['openvino']}: 0 decisions differ, logits max |diff| {openvino['logits_max_abs']:.3g}"
        if openvino["run"] else f"OpenVINO: not run ({openvino['reason']})",
        f"TensorRT: {tensorrt['status']}"]
    assert all(line in "\n".join(markdown_lines(section)) for line in section["runtimes"])


def test_margin_confidence_matches_the_two_file_cascade(tiny_export, test_images):
    from seekdeploy.export.cascade_graph import build_cascade_proto, export_unfolded_onnx
    from seekdeploy.export.cascade_proof import gate_confidence
    from seekdeploy.export.static_models import slice_role
    from seekdeploy.roles import Role
    from seekdeploy.train.checkpoint import load_run

    images, _ = test_images
    run = load_run(tiny_export.run)
    graphs = {role: export_unfolded_onnx(slice_role(run, role, images[:8]).module, (1, *images.shape[1:]), 18)
              for role in Role}
    base, motivated = _role_logits(tiny_export.dir, images)
    threshold = _middle_threshold(gate_confidence(base, "margin"))
    proto, _ = build_cascade_proto(graphs[Role.BASE], graphs[Role.MOTIVATED], threshold=threshold,
                                   confidence="margin", metadata={})
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, answered_by, confidence = session.run(None, {"input": images})
    expected_logits, expected_answered, expected_confidence = two_file_cascade(base, motivated, threshold, "margin")
    assert np.array_equal(answered_by, expected_answered) and 0 < answered_by.sum() < len(images)
    assert np.abs(logits - expected_logits).max() <= 1e-4
    assert np.abs(confidence - expected_confidence).max() <= 1e-5


def test_training_stops_cleanly_on_sigterm_after_the_cascade_was_timed(cascade, test_images, tmp_path):
    # Timing the cascade under OpenVINO in this process left a SIGTERM to it crashing (SIGSEGV): the
    # timing runs in a child process, so a training run here still saves and stops on SIGTERM.
    from types import SimpleNamespace

    from seekdeploy.measure.cascade_timing import profile_cascade
    from seekdeploy.train.config import TrainConfig
    from helpers import assert_same_weights, interrupted_and_resumed

    export_dir, _ = cascade
    images, labels = test_images
    profile_cascade(export_dir, images[:30], labels[:30], passes=1)
    config = TrainConfig.from_dict({
        "arch": "resnet", "data": "digits", "epochs": 2, "batch_size": 64, "seed": 3,
        "condition": "schedule:p=0.5", "base_spec": "depth=1,1;width=2,4", "motivated_spec": "depth=2,2;width=4,8",
        "device": "cpu", "bn_recalibrate_batches": 2})
    profile = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
    straight, resumed, _ = interrupted_and_resumed(config, tmp_path, profile, signal_at_step=13)
    assert_same_weights(straight, resumed)
