"""Sliced optimizers: a base step changes nothing outside the base slice, bit for bit."""

from __future__ import annotations

import pytest
import torch

from seekdeploy import nn as sd_nn
from seekdeploy.train.optim import CosineWarmupSchedule, create_optimizer

BASE = "depth=1,1;width=2,4"
MOTIVATED = "depth=2,1;width=4,8"


def _setup(bn_roles, optimizer_name):
    torch.manual_seed(0)
    base, motivated = sd_nn.parse_spec("resnet", BASE), sd_nn.parse_spec("resnet", MOTIVATED)
    net = sd_nn.create_supernet("resnet", {"depth": [2, 1], "width": [4, 8]}, num_classes=3,
                                in_channels=1, image_size=8, bn_roles=bn_roles)
    opt = create_optimizer(optimizer_name, net.parameters(), lr=0.1, weight_decay=0.01)
    return net, opt, base, motivated


def _step(net, opt, spec, role):
    bn_role = role if len(net.bn_roles) > 1 else net.bn_roles[0]
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))  # (B, C, H, W), (B,)
    params = dict(net.named_parameters())
    regions = {params[n]: r for n, r in net.slice_map(spec, bn_role).items() if n in params}
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x, spec=spec, bn_role=bn_role), y).backward()
    opt.step(regions=regions)


def _snapshot(net, opt):
    state = {f"param:{n}": p.detach().clone() for n, p in net.named_parameters()}
    state.update({f"buffer:{n}": b.clone() for n, b in net.named_buffers()})
    names = {id(p): n for n, p in net.named_parameters()}
    for param, entries in opt.state.items():
        for key, value in entries.items():
            state[f"state:{names[id(param)]}:{key}"] = value.clone()
    return state


def _outside(tensor, region):
    mask = torch.ones(tensor.shape, dtype=torch.bool)
    if region is not None:
        mask[region] = False
    return tensor[mask]


@pytest.mark.parametrize("bn_roles", [("base", "motivated"), ("shared",)], ids=["private", "shared"])
@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_base_step_touches_nothing_outside_the_base_slice(bn_roles, optimizer_name) -> None:
    net, opt, base, motivated = _setup(bn_roles, optimizer_name)
    # Motivated steps first, so momentum / moments / step counts are non-zero everywhere.
    for _ in range(2):
        _step(net, opt, motivated, "motivated")
    before = _snapshot(net, opt)
    _step(net, opt, base, "base")
    after = _snapshot(net, opt)
    assert before.keys() == after.keys()
    region_map = net.slice_map(base, "base" if len(bn_roles) > 1 else "shared")
    changed_inside = 0
    for key, old in before.items():
        name = key.split(":")[1]
        region = region_map[name]
        new = after[key]
        # Bit-for-bit: compare the raw bytes, so even -0.0 vs 0.0 or NaN payloads would count.
        old_out, new_out = _outside(old, region), _outside(new, region)
        assert torch.equal(old_out.view(-1).view(torch.uint8) if old_out.is_floating_point()
                           else old_out, new_out.view(-1).view(torch.uint8)
                           if new_out.is_floating_point() else new_out), key
        if region is not None and not torch.equal(old[region], new[region]):
            changed_inside += 1
    assert changed_inside > 10  # the base step really trained the base slice


@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_motivated_step_changes_weights_outside_the_base_slice(optimizer_name) -> None:
    net, opt, base, motivated = _setup(("base", "motivated"), optimizer_name)
    region_map = net.slice_map(base, "base")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    _step(net, opt, motivated, "motivated")
    changed = [n for n, p in net.named_parameters()
               if not torch.equal(_outside(before[n], region_map[n]), _outside(p.detach(), region_map[n]))]
    assert "stages.0.1.conv1.weight" in changed  # a block the base does not have
    assert "stem_conv.weight" in changed  # the channels of a shared layer beyond the base's


def test_full_region_sgd_matches_torch_sgd() -> None:
    torch.manual_seed(0)
    weights = torch.randn(5, 4)
    ours = torch.nn.Parameter(weights.clone())
    reference = torch.nn.Parameter(weights.clone())
    mine = create_optimizer("sgd", [ours], lr=0.1, weight_decay=0.01, momentum=0.9, nesterov=True)
    theirs = torch.optim.SGD([reference], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        grad = torch.randn(5, 4)
        ours.grad, reference.grad = grad.clone(), grad.clone()
        mine.step()
        theirs.step()
    torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-6, atol=1e-7)


def test_full_region_adamw_matches_torch_adamw() -> None:
    torch.manual_seed(0)
    weights = torch.randn(5, 4)
    ours = torch.nn.Parameter(weights.clone())
    reference = torch.nn.Parameter(weights.clone())
    mine = create_optimizer("adamw", [ours], lr=0.01, weight_decay=0.05)
    theirs = torch.optim.AdamW([reference], lr=0.01, weight_decay=0.05)
    for _ in range(4):
        grad = torch.randn(5, 4)
        ours.grad, reference.grad = grad.clone(), grad.clone()
        mine.step()
        theirs.step()
    torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-5, atol=1e-6)


def test_cosine_warmup_schedule() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = create_optimizer("sgd", [param], lr=1.0, weight_decay=0.0)
    schedule = CosineWarmupSchedule(opt, peak_lr=1.0, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        schedule.step()
    assert lrs[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] < 0.05
    restored = CosineWarmupSchedule(opt, peak_lr=1.0, total_steps=10, warmup_steps=2)
    restored.load_state_dict(schedule.state_dict())
    assert restored.step_count == 10


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_loaded_optimizer_state_lives_on_each_parameters_device_and_dtype(name) -> None:
    # The checkpoint is read to the CPU; the parameters live elsewhere (here the `meta` device
    # and float64 stand in for a GPU: torch moves moments but left AdamW's `step` behind).
    trained = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    optimizer = create_optimizer(name, trained, lr=0.1, weight_decay=0.01)
    sum((p ** 2).sum() for p in trained).backward()
    optimizer.step()
    state = optimizer.state_dict()
    for device, dtype in (("meta", torch.float32), ("cpu", torch.float64)):
        moved = [torch.nn.Parameter(torch.zeros(p.shape, device=device, dtype=dtype)) for p in trained]
        loaded = create_optimizer(name, moved, lr=0.1, weight_decay=0.01)
        loaded.load_state_dict(state)
        assert loaded.state, "nothing was loaded"
        for param, entries in loaded.state.items():
            for key, value in entries.items():
                assert value.device == param.device, (key, value.device)
                assert value.dtype == (torch.float32 if key == "step" else param.dtype), key
