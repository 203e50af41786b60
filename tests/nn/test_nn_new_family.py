"""Adding a model family is one new module in `seekdeploy/nn/families/` (plus tests).

`tests/fixtures/toy_family/toy.py` is such a module. Put on the families package's search path (not
copied into the package, so other runs never see it), it is listed, parsed, built, sliced, costed
and planned, and the CLI offers it as an --arch choice, with no other file naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TOY_FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "toy_family"


@pytest.fixture
def toy_family(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import seekdeploy.nn.families as families
    from seekdeploy.nn import registry

    monkeypatch.setattr(families, "__path__", [*families.__path__, str(TOY_FOLDER)])
    registry._family_modules.cache_clear()
    yield
    registry._family_modules.cache_clear()
    registry._FAMILIES.pop("toy", None)
    sys.modules.pop("seekdeploy.nn.families.toy", None)


def test_a_family_module_is_listed_costed_sliced_and_planned(toy_family: None) -> None:
    import torch

    from seekdeploy import nn as sd_nn
    from seekdeploy.nn.layers import cost_from_layers
    from seekdeploy.plan.planner import plan_pair
    from seekdeploy.plan.space import spec_grid
    from seekdeploy.profiles.loader import load_profile

    assert sd_nn.list_families() == ["resnet", "mbconv", "toy", "vit"]  # the default first, then by name
    spec = sd_nn.parse_spec("toy", "depth=2;width=16")
    geometry = {"in_channels": 1, "image_size": 8, "num_classes": 10}
    cost = sd_nn.estimate_cost(spec, **geometry)
    assert cost == cost_from_layers(sd_nn.list_layers(spec, **geometry))
    supernet = sd_nn.create_supernet("toy", None, **geometry)
    static = sd_nn.to_static(supernet, spec)
    assert cost.params == sum(p.numel() for p in static.parameters())  # the description is exact
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(static(x), supernet.eval()(x, spec))
    assert len(spec_grid("toy")) == 16
    plan = plan_pair(load_profile("x86-cpu"), "toy")
    base, motivated = plan.base.candidate.spec, plan.motivated.candidate.spec
    assert motivated.contains(base) and base != motivated


def test_the_cli_offers_and_plans_a_new_family_module() -> None:
    code = ("import sys, seekdeploy.nn.families as f; f.__path__.append(sys.argv[1]); "
            "from seekdeploy.cli.main import main; sys.exit(main(sys.argv[2:]))")
    done = subprocess.run([sys.executable, "-c", code, str(TOY_FOLDER), "plan", "--profile", "x86-cpu",
                           "--arch", "toy", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["family"] == "toy" and plan["base"]["spec"].startswith("toy:")


def test_a_family_without_a_grid_is_a_clear_planner_error(toy_family: None) -> None:
    import dataclasses

    from seekdeploy.errors import SpecError
    from seekdeploy.nn import get_family, register_family, search_grid

    register_family(dataclasses.replace(get_family("toy"), search_grid=None))
    with pytest.raises(SpecError, match="declares no search grid.*--base and --motivated"):
        search_grid("toy")


def test_declaring_costing_and_planning_every_family_imports_no_torch() -> None:
    # The family object lives in a torch-free module; only building a model loads its `models`.
    code = ("import sys; from seekdeploy.nn import default_pair, estimate_cost, get_family, list_families; "
            "from seekdeploy.plan.planner import plan_pair; from seekdeploy.profiles.loader import load_profile; "
            "[estimate_cost(default_pair(f)[2], in_channels=3, image_size=32, num_classes=10) for f in list_families()]; "
            "[plan_pair(load_profile('x86-cpu'), f) for f in list_families()]; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
