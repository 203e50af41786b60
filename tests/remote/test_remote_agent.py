"""The standalone agent, run as the device runs it: a bare interpreter with numpy and onnxruntime only.

The agent is staged into a flat folder and started with `python -S` and a PYTHONPATH holding only
links to numpy and onnxruntime plus stub `torch` and `seekdeploy` packages that leave a marker file
and refuse to import, so the test proves the agent never imports either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    from sshd import make_tiny_onnx, write_fake_trtexec
except ImportError:  # tests/ imported as a package
    from tests.sshd import make_tiny_onnx, write_fake_trtexec

from seekdeploy.backends import agent_tensorrt
from seekdeploy.remote.agent_files import stage_agent
from seekdeploy.runtime.environment import collect_environment
from seekdeploy.runtime.result_schema import build_model_result, validate_model_result
from seekdeploy.backends.onnxruntime import OnnxRuntimeRunner
from seekdeploy.runtime.timing import ProtocolSettings, measure

FAST = ["--input-shape", "3,8,8", "--warmup-ms", "5", "--warmup-iterations", "3",
        "--duration-ms", "20", "--min-iterations", "5", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("model") / "model.onnx")


def _isolated_site(folder: Path, modules: tuple[str, ...]) -> Path:
    """A site folder with links to `modules` only, and stubs that refuse torch and seekdeploy."""
    site = folder / "site"
    site.mkdir()
    real = Path(np.__file__).resolve().parent.parent
    for entry in real.iterdir():
        stem = entry.name.split("-")[0].split(".libs")[0]
        if stem in modules:
            (site / entry.name).symlink_to(entry)
    for hidden in ("torch", "seekdeploy"):
        (site / hidden).mkdir()
        (site / hidden / "__init__.py").write_text(
            f"open({str(folder / (hidden + '.imported'))!r}, 'w').close()\n"
            f"raise ImportError('{hidden} is hidden from the agent test')\n"
        )
    return site


def _run_isolated(folder: Path, args: list[str], modules=("numpy", "onnxruntime"), runtime="onnxruntime"):
    agent = stage_agent(folder / "agent", runtime)
    site = _isolated_site(folder, modules)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(folder)}
    return subprocess.run([sys.executable, "-S", str(agent), *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)  # fmt: skip


def _local_result(model: Path) -> dict:
    """What the local runner produces for the same model, through the same shared builder."""
    protocol = ProtocolSettings(5.0, 3, 20.0, 5)
    feed = {"input": np.zeros((1, 3, 8, 8), dtype=np.float32)}
    with OnnxRuntimeRunner(model, threads=1) as runner:
        stats = measure(lambda: runner.infer(feed), protocol)
    return build_model_result(
        role=None, model_file=model.name, runtime="onnxruntime", providers=["CPUExecutionProvider"],
        threads=1, input_shape=[1, 3, 8, 8], protocol=protocol.to_json(), latency=stats.to_json(),
        environment=collect_environment("onnxruntime", ["CPUExecutionProvider"], 1),
        peak_memory_mib=1.0, file_size_mib=0.1,
    )  # fmt: skip


def test_agent_runs_without_torch_and_matches_local_schema(tmp_path: Path, tiny_onnx: Path) -> None:
    done = _run_isolated(tmp_path, ["--model", str(tiny_onnx), *FAST, "--role", "base",
                                    "--sweep-batches", "2"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "torch.imported").exists(), "the agent imported torch"
    assert not (tmp_path / "seekdeploy.imported").exists(), "the agent imported seekdeploy"
    remote = json.loads(done.stdout)
    assert validate_model_result(remote) == []
    local = _local_result(tiny_onnx)
    assert set(remote) == set(local)
    for key in ("latency", "protocol", "environment"):
        assert set(remote[key]) == set(local[key]), key
    assert remote["protocol"] == local["protocol"]
    assert remote["role"] == "base" and remote["input_shape"] == [1, 3, 8, 8]
    assert remote["latency"]["iterations"] >= 5 and 0 < remote["latency"]["min_ms"] <= remote["latency"]["p95_ms"]
    assert remote["sweep"][0]["input_shape"] == [2, 3, 8, 8]
    assert remote["environment"]["versions"]["onnxruntime"]  # read from the linked dist-info
    assert remote["peak_memory_mib"] > 0


def test_agent_reports_a_missing_runtime(tmp_path: Path, tiny_onnx: Path) -> None:
    done = _run_isolated(tmp_path, ["--model", str(tiny_onnx), *FAST], modules=("numpy",))
    assert done.returncode == 3
    assert "seekdeploy-agent: missing-module onnxruntime" in done.stderr


def test_agent_reports_an_unloadable_model(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    done = _run_isolated(tmp_path, ["--model", str(broken), *FAST])
    assert done.returncode == 4
    assert "seekdeploy-agent: error onnxruntime cannot load broken.onnx" in done.stderr


def test_tensorrt_path_builds_engine_with_trtexec(tmp_path: Path, tiny_onnx: Path) -> None:
    work = tmp_path / "device"
    work.mkdir()
    model = work / "model.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    trtexec = write_fake_trtexec(tmp_path, sys.executable)
    done = _run_isolated(tmp_path, ["--model", str(model), *FAST, "--runtime", "tensorrt",
                                    "--precision", "fp16", "--profile-name", "orin",
                                    "--trtexec", str(trtexec)], runtime="tensorrt")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert validate_model_result(result) == []
    engine = "model.orin.trt10.3.fp16.engine"
    assert result["model_file"] == engine and result["providers"] == ["TensorRT 10.3"]
    assert (work / engine).read_bytes() == b"fake engine"
    assert json.loads((work / (engine + ".json")).read_text())["builder"] == "trtexec"
    assert json.loads((work / "artifacts.json").read_text())["files"] == [engine, engine + ".json"]
    assert result["latency"]["min_ms"] == pytest.approx(1.0)
    assert result["latency"]["device_compute"]["mean_ms"] == pytest.approx(0.5)
    flags = json.loads((tmp_path / "trtexec.args.json").read_text())
    assert "--fp16" in flags and "--shapes=input:1x3x8x8" in flags and "--warmUp=5" in flags


def test_tensorrt_path_without_tensorrt_says_what_to_install(tmp_path: Path, tiny_onnx: Path) -> None:
    done = _run_isolated(tmp_path, ["--model", str(tiny_onnx), *FAST, "--runtime", "tensorrt",
                                    "--trtexec", ""], runtime="tensorrt")  # fmt: skip
    if os.access("/usr/src/tensorrt/bin/trtexec", os.X_OK):
        pytest.skip("this machine has trtexec")
    assert done.returncode == 4
    assert "neither TensorRT's Python bindings nor trtexec" in done.stderr


def test_trtexec_helpers() -> None:
    core = agent_tensorrt.core  # the one TensorRT core, shared with the exporter
    assert core.engine_filename("jetson-orin-nano", core.major_minor("8.6.2.3"), "int8") == (
        "model.jetson-orin-nano.trt8.6.int8.engine"
    )
    protocol = ProtocolSettings(200.0, 10, 1500.0, 50)
    argv = agent_tensorrt.timed_trtexec_command("trtexec", "m.onnx", "m.engine", [4, 3, 32, 32], "input",
                                                "int8", protocol, 512, "t.json", "calib.cache")  # fmt: skip
    assert argv[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
    for flag in ("--shapes=input:4x3x32x32", "--duration=1.5", "--iterations=50", "--warmUp=200",
                 "--int8", "--fp16", "--calib=calib.cache", "--memPoolSize=workspace:512M"):
        assert flag in argv, flag
    latency, compute = agent_tensorrt.parse_trtexec_times(
        [{"count": 2}, {"latencyMs": 1.5, "computeMs": 1.0}, {"startH2DMs": 1.0, "endD2HMs": 3.0}]
    )
    assert latency == [1.5, 2.0] and compute == [1.0]


def test_agent_files_parse_as_python_3_8() -> None:
    """JetPack 5 devices run Python 3.8: every file shipped to a device must be 3.8 syntax, and
    must not subscript builtin or collections.abc generics at import time (3.9+)."""
    import ast

    from seekdeploy.remote.agent_files import MINIMUM_PYTHON, agent_files

    assert MINIMUM_PYTHON == (3, 8)
    for runtime in ("onnxruntime", "tensorrt", "openvino"):
        for path in agent_files(runtime).values():
            source = Path(path).read_text(encoding="utf-8")
            ast.parse(source, filename=str(path), feature_version=(3, 8))
            assert "from collections.abc import" not in source, path


def test_exporter_and_agent_share_one_tensorrt_core() -> None:
    """One TensorRT core builds the names and command lines of both the exporter's build_engine.sh
    and the device agent: same version-dependent flags, same engine names."""
    from seekdeploy.export.tensorrt import builder, engines, trtexec

    core = agent_tensorrt.core
    assert trtexec.tensorrt_core is core and engines.tensorrt_core is core and builder.tensorrt_core is core
    protocol = ProtocolSettings(200.0, 10, 1500.0, 50)
    for version, workspace in (("8.2", "--workspace=256"), ("10.3", "--memPoolSize=workspace:256M")):
        export = trtexec.trtexec_command("m.onnx", "m.engine", precision="fp16", batch_max=4, workspace_mib=256,
                                         input_shape=(3, 8, 8), trt_version=version)
        agent = agent_tensorrt.timed_trtexec_command("trtexec", "m.onnx", "m.engine", [4, 3, 8, 8], "input",
                                                     "fp16", protocol, 256, "t.json", trt_version=version)
        assert export[:3] == agent[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"]
        assert workspace in export and workspace in agent and "--fp16" in export and "--fp16" in agent
        assert "--maxShapes=input:4x3x8x8" in export and "--shapes=input:4x3x8x8" in agent
    assert engines.engine_filename("orin", "8.6", "fp16") == core.engine_filename("orin", "8.6", "fp16")
