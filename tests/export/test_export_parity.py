"""Parity figures, tolerances enforced as errors, fp16 conversion, run_onnx and accuracy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from seekdeploy.errors import ExportError
from seekdeploy.export.onnx_export import export_onnx
from seekdeploy.export.onnx_passes import convert_fp16
from seekdeploy.export.parity import (
    TOLERANCES, ParityFigures, accuracy, check_parity, compare_logits, run_onnx,
)
from seekdeploy.profiles.schema import Precision

SHAPE = (1, 3, 16, 16)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    model[1].running_mean.normal_(0, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((64, *SHAPE[1:])).astype(np.float32)


def test_compare_logits_figures():
    reference = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    candidate = reference + np.array([[0.0, 0.5], [0.0, 0.0], [0.0, 1.5], [0.1, 0.0]])
    figures = compare_logits(reference, candidate)
    assert figures.max_abs == pytest.approx(1.5)
    assert figures.top1_agreement == pytest.approx(0.75)  # row 2 flips to class 1
    assert figures.n == 4 and 0.5 < figures.p99_abs <= 1.5
    with pytest.raises(ExportError, match="shapes"):
        compare_logits(reference, candidate[:3])
    nan = candidate.copy()
    nan[0, 0] = np.nan
    assert compare_logits(reference, nan).max_abs == np.inf


def test_check_parity_is_an_error_not_a_warning():
    ok = ParityFigures(max_abs=5e-5, p99_abs=1e-5, top1_agreement=1.0, n=100)
    assert check_parity(ok, Precision.FP32, "model.onnx") is ok
    with pytest.raises(ExportError, match=r"model.onnx fails its fp32 parity.*max \|diff\|"):
        check_parity(ParityFigures(2e-4, 1e-5, 1.0, 100), "fp32", "model.onnx")
    with pytest.raises(ExportError, match="top-1 agreement 0.9800"):
        check_parity(ParityFigures(1e-3, 1e-3, 0.98, 100), Precision.FP16, "model.fp16.onnx")
    assert TOLERANCES[Precision.FP16].max_abs > TOLERANCES[Precision.FP32].max_abs


def test_the_fp32_bound_grows_with_the_logits_magnitude_and_still_catches_a_graph_error():
    # Rounding of logits near 676 (a 2-epoch digits pair): 1.8e-4 is a relative 3e-7.
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 200, size=(144, 10)).astype(np.float32)
    reference[0, 0] = 676.0
    rounded = reference + rng.uniform(-1.8e-4, 1.8e-4, size=reference.shape).astype(np.float32)
    figures = compare_logits(reference, rounded)
    assert figures.reference_max_abs == pytest.approx(np.abs(reference).max())
    assert 1e-4 < figures.max_abs and check_parity(figures, Precision.FP32, "model.onnx") is figures
    wrong = reference.copy()
    wrong[:, 3] += 0.5  # a real graph error: one logit off by 0.5 on every sample
    with pytest.raises(ExportError, match="per unit of the largest reference logit"):
        check_parity(compare_logits(reference, wrong), Precision.FP32, "model.onnx")
    # Small logits keep the absolute bound.
    small = compare_logits(reference / 1000, reference / 1000 + 2e-4)
    with pytest.raises(ExportError, match=r"max \|diff\| 0.0002 > 0.0001\."):
        check_parity(small, Precision.FP32, "model.onnx")


@pytest.fixture(scope="module")
def fp32_export(tmp_path_factory):
    model = _model()
    path = export_onnx(model, tmp_path_factory.mktemp("p") / "model.onnx", input_shape=SHAPE, opset=17).path
    return model, path


def test_fp32_and_fp16_meet_their_tolerances(fp32_export, images, tmp_path):
    model, path = fp32_export
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    check_parity(compare_logits(reference, run_onnx(path, images, batch_size=16)), "fp32", "fp32")
    half = convert_fp16(path, tmp_path / "model.fp16.onnx")
    proto = onnx.load(str(half))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    logits = run_onnx(half, images, batch_size=16)
    assert logits.dtype == np.float32
    figures = check_parity(compare_logits(reference, logits), Precision.FP16, "fp16")
    assert 0 < figures.max_abs < TOLERANCES[Precision.FP16].max_abs
    with pytest.raises(ExportError):  # fp16 is NOT within the fp32 tolerance: the check has teeth
        check_parity(figures, Precision.FP32, "fp16 held to fp32")


def test_perturbed_fp16_model_fails(fp32_export, images, tmp_path):
    model, _ = fp32_export
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    perturbed = _model()
    with torch.no_grad():
        perturbed[0].weight[0] *= 3.0  # one conv filter off: a real export bug in miniature
    path = export_onnx(perturbed, tmp_path / "bad.onnx", input_shape=SHAPE, opset=17).path
    half = convert_fp16(path, tmp_path / "bad.fp16.onnx")
    with pytest.raises(ExportError, match="fp16 parity"):
        check_parity(compare_logits(reference, run_onnx(half, images)), Precision.FP16, "bad.fp16.onnx")


def test_run_onnx_pads_static_batch_and_accuracy(tmp_path, images):
    model = _model()
    path = export_onnx(model, tmp_path / "s.onnx", input_shape=(4, 3, 16, 16), opset=17,
                       dynamic_batch=False).path
    logits = run_onnx(path, images[:10], batch_size=64)  # 10 = 4 + 4 + 2 (padded)
    with torch.no_grad():
        reference = model(torch.from_numpy(images[:10])).numpy()
    assert logits.shape == (10, 10) and np.abs(logits - reference).max() < 1e-5
    labels = reference.argmax(axis=1)
    assert accuracy(logits, labels) == 1.0
    assert accuracy(logits, (labels + 1) % 10) == 0.0
    with pytest.raises(ExportError):
        accuracy(logits, labels[:3])
