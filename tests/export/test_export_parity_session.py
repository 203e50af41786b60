"""The parity proof loads a model in onnxruntime exactly as the deployed runtime does.

The model here is one on which the session arguments matter: `input @ input.T`, which
onnxruntime's MatmulTransposeFusion turns into one `FusedMatMul` unless that optimizer is switched
off (as it is for fp16 files). Every session is opened through a recorder that saves the graph
onnxruntime really runs; the proof (`export.parity.run_onnx`), the report's scoring
(`report.predictions.run_onnx`) and the backend's `OnnxRuntimeRunner` must run the same graph with
the same optimization settings, file by file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from seekdeploy.backends.onnxruntime import OnnxRuntimeRunner
from seekdeploy.export import parity
from seekdeploy.report import predictions


def _transpose_matmul_model(path: Path) -> Path:
    """`logits = input @ input.T`: (N, 4) -> (N, N); the Transpose feeds the MatMul directly."""
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["input"], ["transposed"], perm=[1, 0]),
         helper.make_node("MatMul", ["input", "transposed"], ["logits"])],
        "transpose_matmul",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "N"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def loads(monkeypatch, tmp_path: Path) -> list[dict]:
    """Every onnxruntime session opened from now on: its settings and the graph it runs."""
    recorded: list[dict] = []
    real_session = ort.InferenceSession

    def recording_session(model, sess_options=None, providers=None, **kwargs):
        options = sess_options if sess_options is not None else ort.SessionOptions()
        optimized = tmp_path / f"optimized-{len(recorded)}.onnx"
        options.optimized_model_filepath = str(optimized)
        session = real_session(model, sess_options=options, providers=providers, **kwargs)
        recorded.append({
            "graph_optimization_level": options.graph_optimization_level,
            "disabled_optimizers": sorted(kwargs.get("disabled_optimizers") or []),
            "ops": [node.op_type for node in onnx.load(str(optimized)).graph.node],
        })
        return session

    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    return recorded


@pytest.mark.parametrize(("name", "precision"), [("model.onnx", "fp32"), ("model.fp16.onnx", "fp16")])
def test_the_proof_runs_the_graph_the_runtime_runs(loads, tmp_path, name, precision) -> None:
    path = _transpose_matmul_model(tmp_path / "role" / name)
    images = np.arange(12, dtype=np.float32).reshape(3, 4) / 12  # (N, 4)

    proven = parity.run_onnx(path, images)
    scored = predictions.run_onnx(path, images)
    with OnnxRuntimeRunner(path, threads=1, precision=precision) as runner:
        deployed = runner.infer({"input": images})[0]

    proof, report, runtime = loads
    assert proof == runtime, f"the parity proof loads {name} differently from the runtime"
    assert report == runtime, f"the report scores {name} differently from the runtime"
    np.testing.assert_array_equal(proven, deployed)
    np.testing.assert_array_equal(scored, deployed)


def test_the_session_arguments_matter_on_this_model(loads, tmp_path) -> None:
    """Without this, the test above could pass on a model no setting changes."""
    for name in ("model.onnx", "model.fp16.onnx"):
        parity.run_onnx(_transpose_matmul_model(tmp_path / name.replace(".", "-") / name),
                        np.ones((2, 4), np.float32))
    fp32, fp16 = loads
    assert fp32["ops"] == ["FusedMatMul"]  # the fusion ran
    assert fp16["ops"] == ["Transpose", "MatMul"]  # switched off for fp16 files
