"""ONNX export: clean graphs, torch parity, dynamic batch, and refusal of broken/unsafe files."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from seekdeploy.errors import ExportError
from seekdeploy.export.onnx_export import Exporter, export_onnx, load_onnx_checked
from seekdeploy.export.onnx_passes import optimize_onnx

SHAPE = (1, 3, 16, 16)


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))  # (B, 8, H, W)
        return self.fc(x.mean(dim=(2, 3)))  # (B, 10)


class TinyHybrid(nn.Module):
    """Conv+BN stem then an attention block: every layer kind of the three families, one export."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TinyConvNet()
        self.vit = TinyViT()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x) + self.vit(x)  # (B, 10)


class TinyViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, D)
        h = self.norm(tokens)
        tokens = tokens + self.attn(h, h, h, need_weights=False)[0]
        return self.head(tokens.mean(dim=1))  # (B, 10)


def _randomize_bn(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    # One dynamo export for the whole file: its first call costs ~10-15 s on a loaded CPU.
    model = _randomize_bn(TinyHybrid())
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return model, export_onnx(model, path, input_shape=SHAPE)


def test_export_passes_checker_and_records_choice(exported):
    _, info = exported
    assert info.exporter is Exporter.DYNAMO and info.opset == 18
    onnx.checker.check_model(str(info.path), full_check=True)
    model = load_onnx_checked(info.path)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert not list(info.path.parent.glob(".tmp-*"))  # atomic write left nothing behind


@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_torch_at_any_batch(exported, batch):
    model, info = exported
    x = torch.randn(batch, *SHAPE[1:])
    with torch.no_grad():
        reference = model(x).numpy()
    session = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x.numpy()})[0]
    assert logits.shape == (batch, 10)
    assert np.abs(logits - reference).max() <= 1e-5


def test_graph_has_no_weight_slicing_or_dead_ops(exported):
    _, info = exported
    model = onnx.load(str(info.path))
    weights = {t.name for t in model.graph.initializer if len(t.dims) >= 1 and np.prod(t.dims) > 8}
    for node in model.graph.node:
        if node.op_type in ("Slice", "Gather"):
            assert node.input[0] not in weights, f"{node.op_type} slices weight {node.input[0]}"
        assert node.op_type not in ("BatchNormalization", "Dropout", "Identity")  # folded/removed
    used = {name for node in model.graph.node for name in node.input}
    assert all(t.name in used for t in model.graph.initializer)  # no dead weights


def test_conv_bn_exports_as_four_nodes(tmp_path):
    info = export_onnx(_randomize_bn(TinyConvNet()), tmp_path / "c.onnx", input_shape=SHAPE, opset=17)
    assert info.op_counts == {"Conv": 1, "Relu": 1, "ReduceMean": 1, "Gemm": 1}  # BN folded


def test_opset_17_uses_torchscript_and_still_matches(tmp_path):
    model = _randomize_bn(TinyViT())
    info = export_onnx(model, tmp_path / "m17.onnx", input_shape=SHAPE, opset=17)
    assert info.exporter is Exporter.TORCHSCRIPT and info.opset == 17
    x = torch.randn(3, *SHAPE[1:])
    with torch.no_grad():
        reference = model(x).numpy()
    logits = ort.InferenceSession(str(info.path)).run(None, {"input": x.numpy()})[0]
    assert np.abs(logits - reference).max() <= 1e-5


def test_static_batch_export(tmp_path):
    info = export_onnx(_randomize_bn(TinyConvNet()), tmp_path / "s.onnx", input_shape=(2, 3, 8, 8),
                       opset=17, dynamic_batch=False)
    dims = onnx.load(str(info.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 8, 8]


def test_truncated_or_garbage_onnx_is_refused(tmp_path):
    good = export_onnx(_randomize_bn(TinyConvNet()), tmp_path / "good.onnx", input_shape=SHAPE, opset=17).path
    data = good.read_bytes()
    for name, payload in [("cut.onnx", data[: len(data) // 2]), ("junk.onnx", b"\x08\xff" * 50),
                          ("empty.onnx", b"")]:
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(ExportError, match="corrupt|truncated|empty|invalid"):
            load_onnx_checked(bad)
    with pytest.raises(ExportError, match="does not exist"):
        load_onnx_checked(tmp_path / "missing.onnx")


def test_external_data_outside_folder_is_refused(tmp_path):
    good = export_onnx(_randomize_bn(TinyConvNet()), tmp_path / "good.onnx", input_shape=SHAPE, opset=17).path
    model = onnx.load(str(good))
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 1024)
    inside = tmp_path / "export"
    inside.mkdir()
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for location in ("../secret.bin", str(outside)):
        del weight.external_data[:]
        weight.external_data.add(key="location", value=location)
        path = inside / "model.onnx"
        path.write_bytes(model.SerializeToString())
        with pytest.raises(ExportError, match="outside the model's folder"):
            load_onnx_checked(path)


def test_optimize_keeps_copy_only_when_it_removes_nodes(tmp_path, exported):
    _, info = exported
    result = optimize_onnx(info.path, tmp_path / "already.opt.onnx")
    assert not result.kept and not (tmp_path / "already.opt.onnx").exists()  # dynamo graph is lean
    messy = export_onnx(_randomize_bn(TinyViT()), tmp_path / "ts.onnx", input_shape=SHAPE, opset=17)
    result = optimize_onnx(messy.path, tmp_path / "ts.opt.onnx")
    assert result.kept and result.nodes_after < result.nodes_before
    optimized = onnx.load(str(result.path))
    assert {n.domain for n in optimized.graph.node} <= {"", "ai.onnx"}  # stays portable
