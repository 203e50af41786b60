"""MBConv family specifics: SE optional, ReLU variant, expand-1 stages, small default supernet."""

from __future__ import annotations

import dataclasses

import torch

from seekdeploy.nn import create_supernet, default_pair, estimate_cost, to_static
from seekdeploy.nn.families.mbconv import MBConvConfig

torch.set_num_threads(1)


def test_default_pair_is_small_and_nested():
    config, base, motivated = default_pair("mbconv")
    assert motivated == config.max_spec() and motivated.contains(base)
    cost = estimate_cost(motivated, in_channels=3, image_size=32, num_classes=10)
    assert cost.macs < 50_000_000
    assert estimate_cost(base, in_channels=3, image_size=32, num_classes=10).params < cost.params / 4


def test_config_without_se_relu_and_parity():
    config = MBConvConfig(stem=8, depth=(1, 2), width=(8, 12), expand=(1, 4), head=16, kernel=(3, 5),
                          stride=(1, 2), se=0.0, act="relu")
    net = create_supernet("mbconv", config, num_classes=4, in_channels=3, image_size=12)
    assert not any("se_" in name for name, _ in net.named_parameters())
    net.train()
    spec = dataclasses.replace(config.max_spec(), stem=5, depth=(1, 1), width=(6, 7), expand=(1, 3), head=9)
    x = torch.randn(4, 3, 12, 12)
    net(x, spec, "base")  # one train-mode pass fills the BN statistics of the base slice
    net.eval()
    with torch.no_grad():
        static = to_static(net, spec, "base")
        assert (static(x) - net(x, spec, "base")).abs().max() <= 1e-5
    assert isinstance(static.act, torch.nn.ReLU)
    # stem 5 -> width 6: this spec has no residual in stage 0 although the supernet's max spec has one
    assert static.stages[0][0].residual is False and net.stages[0][0].max_residual is True
