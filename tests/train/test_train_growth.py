"""Growth from the base, the motivated role's private offsets and its learning-rate clock."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from seekdeploy import nn as sd_nn
from seekdeploy.nn.dynamic import DynamicConv2d
from seekdeploy.errors import ConfigError, SpecError
from seekdeploy.roles import Role
from seekdeploy.train import loop
from seekdeploy.train.config import TrainConfig
from seekdeploy.train.optim import SlicedAdamW, SlicedSGD, cosine_warmup_lr
from seekdeploy.train.run import start_run
from seekdeploy.train.session import motivated_clock_lr
from helpers import Display, assert_same_weights, interrupted_and_resumed

PROFILE = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
GROWN = TrainConfig(arch="resnet", data="digits", epochs=2, batch_size=64, seed=3,
                    condition="schedule:p=0.5", motivated_step="shielded",
                    base_spec="depth=1,1;width=2,4", motivated_spec="depth=2,1;width=4,8",
                    device="cpu", bn_recalibrate_batches=2, growth=True, private_affine=True,
                    motivated_clock=True)


@pytest.mark.parametrize("family, head", [("resnet", False), ("mbconv", False), ("resnet", True)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_grown_motivated_model_computes_its_base_at_step_0(family, head, mode) -> None:
    config, base, motivated = sd_nn.default_pair(family)
    torch.manual_seed(0)
    supernet = sd_nn.create_supernet(family, config, num_classes=10, in_channels=1,
                                     image_size=28, private_roles=("motivated",),
                                     private_head=head)
    images = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        before = supernet(images, motivated, "motivated") - supernet(images, base, "base")
        supernet.grow_from(base)
        for name, buffer in supernet.named_buffers():  # forget the statistics seen before
            if "running_" in name:
                buffer.fill_(1.0 if "running_var" in name else 0.0)
        for _ in range(3):  # running statistics of both roles from the grown weights
            supernet(images, base, "base"), supernet(images, motivated, "motivated")
        getattr(supernet, mode)()
        base_logits = supernet(images, base, "base")
        grown = supernet(images, motivated, "motivated")
    assert before.abs().max() > 1e-2  # without growth they differ
    torch.testing.assert_close(grown, base_logits, rtol=0, atol=1e-5)


def test_growth_leaves_the_base_and_silences_only_what_the_base_does_not_use() -> None:
    config, base, motivated = sd_nn.default_pair("resnet")
    supernet = sd_nn.create_supernet("resnet", config, num_classes=10, in_channels=1,
                                     image_size=28)
    before = {name: p.detach().clone() for name, p in supernet.named_parameters()}
    supernet.grow_from(base)
    regions = supernet.slice_map(base, bn_role="base")
    zeroed = 0
    for name, param in supernet.named_parameters():
        region = regions[name]
        if region is not None:
            assert torch.equal(param[region], before[name][region]), name
        changed = param != before[name]
        zeroed += int(changed.sum())
        assert torch.all(param[changed] == 0), name
    # Blocks beyond the base's depth: their second BN scale is zero.
    assert torch.all(supernet.stages[0][2].bn2.weight == 0)
    assert zeroed > 1000


def test_private_offsets_follow_the_shared_parameters_and_export_exactly() -> None:
    config, base, motivated = sd_nn.default_pair("resnet")
    supernet = sd_nn.create_supernet("resnet", config, num_classes=10, in_channels=1,
                                     image_size=28, private_roles=("motivated",))
    with torch.no_grad():
        supernet.stem_bn.weight_delta_motivated.fill_(0.5)
        supernet.classifier.bias_delta_motivated.fill_(1.0)
    supernet.eval()
    images = torch.randn(4, 1, 28, 28)
    for role, spec in (("base", base), ("motivated", motivated)):
        static = sd_nn.to_static(supernet, spec, role)
        assert torch.equal(static(images), supernet(images, spec, role))
    static_m = sd_nn.to_static(supernet, motivated, "motivated")
    static_b = sd_nn.to_static(supernet, base, "base")
    torch.testing.assert_close(static_m.stem_bn.weight, supernet.stem_bn.weight.detach() + 0.5)
    torch.testing.assert_close(static_b.stem_bn.weight, supernet.stem_bn.weight[:8].detach())
    torch.testing.assert_close(static_m.classifier.bias, supernet.classifier.bias.detach() + 1.0)
    rebuilt = sd_nn.create_supernet(**supernet.construction_kwargs())
    assert set(rebuilt.state_dict()) == set(supernet.state_dict())


def test_a_private_head_exports_its_own_classifier_and_the_base_keeps_the_shared_one() -> None:
    config, base, motivated = sd_nn.default_pair("resnet")
    supernet = sd_nn.create_supernet("resnet", config, num_classes=10, in_channels=1,
                                     image_size=28, private_roles=("motivated",), private_head=True)
    assert torch.equal(supernet.classifier.weight_delta_motivated, torch.zeros(10, 64))
    with torch.no_grad():
        supernet.classifier.weight_delta_motivated.normal_()
    supernet.eval()
    images = torch.randn(4, 1, 28, 28)
    for role, spec in (("base", base), ("motivated", motivated)):
        static = sd_nn.to_static(supernet, spec, role)
        torch.testing.assert_close(static(images), supernet(images, spec, role), rtol=0, atol=1e-5)
    static_m = sd_nn.to_static(supernet, motivated, "motivated")
    static_b = sd_nn.to_static(supernet, base, "base")
    shared = supernet.classifier.weight.detach()
    torch.testing.assert_close(static_m.classifier.weight,
                               shared + supernet.classifier.weight_delta_motivated.detach())
    assert torch.equal(static_b.classifier.weight, shared[:, :32])
    rebuilt = sd_nn.create_supernet(**supernet.construction_kwargs())
    assert "classifier.weight_delta_motivated" in rebuilt.state_dict()
    with pytest.raises(SpecError, match="private role"):
        sd_nn.create_supernet("resnet", config, num_classes=10, in_channels=1, image_size=28,
                              private_head=True)


def test_a_private_head_trains_only_on_the_base_channels_and_leaves_the_base_as_alone(tmp_path) -> None:
    head = TrainConfig.from_dict(GROWN.to_dict() | {"private_head": True})
    never = TrainConfig.from_dict(GROWN.to_dict() | {"condition": "never"})
    pair_session = start_run(head, tmp_path / "pair", profile=PROFILE)
    never_session = start_run(never, tmp_path / "never", profile=PROFILE)
    for session in (pair_session, never_session):
        loop.run_training(session, Display())
    classifier = pair_session.supernet.classifier
    base_columns = pair_session.specs[Role.BASE].width[-1]
    delta = classifier.weight_delta_motivated.detach()
    assert delta[:, :base_columns].abs().sum() > 0  # the motivated role reweights the base's features
    assert torch.all(delta[:, base_columns:] == 0)  # where the shared weight is already its own
    assert torch.equal(classifier.weight[:, :base_columns],
                       never_session.supernet.classifier.weight[:, :base_columns])
    # The head is one of the private offsets: without them there is none.
    plain = TrainConfig.from_dict(GROWN.to_dict() | {"private_head": True, "private_affine": False})
    names = [name for name, _ in start_run(plain, tmp_path / "plain", profile=PROFILE).supernet.named_parameters()]
    assert not any("_delta_" in name for name in names)


@pytest.mark.parametrize("changes, offsets", [
    ({}, True), ({"bn": "shared"}, False), ({"condition": "always"}, False),
    ({"condition": "never"}, False)])
def test_private_offsets_only_where_a_pair_keeps_statistics_per_role(tmp_path, changes,
                                                                   offsets) -> None:
    config = TrainConfig.from_dict(GROWN.to_dict() | changes)
    session = start_run(config, tmp_path / "run", profile=PROFILE)
    names = [name for name, _ in session.supernet.named_parameters()]
    assert any("_delta_" in name for name in names) is offsets


@pytest.mark.parametrize("make", [
    lambda p: SlicedSGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: SlicedAdamW([p], lr=0.01, weight_decay=0.05)], ids=["sgd", "adamw"])
def test_masked_step_updates_kept_elements_exactly_as_the_plain_step(make) -> None:
    torch.manual_seed(0)
    plain = torch.nn.Parameter(torch.randn(4, 5))
    masked = torch.nn.Parameter(plain.detach().clone())
    keep = torch.zeros(4, 5, dtype=torch.bool)
    keep[:2, :3] = True
    optimizers = [make(p) for p in (plain, masked)]
    start = masked.detach().clone()
    for _ in range(3):
        grad = torch.randn(4, 5)
        plain.grad, masked.grad = grad.clone(), grad.clone()
        optimizers[0].step()
        optimizers[1].step(lr_maps={masked: (keep, 0.0)})
    assert torch.equal(masked[keep], plain[keep])
    assert torch.equal(masked[~keep], start[~keep])  # a zero rate: never moved


def test_the_motivated_clock_runs_on_motivated_steps(tmp_path) -> None:
    session = start_run(GROWN, tmp_path / "run", profile=PROFILE)
    schedule = session.schedule
    expected_total = round(0.5 * schedule.total_steps)
    assert motivated_clock_lr(session) == cosine_warmup_lr(
        0, schedule.peak_lr, expected_total, round(0.5 * schedule.warmup_steps))
    session.progress.motivated_batches = expected_total // 2
    halfway = motivated_clock_lr(session)
    assert halfway == cosine_warmup_lr(expected_total // 2, schedule.peak_lr, expected_total,
                                       round(0.5 * schedule.warmup_steps))
    assert 0 < halfway < schedule.peak_lr and halfway != schedule.lr_at(schedule.step_count)
    session.progress.motivated_batches = expected_total
    assert motivated_clock_lr(session) == schedule.min_lr  # the clock's end: the run's floor
    session.progress.motivated_batches = expected_total // 2
    # The base's elements of a motivated parameter are masked in; the rest follow the clock.
    maps = loop._lr_maps(session, Role.MOTIVATED)
    assert loop._lr_maps(session, Role.BASE) is None
    weight = session.supernet.stages[0][0].conv1.weight
    mask, rate = maps[weight]
    assert rate == halfway and mask[:2, :1].all() and not mask[2:].any()
    # A condition that follows the loss has no expected share: the run's clock applies.
    streak = start_run(TrainConfig.from_dict(GROWN.to_dict() | {"condition": "streak"}),
                       tmp_path / "streak", profile=PROFILE)
    assert streak.base_masks == {} and loop._lr_maps(streak, Role.MOTIVATED) is None


def test_a_grown_private_clocked_pair_trains_its_base_exactly_as_alone(tmp_path) -> None:
    never = TrainConfig.from_dict(GROWN.to_dict() | {"condition": "never"})
    pair_session = start_run(GROWN, tmp_path / "pair", profile=PROFILE)
    never_session = start_run(never, tmp_path / "never", profile=PROFILE)
    for session in (pair_session, never_session):
        loop.run_training(session, Display())
    base_map = pair_session.supernet.slice_map(pair_session.specs[Role.BASE], bn_role="base")
    never_state = never_session.supernet.state_dict()
    compared = 0
    for name, tensor in pair_session.supernet.state_dict().items():
        region = base_map.get(name)
        if region is None or "num_batches_tracked" in name:
            continue
        assert torch.equal(tensor[region], never_state[name][region]), name
        compared += 1
    assert compared > 10
    # The motivated role did train its own offsets.
    assert pair_session.supernet.stem_bn.weight_delta_motivated.abs().sum() > 0


@pytest.mark.parametrize("head", [False, True])
def test_resume_of_a_grown_private_clocked_run_is_bit_identical(tmp_path, head) -> None:
    config = TrainConfig.from_dict(GROWN.to_dict() | {"private_head": head})
    a, b, resumed = interrupted_and_resumed(config, tmp_path, PROFILE, signal_at_step=13)
    assert resumed.config.growth and resumed.config.motivated_clock
    assert resumed.config.private_head is head
    assert_same_weights(a, b)
    assert not math.isnan(float(a["progress"]["train_flops"]))


def _trained_base(family: str, private: bool):
    """A supernet whose base region (and base statistics) moved as training would move them,
    everything else as growth leaves it."""
    config, base, motivated = sd_nn.default_pair(family)
    torch.manual_seed(0)
    supernet = sd_nn.create_supernet(family, config, num_classes=10, in_channels=1, image_size=28,
                                     private_roles=("motivated",) if private else (),
                                     private_head=private)
    supernet.grow_from(base)
    regions = supernet.slice_map(base, bn_role="base")
    with torch.no_grad():
        for name, param in supernet.named_parameters():
            if regions.get(name) is not None and "_delta_" not in name:
                param[regions[name]] += 0.1 * torch.randn_like(param[regions[name]])
    images = torch.randn(8, 1, 28, 28)
    for _ in range(3):
        supernet(images, base, "base")
    return supernet, base, motivated, images


@pytest.mark.parametrize("family, private", [("resnet", False), ("resnet", True), ("mbconv", True)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_growth_by_copying_keeps_the_base_function_and_copies_its_channels(family, private,
                                                                           mode) -> None:
    supernet, base, motivated, images = _trained_base(family, private)
    regions = supernet.slice_map(base, bn_role="base")
    before = {name: tensor.detach().clone() for name, tensor in supernet.state_dict().items()}
    supernet.clone_into(base, motivated, from_role="base", to_role="motivated")
    after = supernet.state_dict()
    for name, region in regions.items():  # the base's own tensors: untouched
        if region is not None:
            assert torch.equal(after[name][region], before[name][region]), name
    stem = []
    hook = supernet.stem_bn.register_forward_hook(lambda module, args, out: stem.append(out))
    getattr(supernet, mode)()
    with torch.no_grad():
        base_logits = supernet(images, base, "base")
        grown = supernet(images, motivated, "motivated")
    hook.remove()
    torch.testing.assert_close(grown, base_logits, rtol=0, atol=1e-5)
    # The motivated model's extra stem channels carry the base's activations, not random ones.
    width, whole = base.width[0], motivated.width[0]
    copies = stem[-1][:, width:whole]
    sources = stem[-1][:, torch.arange(width, whole) % width]
    torch.testing.assert_close(copies, sources, rtol=0, atol=1e-6)
    assert (stem[-1][:, :width].abs().max() > 0.1).item()


def test_growth_by_copying_is_refused_where_it_would_change_the_function() -> None:
    config, base, motivated = sd_nn.default_pair("vit")
    supernet = sd_nn.create_supernet("vit", config, num_classes=10, in_channels=1, image_size=28)
    with pytest.raises(SpecError, match="not available for the 'vit' family"):
        supernet.clone_into(base, motivated)
    with pytest.raises(ConfigError, match="--clone-growth needs --growth"):
        TrainConfig.from_dict(CLONED.to_dict() | {"growth": False})
    # Refused by the options themselves, before a run dir exists or any data loads.
    with pytest.raises(ConfigError, match=r"not available for the 'vit' family.*\(resnet, mbconv\)"):
        TrainConfig.from_dict(CLONED.to_dict() | {"arch": "vit", "base_spec": None,
                                                  "motivated_spec": None})
    assert TrainConfig.from_dict(CLONED.to_dict() | {"arch": "mbconv", "base_spec": None,
                                                     "motivated_spec": None}).clone_growth


CLONED = TrainConfig.from_dict(GROWN.to_dict() | {"condition": "schedule:p=0.5,start=0.5",
                                                  "clone_growth": True, "private_head": True})


def test_a_copied_pair_starts_from_its_base_and_trains_the_base_exactly_as_alone(tmp_path) -> None:
    never = TrainConfig.from_dict(CLONED.to_dict() | {"condition": "never"})
    pair_session = start_run(CLONED, tmp_path / "pair", profile=PROFILE)
    never_session = start_run(never, tmp_path / "never", profile=PROFILE)
    base, motivated = pair_session.specs[Role.BASE], pair_session.specs[Role.MOTIVATED]
    seen = {}

    def at_first_motivated_step(session):  # what the first motivated step starts from
        original(session)
        images = session.dataset.val.images[:32].float().div(255).sub(0.5)
        session.supernet.eval()
        with torch.no_grad():
            seen["base"] = session.supernet(images, base, "base")
            seen["motivated"] = session.supernet(images, motivated, "motivated")
        session.supernet.train()

    original = loop.grow_by_copying
    loop.grow_by_copying = at_first_motivated_step
    display = Display()
    try:
        loop.run_training(pair_session, display)
    finally:
        loop.grow_by_copying = original
    # The first epoch trains the base alone: its line does not report the untrained model.
    assert "motivated not trained yet" in display.lines[0] and "val top-1" in display.lines[0]
    assert "motivated val top-1" in display.lines[1]
    loop.run_training(never_session, Display())
    torch.testing.assert_close(seen["motivated"], seen["base"], rtol=0, atol=1e-5)
    assert pair_session.progress.motivated_batches > 0
    base_map = pair_session.supernet.slice_map(base, bn_role="base")
    never_state = never_session.supernet.state_dict()
    for name, tensor in pair_session.supernet.state_dict().items():
        region = base_map.get(name)
        if region is not None and "num_batches_tracked" not in name:
            assert torch.equal(tensor[region], never_state[name][region]), name
    # The copies trained away from their sources.
    weight = pair_session.supernet.stem_conv.weight.detach()
    assert not torch.equal(weight[base.width[0]:2 * base.width[0]], weight[:base.width[0]])


@pytest.mark.parametrize("signal_at_step", [5, 27], ids=["before-the-copy", "after-the-copy"])
def test_resume_of_a_copied_run_is_bit_identical(tmp_path, signal_at_step) -> None:
    a, b, resumed = interrupted_and_resumed(CLONED, tmp_path, PROFILE, signal_at_step=signal_at_step)
    assert resumed.config.clone_growth
    assert_same_weights(a, b)


@pytest.mark.parametrize("family", ["resnet", "mbconv"])
def test_private_convolution_offsets_change_only_the_motivated_model_and_export_exactly(family) -> None:
    config, base, motivated = sd_nn.default_pair(family)
    torch.manual_seed(0)
    supernet = sd_nn.create_supernet(family, config, num_classes=10, in_channels=1, image_size=28,
                                     private_roles=("motivated",), private_head=True,
                                     private_convs=True)
    convs = {name: m for name, m in supernet.named_modules() if isinstance(m, DynamicConv2d)}
    deltas = {f"{name}.{leaf}": getattr(m, f"{leaf}_delta_motivated") for name, m in convs.items()
              for leaf in ("weight", "bias") if getattr(m, leaf) is not None}
    assert len(deltas) > len(convs) if family == "mbconv" else len(deltas) == len(convs)  # SE biases
    assert all(torch.equal(p, torch.zeros_like(p)) for p in deltas.values())
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():  # batch statistics: a fresh network's running ones flatten its output
        base_before, motivated_before = supernet(images, base, "base"), supernet(images, motivated, "motivated")
        for name, delta in deltas.items():  # every convolution, depthwise and squeeze-excitation included
            delta.normal_(std=0.05)
            changed = supernet(images, motivated, "motivated")
            assert (changed - motivated_before).abs().max() > 1e-4, f"{name}'s offset is not used"
            motivated_before = changed
        assert torch.equal(supernet(images, base, "base"), base_before)
    supernet.eval()  # running statistics now carry the forwards above
    with torch.no_grad():
        assert supernet(images, motivated, "motivated").std(0).max() > 1e-2
        for role, spec in (("base", base), ("motivated", motivated)):
            static = sd_nn.to_static(supernet, spec, role)
            torch.testing.assert_close(static(images), supernet(images, spec, role), rtol=0, atol=1e-5)
    static_m = sd_nn.to_static(supernet, motivated, "motivated")
    static_b = sd_nn.to_static(supernet, base, "base")
    conv = supernet.stem_conv
    torch.testing.assert_close(static_m.stem_conv.weight,
                               conv.weight.detach() + conv.weight_delta_motivated.detach())
    assert torch.equal(static_b.stem_conv.weight, conv.weight.detach()[:8])
    rebuilt = sd_nn.create_supernet(**supernet.construction_kwargs())
    assert set(rebuilt.state_dict()) == set(supernet.state_dict())


def test_private_convolution_offsets_are_refused_where_they_cannot_act() -> None:
    config, _, _ = sd_nn.default_pair("vit")
    with pytest.raises(SpecError, match="not available for the 'vit' family"):
        sd_nn.create_supernet("vit", config, num_classes=10, in_channels=1, image_size=28,
                              private_roles=("motivated",), private_convs=True)
    with pytest.raises(SpecError, match="private role"):
        sd_nn.create_supernet("resnet", sd_nn.default_pair("resnet")[0], num_classes=10,
                              in_channels=1, image_size=28, private_convs=True)
    for changes in ({"private_affine": False}, {"bn": "shared"}):
        with pytest.raises(ConfigError, match="--private-convs needs --private-affine"):
            TrainConfig.from_dict(GROWN.to_dict() | {"private_convs": True} | changes)
    with pytest.raises(ConfigError, match=r"not available for the 'vit' family.*for: resnet, mbconv\)"):
        TrainConfig.from_dict(GROWN.to_dict() | {"private_convs": True, "arch": "vit",
                                                 "base_spec": None, "motivated_spec": None})
    supernet = sd_nn.create_supernet("resnet", sd_nn.default_pair("resnet")[0], num_classes=10,
                                     in_channels=1, image_size=28, private_roles=("motivated",))
    with pytest.raises(SpecError, match="private offsets"):
        sd_nn.reorganize_channels(supernet)


@pytest.mark.parametrize("family, conv_name", [("resnet", "stages.0.0.conv1"),
                                               ("mbconv", "stages.1.0.dw_conv")])
def test_private_convolution_offsets_train_on_the_base_channels_and_leave_the_base_as_alone(
        tmp_path, family, conv_name) -> None:
    specs = {} if family == "resnet" else {"arch": family, "base_spec": None, "motivated_spec": None}
    grown = TrainConfig.from_dict(GROWN.to_dict() | specs)
    convs = TrainConfig.from_dict(grown.to_dict() | {"private_head": True, "private_convs": True})
    never = TrainConfig.from_dict(grown.to_dict() | {"condition": "never"})
    pair_session = start_run(convs, tmp_path / "pair", profile=PROFILE)
    never_session = start_run(never, tmp_path / "never", profile=PROFILE)
    with torch.no_grad():  # at step 0 the grown motivated model computes its base
        images = torch.randn(5, 1, 8, 8)
        supernet, specs = pair_session.supernet, pair_session.specs
        supernet.eval()
        torch.testing.assert_close(supernet(images, specs[Role.MOTIVATED], "motivated"),
                                   supernet(images, specs[Role.BASE], "base"), rtol=0, atol=1e-5)
        supernet.train()
    for session in (pair_session, never_session):
        loop.run_training(session, Display())
    supernet = pair_session.supernet
    base_map = supernet.slice_map(pair_session.specs[Role.BASE], bn_role="base")
    never_state = never_session.supernet.state_dict()
    for name, tensor in supernet.state_dict().items():
        region = base_map.get(name)
        if region is not None and "num_batches_tracked" not in name:
            assert torch.equal(tensor[region], never_state[name][region]), name
    conv = supernet.get_submodule(conv_name)
    region = base_map[f"{conv_name}.weight"]
    delta = conv.weight_delta_motivated.detach()
    assert delta[region].abs().sum() > 0  # the motivated role retunes the base's filters
    outside = torch.ones_like(delta, dtype=torch.bool)
    outside[region] = False
    assert torch.all(delta[outside] == 0)  # where the shared weight is already its own


def test_resume_of_a_run_with_private_convolution_offsets_is_bit_identical(tmp_path) -> None:
    config = TrainConfig.from_dict(GROWN.to_dict() | {"private_head": True, "private_convs": True})
    a, b, resumed = interrupted_and_resumed(config, tmp_path, PROFILE, signal_at_step=13)
    assert resumed.config.private_convs is True
    assert resumed.supernet.private_convs is True
    assert_same_weights(a, b)
