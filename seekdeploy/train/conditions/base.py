"""What every motivation condition is: a `MotivationCondition` that returns a `Decision` per batch,
and the `ConditionEntry` a condition is registered with (factory, typed parameters, help).

A condition is asked *before* every batch (`decide(step)`) and is told the base's batch loss
after every base step (`observe_base_loss`). Its whole state is plain Python (ints, floats,
lists) so a checkpoint can hold it and be loaded with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seekdeploy.roles import Role


@dataclass(frozen=True)
class Decision:
    """The role of one batch and why (the reason goes to motivation.jsonl)."""

    role: Role
    reason: str


class MotivationCondition:
    """Base class: decides the role of each batch from the base's loss history."""

    name = "condition"
    # The share of motivated batches the condition produces over a run, where it is known in
    # advance (fixed-rate conditions); None for conditions that follow the loss.
    expected_fraction: float | None = None

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


@dataclass(frozen=True)
class ConditionEntry:
    """A registered condition: its factory, its typed parameters with defaults, and help."""

    factory: Callable[..., MotivationCondition]
    params: dict[str, tuple[type, Any]]
    help: str
    seeded: bool = False  # the factory takes `seed=` (from the training seed)
    timed: bool = False  # the factory takes `total_steps=` (the run's length, when known)
