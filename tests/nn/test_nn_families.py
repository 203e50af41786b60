"""Contract checks every convolutional family must pass: exact slicing, cost model, slice maps."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seekdeploy.nn._reorganize import channel_importance
from seekdeploy.nn.families._mbconv_model import mbconv_channel_groups
from seekdeploy.nn.families._resnet_model import resnet_channel_groups
from seekdeploy.nn import (create_supernet, default_pair, estimate_cost, reorganize_channels,
                           to_static)

FAMILIES = ["resnet", "mbconv"]
IMAGE = 16
CLASSES = 5
STOCK = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.SiLU, nn.Sigmoid, nn.AdaptiveAvgPool2d)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: more threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_spec(max_spec, rng: random.Random):
    """A random spec inside `max_spec` (every elastic field drawn independently)."""
    def pick(values, low=1):
        return tuple(rng.randint(low, v) for v in values)

    if max_spec.family == "resnet":
        return dataclasses.replace(max_spec, depth=pick(max_spec.depth), width=pick(max_spec.width))
    expand = tuple(1 if e == 1 else rng.randint(2, e) for e in max_spec.expand)
    return dataclasses.replace(max_spec, stem=rng.randint(1, max_spec.stem), head=rng.randint(1, max_spec.head),
                               depth=pick(max_spec.depth), width=pick(max_spec.width), expand=expand)


def smallest_spec(max_spec):
    ones = tuple(1 for _ in max_spec.depth)
    if max_spec.family == "resnet":
        return dataclasses.replace(max_spec, depth=ones, width=ones)
    expand = tuple(1 if e == 1 else 2 for e in max_spec.expand)
    return dataclasses.replace(max_spec, stem=1, head=1, depth=ones, width=ones, expand=expand)


def randomize_bn(supernet: nn.Module, seed: int = 0) -> None:
    """Make every BN non-trivial so a wrong statistics slice cannot hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(supernet.named_parameters()) + list(supernet.named_buffers()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.2)
            elif leaf.startswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif ("bn" in name) and leaf in ("weight", "bias"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5 if leaf == "weight"
                             else torch.randn(tensor.shape, generator=gen) * 0.1)


@pytest.fixture(scope="module", params=FAMILIES)
def family_net(request):
    torch.manual_seed(0)
    config, base, motivated = default_pair(request.param)
    net = create_supernet(request.param, config, num_classes=CLASSES, in_channels=3, image_size=IMAGE)
    randomize_bn(net)
    return net.eval(), base, motivated


def all_specs(net, base):
    rng = random.Random(1234)
    return [smallest_spec(net.max_spec), net.max_spec, base] + [random_spec(net.max_spec, rng) for _ in range(20)]


def test_static_matches_supernet_on_many_specs(family_net):
    net, base, _ = family_net
    x = torch.randn(4, 3, IMAGE, IMAGE)
    for index, spec in enumerate(all_specs(net, base)):
        role = net.bn_roles[index % 2]
        static = to_static(net, spec, role)
        with torch.no_grad():
            diff = (static(x) - net(x, spec, role)).abs().max().item()
        assert diff <= 1e-5, f"{spec}: max abs diff {diff}"
        leaves = [m for m in static.modules() if not list(m.children())]
        assert all(isinstance(m, STOCK) for m in leaves), {type(m).__name__ for m in leaves}
        assert not any("Dynamic" in type(m).__name__ for m in static.modules())


def test_static_params_and_flops_match_cost_model(family_net):
    net, base, _ = family_net
    for spec in all_specs(net, base)[:8]:
        static = to_static(net, spec, net.bn_roles[0])
        cost = estimate_cost(spec, in_channels=3, image_size=IMAGE, num_classes=CLASSES)
        assert cost.params == sum(p.numel() for p in static.parameters())
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            static(torch.randn(1, 3, IMAGE, IMAGE))
        assert cost.flops == counter.get_total_flops() == 2 * cost.macs
        assert cost.weight_bytes("fp16") == 2 * cost.params and cost.weight_bytes("int8") == cost.params


def test_activation_bytes_is_sum_of_conv_and_linear_outputs(family_net):
    net, base, _ = family_net
    static = to_static(net, base, net.bn_roles[0])
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.numel()))
             for m in static.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        static(torch.randn(1, 3, IMAGE, IMAGE))
    for hook in hooks:
        hook.remove()
    cost = estimate_cost(base, in_channels=3, image_size=IMAGE, num_classes=CLASSES)
    assert cost.activation_bytes == 4 * sum(outputs)


def test_slice_map_covers_everything_and_matches_gradients(family_net):
    net, base, _ = family_net
    names = {n for n, _ in net.named_parameters()} | {n for n, _ in net.named_buffers()}
    role = net.bn_roles[0]
    region = net.slice_map(base, bn_role=role)
    assert set(region) == names
    other = [n for n in names if n.endswith(tuple(f"_{r}" for r in net.bn_roles[1:]))]
    assert other and all(region[n] is None for n in other)
    assert net.slice_map(None, bn_role=role)[next(iter(dict(net.named_parameters())))] is not None
    net.zero_grad(set_to_none=True)
    net.train()
    try:
        net(torch.randn(4, 3, IMAGE, IMAGE), base, role).square().sum().backward()
    finally:
        net.eval()
    for name, param in net.named_parameters():
        grad = torch.zeros_like(param) if param.grad is None else param.grad
        inside = torch.zeros_like(param, dtype=torch.bool)
        if region[name] is not None:
            inside[region[name]] = True
        assert not grad[~inside].any(), f"{name} has gradient outside its slice"
    used = [n for n, p in net.named_parameters() if region[n] is not None and p.grad is not None and p.grad.any()]
    assert len(used) > 0.8 * sum(region[n] is not None for n, _ in net.named_parameters())
    net.zero_grad(set_to_none=True)


def test_reorganize_keeps_function_and_sorts_channels(family_net):
    net, base, _ = family_net
    x = torch.randn(4, 3, IMAGE, IMAGE)
    with torch.no_grad():
        before_full, before_base = net(x), net(x, base, net.bn_roles[0])
    reorganize_channels(net)
    with torch.no_grad():
        after_full, after_base = net(x), net(x, base, net.bn_roles[0])
    assert (after_full - before_full).abs().max().item() <= 1e-5
    assert (after_base - before_base).abs().max().item() > 1e-4  # the base now sees other channels
    groups = {"resnet": resnet_channel_groups, "mbconv": mbconv_channel_groups}[net.family](net)
    tensors = dict(net.named_parameters())
    for group in groups:  # every coupled channel space is sorted by its readers' L1 norm
        importance = sum(channel_importance(tensors[name], dim) for name, dim in group.readers)
        assert torch.all(importance[:-1] >= importance[1:]), group.readers
