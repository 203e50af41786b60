"""The planner's picks for every shipped profile x family, as a Markdown table (docs/profiles.md).

    python bench/plan_table.py [--predictor roofline|auto] [--shape graded|proportional|free|all]

`roofline` (the default) plans every profile with its declared figures, so the table is the same
on every machine; `auto` uses a calibration in ./profiles where one matches this machine. With
`--shape all` (the default), each profile x family has a row per shape rule: the default (graded),
then proportional, then free (the max-FLOPs pick over any shape).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from seekdeploy.nn.registry import list_families
from seekdeploy.plan.calibration_file import CalibrationWarning, load_predictor
from seekdeploy.plan.planner import PairPlan, PlanError, plan_pair
from seekdeploy.plan.predictor import RooflinePredictor
from seekdeploy.plan.proportions import ShapeRule
from seekdeploy.profiles.loader import list_profiles


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictor", choices=("roofline", "auto"), default="roofline")
    parser.add_argument("--shape", choices=(*(rule.value for rule in ShapeRule), "all"), default="all")
    return parser.parse_args(argv)


def _cell(plan: PairPlan, role: str) -> str:
    role_plan = plan.role(role)
    spec = role_plan.candidate.spec.to_text().split(";kernel=")[0]  # MBConv's constants are the default's
    return f"`{spec}` {role_plan.candidate.flops / 1e6:.0f} MFLOP, {role_plan.budget_used():.0%}"


def rows(predictor_choice: str, shapes: list[ShapeRule]) -> list[str]:
    """One Markdown row per profile x family x shape rule."""
    lines = ["| profile | family | shape rule | base (MFLOP, latency budget used) | motivated | motivated limited by |",
             "|---|---|---|---|---|---|"]
    for profile in list_profiles():
        for family in list_families():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CalibrationWarning)
                predictor = RooflinePredictor(profile) if predictor_choice == "roofline" else \
                    load_predictor(profile, family)
            for shape in shapes:
                try:
                    plan = plan_pair(profile, family, predictor, shape=shape)
                except PlanError:
                    lines.append(f"| {profile.name} | {family} | {shape.value} | no pair: the {predictor.kind} "
                                 "predictor puts every spec over a budget (calibrate) | | |")
                    continue
                limited = ", ".join(plan.motivated.limited_by())
                lines.append(f"| {profile.name} | {family} | {shape.value} | {_cell(plan, 'base')} | "
                             f"{_cell(plan, 'motivated')} | {limited} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    args = parse_args(argv)
    shapes = list(ShapeRule) if args.shape == "all" else [ShapeRule(args.shape)]
    sys.stdout.write("\n".join(rows(args.predictor, shapes)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
