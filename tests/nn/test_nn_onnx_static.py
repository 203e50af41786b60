"""Exported static models: the graph of an equally sized hand-built network, exact under onnxruntime."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seekdeploy.nn import build_static, create_supernet, default_pair, to_static

torch.set_num_threads(1)


def export(model: torch.nn.Module, path) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, 3, 16, 16),), str(path), input_names=["input"],
                          output_names=["logits"], dynamo=False)
    return onnx.load(str(path))


def graph_signature(model: onnx.ModelProto) -> tuple[Counter, Counter]:
    ops = Counter(node.op_type for node in model.graph.node if node.op_type != "Identity")
    shapes = Counter(tuple(init.dims) for init in model.graph.initializer)
    return ops, shapes


def randomize(model: torch.nn.Module) -> None:
    # Random BN affine/statistics: keeps the exporter from de-duplicating identical tensors.
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "var" in name else torch.randn_like(tensor))


@pytest.mark.parametrize("family", ["resnet", "mbconv"])
def test_exported_static_equals_hand_built_graph(family, tmp_path):
    torch.manual_seed(0)
    config, base, _ = default_pair(family)
    net = create_supernet(family, config, num_classes=5, in_channels=3, image_size=16)
    randomize(net)
    net.eval()
    sliced = export(to_static(net, base, "base"), tmp_path / "sliced.onnx")
    fresh_model = build_static(base, num_classes=5, in_channels=3, image_size=16)
    randomize(fresh_model)
    fresh = export(fresh_model, tmp_path / "fresh.onnx")
    assert graph_signature(sliced) == graph_signature(fresh)
    ops = graph_signature(sliced)[0]
    assert not {"Slice", "Gather", "Shape"} & set(ops)
    assert ops["Conv"] == sum(isinstance(m, torch.nn.Conv2d) for m in fresh_model.modules())

    x = torch.randn(3, 3, 16, 16)
    session = ort.InferenceSession(str(tmp_path / "sliced.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": x[:1].numpy()})[0]
    with torch.no_grad():
        expected = net(x[:1], base, "base").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
