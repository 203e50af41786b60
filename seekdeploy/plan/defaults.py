"""The planner's and calibration's defaults and the shape rules, importable without numpy (the
CLI's option defaults and help text read them from here)."""

from __future__ import annotations

import enum

DEFAULT_MAX_BASE_RATIO = 0.5  # the base has at most this share of the motivated model's FLOPs
DEFAULT_CALIBRATION_SPECS = 24  # design specs `calibrate` exports and times (corners + random)
DEFAULT_CALIBRATION_SEED = 0  # seed of the random design specs
DEFAULT_CALIBRATION_FOCUS = 4  # specs the first fit places near the budgets, timed after it


class ShapeRule(str, enum.Enum):
    """Which shapes the planner may pick: the family's proportions (`proportional`) or any
    (`free`, the max-FLOPs search the rule is compared with)."""

    PROPORTIONAL = "proportional"
    FREE = "free"


DEFAULT_SHAPE_RULE = ShapeRule.PROPORTIONAL
