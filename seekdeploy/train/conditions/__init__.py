"""Motivation conditions: which role (base or motivated) trains the next batch.

- `base`: `MotivationCondition`, `Decision`, `ConditionEntry` (what a condition is);
- `registry`: `register_condition`, `list_conditions`, `parse_condition`, `create_condition`;
- `paper`: the paper's `streak`, the ablations `random` and `matched`, the baselines `never`
  and `always`;
- `smoothed`: conditions beyond the paper's (`ema-streak`, `slope`, `target`, `trend`, `schedule`).

Condition modules import only `base` (and the registry nothing but `base`); this file registers
every built-in condition explicitly, so `seekdeploy.train.conditions` is the one import path.
A new condition: a class in a module here (or anywhere) plus one `register_condition` call.
"""

from __future__ import annotations

from seekdeploy.train.conditions.base import ConditionEntry, Decision, MotivationCondition
from seekdeploy.train.conditions.paper import (
    AlwaysCondition,
    MatchedCondition,
    NeverCondition,
    RandomCondition,
    StreakCondition,
    read_motivation_counts,
)
from seekdeploy.train.conditions.registry import (
    condition_synopsis,
    create_condition,
    describe_condition,
    list_conditions,
    parse_condition,
    register_condition,
)
from seekdeploy.train.conditions.smoothed import (
    EmaStreakCondition,
    ScheduleCondition,
    SlopeCondition,
    TargetFractionCondition,
    TrendCondition,
)

__all__ = [
    "AlwaysCondition", "ConditionEntry", "Decision", "EmaStreakCondition", "MatchedCondition",
    "MotivationCondition", "NeverCondition", "RandomCondition", "ScheduleCondition", "SlopeCondition",
    "StreakCondition", "TargetFractionCondition", "TrendCondition", "condition_synopsis",
    "create_condition", "describe_condition", "list_conditions", "parse_condition",
    "read_motivation_counts", "register_condition",
]

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
register_condition("ema-streak", ConditionEntry(
    EmaStreakCondition, {"k": (int, 3), "hold": (int, 2), "beta": (float, 0.9)},
    "signal: streak of k decreases of the base loss's EMA (weight beta), then hold motivated "
    "batches"))
register_condition("slope", ConditionEntry(
    SlopeCondition, {"window": (int, 32), "hold": (int, 1), "threshold": (float, 0.0)},
    "signal: while the regression slope of the last window base losses is < -threshold, "
    "hold motivated batches per base batch"))
register_condition("target", ConditionEntry(
    TargetFractionCondition,
    {"target": (float, 0.4), "hold": (int, 2), "beta": (float, 0.9), "horizon": (int, 100)},
    "rate controller: keep the motivated fraction near target, motivating only while the base "
    "loss is below its EMA"))
register_condition("trend", ConditionEntry(
    TrendCondition,
    {"window": (int, 256), "t": (float, 2.0), "floor": (float, 0.1), "ceiling": (float, 0.6)},
    "rate controller on a signal: the ceiling rate while the last window base losses fall "
    "significantly (slope t-statistic < -t), else the floor rate"))
register_condition("schedule", ConditionEntry(
    ScheduleCondition, {"p": (float, 0.4), "ramp": (float, 0.0), "start": (float, 0.0)},
    "rate controller: exactly a fraction p of batches motivated, evenly spread (start: the "
    "first start of the run trains the base alone; ramp: the fraction rises by ramp from the "
    "first motivated batch to the last, mean p)", timed=True))
