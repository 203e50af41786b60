"""The paper's condition (`streak`), its two ablations (`random`, `matched`) and the two baselines
every claim is measured against (`never`: the base alone, `always`: the motivated model alone).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from seekdeploy.errors import ConfigError
from seekdeploy.layout import MOTIVATION
from seekdeploy.roles import Role
from seekdeploy.train.conditions.base import Decision, MotivationCondition


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
        self.p = self.expected_fraction = p
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
        path = path / MOTIVATION
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
    expected_fraction = 0.0

    def decide(self, step: int) -> Decision:
        return Decision(Role.BASE, "never")


class AlwaysCondition(MotivationCondition):
    """Baseline: the motivated model standalone."""

    name = "always"
    expected_fraction = 1.0

    def decide(self, step: int) -> Decision:
        return Decision(Role.MOTIVATED, "always")
