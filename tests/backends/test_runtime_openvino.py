"""OpenVINO as a runtime: the runner matches ONNX Runtime, `profile` times it with the same protocol
and schema locally and over SSH, `doctor` reports it, and a profile asking for it where it is not
installed is one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

try:
    from sshd import client_options, make_tiny_onnx, sshd_server, tiny_profile  # noqa: F401 (a fixture)
except ImportError:  # tests/ imported as a package
    from tests.sshd import client_options, make_tiny_onnx, sshd_server, tiny_profile  # noqa: F401 (a fixture)

from helpers import write_tiny_profile
from seekdeploy.errors import MissingDependencyError
from seekdeploy.export.parity import compare_logits, run_onnx
from seekdeploy.runtime.result_schema import validate_model_result

OPENVINO_MISSING = "OpenVINO is not installed (pip install 'seekdeploy[openvino]')"
FAST_PROTOCOL = (("duration_ms: 1000", "duration_ms: 50"), ("min_iterations: 100", "min_iterations: 20"),
                 ("warmup_ms: 200", "warmup_ms: 10"), ("name: onnxruntime", "name: openvino"),
                 ("channels: 1", "channels: 3"), ("threads: 0", "threads: 1"),
                 ("latency_ms: 1.0", "latency_ms: 50.0"))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "base"
    folder.mkdir()
    return make_tiny_onnx(folder / "model.onnx")  # (B, 3, 8, 8) -> (B, 5)


@pytest.fixture
def openvino():
    return pytest.importorskip("openvino", reason=OPENVINO_MISSING)


@pytest.fixture
def without_openvino(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This process and its children cannot import openvino (as on a machine without the extra)."""
    blocker = tmp_path / "blocker" / "openvino"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named openvino (hidden by the test)')\n")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError here
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))  # ... and in the agent's child process
    return blocker.parent


def test_runner_matches_onnxruntime_in_fp32(openvino, tiny_onnx: Path) -> None:
    from seekdeploy.backends.openvino import OpenVinoRunner, openvino_logits
    from seekdeploy.backends import create_runner

    images = np.random.default_rng(0).standard_normal((70, 3, 8, 8)).astype(np.float32)
    figures = compare_logits(run_onnx(tiny_onnx, images), openvino_logits(tiny_onnx, images))
    assert figures.max_abs <= 1e-4 and figures.top1_agreement == 1.0 and figures.n == 70
    runner = create_runner("openvino", tiny_onnx, threads=1)
    assert isinstance(runner, OpenVinoRunner)
    with runner:
        assert [(i.name, i.shape) for i in runner.input_infos()] == [("input", (None, 3, 8, 8))]
        # fp32 models run in f32 even where the CPU has bf16 (it would default to bf16 there)
        assert runner._compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
        first, second = runner.infer({"input": images[:2]})[0], runner.infer({"input": images[2:4]})[0]
        assert first.shape == (2, 5) and not np.array_equal(first, second)  # copies, not a reused buffer


def test_profile_times_openvino_with_the_protocol_and_judges_it(openvino, run_cli, tiny_onnx: Path,
                                                                tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path, "tiny-openvino", extra=FAST_PROTOCOL)
    out = tmp_path / "profile.json"
    done = run_cli("profile", str(tiny_onnx.parent), "--profile", str(profile), "--repeats", "2",
                   "--sweep", "--out", str(out))
    assert done.exit_code == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    result = document["results"][0]
    assert validate_model_result(result) == []
    assert result["runtime"] == "openvino" and result["providers"] == ["openvino-CPU"]
    assert result["input_shape"] == [1, 3, 8, 8] and result["model_file"] == "model.onnx"
    assert result["latency"]["iterations"] >= 20 and 0 < result["latency"]["min_ms"] <= result["latency"]["p95_ms"]
    assert len(result["repeats"]) == 2 and [entry["batch"] for entry in result["sweep"]] == [1, 8, 32]
    assert result["peak_memory_mib"] > 0
    assert "PASS" in done.stdout and "openvino" in done.stdout


@pytest.mark.ssh
def test_profile_over_ssh_with_openvino(openvino, sshd_server, tiny_onnx: Path) -> None:
    from seekdeploy.measure.remote import profile_remote

    outcome = profile_remote(tiny_onnx.parent, tiny_profile("openvino"), [sshd_server.host],
                             options=client_options(sshd_server), python=sys.executable)[sshd_server.host]
    assert outcome.ok, outcome.error
    result = outcome.result
    assert validate_model_result(result) == []
    assert result["runtime"] == "openvino" and result["host"] == sshd_server.host
    assert result["latency"]["iterations"] >= 5


def test_missing_openvino_is_one_clear_error(without_openvino: Path, run_cli, tiny_onnx: Path,
                                             tmp_path: Path) -> None:
    from seekdeploy.doctor import check_environment
    from seekdeploy.remote import local_agent
    from seekdeploy.backends.openvino import OpenVinoRunner

    profile = write_tiny_profile(tmp_path, "tiny-openvino", extra=FAST_PROTOCOL)
    done = run_cli("profile", str(tiny_onnx.parent), "--profile", str(profile))
    assert done.exit_code == 1 and "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert "openvino is needed for the OpenVINO runtime" in message
    assert "pip install 'seekdeploy[openvino]'" in message and len(message.splitlines()) <= 3
    with pytest.raises(MissingDependencyError, match=r"seekdeploy\[openvino\]"), OpenVinoRunner(tiny_onnx):
        pass
    doctor = {check.name: check for check in check_environment()}["openvino"]
    assert not doctor.usable and "seekdeploy[openvino]" in doctor.fix
    # The agent in a child process (as on a device without OpenVINO) names the missing module.
    with pytest.raises(MissingDependencyError, match=r"cannot import openvino.*seekdeploy\[openvino\]"):
        local_agent._raise_for_exit(_agent_without_openvino(tiny_onnx), tiny_onnx, "openvino")


def _agent_without_openvino(model: Path) -> subprocess.CompletedProcess:
    from seekdeploy.remote.agent_files import AgentRequest, agent_argv, stage_agent

    request = AgentRequest(model_name=model.name, runtime="openvino", providers=(), threads=1,
                           input_chw=(3, 8, 8), batch=1, warmup_ms=1.0, warmup_iterations=1,
                           duration_ms=1.0, min_iterations=1)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        stage_agent(Path(folder), "openvino")
        (Path(folder) / model.name).symlink_to(model)
        return subprocess.run(agent_argv(sys.executable, folder, request), capture_output=True, text=True,
                              timeout=120, check=False)


@pytest.mark.ssh
def test_int8_cpu_profile_ships_the_qdq_copy_over_ssh(sshd_server, tiny_onnx: Path, tmp_path: Path) -> None:
    from seekdeploy.export.quantize import CalibrationMethod, quantize_int8
    from seekdeploy.measure.remote import profile_remote

    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(tiny_onnx.read_bytes())
    images = np.random.default_rng(0).standard_normal((32, 3, 8, 8)).astype(np.float32)
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", images, CalibrationMethod.MINMAX)
    # An int8 ONNX Runtime profile times the QDQ copy and needs no TensorRT calibration cache.
    outcome = profile_remote(folder, tiny_profile("onnxruntime", "int8"), [sshd_server.host],
                             options=client_options(sshd_server), python=sys.executable)[sshd_server.host]
    assert outcome.ok, outcome.error
    assert outcome.result["model_file"] == "model.int8.onnx" and outcome.result["precision"] == "int8"
