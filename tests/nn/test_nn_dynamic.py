"""Elastic layers: prefix slicing and per-role BatchNorm statistics that only touch their slice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seekdeploy.nn import create_supernet, default_pair
from seekdeploy.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d, DynamicLayerNorm, DynamicLinear

torch.set_num_threads(1)


def test_bn_train_step_touches_only_active_role_and_prefix():
    bn = DynamicBatchNorm2d(8, ("base", "motivated")).train()
    before = {name: buf.clone() for name, buf in bn.named_buffers()}
    reference = nn.BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    out = bn(x, "base")
    expected = reference(x)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(bn.running_mean_base[:3], reference.running_mean)
    assert torch.allclose(bn.running_var_base[:3], reference.running_var)
    assert torch.equal(bn.running_mean_base[3:], before["running_mean_base"][3:])
    assert torch.equal(bn.running_var_base[3:], before["running_var_base"][3:])
    for name in ("running_mean_motivated", "running_var_motivated", "num_batches_tracked_motivated"):
        assert torch.equal(getattr(bn, name), before[name])
    assert bn.num_batches_tracked_base.item() == 1


def test_bn_cumulative_momentum_and_shared_role():
    bn = DynamicBatchNorm2d(4, ("shared",), momentum=None).train()
    reference = nn.BatchNorm2d(4, momentum=None).train()
    for _ in range(3):
        x = torch.randn(2, 4, 3, 3)
        bn(x, "shared"), reference(x)
    assert torch.allclose(bn.running_mean_shared, reference.running_mean)
    assert bn.num_batches_tracked_shared.item() == 3


def test_supernet_base_step_leaves_other_role_and_outside_slice_unchanged():
    config, base, _ = default_pair("resnet")
    net = create_supernet("resnet", config, num_classes=4, in_channels=1, image_size=8).train()
    before = {n: b.clone() for n, b in net.named_buffers()}
    net(torch.randn(4, 1, 8, 8), base, "base")
    region = net.slice_map(base, "base")
    changed = 0
    for name, buf in net.named_buffers():
        mask = torch.ones_like(buf, dtype=torch.bool)
        if region[name] is not None:
            mask[region[name]] = False
        assert torch.equal(buf[mask], before[name][mask]), name
        changed += int(not torch.equal(buf, before[name]))
    assert changed > 0


def test_shared_bn_maps_every_role_to_one_set():
    config, base, _ = default_pair("resnet")
    net = create_supernet("resnet", config, num_classes=4, in_channels=1, image_size=8, bn_roles=("shared",))
    assert net.check_role("base") == net.check_role("motivated") == "shared"
    assert not any(n.endswith("_base") for n, _ in net.named_buffers())


def test_conv_linear_layernorm_use_prefixes():
    conv = DynamicConv2d(6, 8, 3, stride=2, bias=True)
    x = torch.randn(2, 4, 7, 7)
    expected = F.conv2d(x, conv.weight[:5, :4], conv.bias[:5], 2, 1)
    assert torch.equal(conv(x, 5), expected)
    full = torch.randn(2, 6, 7, 7)
    assert torch.equal(conv(full), F.conv2d(full, conv.weight, conv.bias, 2, 1))
    depthwise = DynamicConv2d(6, 6, 5, depthwise=True)
    assert depthwise(x).shape == (2, 4, 7, 7)
    assert torch.equal(depthwise(x), F.conv2d(x, depthwise.weight[:4], None, 1, 2, 1, 4))
    linear = DynamicLinear(6, 3)
    assert torch.equal(linear(torch.ones(2, 4), 2), F.linear(torch.ones(2, 4), linear.weight[:2, :4], linear.bias[:2]))
    norm = DynamicLayerNorm(6)
    assert norm(torch.randn(3, 4)).shape == (3, 4)
