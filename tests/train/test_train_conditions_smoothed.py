"""Conditions beyond the paper's (ema-streak, slope, target): decisions on hand-made base-loss
sequences, parameter checks, registry and checkpoint state."""

from __future__ import annotations

import random

import pytest

from seekdeploy.errors import ConfigError
from seekdeploy.roles import Role
from seekdeploy.train.conditions import create_condition, list_conditions
from seekdeploy.train.conditions.smoothed import regression_slope, update_ema
from seekdeploy.train.config import DEFAULT_CONDITION, DEFAULT_FRACTION, DEFAULT_RAMP, fraction_condition


def _roles(condition, losses) -> str:
    """Feed base losses; the roles chosen before each step ('b'/'m'); motivated steps eat none."""
    roles, feed, step = [], iter(losses), 0
    while True:
        role = condition.decide(step).role
        roles.append(role.value[0])
        step += 1
        if role is Role.BASE:
            try:
                condition.observe_base_loss(float(next(feed)))
            except StopIteration:
                return "".join(roles[:-1])


def test_new_conditions_are_registered_beside_the_papers() -> None:
    names = list_conditions()
    for name in ("ema-streak", "slope", "target", "streak", "random", "never", "always"):
        assert name in names


def test_helpers() -> None:
    assert update_ema(None, 5.0, 0.9) == 5.0
    assert update_ema(5.0, 1.0, 0.75) == pytest.approx(4.0)
    assert regression_slope([3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert regression_slope([1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert regression_slope([7.0]) == 0.0


def test_ema_streak_ignores_a_single_uptick_that_breaks_the_raw_streak() -> None:
    # A falling loss with one noisy uptick (2.1 after 2.0): the raw streak breaks there, the EMA
    # (beta=0.5) keeps falling, so ema-streak fires twice where streak fires once.
    losses = [4.0, 3.0, 2.5, 2.0, 2.1, 1.8, 1.6]
    assert _roles(create_condition("ema-streak:k=3,hold=1,beta=0.5"), losses) == "bbbbmbbbm"
    assert _roles(create_condition("streak:k=3,hold=1"), losses) == "bbbbmbbb"


def test_ema_streak_hold_and_flat_loss() -> None:
    # Strictly falling: 3 EMA decreases after the first loss -> hold=2 motivated, repeat.
    falling = [10.0 - i for i in range(8)]
    assert _roles(create_condition("ema-streak:k=3,hold=2,beta=0.5"), falling) == "bbbbmmbbbmmb"
    # A flat loss never decreases its EMA: the motivated model never trains.
    assert "m" not in _roles(create_condition("ema-streak"), [1.0] * 40)


def test_slope_waits_for_a_full_window_then_alternates_while_falling() -> None:
    # window 4, hold 1: nothing before 4 losses; then b, m, b, m ... while the slope is < 0.
    falling = [8.0 - i for i in range(7)]
    assert _roles(create_condition("slope:window=4,hold=1"), falling) == "bbbbmbmbmbm"


def test_slope_stops_when_the_loss_turns_up_and_honours_threshold() -> None:
    # falls, then rises: once the window's slope turns positive, base only.
    losses = [5.0, 4.0, 3.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # windows: [5,4,3,2] and [4,3,2,3] fall (hold 2 each), [3,2,3,4] onwards rise.
    assert _roles(create_condition("slope:window=4,hold=2"), losses) == "bbbbmmbmmbbb"
    # A slope of -1 per step does not pass a threshold of 1.5.
    falling = [8.0 - i for i in range(7)]
    assert "m" not in _roles(create_condition("slope:window=4,threshold=1.5"), falling)


def test_target_motivates_only_while_improving() -> None:
    # Rising loss: never below its EMA, never motivated however far below target the fraction is.
    assert "m" not in _roles(create_condition("target:target=0.5"), [1.0 + i for i in range(50)])


def test_target_holds_the_fraction_near_the_target_on_a_falling_loss() -> None:
    condition = create_condition("target:target=0.3,hold=2,horizon=20")
    roles = _roles(condition, [100.0 - 0.1 * i for i in range(700)])
    fraction = roles[200:].count("m") / len(roles[200:])
    assert 0.25 < fraction < 0.35
    assert "mmm" not in roles  # never more than hold motivated batches in a row


def test_target_on_noise_stays_under_target_and_above_zero() -> None:
    rng = random.Random(0)
    noise = [1.0 + 0.1 * rng.gauss(0.0, 1.0) for _ in range(2000)]
    roles = _roles(create_condition("target:target=0.4"), noise)
    fraction = roles.count("m") / len(roles)
    assert 0.1 < fraction <= 0.42


@pytest.mark.parametrize("text", ["ema-streak", "slope:window=5", "target:horizon=10"])
def test_state_round_trip_continues_identically(text: str) -> None:
    rng = random.Random(1)
    losses = [2.0 - i / 120 + 0.05 * rng.gauss(0.0, 1.0) for i in range(120)]
    first = create_condition(text)
    _roles(first, losses[:60])
    state = first.state_dict()
    restored = create_condition(text)
    restored.load_state_dict(state)
    assert _roles(first, losses[60:]) == _roles(restored, losses[60:])


@pytest.mark.parametrize("text, fragment", [
    ("ema-streak:beta=1.0", "beta must be in [0, 1)"),
    ("ema-streak:k=0", "k must be >= 1"),
    ("slope:window=1", "window must be >= 2"),
    ("slope:threshold=-1", "threshold must be >= 0"),
    ("slope:hold=0", "hold must be >= 1"),
    ("target:target=1.5", "target must be in (0, 1)"),
    ("target:horizon=0", "horizon must be >= 1"),
    ("target:targte=0.3", "did you mean 'target'"),
    ("ema-streek", "did you mean 'ema-streak'"),
])
def test_bad_parameters_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_condition(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9, 1.0])
def test_motivated_fraction_is_the_default_shape_at_another_share(fraction) -> None:
    """`--motivated-fraction F`: exactly F of the batches, rising over the run like the default
    (ramp 0.4, narrowed so the share stays in [0, 1])."""
    text = fraction_condition(fraction)
    steps = 2000
    condition = create_condition(text, total_steps=steps)
    motivated = [condition.decide(step).role is Role.MOTIVATED for step in range(steps)]
    assert sum(motivated) == round(fraction * steps)
    ramp = min(DEFAULT_RAMP, 2 * min(fraction, 1 - fraction))
    first, last = sum(motivated[:200]) / 200, sum(motivated[-200:]) / 200
    # The share at the start and the end of the run: p -+ ramp/2 (averaged over a tenth of it).
    assert first == pytest.approx(fraction - ramp / 2 + ramp * 0.05, abs=0.01)
    assert last == pytest.approx(fraction + ramp / 2 - ramp * 0.05, abs=0.01)


def test_motivated_fraction_of_the_default_share_is_the_default() -> None:
    assert fraction_condition(DEFAULT_FRACTION) == DEFAULT_CONDITION
