"""Motivation conditions: which role (base or motivated) trains the next batch.

A condition is asked *before* every batch (`decide(step)`) and is told the base's batch loss
after every base step (`observe_base_loss`). Its whole state is plain Python (ints, floats,
lists) so a checkpoint can hold it and be loaded with `torch.load(..., weights_only=True)`.

Conditions are built from text such as `streak:k=3,hold=1` through a small registry
(`create_condition` / `list_conditions`); `register_condition` adds new ones.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seekdeploy.errors import ConfigError, did_you_mean
from seekdeploy.profiles.schema import Role


@dataclass(frozen=True)
class Decision:
    """The role of one batch and why (the reason goes to motivation.jsonl)."""

    role: Role
    reason: str


class MotivationCondition:
    """Base class: decides the role of each batch from the base's loss history."""

    name = "condition"

    def decide(self, step: int) -> Decision:
        """The role of batch `step` (0-based global step), decided before the batch runs."""
        raise NotImplementedError

    def observe_base_loss(self, loss: float) -> None:
        """Record the base's loss of the base step that just ran."""

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class StreakCondition(MotivationCondition):
    """The paper's condition: after `k` consecutive decreases of the base's batch loss, the next
    `hold` batches train the motivated model; then the streak resets (the last base loss is kept,
    so the next base loss is compared with the one before the motivated batches)."""

    name = "streak"

    def __init__(self, k: int = 3, hold: int = 1) -> None:
        self.k, self.hold = k, hold
        self.streak = 0
        self.last_loss: float | None = None
        self.hold_left = 0

    def decide(self, step: int) -> Decision:
        if self.hold_left > 0:
            self.hold_left -= 1
            return Decision(Role.MOTIVATED, f"streak of {self.k} decreases")
        return Decision(Role.BASE, f"streak {self.streak}/{self.k}")

    def observe_base_loss(self, loss: float) -> None:
        decreased = self.last_loss is not None and loss < self.last_loss
        self.streak = self.streak + 1 if decreased else 0
        self.last_loss = loss
        if self.streak >= self.k:
            self.hold_left = self.hold
            self.streak = 0

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "last_loss": self.last_loss, "hold_left": self.hold_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak = int(state["streak"])
        self.last_loss = None if state["last_loss"] is None else float(state["last_loss"])
        self.hold_left = int(state["hold_left"])


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((int(version), tuple(int(v) for v in internal), gauss))


class RandomCondition(MotivationCondition):
    """Ablation A: each batch is motivated with probability `p`, from the condition's own RNG."""

    name = "random"

    def __init__(self, p: float = 0.25, seed: int = 0) -> None:
        self.p = p
        self.rng = random.Random(seed)

    def decide(self, step: int) -> Decision:
        draw = self.rng.random()
        role = Role.MOTIVATED if draw < self.p else Role.BASE
        return Decision(role, f"draw {draw:.3f} vs p={self.p}")

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _set_rng_state(self.rng, state["rng"])


def read_motivation_counts(path: Path) -> tuple[int, int]:
    """(motivated steps, total steps) of a run's motivation.jsonl (or of a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "motivation.jsonl"
    if not path.is_file():
        raise ConfigError(
            f"matched condition: reference {path} does not exist; pass a finished run's "
            "motivation.jsonl (or its run folder), e.g. matched:reference=runs/NAME"
        )
    motivated = total = 0
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            role = record["role"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"matched condition: {path}:{line_number} is not a motivation "
                              f"record ({exc}); pass a run's motivation.jsonl") from exc
        total += 1
        motivated += role == Role.MOTIVATED.value
    if total == 0:
        raise ConfigError(f"matched condition: {path} holds no steps; pass a finished run's file")
    return motivated, total


class MatchedCondition(MotivationCondition):
    """Ablation B: as many motivated batches as a reference run, at random positions over the
    reference's total steps (steps past that total train the base)."""

    name = "matched"

    def __init__(self, reference: str = "", seed: int = 0) -> None:
        if not reference:
            raise ConfigError("matched condition needs reference=PATH (a run's motivation.jsonl)")
        self.reference = reference
        motivated, total = read_motivation_counts(Path(reference))
        self.total_steps = total
        self.motivated_steps = sorted(random.Random(seed).sample(range(total), motivated))
        self._positions = set(self.motivated_steps)

    def decide(self, step: int) -> Decision:
        if step in self._positions:
            return Decision(Role.MOTIVATED, f"matched position ({len(self._positions)} of "
                                            f"{self.total_steps})")
        return Decision(Role.BASE, "matched: not a motivated position")

    def state_dict(self) -> dict[str, Any]:
        return {"motivated_steps": list(self.motivated_steps), "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The positions are restored from the checkpoint so a resumed run never re-reads a
        # reference file that may have changed since.
        self.motivated_steps = [int(s) for s in state["motivated_steps"]]
        self._positions = set(self.motivated_steps)
        self.total_steps = int(state["total_steps"])


class NeverCondition(MotivationCondition):
    """Baseline: the base model alone (traditional training)."""

    name = "never"

    def decide(self, step: int) -> Decision:
        return Decision(Role.BASE, "never")


class AlwaysCondition(MotivationCondition):
    """Baseline: the motivated model standalone."""

    name = "always"

    def decide(self, step: int) -> Decision:
        return Decision(Role.MOTIVATED, "always")


@dataclass(frozen=True)
class ConditionEntry:
    """A registered condition: its factory, its typed parameters with defaults, and help."""

    factory: Callable[..., MotivationCondition]
    params: dict[str, tuple[type, Any]]
    help: str
    seeded: bool = False  # the factory takes `seed=` (from the training seed)
    timed: bool = False  # the factory takes `total_steps=` (the run's length, when known)


_REGISTRY: dict[str, ConditionEntry] = {}


def register_condition(name: str, entry: ConditionEntry) -> None:
    """Add (or replace) a condition under `name` so `create_condition` can build it."""
    _REGISTRY[name] = entry


def list_conditions() -> list[str]:
    """Names of the registered conditions."""
    return sorted(_REGISTRY)


def describe_condition(name: str) -> str:
    """`name:param=default,...  help` for CLI help and error messages."""
    entry = _REGISTRY[name]
    params = ",".join(f"{key}={default}" for key, (_, default) in entry.params.items())
    return f"{name}{':' + params if params else ''}  {entry.help}"


def _convert(name: str, key: str, kind: type, raw: str) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"condition {name!r}: {key}={raw!r} is not a valid "
                          f"{kind.__name__}") from None
    if kind in (int, float) and not math.isfinite(value):
        raise ConfigError(f"condition {name!r}: {key} must be a finite number, got {raw!r}")
    return value


def _validate(name: str, values: dict[str, Any]) -> None:
    # Range checks live here (not in the classes) so every error names the option as typed.
    for key in ("k", "hold"):
        if key in values and values[key] < 1:
            raise ConfigError(f"condition {name!r}: {key} must be >= 1, got {values[key]}")
    if "p" in values and not 0.0 <= values["p"] <= 1.0:
        raise ConfigError(f"condition {name!r}: p must be in [0, 1], got {values['p']}")


def parse_condition(text: str) -> tuple[str, dict[str, Any]]:
    """Split `name:key=value,...` into the name and typed parameters, or raise ConfigError."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown motivation condition {name!r}{did_you_mean(name, _REGISTRY)}; "
                          f"choose one of: {', '.join(list_conditions())}")
    entry = _REGISTRY[name]
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"condition {name!r}: expected key=value, got {item!r} "
                              f"(e.g. {describe_condition(name).split()[0]})")
        if key not in entry.params:
            allowed = ", ".join(entry.params) or "none"
            raise ConfigError(f"condition {name!r} has no parameter {key!r}"
                              f"{did_you_mean(key, entry.params)}; parameters: {allowed}")
        values[key] = _convert(name, key, entry.params[key][0], raw.strip())
    _validate(name, values)
    return name, values


def create_condition(text: str, *, seed: int = 0,
                     total_steps: int | None = None) -> MotivationCondition:
    """Build a condition from text such as `streak:k=3,hold=1`; `seed` feeds seeded conditions,
    `total_steps` (the run's length) the ones that schedule over the run."""
    name, values = parse_condition(text)
    entry = _REGISTRY[name]
    params = {key: default for key, (_, default) in entry.params.items()} | values
    if entry.seeded:
        params["seed"] = seed
    if entry.timed:
        params["total_steps"] = total_steps
    return entry.factory(**params)


register_condition("streak", ConditionEntry(
    StreakCondition, {"k": (int, 3), "hold": (int, 1)},
    "signal (the paper's): after k consecutive base-loss decreases, train the motivated model "
    "for hold batches"))
register_condition("random", ConditionEntry(
    RandomCondition, {"p": (float, 0.25)},
    "rate controller (ablation A): each batch motivated with probability p",
    seeded=True))
register_condition("matched", ConditionEntry(
    MatchedCondition, {"reference": (str, "")},
    "rate controller (ablation B): as many motivated batches as a reference run, at random "
    "positions", seeded=True))
register_condition("never", ConditionEntry(NeverCondition, {}, "the base alone (baseline)"))
register_condition("always", ConditionEntry(AlwaysCondition, {}, "the motivated model alone"))

# Conditions beyond the paper's (ema-streak, slope, target) register themselves; imported last
# because that module builds on the names above.
from seekdeploy.train import conditions_extra as _conditions_extra  # noqa: E402,F401
