"""Additive nesting: the base's activations are a prefix of the motivated model's, and a shielded
motivated step reuses the base's forward."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seekdeploy import nn as sd_nn
from seekdeploy.errors import ConfigError, SpecError
from seekdeploy.nn.families.resnet import ResNetSpec, resnet_reused_forward_macs
from seekdeploy.roles import Role
from seekdeploy.train import loop
from seekdeploy.train.config import TrainConfig
from seekdeploy.train.run import start_run
from helpers import Display, assert_same_weights, interrupted_and_resumed

PROFILE = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
ADDITIVE = TrainConfig.from_dict({
    "arch": "resnet", "data": "digits", "epochs": 2, "batch_size": 64, "seed": 3,
    "condition": "schedule:p=0.5", "motivated_step": "shielded", "bn": "shared",
    "base_spec": "depth=1,1;width=2,4", "motivated_spec": "depth=2,2;width=4,8", "device": "cpu",
    "bn_recalibrate_batches": 2, "growth": True, "additive": True, "motivated_clock": True})
BASE = ResNetSpec(depth=(2, 2, 2), width=(8, 16, 32))


def _supernet(additive: bool) -> sd_nn.Supernet:
    torch.manual_seed(0)
    supernet = sd_nn.create_supernet("resnet", None, num_classes=10, in_channels=1, image_size=12,
                                     bn_roles=("shared",))
    if additive:
        supernet.make_additive(BASE)
    return supernet


def _train_a_little(supernet: sd_nn.Supernet, images: torch.Tensor) -> None:
    """A few SGD steps of both models' losses, so no weight keeps its initial value."""
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    labels = torch.arange(len(images)) % 10
    for _ in range(4):
        optimizer.zero_grad()
        loss = sum(torch.nn.functional.cross_entropy(supernet(images, spec), labels)
                   for spec in (BASE, None))
        loss.backward()
        optimizer.step()
        supernet.enforce_additive()


def _stage_outputs(supernet: sd_nn.Supernet, images: torch.Tensor, spec) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    hooks = [stage[depth - 1].register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for stage, depth in zip(supernet.stages, (spec or supernet.max_spec).depth)]
    with torch.no_grad():
        supernet(images, spec)
    for hook in hooks:
        hook.remove()
    return outputs


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_under_additive_nesting_the_base_activations_are_a_prefix_of_the_motivated(mode) -> None:
    images = torch.randn(8, 1, 12, 12)
    differs = []
    for additive in (True, False):
        supernet = _supernet(additive)
        _train_a_little(supernet, images)
        getattr(supernet, mode)()
        base_out = _stage_outputs(supernet, images, BASE)
        motivated_out = _stage_outputs(supernet, images, None)
        gaps = [(m[:, :b.shape[1]] - b).abs().max().item() for b, m in zip(base_out, motivated_out)]
        if additive:
            assert max(gaps) < 1e-5, gaps  # every stage's output, base channels
        else:
            differs.append(max(gaps))
    assert differs[0] > 1e-2  # without additive nesting they differ


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_nested_forward_equals_both_models_run_alone(mode) -> None:
    images = torch.randn(8, 1, 12, 12)
    supernet = _supernet(True)
    _train_a_little(supernet, images)
    getattr(supernet, mode)()
    with torch.no_grad():
        base_logits, motivated_logits = supernet.forward_nested(images, BASE)
        torch.testing.assert_close(base_logits, supernet(images, BASE), rtol=0, atol=1e-5)
        torch.testing.assert_close(motivated_logits, supernet(images), rtol=1e-4, atol=1e-5)


def test_a_shielded_nested_forward_trains_only_the_motivated_models_own_weights() -> None:
    supernet = _supernet(True)
    images, labels = torch.randn(8, 1, 12, 12), torch.arange(8)
    _, motivated_logits = supernet.forward_nested(images, BASE, shield=True)
    torch.nn.functional.cross_entropy(motivated_logits, labels).backward()
    regions = supernet.slice_map(BASE)
    touched = 0
    for name, param in supernet.named_parameters():
        region = regions[name]
        if region is not None and param.grad is not None:
            assert param.grad[region].abs().max() == 0, name  # the base's slice got nothing
        touched += param.grad is not None and param.grad.abs().sum().item() > 0
    assert touched > 10


def test_the_reused_forward_computes_the_hand_count() -> None:
    # Hand count for base depth 1,1 width 2,4 inside depth 2,1 width 4,8; 1 input channel,
    # 6x6 images, 3 classes. Rows beyond the base's, from every channel:
    stem = (4 - 2) * 1 * 9 * 36
    stage0_block0 = (4 - 2) * 4 * 9 * 36 + (4 - 2) * 4 * 9 * 36  # conv1, conv2
    stage0_block1 = 4 * 4 * 9 * 36 + (4 - 2) * 4 * 9 * 36  # motivated alone: conv1 whole, conv2 rows 2:4
    stage1_block0 = (8 - 4) * 4 * 9 * 9 + (8 - 4) * 8 * 9 * 9 + (8 - 4) * 4 * 9  # + projection
    classifier = 3 * (8 - 4)
    hand = stem + stage0_block0 + stage0_block1 + stage1_block0 + classifier
    base, motivated = ResNetSpec(depth=(1, 1), width=(2, 4)), ResNetSpec(depth=(2, 1), width=(4, 8))
    assert resnet_reused_forward_macs(base, motivated, in_channels=1, image_size=6, num_classes=3) == hand
    # ...and it is what the nested forward really multiplies (FLOPs = 2 MACs), on the default pair.
    supernet = _supernet(True).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        supernet.forward_nested(torch.randn(1, 1, 12, 12), BASE)
    base_macs = sd_nn.estimate_cost(BASE, in_channels=1, image_size=12, num_classes=10).macs
    reused = resnet_reused_forward_macs(BASE, supernet.max_spec, in_channels=1, image_size=12, num_classes=10)
    whole = sd_nn.estimate_cost(supernet.max_spec, in_channels=1, image_size=12, num_classes=10).macs
    assert counter.get_total_flops() == 2 * (base_macs + reused)
    assert base_macs + reused < whole  # the held zeros are never multiplied


def test_additive_nesting_is_refused_where_it_cannot_hold() -> None:
    with pytest.raises(ConfigError, match="--bn shared"):
        TrainConfig(additive=True)
    private = sd_nn.create_supernet("resnet", None, num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(SpecError, match="one set of BN statistics"):
        private.make_additive(BASE)
    config, base, _ = sd_nn.default_pair("mbconv")
    mbconv = sd_nn.create_supernet("mbconv", config, num_classes=10, in_channels=1, image_size=8,
                                   bn_roles=("shared",))
    with pytest.raises(SpecError, match="not available for the 'mbconv' family"):
        mbconv.make_additive(base)
    same_width = ResNetSpec(depth=(1, 1, 1), width=(16, 16, 32))
    with pytest.raises(SpecError, match="wider than the base at every stage"):
        _supernet(False).make_additive(same_width)


def test_an_additive_run_holds_its_zeros_and_counts_what_it_computes(tmp_path) -> None:
    session = start_run(ADDITIVE, tmp_path / "run", profile=PROFILE)
    assert loop.reuses_base_forward(session, Role.MOTIVATED)
    loop.run_training(session, Display())
    masks = session.supernet.additive_zero_masks(session.specs[Role.BASE])
    parameters = dict(session.supernet.named_parameters())
    assert masks and all(parameters[name][mask].abs().max() == 0 for name, mask in masks.items())
    progress = session.progress
    motivated_steps = progress.motivated_batches
    per_image = 3 * session.reused_flops
    assert 0 < session.reused_flops < session.forward_flops[Role.MOTIVATED]
    # Every motivated step computed the reused forward, nothing more (64 images a batch).
    assert math.isclose(progress.cost_flops["motivated_steps"], per_image * 64 * motivated_steps)


def test_resume_of_an_additive_run_is_bit_identical(tmp_path) -> None:
    straight, resumed, session = interrupted_and_resumed(ADDITIVE, tmp_path, PROFILE, signal_at_step=13)
    assert session.config.additive and session.reused_flops > 0
    assert_same_weights(straight, resumed)
    assert straight["progress"]["cost_flops"] == resumed["progress"]["cost_flops"]
