"""An invalid profile reports every problem of the file at once, each with its dotted key path, in
file order; a file with one problem keeps the one-line message; `profiles validate` and `train`
show the whole list."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from seekdeploy.errors import ProfileError
from seekdeploy.profiles._validate import MAX_LISTED_PROBLEMS
from seekdeploy.profiles.loader import load_profile_file

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"
KEY_PATH = re.compile(r"^key '([^']+)' ")

# Problems at depths 1, 2 and 3, a missing key, a bad enum value, a rule violation and an unknown
# key, in the order they appear in the written file (a missing key is reported after its mapping's
# keys).
BROKEN = {
    "name": "not a plain name!",
    "device.cpu_cores": "four",
    "device.memory_mib": None,  # deleted
    "runtime.precision": "fp-16",
    "budgets.motivated.latency_ms": -1,
    "measurement.min_iterations": 0,
    "extra_key": 1,
}


def valid_data() -> dict[str, Any]:
    data = load_profile_file(REPO_PROFILES / "x86-cpu.yaml").to_json()
    data.pop("source_path")
    return copy.deepcopy(data)


def broken_data() -> dict[str, Any]:
    data = valid_data()
    for key_path, value in BROKEN.items():
        *parents, last = key_path.split(".")
        mapping = data
        for key in parents:
            mapping = mapping[key]
        if value is None:
            del mapping[last]
        else:
            mapping[last] = value
    return data


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # keeps the dicts' order in the file
    return path


def load_error(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    return caught.value


def key_paths(problems: tuple[str, ...]) -> list[str]:
    found = [KEY_PATH.match(problem) for problem in problems]
    assert all(found), problems
    return [match.group(1) for match in found if match]


def test_every_problem_is_reported_with_its_key_path_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", broken_data())
    error = load_error(path)
    assert key_paths(error.problems) == list(BROKEN)
    lines = str(error).splitlines()
    assert lines[0] == f"invalid profile {path}: {len(BROKEN)} problems"
    assert lines[1:] == [f"  {problem}" for problem in error.problems]
    by_key = dict(zip(BROKEN, error.problems))
    assert "an integer, got 'four'" in by_key["device.cpu_cores"]
    assert "is missing" in by_key["device.memory_mib"]
    assert "did you mean 'fp16'" in by_key["runtime.precision"]
    assert "fp32, fp16, int8" in by_key["runtime.precision"]
    assert "greater than 0, got -1.0" in by_key["budgets.motivated.latency_ms"]
    assert ">= 1, got 0" in by_key["measurement.min_iterations"]
    assert "allowed keys at the top level" in by_key["extra_key"]


def test_one_problem_keeps_the_one_line_form(tmp_path: Path) -> None:
    data = valid_data()
    data["budgets"]["base"]["latency_ms"] = -2
    path = write(tmp_path / "one.yaml", data)
    error = load_error(path)
    problem = "key 'budgets.base.latency_ms' must be a number greater than 0, got -2.0"
    assert error.problems == (problem,)
    assert str(error) == f"invalid profile {path}: {problem}"


def test_a_misspelt_key_is_one_problem_not_also_a_missing_one(tmp_path: Path) -> None:
    data = valid_data()
    data["devce"] = data.pop("device")
    data["budgets"]["motivation"] = data["budgets"].pop("motivated")
    data["budgets"]["base"]["latency_mss"] = data["budgets"]["base"].pop("latency_ms")
    error = load_error(write(tmp_path / "typos.yaml", data))
    assert key_paths(error.problems) == ["budgets.base.latency_mss", "budgets.motivation", "devce"]
    assert all("did you mean" in problem for problem in error.problems)


def test_cross_field_rules_are_reported_with_the_field_problems(tmp_path: Path) -> None:
    data = valid_data()
    data["runtime"]["precision"] = "int8"  # no peak figure declared for int8
    data["runtime"]["threads"] = -1
    del data["budgets"]["motivated"]
    error = load_error(write(tmp_path / "cross.yaml", data))
    assert key_paths(error.problems) == ["runtime.threads", "budgets", "hardware.peak_gflops"]
    assert "no budget for motivated" in error.problems[1]
    assert "no figure for the runtime precision 'int8'" in error.problems[2]


def test_a_flood_of_problems_is_listed_up_to_a_limit(tmp_path: Path) -> None:
    count = MAX_LISTED_PROBLEMS + 7
    data = valid_data() | {"aliases": ["not plain"] * count}
    error = load_error(write(tmp_path / "flood.yaml", data))
    assert key_paths(error.problems) == [f"aliases[{i}]" for i in range(count)]
    lines = str(error).splitlines()
    assert lines[0].endswith(f": {count} problems")
    assert len(lines) == 1 + MAX_LISTED_PROBLEMS + 1 and lines[-1] == "  ... and 7 more"


def test_cli_validate_lists_every_problem_of_every_file(tmp_cwd: Path, run_cli: Any) -> None:
    good = write(tmp_cwd / "good.yaml", valid_data())
    broken = write(tmp_cwd / "broken.yaml", broken_data())
    typo = valid_data()
    typo["runtime"]["name"] = "onnxrt"
    other = write(tmp_cwd / "other.yaml", typo)
    result = run_cli("profiles", "validate", str(broken), str(good), str(other))
    assert result.exit_code == 1
    assert result.stdout.startswith("valid: x86-cpu")
    assert f"invalid: invalid profile {broken}: {len(BROKEN)} problems" in result.stderr
    for key_path in BROKEN:
        assert f"  key '{key_path}' " in result.stderr
    assert f"invalid profile {other}: key 'runtime.name'" in result.stderr
    assert "did you mean 'onnxruntime'" in result.stderr


def test_train_with_a_bad_profile_shows_the_whole_list(tmp_cwd: Path, run_cli: Any) -> None:
    broken = write(tmp_cwd / "broken.yaml", broken_data())
    result = run_cli("train", "--profile", str(broken), "--out", str(tmp_cwd / "run"))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"Error: invalid profile {broken}: {len(BROKEN)} problems" in result.stderr
    assert all(f"  key '{key_path}' " in result.stderr for key_path in BROKEN)
    assert not (tmp_cwd / "run").exists()
