"""Every shipped profile x every family: `plan --json` gives a pair worth deploying, quickly."""

from __future__ import annotations

import json

import pytest
from helpers import REPO

from seekdeploy.nn import spec_from_json

SHIPPED = sorted(path.stem for path in (REPO / "profiles").glob("*.yaml"))
FAMILIES = ("resnet", "mbconv", "vit")
# What may stop a role short of half its latency budget (a budget it would break, the pair rule, or
# the end of the grid, the family's proportions); the latency budget itself cannot.
NAMED_LIMITS = {"peak memory", "file size", "grid cap", "pair ratio", "nesting", "proportions"}


def test_the_walk_covers_every_shipped_profile() -> None:
    assert len(SHIPPED) >= 5 and "jetson-orin-nano" in SHIPPED


# Budgets sized for measured latency, below the roofline's floor for some families: those are
# planned after a calibration, and without one the error says how to get it.
NEEDS_CALIBRATION = {"x86-cpu-demo"}


@pytest.mark.parametrize("profile", SHIPPED)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_shipped_profile_plans_a_pair_worth_deploying(run_cli, tmp_cwd, profile: str, family: str) -> None:
    done = run_cli("plan", "--profile", profile, "--arch", family, "--json")
    if profile in NEEDS_CALIBRATION and done.exit_code != 0:
        assert done.exit_code == 1 and f"seekdeploy calibrate --profile {profile}" in done.stderr
        return
    assert done.exit_code == 0, done.stderr
    plan = json.loads(done.stdout)
    base, motivated = plan["base"], plan["motivated"]
    assert spec_from_json(motivated["spec_json"]).contains(spec_from_json(base["spec_json"]))
    assert base["flops"] <= 0.5 * motivated["flops"] and plan["base_flops_ratio"] <= 0.5
    for role in (base, motivated):
        assert all(margin >= 0 for margin in role["margins"].values()), role
        filled = role["predicted_latency_ms"] >= 0.5 * role["budget_latency_ms"]
        assert filled or NAMED_LIMITS & set(role["limited_by"]), (profile, family, role)
        assert role["limited_by"], "every role says what stopped it growing"
    # Reported for docs/results.md's "Planner search time" (a measurement, not bounded here: a
    # loaded machine stretches it past any fixed limit).
    assert isinstance(plan["search_seconds"], float) and plan["search_seconds"] >= 0


def test_the_ratio_option_changes_the_rule(run_cli, tmp_cwd) -> None:
    plans = {}
    for ratio in ("0.5", "0.2"):
        done = run_cli("plan", "--profile", "jetson", "--arch", "resnet", "--max-base-ratio", ratio, "--json")
        assert done.exit_code == 0, done.stderr
        plans[ratio] = json.loads(done.stdout)
    assert plans["0.2"]["base"]["flops"] <= 0.2 * plans["0.2"]["motivated"]["flops"]
    assert plans["0.2"]["base"]["spec"] != plans["0.5"]["base"]["spec"]
    assert plans["0.2"]["max_base_flops_ratio"] == 0.2
    out_of_range = run_cli("plan", "--profile", "jetson", "--max-base-ratio", "1.5")
    assert out_of_range.exit_code == 2 and "--max-base-ratio" in out_of_range.stderr


def test_plan_text_names_the_ratio_and_what_bounded_each_role(run_cli, tmp_cwd) -> None:
    done = run_cli("plan", "--profile", "jetson", "--arch", "vit")
    assert done.exit_code == 0, done.stderr
    assert "x the motivated FLOPs (rule: <= 0.5x)" in done.stdout
    assert "base limited by:" in done.stdout and "motivated limited by:" in done.stdout
