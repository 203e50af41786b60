"""Runners on a real tiny ONNX model (real onnxruntime), the torch reference, and TensorRT gating."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from seekdeploy.errors import RuntimeBackendError
from seekdeploy.measure.local import ProfileRequest, cv_percent, make_feed, profile_model
from seekdeploy.runtime.result_schema import validate_model_result
from seekdeploy.backends import create_runner
from seekdeploy.backends.onnxruntime import OnnxRuntimeRunner
from seekdeploy.backends.torch import TorchRunner
from seekdeploy.runtime.timing import ProtocolSettings

torch = pytest.importorskip("torch")

FAST = ProtocolSettings(warmup_ms=0, warmup_iterations=2, duration_ms=20, min_iterations=5)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 5),
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            tiny_model(), torch.zeros(1, 3, 8, 8), str(path), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return path


def test_onnxruntime_runner_matches_torch(onnx_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)  # (B, C, H, W)
    with OnnxRuntimeRunner(onnx_path, threads=1) as runner:
        assert runner.is_active
        info = runner.input_infos()[0]
        assert (info.name, info.shape, info.dtype) == ("input", (None, 3, 8, 8), "float32")
        (logits,) = runner.infer({"input": x})
        assert runner.session_providers == ["CPUExecutionProvider"]
    assert not runner.is_active
    with TorchRunner(tiny_model()) as reference:
        (expected,) = reference.infer({"input": x})
    assert logits.shape == (2, 5)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_runner_errors_are_user_errors(onnx_path: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeBackendError, match="did you mean 'CPUExecutionProvider'"):
        OnnxRuntimeRunner(onnx_path, providers=("CPUExecutionProvidr",)).activate()
    with pytest.raises(RuntimeBackendError, match="does not exist"):
        OnnxRuntimeRunner(tmp_path / "missing.onnx").activate()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(RuntimeBackendError, match="cannot load"):
        OnnxRuntimeRunner(garbage).activate()
    with pytest.raises(RuntimeBackendError, match="before activate"):
        OnnxRuntimeRunner(onnx_path).infer({})
    with OnnxRuntimeRunner(onnx_path) as runner, pytest.raises(RuntimeBackendError, match="cannot run"):
        runner.infer({"input": np.zeros((1, 3, 9, 9), np.float32)})
    with pytest.raises(RuntimeBackendError, match="did you mean 'torch'"):
        create_runner("torhc", onnx_path)


def test_feed_rejects_a_fixed_axis_mismatch(onnx_path: Path) -> None:
    with OnnxRuntimeRunner(onnx_path) as runner:
        assert make_feed(runner, (4, 3, 8, 8))["input"].shape == (4, 3, 8, 8)
        with pytest.raises(RuntimeBackendError, match="axis 2"):
            make_feed(runner, (1, 3, 16, 8))


def test_profile_model_produces_a_valid_result(onnx_path: Path) -> None:
    request = ProfileRequest(
        model=onnx_path, runtime="onnxruntime", input_shape=(1, 3, 8, 8), protocol=FAST,
        role="base", threads=1, repeats=3, sweep_batches=(2, 4),
    )  # fmt: skip
    result = profile_model(request)
    assert validate_model_result(result) == []
    assert len(result["repeats"]) == 3
    medians = sorted(r["median_ms"] for r in result["repeats"])
    assert result["latency"]["median_ms"] == medians[0]  # the quietest window is reported
    assert result["latency"]["iterations"] >= 5
    assert [entry["batch"] for entry in result["sweep"]] == [2, 4]
    assert result["file_size_mib"] == pytest.approx(onnx_path.stat().st_size / 2**20)
    assert result["peak_memory_mib"] > 10
    assert result["environment"]["threads"] == 1
    assert result["model_sha256"] and result["model_file"] == "model.onnx"


def test_torch_runner_under_profile_model() -> None:
    request = ProfileRequest(model=tiny_model(), runtime="torch", input_shape=(1, 3, 8, 8), protocol=FAST)
    result = profile_model(request)
    assert result["runtime"] == "torch" and result["file_size_mib"] is None
    assert result["latency"]["iterations"] >= 5


def test_cv_percent() -> None:
    assert cv_percent([1.0]) == 0.0
    assert cv_percent([1.0, 3.0]) == pytest.approx(50.0)


@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed here")
def test_tensorrt_runner_loads_an_engine(tmp_path: Path) -> None:  # pragma: no cover - needs a GPU
    from seekdeploy.backends.tensorrt import TensorRTRunner

    engine = Path(__file__).resolve().parents[1] / "fixtures" / "tiny.engine"
    if not engine.is_file():
        pytest.skip("no prebuilt engine for this GPU/TensorRT; build one with trtexec to run this test")
    with TensorRTRunner(engine) as runner:
        shape = tuple(d or 1 for d in runner.input_infos()[0].shape)
        outputs = runner.infer({runner.input_infos()[0].name: np.zeros(shape, np.float32)})
        assert outputs and runner.last_compute_ms() >= 0.0


def test_tensorrt_runner_without_tensorrt_says_what_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed; the missing-dependency path cannot be shown")
    from seekdeploy.errors import MissingDependencyError
    from seekdeploy.backends.tensorrt import TensorRTRunner

    with pytest.raises(MissingDependencyError, match=r"pip install 'seekdeploy\[tensorrt\]'"):
        TensorRTRunner(tmp_path / "model.engine").activate()
