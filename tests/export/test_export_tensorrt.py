"""TensorRT path without TensorRT: names, version guard, lint, trtexec commands/output, build script."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess

import onnx
import pytest
from onnx import TensorProto, helper

from seekdeploy.errors import ExportError
from seekdeploy.export.tensorrt.calibrator import (
    calibration_batches, calibration_cache_path, read_calibration_cache, write_calibration_cache,
)
from seekdeploy.export.tensorrt.engines import (
    EngineSidecar, check_engine_compatible, engine_filename, read_engine_sidecar, write_engine_sidecar,
)
from seekdeploy.export.tensorrt.lint import Severity, lint_for_tensorrt, max_opset_for_tensorrt
from seekdeploy.export.tensorrt.trtexec import parse_trtexec_output, trtexec_command, write_build_script
from seekdeploy.profiles.schema import Precision

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None

# trtexec 8.6 summary in its documented format (timestamps, [I] tags, percentiles 90/95/99).
TRTEXEC_SAMPLE = """\
[09/18/2023-09:54:10] [I] === Device Information ===
[09/18/2023-09:54:10] [I] Selected Device: Orin
[09/18/2023-09:54:10] [I] Compute Capability: 8.7
[09/18/2023-09:54:10] [I] TensorRT version: 8.6.2
[09/18/2023-09:54:19] [I] === Performance summary ===
[09/18/2023-09:54:19] [I] Throughput: 858.971 qps
[09/18/2023-09:54:19] [I] Latency: min = 1.53241 ms, max = 2.40356 ms, mean = 1.57121 ms, median = 1.56714 ms, percentile(90%) = 1.58105 ms, percentile(95%) = 1.58569 ms, percentile(99%) = 1.60509 ms
[09/18/2023-09:54:19] [I] Enqueue Time: min = 0.0640869 ms, max = 0.246704 ms, mean = 0.151355 ms, median = 0.160156 ms, percentile(90%) = 0.16687 ms, percentile(95%) = 0.171387 ms, percentile(99%) = 0.184448 ms
[09/18/2023-09:54:19] [I] GPU Compute Time: min = 1.1 ms, max = 2.0 ms, mean = 1.15 ms, median = 1.14 ms, percentile(90%) = 1.16 ms, percentile(95%) = 1.17 ms, percentile(99%) = 1.2 ms
[09/18/2023-09:54:19] [I] Total Host Walltime: 3.00354 s
&&&& PASSED TensorRT.trtexec [TensorRT v8602] # trtexec --loadEngine=model.engine
"""


def _onnx_file(path, ops=("Relu",), opset=17, domain="", int64_weight=False):
    nodes, current, inits = [], "input", []
    for index, op in enumerate(ops):
        inputs = [current]
        if op == "LayerNormalization":
            inits.append(helper.make_tensor("scale", TensorProto.FLOAT, [3], [1.0, 1.0, 1.0]))
            inputs.append("scale")
        nodes.append(helper.make_node(op, inputs, [f"t{index}"], domain=domain if index == 0 else ""))
        current = f"t{index}"
    nodes.append(helper.make_node("Cast", [current], ["logits"], to=TensorProto.FLOAT))
    if int64_weight:
        inits.append(helper.make_tensor("w", TensorProto.INT64, [3], [1, 2, 3]))
        nodes.insert(0, helper.make_node("Mul", ["w", "w"], ["w_squared"]))  # consumed as data
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], inits,
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_engine_filename_and_bad_inputs():
    assert engine_filename("jetson-orin-nano", "8.6", "fp16") == "model.jetson-orin-nano.trt8.6.fp16.engine"
    assert engine_filename("rtx", "10.3.0", Precision.INT8) == "model.rtx.trt10.3.0.int8.engine"
    with pytest.raises(Exception):
        engine_filename("../x", "8.6", "fp16")
    with pytest.raises(ExportError):
        engine_filename("rtx", "8.6; rm -rf /", "fp16")


def _sidecar(**overrides) -> EngineSidecar:
    values = dict(engine_file="model.orin.trt8.6.fp16.engine", tensorrt_version="8.6.2",
                  gpu_name="Orin", compute_capability="8.7", precision=Precision.FP16,
                  onnx_sha256="a" * 64, profile="orin", batch_min=1, batch_opt=1, batch_max=8)
    values.update(overrides)
    return EngineSidecar(**values)


def test_version_guard(tmp_path):
    engine = tmp_path / "model.orin.trt8.6.fp16.engine"
    write_engine_sidecar(engine, _sidecar())
    sidecar = read_engine_sidecar(engine)
    assert sidecar == _sidecar()
    check_engine_compatible(sidecar, "8.6.2.3", "orin", compute_capability="8.7", onnx_sha256="a" * 64)
    check_engine_compatible(sidecar, "8.6", "Orin")
    with pytest.raises(ExportError, match="built by TensorRT 8.6.2 but TensorRT 8.6.1"):
        check_engine_compatible(sidecar, "8.6.1", "Orin")
    with pytest.raises(ExportError, match="TensorRT 10.3"):
        check_engine_compatible(sidecar, "10.3.0", "Orin")
    with pytest.raises(ExportError, match="GPU 'Orin'.*'NVIDIA GeForce RTX 3090'"):
        check_engine_compatible(sidecar, "8.6.2", "NVIDIA GeForce RTX 3090")
    with pytest.raises(ExportError, match="compute capability"):
        check_engine_compatible(sidecar, "8.6.2", "Orin", compute_capability="8.6")
    with pytest.raises(ExportError, match="stale"):
        check_engine_compatible(sidecar, "8.6.2", "Orin", onnx_sha256="b" * 64)
    with pytest.raises(ExportError, match="no sidecar"):
        read_engine_sidecar(tmp_path / "other.engine")


def test_trtexec_command_per_precision():
    common = dict(batch_min=1, batch_opt=4, batch_max=8, workspace_mib=512, input_shape=(3, 32, 32))
    fp16 = trtexec_command("m.onnx", "m.engine", precision="fp16", **common)
    assert fp16 == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine",
                    "--minShapes=input:1x3x32x32", "--optShapes=input:4x3x32x32",
                    "--maxShapes=input:8x3x32x32", "--memPoolSize=workspace:512M", "--fp16",
                    "--skipInference"]
    fp32 = trtexec_command("m.onnx", "m.engine", precision="fp32", trt_version="8.5", **common)
    assert "--fp16" not in fp32 and fp32[-1] == "--buildOnly"
    int8 = trtexec_command("m.onnx", "m.engine", precision="int8", calib_cache="m.abc.calib", **common)
    assert {"--int8", "--calib=m.abc.calib"} <= set(int8)
    with pytest.raises(ExportError, match="calibration cache"):
        trtexec_command("m.onnx", "m.engine", precision="int8", **common)
    with pytest.raises(ExportError, match="min <= opt <= max"):
        trtexec_command("m.onnx", "m.engine", precision="fp16", batch_min=4, batch_opt=2, batch_max=8)


def test_parse_trtexec_output():
    parsed = parse_trtexec_output(TRTEXEC_SAMPLE)
    assert parsed["throughput_qps"] == pytest.approx(858.971)
    assert parsed["latency"] == pytest.approx({
        "min_ms": 1.53241, "max_ms": 2.40356, "mean_ms": 1.57121, "median_ms": 1.56714,
        "p90_ms": 1.58105, "p95_ms": 1.58569, "p99_ms": 1.60509})
    assert parsed["gpu_compute"]["p99_ms"] == pytest.approx(1.2)
    assert (parsed["tensorrt_version"], parsed["gpu_name"], parsed["compute_capability"]) == ("8.6.2", "Orin", "8.7")
    old = "[I] TensorRT version: 8001\n" + TRTEXEC_SAMPLE.split("=== Performance summary ===")[1]
    assert parse_trtexec_output(old)["tensorrt_version"] == "8.0.1"
    with pytest.raises(ExportError, match="no performance summary"):
        parse_trtexec_output(TRTEXEC_SAMPLE.split("=== Performance summary ===")[0])


def test_calibration_cache_is_keyed_by_onnx_hash(tmp_path):
    first = _onnx_file(tmp_path / "model.onnx")
    cache = calibration_cache_path(first)
    assert cache.parent == tmp_path and cache.name.startswith("model.") and cache.suffix == ".calib"
    assert read_calibration_cache(first) is None
    write_calibration_cache(first, b"TRT-8602-EntropyCalibration2\ninput: 3c010a14\n")
    assert read_calibration_cache(first).startswith(b"TRT-8602")
    _onnx_file(first, ops=("Relu", "Sigmoid"))  # re-exported: another network, another hash
    assert calibration_cache_path(first) != cache
    assert read_calibration_cache(first) is None  # the old cache is not reused


def test_calibration_batches_drop_partial_and_need_enough_images():
    import numpy as np

    images = np.zeros((10, 3, 4, 4), dtype=np.float32)
    batches = list(calibration_batches(images, 4))
    assert [b.shape for b in batches] == [(4, 3, 4, 4)] * 2
    with pytest.raises(ExportError, match="at least 16"):
        list(calibration_batches(images, 16))


def test_lint_per_version(tmp_path):
    assert max_opset_for_tensorrt("8.6.2") == 17 and max_opset_for_tensorrt("10.3") == 20
    clean = _onnx_file(tmp_path / "clean.onnx", opset=17)
    assert lint_for_tensorrt(clean, "8.6") == []
    new = _onnx_file(tmp_path / "new.onnx", opset=18)
    assert [f.code for f in lint_for_tensorrt(new, "8.6")] == ["opset"]
    assert lint_for_tensorrt(new, "10.0") == []
    layer_norm = _onnx_file(tmp_path / "ln.onnx", ops=("LayerNormalization",), opset=17)
    assert [f.code for f in lint_for_tensorrt(layer_norm, "8.5.2")] == ["unsupported-op"]  # JetPack 5
    assert lint_for_tensorrt(layer_norm, "8.6") == []
    unique = _onnx_file(tmp_path / "u.onnx", ops=("NonZero",), opset=17)
    kinds = {(f.code, f.severity) for f in lint_for_tensorrt(unique, "8.2")}
    assert ("unsupported-op", Severity.ERROR) in kinds
    assert ("data-dependent-shape", Severity.WARNING) in {(f.code, f.severity) for f in lint_for_tensorrt(unique, "8.6")}
    fused = _onnx_file(tmp_path / "f.onnx", ops=("FastGelu",), domain="com.microsoft")
    assert [f.code for f in lint_for_tensorrt(fused, "10.3")] == ["custom-domain"]
    wide = _onnx_file(tmp_path / "w.onnx", int64_weight=True)
    assert [f.code for f in lint_for_tensorrt(wide, "8.6")] == ["int64-weights"]
    assert lint_for_tensorrt(wide, "10.3") == []


def test_build_script_is_valid_bash_with_exact_command(tmp_path):
    folder = tmp_path / "exports with space"
    _onnx_file(folder.mkdir() or folder / "model.onnx")
    script = write_build_script(folder, profile_name="jetson-orin-nano", trt_version="8.6",
                                precision="fp16", input_shape=(3, 32, 32), batch_max=4,
                                workspace_mib=256)
    assert script.name == "build_engine.sh" and script.stat().st_mode & 0o111
    text = script.read_text()
    engine = "model.jetson-orin-nano.trt8.6.fp16.engine"
    expected = trtexec_command("model.onnx", engine, precision="fp16", batch_max=4, workspace_mib=256,
                               input_shape=(3, 32, 32), trt_version="8.6")[1:]
    assert '"$TRTEXEC" ' + " ".join(shlex.quote(a) for a in expected) in text
    assert shutil.which("bash")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_build_script_runs_against_a_fake_trtexec(tmp_path):
    # A stand-in trtexec that prints the documented device lines and writes the engine file.
    _onnx_file(tmp_path / "model.onnx")
    fake = tmp_path / "fake_trtexec"
    fake.write_text('#!/usr/bin/env bash\nfor a in "$@"; do case "$a" in --saveEngine=*) '
                    'printf x > "${a#--saveEngine=}";; esac; done\n'
                    'echo "[I] Selected Device: Orin"; echo "[I] Compute Capability: 8.7"\n'
                    'echo "[I] TensorRT version: ${FAKE_VERSION}"\n')
    fake.chmod(0o755)
    script = write_build_script(tmp_path, profile_name="orin", trt_version="8.6", precision="fp16",
                                input_shape=(3, 32, 32))
    run = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "TRTEXEC": str(fake),
                         "FAKE_VERSION": "8.6.2"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    sidecar = read_engine_sidecar(tmp_path / "model.orin.trt8.6.fp16.engine")
    assert (sidecar.tensorrt_version, sidecar.gpu_name, sidecar.compute_capability) == ("8.6.2", "Orin", "8.7")
    run = subprocess.run(["bash", str(script)], env={"PATH": "/usr/bin:/bin", "TRTEXEC": str(fake),
                         "FAKE_VERSION": "10.3.0"}, capture_output=True, text=True)
    assert run.returncode == 2 and "declares 8.6" in run.stderr
    assert not (tmp_path / "model.orin.trt8.6.fp16.engine").exists()


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT is not installed (needs an NVIDIA GPU and pip install 'seekdeploy[tensorrt]')")
def test_build_engine_python_on_device(tmp_path):
    from seekdeploy.export.tensorrt.builder import build_engine_python

    onnx_path = _onnx_file(tmp_path / "model.onnx")
    sidecar = build_engine_python(onnx_path, tmp_path / "m.engine", precision="fp16", batch_max=4)
    assert (tmp_path / "m.engine").stat().st_size > 0 and sidecar.batch_max == 4
    assert json.loads((tmp_path / "m.engine.json").read_text())["precision"] == "fp16"
