"""ResNet family specifics: the default supernet is ResNet-20, nested base, small enough for CPUs."""

from __future__ import annotations

import torch

from seekdeploy.nn import create_supernet, default_pair, estimate_cost, to_static
from seekdeploy.nn.families.resnet import ResNetConfig, ResNetSpec

torch.set_num_threads(1)


def test_default_supernet_is_resnet20():
    config, base, motivated = default_pair("resnet")
    assert motivated == ResNetSpec(depth=(3, 3, 3), width=(16, 32, 64)) and motivated.contains(base)
    cost = estimate_cost(motivated, in_channels=3, image_size=32, num_classes=10)
    assert cost.params == 272_474  # the published ResNet-20 count (0.27 M)
    assert cost.macs < 50_000_000
    base_cost = estimate_cost(base, in_channels=3, image_size=32, num_classes=10)
    assert base_cost.macs < cost.macs / 4


def test_non_default_config_and_grayscale_input():
    config = ResNetConfig(depth=(2, 1), width=(6, 10))
    net = create_supernet("resnet", config, num_classes=3, in_channels=1, image_size=12).eval()
    spec = ResNetSpec(depth=(1, 1), width=(3, 7))
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert net(x, spec).shape == (2, 3)
        assert (to_static(net, spec, "motivated")(x) - net(x, spec, "motivated")).abs().max() <= 1e-5
    rebuilt = create_supernet(**{**net.construction_kwargs(), "bn_roles": tuple(net.bn_roles)})
    assert rebuilt.max_spec == net.max_spec
