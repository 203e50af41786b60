"""The planner's and calibration's defaults and the shape rules, importable without numpy (the
CLI's option defaults and help text read them from here)."""

from __future__ import annotations

import enum

DEFAULT_MAX_BASE_RATIO = 0.5  # the base has at most this share of the motivated model's FLOPs
DEFAULT_CALIBRATION_SPECS = 24  # design specs `calibrate` exports and times (corners + random)
DEFAULT_CALIBRATION_SEED = 0  # seed of the random design specs
DEFAULT_CALIBRATION_FOCUS = 4  # specs the first fit places near the budgets, timed after it


class ShapeRule(str, enum.Enum):
    """Which shapes the planner may pick (`seekdeploy.plan.proportions` has the rules)."""

    GRADED = "graded"
    PROPORTIONAL = "proportional"
    FREE = "free"

    @property
    def description(self) -> str:
        """What the rule allows, in a phrase (the plan's `shape:` line and `--shape`'s help)."""
        return _SHAPE_RULE_DESCRIPTIONS[self]


_SHAPE_RULE_DESCRIPTIONS = {
    ShapeRule.GRADED: "per-stage depth never decreases toward the low-resolution stages, depth and width balanced",
    ShapeRule.PROPORTIONAL: "the family's per-stage depth pattern, depth and width scaled together",
    ShapeRule.FREE: "any shape of the grid (the most FLOPs)",
}

# Graded: the measurement that chose it is in `seekdeploy.plan.proportions`' module doc.
DEFAULT_SHAPE_RULE = ShapeRule.GRADED
