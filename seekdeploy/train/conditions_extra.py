"""Motivation conditions beyond the paper's: `ema-streak`, `slope` and `target`.

The paper's `streak` compares raw batch losses. A batch loss is noisy enough that three
consecutive decreases happen about as often as chance allows (1/24 of base steps for k=3), so the
motivated model is starved. These conditions read a smoothed signal of the same base-loss history:

- `ema-streak`: the paper's streak, counted on an exponential moving average of the base loss.
- `slope`: motivate while the least-squares slope of the last `window` base losses is negative,
  `hold` batches at a time, with a base step between holds so the signal stays fresh.
- `target`: keep a running motivated fraction near `target`, motivating only while the base loss
  is below its moving average (i.e. improving).

All state is plain Python so checkpoints stay loadable with `weights_only=True`. The module
registers its conditions in `seekdeploy.train.conditions` when imported (that module imports it).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from seekdeploy.errors import ConfigError
from seekdeploy.profiles.schema import Role
from seekdeploy.train.conditions import (
    ConditionEntry,
    Decision,
    MotivationCondition,
    register_condition,
)


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
        self.fraction = 0.0
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


register_condition("ema-streak", ConditionEntry(
    EmaStreakCondition, {"k": (int, 3), "hold": (int, 2), "beta": (float, 0.9)},
    "streak of k decreases of the base loss's EMA (weight beta), then hold motivated batches"))
register_condition("slope", ConditionEntry(
    SlopeCondition, {"window": (int, 32), "hold": (int, 1), "threshold": (float, 0.0)},
    "while the regression slope of the last window base losses is < -threshold, "
    "hold motivated batches per base batch"))
register_condition("target", ConditionEntry(
    TargetFractionCondition,
    {"target": (float, 0.4), "hold": (int, 2), "beta": (float, 0.9), "horizon": (int, 100)},
    "keep the motivated fraction near target, only while the base loss is below its EMA"))
