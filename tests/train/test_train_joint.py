"""Joint motivated batches, in-place distillation, the honest cost count and the rate conditions."""

from __future__ import annotations

import copy
import json
import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from seekdeploy import nn as sd_nn
from seekdeploy.errors import ConfigError
from seekdeploy.roles import Role
from seekdeploy.train import loop
from seekdeploy.train.conditions import create_condition
from seekdeploy.train.config import MotivatedStep, TrainConfig
from seekdeploy.train.run import finish_run, start_run
from seekdeploy.train.session import TRAINING_FLOPS_PER_FORWARD
from helpers import Display, assert_same_weights, interrupted_and_resumed

PROFILE = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
JOINT = TrainConfig(arch="resnet", data="digits", epochs=2, batch_size=64, seed=3,
                    condition="schedule:p=0.5", motivated_step="joint", base_spec="depth=1,1;width=2,4",
                    motivated_spec="depth=2,1;width=4,8", device="cpu", bn_recalibrate_batches=2)


def _batch(session):
    train = session.dataset.train
    return train.images[:64], train.labels[:64]


def _role_grads(session, snapshot, inputs, labels, role):
    """Gradients of one role's loss alone, at the pre-step weights (`snapshot`)."""
    net = copy.deepcopy(snapshot)
    logits = net(inputs, spec=session.specs[role], bn_role=role.value)
    F.cross_entropy(logits, labels, label_smoothing=session.config.label_smoothing).backward()
    return {name: (p.grad if p.grad is not None else torch.zeros_like(p))
            for name, p in net.named_parameters()}


def test_joint_batch_moves_shared_slice_by_both_losses_and_the_rest_by_the_motivated_alone(
        tmp_path) -> None:
    session = start_run(JOINT, tmp_path / "run", profile=PROFILE)
    images, labels = _batch(session)
    snapshot = copy.deepcopy(session.supernet)
    augment_state = session.augment_generator.get_state()
    losses = loop.train_step(session, images, labels, Role.MOTIVATED)
    assert set(losses) == {Role.BASE, Role.MOTIVATED}
    # The same augmented inputs again, from the restored generator.
    session.augment_generator.set_state(augment_state)
    inputs = loop._normalized(session, images, augment=True)
    grad_m = _role_grads(session, snapshot, inputs, labels, Role.MOTIVATED)
    grad_b = _role_grads(session, snapshot, inputs, labels, Role.BASE)
    base_map = session.supernet.slice_map(session.specs[Role.BASE], bn_role="base")
    shared_moved_by_base = False
    for name, param in session.supernet.named_parameters():
        joint = param.grad  # left by the step: the gradient of the summed objective
        torch.testing.assert_close(joint, grad_m[name] + grad_b[name], rtol=1e-4, atol=1e-6)
        outside = torch.ones(param.shape, dtype=torch.bool)
        if base_map.get(name) is not None:
            outside[base_map[name]] = False
            shared_moved_by_base |= bool(grad_b[name][base_map[name]].abs().sum() > 0)
        # Motivated-only weights: the base loss contributes nothing there.
        assert torch.equal(grad_b[name][outside], torch.zeros_like(grad_b[name][outside])), name
        torch.testing.assert_close(joint[outside], grad_m[name][outside], rtol=1e-4, atol=1e-6)
    assert shared_moved_by_base
    with torch.no_grad():
        expected = F.cross_entropy(snapshot(inputs, spec=session.specs[Role.BASE], bn_role="base"),
                                   labels, label_smoothing=session.config.label_smoothing)
    assert losses[Role.BASE] == pytest.approx(float(expected), rel=1e-5)


def test_base_batch_of_a_joint_run_changes_nothing_outside_the_base_slice(tmp_path) -> None:
    session = start_run(JOINT, tmp_path / "run", profile=PROFILE)
    images, labels = _batch(session)
    loop.train_step(session, images, labels, Role.MOTIVATED)  # optimizer state everywhere
    before = {n: p.detach().clone() for n, p in session.supernet.named_parameters()}
    before_state = {id(p): {k: v.clone() for k, v in s.items()}
                    for p, s in session.optimizer.state.items()}
    losses = loop.train_step(session, images, labels, Role.BASE)
    assert set(losses) == {Role.BASE}
    base_map = session.supernet.slice_map(session.specs[Role.BASE], bn_role="base")
    for name, param in session.supernet.named_parameters():
        outside = torch.ones(param.shape, dtype=torch.bool)
        if base_map.get(name) is not None:
            outside[base_map[name]] = False
        assert torch.equal(param.detach()[outside], before[name][outside]), name
        for key, value in session.optimizer.state[param].items():
            assert torch.equal(value[outside], before_state[id(param)][key][outside]), (name, key)


def test_distillation_changes_only_the_base_objective(tmp_path) -> None:
    plain = start_run(JOINT, tmp_path / "plain", profile=PROFILE)
    distilled = start_run(TrainConfig.from_dict(JOINT.to_dict() | {
        "distill_weight": 1.0, "distill_temperature": 2.0}), tmp_path / "kd", profile=PROFILE)
    images, labels = _batch(plain)
    loop.train_step(plain, images, labels, Role.MOTIVATED)
    loop.train_step(distilled, images, labels, Role.MOTIVATED)
    base_map = plain.supernet.slice_map(plain.specs[Role.BASE], bn_role="base")
    names = dict(distilled.supernet.named_parameters())
    differs = False
    for name, param in plain.supernet.named_parameters():
        outside = torch.ones(param.shape, dtype=torch.bool)
        if base_map.get(name) is not None:
            outside[base_map[name]] = False
            differs |= not torch.equal(param.grad[base_map[name]], names[name].grad[base_map[name]])
        # The teacher's logits are detached: motivated-only gradients are the same.
        torch.testing.assert_close(param.grad[outside], names[name].grad[outside])
    assert differs


def _run(config, run_dir, signal_at_step=None):
    session = start_run(config, run_dir, profile=PROFILE)
    loop.run_training(session, Display(signal_at_step))
    return session, finish_run(session, "tiny")


@pytest.mark.parametrize("fraction, stale", [(0.5, False), (0.05, True)])
def test_honest_cost_equals_a_hand_count(tmp_path, fraction, stale) -> None:
    config = TrainConfig.from_dict(JOINT.to_dict() | {"condition": f"schedule:p={fraction}"})
    session, summary = _run(config, tmp_path / "run")
    roles = [json.loads(line)["role"] for line in
             (tmp_path / "run" / "motivation.jsonl").read_text().splitlines()]
    motivated, base = roles.count("motivated"), roles.count("base")
    assert motivated and base
    flops = {role: sd_nn.estimate_cost(session.specs[role], in_channels=1, image_size=8,
                                       num_classes=10).flops for role in (Role.BASE, Role.MOTIVATED)}
    batch = JOINT.batch_size
    train = TRAINING_FLOPS_PER_FORWARD * batch * (flops[Role.BASE] * base
                                                   + (flops[Role.MOTIVATED] + flops[Role.BASE])
                                                   * motivated)
    # The base runs on every batch: never stale. The motivated model is stale only when it
    # skipped more than MAX_FRESH_GAP batches in a row (p=0.05: 19 of every 20); then it is
    # re-estimated once, after the last epoch, on 2 batches: forward passes only.
    recalibration = flops[Role.MOTIVATED] * 2 * batch if stale else 0.0
    assert summary.train_flops == pytest.approx(train + recalibration, rel=1e-9)
    assert summary.cost_flops["bn_recalibration"] == pytest.approx(recalibration, rel=1e-9)
    assert summary.cost_flops["joint_base_passes"] == pytest.approx(
        TRAINING_FLOPS_PER_FORWARD * batch * flops[Role.BASE] * motivated, rel=1e-9)
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(e["epoch"], e["role"]) for e in epochs if e.get("bn_recalibrated")] == (
        [(1, "motivated")] if stale else [])


def test_resume_of_a_joint_distillation_run_is_bit_identical(tmp_path) -> None:
    config = TrainConfig.from_dict(JOINT.to_dict() | {"distill_weight": 0.5,
                                                      "distill_temperature": 2.0})
    a, b, resumed = interrupted_and_resumed(config, tmp_path, PROFILE, signal_at_step=27)
    assert resumed.config.motivated_step is MotivatedStep.JOINT
    assert resumed.config.distill_weight == 0.5
    assert_same_weights(a, b)
    assert a["progress"]["cost_flops"] == b["progress"]["cost_flops"]


def test_a_saved_config_from_before_joint_steps_keeps_its_meaning() -> None:
    saved = JOINT.to_dict()
    for key in ("motivated_step", "distill_weight", "distill_temperature"):
        saved.pop(key)
    assert TrainConfig.from_saved(saved).motivated_step is MotivatedStep.ALONE
    with pytest.raises(Exception, match="distill_weight"):
        TrainConfig.from_dict(JOINT.to_dict() | {"distill_weight": 1.5})


def _fraction(condition, losses):
    motivated = []
    for loss in losses:
        motivated.append(condition.decide(len(motivated)).role is Role.MOTIVATED)
        condition.observe_base_loss(loss)  # the base runs on every batch of a joint run
    return motivated


def test_target_fraction_is_right_from_the_first_steps() -> None:
    motivated = _fraction(create_condition("target:target=0.4,hold=2"),
                          [2.0 - 0.01 * i for i in range(200)])  # always improving
    for window in (motivated[:20], motivated[20:60], motivated[60:200]):
        assert sum(window) / len(window) == pytest.approx(0.4, abs=0.1)


def test_trend_sits_at_its_floor_on_noise_and_rises_on_improvement() -> None:
    rng = random.Random(0)
    noise = _fraction(create_condition("trend:floor=0.1,ceiling=0.6"),
                      [1.0 + rng.gauss(0, 0.2) for _ in range(4000)])
    assert sum(noise) / len(noise) == pytest.approx(0.1, abs=0.04)
    improving = _fraction(create_condition("trend:floor=0.1,ceiling=0.6"),
                          [3.0 - 0.002 * i + rng.gauss(0, 0.2) for i in range(1000)])
    # An early epoch's fall (0.002 a batch under noise of 0.2): seen once the window is full.
    assert sum(improving[300:]) / 700 == pytest.approx(0.6, abs=0.05)


def test_schedule_spreads_exactly_p_and_ramps_keep_the_mean() -> None:
    flat = _fraction(create_condition("schedule:p=0.4"), [1.0] * 1000)
    assert sum(flat) == 400 and max(len(run) for run in "".join(
        "m" if m else "b" for m in flat).split("b")) == 1
    ramp = _fraction(create_condition("schedule:p=0.4,ramp=0.4", total_steps=1000), [1.0] * 1000)
    assert sum(ramp) == pytest.approx(400, abs=1)
    assert sum(ramp[:500]) == pytest.approx(0.3 * 500, abs=2)
    with pytest.raises(Exception, match="ramp"):
        create_condition("schedule:p=0.1,ramp=0.5", total_steps=10)


def test_a_shielded_pair_trains_its_base_exactly_as_training_it_alone(tmp_path) -> None:
    alone = TrainConfig.from_dict(JOINT.to_dict() | {"condition": "never", "motivated_step": "alone"})
    shielded = TrainConfig.from_dict(JOINT.to_dict() | {"motivated_step": "shielded"})
    never_session, never_summary = _run(alone, tmp_path / "never")
    pair_session, pair_summary = _run(shielded, tmp_path / "pair")
    assert pair_summary.motivated_fraction == pytest.approx(0.5, abs=0.02)
    base_map = pair_session.supernet.slice_map(pair_session.specs[Role.BASE], bn_role="base")
    never_state = never_session.supernet.state_dict()
    compared = 0
    for name, tensor in pair_session.supernet.state_dict().items():
        region = base_map.get(name)
        if region is None or name.rpartition(".")[2].startswith("num_batches_tracked"):
            continue
        assert torch.equal(tensor[region], never_state[name][region]), name
        compared += 1
    assert compared > 10
    assert pair_summary.test_top1["base"] == never_summary.test_top1["base"]
    # ...while the motivated-only weights did train.
    assert pair_summary.cost_flops["motivated_steps"] > 0


@pytest.mark.parametrize("text, first, share", [
    ("schedule:p=0.6,start=0.4", 400, 1.0), ("schedule:p=0.3,start=0.5", 500, 0.6),
    ("schedule:p=0.4,ramp=0.4,start=0.2", 200, 0.5)])
def test_a_schedule_start_trains_the_base_alone_first_and_keeps_the_share(text, first,
                                                                         share) -> None:
    condition = create_condition(text, total_steps=1000)
    motivated = [condition.decide(step).role is Role.MOTIVATED for step in range(1000)]
    assert first <= motivated.index(True) < first + 5  # none before start * steps
    assert sum(motivated) == pytest.approx(condition.p * 1000, abs=1)  # the run's mean is p
    window = motivated[first:]
    assert sum(window) / len(window) == pytest.approx(share, abs=0.002)
    if condition.ramp:  # the ramp rises over the window, not the run
        half = len(window) // 2
        assert sum(window[half:]) - sum(window[:half]) == pytest.approx(
            condition.ramp / 2 * half, abs=2)


@pytest.mark.parametrize("text, fragment", [
    ("schedule:p=0.6,start=0.5", "start must be at most 1 - p = 0.4"),
    ("schedule:p=0.2,start=1", "start must be in [0, 1)"),
    ("schedule:p=0.6,start=0.4,ramp=0.2", "ramp must be within ±0"),
])
def test_a_schedule_start_that_cannot_fit_the_share_is_refused(text, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        create_condition(text, total_steps=100)
    assert fragment in str(info.value)
    with pytest.raises(ConfigError, match="only usable inside a training run"):
        create_condition("schedule:p=0.2,start=0.5")
