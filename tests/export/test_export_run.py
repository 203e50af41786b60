"""`seekdeploy export` on a real (tiny) trained run: ONNX files, parity, manifests, pair.json,
fp16 tolerance, TensorRT without TensorRT, and every user error leaving nothing half-written."""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seekdeploy._io import TMP_PREFIX, sha256_file
from seekdeploy.errors import ExportError
from seekdeploy.export.static_models import load_static
from seekdeploy.backends.agent_onnxruntime import session_arguments
from seekdeploy.export.parity import TOLERANCES, ParityTolerance
from seekdeploy.profiles.schema import Precision
from seekdeploy.roles import ROLES
from helpers import cli_in_process


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                **session_arguments(ort, str(path)))


def _dataset(run_dir: Path):
    from seekdeploy.data import load_dataset, normalize
    from seekdeploy.train.checkpoint import load_run

    run = load_run(run_dir)
    data = load_dataset(run.dataset_name, **run.data_kwargs)
    return run, data, lambda images: normalize(images, data.mean, data.std)


def test_export_writes_checked_onnx_models_that_match_the_supernet(tiny_export):
    run, data, prepare = _dataset(tiny_export.run)
    val = prepare(data.val.images[:64])  # (64, 1, 8, 8)
    for role in ROLES:
        folder = tiny_export.dir / role
        onnx.checker.check_model(str(folder / "model.onnx"), full_check=True)
        session = _session(folder / "model.onnx")
        logits = session.run(None, {"input": val.numpy()})[0]  # (64, 10)
        with torch.no_grad():
            reference = run.supernet(val, run.spec_for(role), run.bn_role_for(role)).numpy()
        assert logits.shape == (64, 10)
        assert np.abs(logits - reference).max() <= TOLERANCES[Precision.FP32].max_abs
        manifest = _manifest(folder)
        parity = manifest["parity"]
        assert parity["static_vs_supernet"]["max_abs"] <= 1e-5 and parity["n"] == len(data.val)
        proof = parity["files"]["model.onnx"]
        assert 0 <= proof["vs_static"]["max_abs"] <= 1e-4 and proof["vs_supernet"]["top1_agreement"] == 1.0
        # The manifest's accuracy is the exported model's own, on the whole test split.
        test_logits = session.run(None, {"input": prepare(data.test.images).numpy()})[0]
        expected = float(np.mean(test_logits.argmax(1) == data.test.labels.numpy()))
        assert manifest["accuracy"]["test_top1"] == pytest.approx(expected)
        assert manifest["accuracy"]["n"] == len(data.test)
    assert "PASSED" in tiny_export.stdout and "model.onnx vs static" in tiny_export.stdout


def test_manifest_records_the_checkpoint_it_was_cut_from(tiny_export):
    for role in ROLES:
        assert _manifest(tiny_export.dir / role)["checkpoint_sha256"] == sha256_file(
            tiny_export.run / "checkpoint.pt")


def test_manifest_hashes_sizes_and_input_spec(tiny_export):
    _, data, _ = _dataset(tiny_export.run)
    for role in ROLES:
        folder = tiny_export.dir / role
        manifest = _manifest(folder)
        on_disk = sorted(p.name for p in folder.iterdir() if p.name != "manifest.json")
        assert sorted(manifest["files"]) == on_disk and "model.onnx" in on_disk
        for name, entry in manifest["files"].items():
            assert entry["sha256"] == sha256_file(folder / name)
            assert entry["bytes"] == (folder / name).stat().st_size
        spec = manifest["input"]
        assert (spec["name"], spec["layout"], spec["dtype"], spec["dynamic_batch"]) == ("input", "NCHW", "float32", True)
        assert spec["shape"][1:] == [1, 8, 8] and spec["mean"] == pytest.approx(list(data.mean))
        assert spec["class_labels"] == list(data.class_names) and "/ 255" in spec["normalization"]
        assert manifest["output"]["name"] == "logits" and manifest["role"] == role
        assert {"torch", "onnx", "onnxruntime", "seekdeploy"} <= set(manifest["versions"])
        assert manifest["opset"] == 18 and manifest["exporter"] == "dynamo"
        static = load_static(folder / "static.pt")  # weights_only inside
        assert manifest["params"] == sum(p.numel() for p in static.parameters())
    assert not [p for p in tiny_export.dir.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_pair_json_proves_the_base_is_a_slice_of_the_motivated(tiny_export):
    pair = json.loads((tiny_export.dir / "pair.json").read_text())
    # Every conv and linear weight of the base is compared (BN and classifier-bias tensors are
    # role-private, listed below).
    assert pair["checked"] > 5 and pair["max_abs_diff"] == 0.0 and pair["identical"]
    # --bn private: BN statistics are per role, and with --private-affine the motivated model's
    # BN scale/shift and classifier bias carry its own offset; they are listed with the reason.
    assert pair["not_compared"] and all("private" in e["reason"] for e in pair["not_compared"])
    leaves = {e["base"].rpartition(".")[2] for e in pair["not_compared"]}
    assert {"running_mean", "running_var", "num_batches_tracked"} <= leaves
    assert leaves <= {"running_mean", "running_var", "num_batches_tracked", "weight", "bias"}
    assert all("offset" in e["reason"] for e in pair["not_compared"]
               if e["base"].rpartition(".")[2] in ("weight", "bias"))
    for role in ROLES:
        assert pair["onnx_sha256"][role] == sha256_file(tiny_export.dir / role / "model.onnx")
    # Independently: every compared base tensor equals the motivated tensor's prefix.
    base = torch.load(tiny_export.dir / "base" / "static.pt", weights_only=True)["state_dict"]
    motivated = torch.load(tiny_export.dir / "motivated" / "static.pt", weights_only=True)["state_dict"]
    for entry in pair["tensors"]:
        tensor = base[entry["base"]]
        prefix = motivated[entry["motivated"]][tuple(slice(0, n) for n in tensor.shape)]
        assert torch.equal(tensor, prefix), entry["base"]


def test_exported_base_has_the_graph_of_an_equally_sized_static_model(tiny_export, tmp_path):
    from seekdeploy.export.onnx_export import export_onnx
    from seekdeploy.nn import build_static
    from seekdeploy.train.checkpoint import load_run

    run = load_run(tiny_export.run)
    fresh = build_static(run.base_spec, num_classes=10, in_channels=1, image_size=8)
    # Trained-looking BatchNorm (a fresh one is the identity, whose zero folded biases the ONNX
    # optimizer drops, which would make any graph comparison vacuous).
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in fresh.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for tensor in (module.weight, module.bias, module.running_mean):
                    tensor.copy_(torch.randn(tensor.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    export_onnx(fresh, tmp_path / "direct.onnx", input_shape=(1, 1, 8, 8))

    def signature(path: Path):
        model = onnx.load(str(path))
        ops = collections.Counter(node.op_type for node in model.graph.node)
        return ops, sorted(tuple(t.dims) for t in model.graph.initializer)

    assert signature(tiny_export.dir / "base" / "model.onnx") == signature(tmp_path / "direct.onnx")


def test_fp16_export_and_its_tolerance_is_enforced(tiny_export, tmp_path):
    from seekdeploy.export.export_run import export_run
    from seekdeploy.export.options import parse_export_options

    for role in ROLES:
        manifest = _manifest(tiny_export.dir / role)
        proof = manifest["parity"]["files"]["model.fp16.onnx"]
        assert proof["precision"] == "fp16" and 0 < proof["vs_static"]["max_abs"] <= 5e-2
        assert manifest["files"]["model.fp16.onnx"]["precision"] == "fp16"
        fp16 = onnx.load(str(tiny_export.dir / role / "model.fp16.onnx"))
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    shutil.copytree(tiny_export.dir, tmp_path / "tiny")
    folder = tmp_path / "tiny" / "base"
    before = {p.name: sha256_file(p) for p in folder.iterdir()}
    # The same export with an fp16 limit no real fp16 model can meet must fail, and must leave the
    # previous export exactly as it was and no staging folder behind.
    tight = dict(TOLERANCES)
    tight[Precision.FP16] = ParityTolerance(max_abs=1e-9, min_top1_agreement=0.99)
    strict = parse_export_options(roles="base", precision="fp16", out_dir=tmp_path)
    with pytest.raises(ExportError, match="model.fp16.onnx.*fp16 parity check"):
        export_run(tiny_export.run, dataclasses.replace(strict, tolerances=tight))
    assert {p.name: sha256_file(p) for p in folder.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["base", "motivated", "pair.json"]


def test_reexport_clears_staging_left_by_a_killed_export(tiny_export, tmp_path):
    from seekdeploy.export.export_run import export_run
    from seekdeploy.export.options import parse_export_options

    shutil.copytree(tiny_export.dir, tmp_path / "tiny")
    # What a SIGKILL during an export leaves: a staging folder with partial files, never a final name.
    stale = tmp_path / "tiny" / ".tmp-export-killed"
    (stale / "base").mkdir(parents=True)
    (stale / "base" / "model.onnx").write_bytes(b"partial")
    result = export_run(tiny_export.run, parse_export_options(roles="base", out_dir=tmp_path))
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["base", "motivated", "pair.json"]
    pair = json.loads((tmp_path / "tiny" / "pair.json").read_text())
    assert pair["onnx_sha256"]["base"] == result.roles[0].manifest["files"]["model.onnx"]["sha256"]


@pytest.mark.skipif(shutil.which("trtexec") is not None, reason="trtexec is on PATH: it would build")
def test_tensorrt_without_tensorrt_writes_build_script_and_says_so(tiny_run, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the engine would be built, not scripted")
    code, stdout, stderr = cli_in_process("export", str(tiny_run), "--roles", "base", "--format", "onnx,tensorrt",
                                "--precision", "int8", "--profile", "jetson-nano", "--out", str(tmp_path))
    assert code == 0, stderr
    assert "NOTICE: TensorRT is not installed here" in stdout and "build_engine.sh" in stdout
    assert "TensorRT 8.2 lint: 0 finding(s)" in stdout
    folder = tmp_path / "tiny" / "base"
    script = (folder / "build_engine.sh").read_text()
    calib = f"--calib=model.{sha256_file(folder / 'model.onnx')[:12]}.calib"
    for flag in ("--int8", calib, "--workspace=", "model.jetson-nano.trt8.2.int8.engine"):
        assert flag in script
    subprocess.run(["bash", "-n", str(folder / "build_engine.sh")], check=True)
    images = np.load(folder / "calibration_images.npy")
    assert images.dtype == np.float32 and images.shape[1:] == (1, 8, 8) and abs(images.mean()) < 1
    manifest = _manifest(folder)
    assert manifest["opset"] == 13  # TensorRT 8.2 reads opset <= 13
    assert manifest["tensorrt"]["method"] == "build_engine.sh" and manifest["tensorrt"]["engine"] is None


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "onx"), "did you mean 'onnx'"),
    (("--precision", "fp61"), "did you mean 'fp16'"),
    (("--roles", "bse"), "did you mean 'base'"),
    (("--precision", "int4"), "choose from fp32, fp16, int8"),
])
def test_bad_options_are_refused_before_any_work(tiny_run, tmp_path, args, message):
    code, _, stderr = cli_in_process("export", str(tiny_run), "--out", str(tmp_path / "out"), *args)
    assert code == 1 and message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_bad_runs_are_clear_errors_and_leave_nothing(tiny_run, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    checkpoint = broken / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated mid-write
    cases = [(empty, "no checkpoint"), (broken, "corrupt or truncated"),
             (tmp_path / "missing", "does not exist"), (tiny_run / "..", "invalid run name")]
    for run_dir, message in cases:
        code, _, stderr = cli_in_process("export", str(run_dir), "--out", str(out))
        assert code == 1 and message in stderr and "Traceback" not in stderr, (run_dir, stderr)
    assert not out.exists() or not any(out.rglob("*.onnx"))
