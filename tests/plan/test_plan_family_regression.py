"""Regression baseline of costing and planning: `estimate_cost`, `list_layers` and
`seekdeploy plan --json` of every family for two profiles must equal
`tests/fixtures/family_baseline.json`.

Regenerate only on purpose (a deliberate change of what is counted):
`python tests/plan/test_plan_family_regression.py` rewrites the file from the current tree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BASELINE = Path(__file__).resolve().parents[1] / "fixtures" / "family_baseline.json"
# (in_channels, image_size, num_classes): the profiles' geometries (3x32 CIFAR, 1x28 Fashion-MNIST,
# 1x8 digits) and an odd one.
GEOMETRIES = ((3, 32, 10), (1, 28, 10), (1, 8, 10), (3, 48, 7))
PLANS = (("x86-cpu", "resnet"), ("x86-cpu", "mbconv"), ("x86-cpu", "vit"),
         ("jetson", "resnet"), ("jetson", "mbconv"), ("jetson", "vit"))


def _specs() -> list[Any]:
    """Specs of every family: the default pair, grid picks, and non-default constants."""
    from seekdeploy import nn as sd_nn
    from seekdeploy.plan.space import spec_grid

    specs: list[Any] = []
    for family in ("resnet", "mbconv", "vit"):
        config, base, motivated = sd_nn.default_pair(family)
        specs += [base, motivated]
        grid = spec_grid(family)
        specs += [grid.spec_at(i) for i in (0, len(grid) // 3, len(grid) // 2, len(grid) - 1)]
    mbconv = sd_nn.default_pair("mbconv")[2]
    specs += [dataclasses.replace(mbconv, se=0.0, act="relu"),
              dataclasses.replace(mbconv, expand=(1, 1, 4, 6), stride=(1, 1, 2, 1))]
    vit = sd_nn.default_pair("vit")[2]
    specs += [dataclasses.replace(vit, pooling="mean"), dataclasses.replace(vit, patch_size=8, heads=2, embed_dim=48)]
    return specs


def _geometries(spec: Any) -> list[tuple[int, int, int]]:
    patch = getattr(spec, "patch_size", 1)
    return [g for g in GEOMETRIES if g[1] % patch == 0]


def compute_snapshot() -> dict[str, Any]:
    """Costs and layer lists of `_specs()` at every geometry, and the plans of `PLANS`."""
    from click.testing import CliRunner

    from seekdeploy import nn as sd_nn
    from seekdeploy.cli.main import cli
    from seekdeploy.nn import list_layers

    costs, layers = {}, {}
    for spec in _specs():
        for in_channels, image_size, num_classes in _geometries(spec):
            key = f"{spec.to_text()}@{in_channels}x{image_size}/{num_classes}"
            geometry = {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes}
            costs[key] = sd_nn.estimate_cost(spec, **geometry).to_json()
            layers[key] = [[layer.kind.value, *dataclasses.astuple(layer)[1:]]
                           for layer in list_layers(spec, **geometry)]
    plans = {}
    for profile, family in PLANS:
        # --shape free: the max-FLOPs rule these plans were recorded with (the shape rule is
        # tests/plan/test_plan_proportions.py's); the roofline, whatever calibration lies about.
        result = CliRunner().invoke(cli, ["plan", "--profile", profile, "--arch", family, "--json", "--shape", "free",
                                          "--roofline"])
        assert result.exit_code == 0, result.output
        plan = json.loads(result.output)
        for key in ("search_seconds", "shape_rule", "last_check", "latency_headroom"):  # wall-clock time; keys added later
            plan.pop(key, None)
        plans[f"{profile}/{family}"] = plan
    return {"costs": costs, "layers": layers, "plans": plans}


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    return compute_snapshot()


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return json.loads(BASELINE.read_text())


@pytest.mark.parametrize("part", ["costs", "layers", "plans"])
def test_costs_layers_and_plans_are_unchanged(part: str, snapshot: dict, baseline: dict) -> None:
    assert set(snapshot[part]) == set(baseline[part])
    changed = [key for key in baseline[part] if snapshot[part][key] != baseline[part][key]]
    assert not changed, f"{len(changed)} {part} changed, first: {changed[0]}"


if __name__ == "__main__":
    BASELINE.write_text(json.dumps(compute_snapshot(), sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {BASELINE}\n")
