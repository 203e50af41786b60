"""Motivation conditions beyond the paper's: `ema-streak`, `slope`, `target`, `trend`, `schedule`.

Each is one of two kinds, and its help says which:

- a **signal** decides from the base's losses whether the base is improving now (`streak`,
  `ema-streak`, `slope`); its motivated fraction is whatever the signal makes it;
- a **rate controller** fixes the motivated fraction (`schedule`, `random`, `matched`) or steers
  it toward a set value (`target`, and `trend`, which switches between a floor and a ceiling
  rate on a statistically significant improvement of the base loss).

The paper's `streak` compares raw batch losses. A batch loss is noisy enough that three
consecutive decreases happen about as often as chance allows (1/24 of base steps for k=3), so the
motivated model is starved. These conditions read a smoothed signal of the same base-loss history:

- `ema-streak`: the paper's streak, counted on an exponential moving average of the base loss.
- `slope`: motivate while the least-squares slope of the last `window` base losses is negative,
  `hold` batches at a time, with a base step between holds so the signal stays fresh.
- `target`: keep a running motivated fraction near `target`, motivating only while the base loss
  is below its moving average (i.e. improving).

All state is plain Python so checkpoints stay loadable with `weights_only=True`. The package
`__init__` registers them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from seekdeploy.errors import ConfigError
from seekdeploy.roles import Role
from seekdeploy.train.conditions.base import Decision, MotivationCondition


def _check(name: str, key: str, ok: bool, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"condition {name!r}: {key} must be {allowed}, got {value}")


def update_ema(ema: float | None, value: float, beta: float) -> float:
    """`beta * ema + (1 - beta) * value`; the first value starts the average."""
    return value if ema is None else beta * ema + (1.0 - beta) * value


def regression_slope(values: list[float]) -> float:
    """Least-squares slope of `values` against their index (0 for fewer than two values)."""
    count = len(values)
    if count < 2:
        return 0.0
    mean_x = (count - 1) / 2.0
    mean_y = sum(values) / count
    covariance = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    variance = sum((i - mean_x) ** 2 for i in range(count))
    return covariance / variance


class EmaStreakCondition(MotivationCondition):
    """The paper's streak on a smoothed loss: after the EMA of the base loss has decreased on `k`
    consecutive base steps, the next `hold` batches train the motivated model; the streak then
    resets (the EMA carries on)."""

    name = "ema-streak"

    def __init__(self, k: int = 3, hold: int = 2, beta: float = 0.9) -> None:
        _check(self.name, "beta", 0.0 <= beta < 1.0, "in [0, 1)", beta)
        self.k, self.hold, self.beta = k, hold, beta
        self.ema: float | None = None
        self.streak = 0
        self.hold_left = 0

    def decide(self, step: int) -> Decision:
        if self.hold_left > 0:
            self.hold_left -= 1
            return Decision(Role.MOTIVATED, f"ema streak of {self.k} decreases")
        return Decision(Role.BASE, f"ema streak {self.streak}/{self.k}")

    def observe_base_loss(self, loss: float) -> None:
        previous = self.ema
        self.ema = update_ema(previous, loss, self.beta)
        decreased = previous is not None and self.ema < previous
        self.streak = self.streak + 1 if decreased else 0
        if self.streak >= self.k:
            self.hold_left = self.hold
            self.streak = 0

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema, "streak": self.streak, "hold_left": self.hold_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.streak = int(state["streak"])
        self.hold_left = int(state["hold_left"])


class SlopeCondition(MotivationCondition):
    """Motivate while the regression slope of the last `window` base losses is below
    `-threshold`: `hold` motivated batches, then one base batch (which refreshes the window), and
    so on. Nothing is motivated until the window is full."""

    name = "slope"

    def __init__(self, window: int = 32, hold: int = 1, threshold: float = 0.0) -> None:
        _check(self.name, "window", window >= 2, ">= 2", window)
        _check(self.name, "threshold", threshold >= 0.0, ">= 0", threshold)
        self.window, self.hold, self.threshold = window, hold, threshold
        self.losses: deque[float] = deque(maxlen=window)
        self.hold_left = 0

    def decide(self, step: int) -> Decision:
        if self.hold_left > 0:
            self.hold_left -= 1
            return Decision(Role.MOTIVATED, f"base-loss slope < -{self.threshold}")
        return Decision(Role.BASE, f"slope window {len(self.losses)}/{self.window}")

    def observe_base_loss(self, loss: float) -> None:
        self.losses.append(loss)
        full = len(self.losses) == self.window
        if full and regression_slope(list(self.losses)) < -self.threshold:
            self.hold_left = self.hold

    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "hold_left": self.hold_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = deque((float(v) for v in state["losses"]), maxlen=self.window)
        self.hold_left = int(state["hold_left"])


class TargetFractionCondition(MotivationCondition):
    """Keep the motivated fraction near `target`, motivating only while the base improves.

    The fraction is an exponential average over about `horizon` batches (so an early drought is
    not repaid later in one long burst). A batch is motivated when that fraction is below
    `target`, the last base loss is below the EMA (`beta`) of the base losses before it, and fewer
    than `hold` motivated batches have run since the last base batch.
    """

    name = "target"

    def __init__(self, target: float = 0.4, hold: int = 2, beta: float = 0.9,
                 horizon: int = 100) -> None:
        _check(self.name, "target", 0.0 < target < 1.0, "in (0, 1)", target)
        _check(self.name, "beta", 0.0 <= beta < 1.0, "in [0, 1)", beta)
        _check(self.name, "horizon", horizon >= 1, ">= 1", horizon)
        self.target, self.hold, self.beta, self.horizon = target, hold, beta, horizon
        # The running fraction starts AT the target: started at 0, it would motivate every
        # improving batch (up to `hold` in a row) until it caught up, front-loading the run.
        self.fraction = target
        self.ema: float | None = None
        self.improving = False
        self.run_length = 0  # motivated batches since the last base batch

    def decide(self, step: int) -> Decision:
        motivate = self.improving and self.fraction < self.target and self.run_length < self.hold
        self.fraction += (float(motivate) - self.fraction) / self.horizon
        if motivate:
            self.run_length += 1
            return Decision(Role.MOTIVATED, f"improving, fraction {self.fraction:.2f}")
        why = "not improving" if not self.improving else f"fraction {self.fraction:.2f}"
        return Decision(Role.BASE, why)

    def observe_base_loss(self, loss: float) -> None:
        self.improving = self.ema is not None and loss < self.ema
        self.ema = update_ema(self.ema, loss, self.beta)
        self.run_length = 0

    def state_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "ema": self.ema, "improving": self.improving,
                "run_length": self.run_length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fraction = float(state["fraction"])
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.improving = bool(state["improving"])
        self.run_length = int(state["run_length"])


def slope_t_statistic(values: list[float]) -> float:
    """t-statistic of the least-squares slope of `values` against their index (0 for fewer than
    three values or a perfect fit of zero slope): slope / its standard error."""
    count = len(values)
    if count < 3:
        return 0.0
    mean_x, mean_y = (count - 1) / 2.0, sum(values) / count
    sxx = sum((i - mean_x) ** 2 for i in range(count))
    slope = regression_slope(values)
    residual = sum((y - mean_y - slope * (i - mean_x)) ** 2 for i, y in enumerate(values))
    standard_error = (residual / (count - 2) / sxx) ** 0.5
    if standard_error == 0.0:
        return 0.0 if slope == 0.0 else (-1e9 if slope < 0 else 1e9)
    return slope / standard_error


class _RateAccumulator:
    """Spreads a fraction of motivated batches evenly: each batch adds the current rate to an
    accumulator and is motivated when it reaches 1 (so rate 0.4 gives 2 batches in every 5)."""

    def __init__(self) -> None:
        self.credit = 0.0

    def take(self, rate: float) -> bool:
        self.credit += rate
        if self.credit >= 1.0 - 1e-9:
            self.credit -= 1.0
            return True
        return False


class TrendCondition(MotivationCondition):
    """Rate controller on a signal: motivate at the `ceiling` rate while the base loss has a
    statistically significant downward trend (the t-statistic of the regression slope of the last
    `window` base losses is below `-t`), else at the `floor` rate. Fed a loss with no trend, the
    fraction sits near the floor (a false alarm needs |t| > t by chance); fed an improving loss,
    it rises to the ceiling. The window is long because a batch loss is noisy: at batch 64 its
    spread (~0.2) hides a fall of 0.002 a step (an early epoch's) from a 64-batch regression
    (t ≈ -1.5), while 256 batches see it clearly (t ≈ -12)."""

    name = "trend"

    def __init__(self, window: int = 256, t: float = 2.0, floor: float = 0.1,
                 ceiling: float = 0.6) -> None:
        _check(self.name, "window", window >= 3, ">= 3", window)
        _check(self.name, "t", t >= 0.0, ">= 0", t)
        _check(self.name, "floor", 0.0 <= floor <= 1.0, "in [0, 1]", floor)
        _check(self.name, "ceiling", floor <= ceiling <= 1.0, "in [floor, 1]", ceiling)
        self.window, self.t, self.floor, self.ceiling = window, t, floor, ceiling
        self.losses: deque[float] = deque(maxlen=window)
        self.improving = False
        self.rate = _RateAccumulator()

    def decide(self, step: int) -> Decision:
        rate = self.ceiling if self.improving else self.floor
        if self.rate.take(rate):
            return Decision(Role.MOTIVATED, f"rate {rate:g} ({'improving' if self.improving else 'floor'})")
        return Decision(Role.BASE, f"rate {rate:g}")

    def observe_base_loss(self, loss: float) -> None:
        self.losses.append(loss)
        full = len(self.losses) == self.window
        self.improving = full and slope_t_statistic(list(self.losses)) < -self.t

    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "improving": self.improving,
                "credit": self.rate.credit}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = deque((float(v) for v in state["losses"]), maxlen=self.window)
        self.improving = bool(state["improving"])
        self.rate.credit = float(state["credit"])


class ScheduleCondition(MotivationCondition):
    """Rate controller with no signal: exactly a fraction `p` of the batches are motivated,
    spread evenly (p=0.4: 2 in every 5). With `start` > 0 the first `start` of the run trains
    the base alone and the motivated batches are spread over the rest (a share p / (1 - start)
    there, so the run's mean stays p). With `ramp` != 0 the share changes linearly over those
    batches, rising by `ramp` from the first to the last (the mean stays the same); the positions
    are a pure function of the step, so resume is exact."""

    name = "schedule"

    def __init__(self, p: float = 0.4, ramp: float = 0.0, start: float = 0.0,
                 total_steps: int | None = None) -> None:
        _check(self.name, "start", 0 <= start < 1, "in [0, 1)", start)
        share = p / (1 - start)
        _check(self.name, "start", share <= 1 + 1e-9, f"at most 1 - p = {1 - p:g} (the motivated "
               "batches must fit in the rest of the run)", start)
        # (1e-9: a bound such as 2 * (1 - 0.8) is 0.3999...; `ramp=0.4` is meant to be at it)
        bound = 2 * min(share, 1 - share)
        _check(self.name, "ramp", abs(ramp) <= bound + 1e-9, f"within ±{bound:g} "
               "(so the fraction stays in [0, 1])", ramp)
        if (ramp or start) and not total_steps:
            raise ConfigError("condition 'schedule': ramp and start need the run's total steps; "
                              "they are only usable inside a training run")
        self.p, self.ramp, self.start, self.total_steps = p, ramp, start, total_steps
        self.expected_fraction = p

    def expected_count(self, steps: int) -> float:
        """Motivated batches among the first `steps`: the integral of the fraction."""
        if not (self.ramp or self.start):
            return self.p * steps
        first = self.start * self.total_steps  # the motivated batches' window: first..total
        window = float(self.total_steps) - first
        local = max(0.0, steps - first)
        share = self.p / (1 - self.start)
        return (share - self.ramp / 2) * local + self.ramp * local * local / (2 * window)

    def decide(self, step: int) -> Decision:
        # Batch `step` is motivated when the expected count crosses an integer during it.
        motivated = int(self.expected_count(step + 1) + 1e-9) > int(self.expected_count(step) + 1e-9)
        role = Role.MOTIVATED if motivated else Role.BASE
        return Decision(role, f"schedule p={self.p:g}" + (f", ramp {self.ramp:g}" if self.ramp else "")
                        + (f", from {self.start:g} of the run" if self.start else ""))
