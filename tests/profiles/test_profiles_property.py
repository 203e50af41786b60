"""Property: whatever a profile file contains, loading it returns a valid `HardwareProfile` or raises
`ProfileError`, never any other exception. Inputs are valid profiles with random mutations (values
replaced by arbitrary YAML values, keys deleted, renamed or added), plus arbitrary text."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seekdeploy.errors import ProfileError
from seekdeploy.profiles._validate import MAX_LISTED_PROBLEMS
from seekdeploy.profiles.loader import load_profile_file, parse_profile
from seekdeploy.profiles.schema import HardwareProfile
from seekdeploy.roles import Role

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"
BASE_DATA = load_profile_file(REPO_PROFILES / "jetson-orin-nano.yaml").to_json()
BASE_DATA.pop("source_path")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["fp16", "fp32", "int8", "base", "motivated", "tensorrt", "onnxruntime",
                     "aarch64", "CPUExecutionProvider", "", "latency_ms"]),
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(), st.none()), children,
                        max_size=4),
    ),
    max_leaves=12,
)


def key_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    paths = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths += key_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += key_paths(value, (*prefix, index))
    return paths


ALL_PATHS = key_paths(BASE_DATA)


@st.composite
def mutated_profiles(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(BASE_DATA)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "rename", "add"]))
            if action == "replace":
                parent[last] = draw(yaml_values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[last]
            elif action == "rename" and isinstance(parent, dict):
                parent[draw(st.text(max_size=10))] = parent.pop(last)
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.text(max_size=10))] = draw(yaml_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path: skip it
    return data


def check_loads_or_profile_error(path: Path) -> None:
    try:
        profile = load_profile_file(path)
    except ProfileError as error:
        assert str(path) in str(error)
        # Every problem found is in the message (a flood is cut at MAX_LISTED_PROBLEMS).
        assert all(problem in str(error) for problem in error.problems[:MAX_LISTED_PROBLEMS])
        return
    assert isinstance(profile, HardwareProfile)
    for role in Role:
        budget = profile.budget(role)
        assert math.isfinite(budget.latency_ms) and budget.latency_ms > 0
        assert 0 < budget.latency_percentile <= 100
    # A profile that loaded writes back out and loads again to the same value.
    data = profile.to_json()
    data.pop("source_path")
    assert parse_profile(data) == parse_profile(yaml.safe_load(yaml.safe_dump(data)))


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Module-scoped: hypothesis reruns the test body many times within one fixture instance.
    return tmp_path_factory.mktemp("profile-property")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_profiles())
def test_mutated_profile_loads_or_raises_profile_error(work_dir: Path, data: Any) -> None:
    path = work_dir / "mutated.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    check_loads_or_profile_error(path)


@settings(max_examples=200, deadline=None)
@given(content=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_file_content_loads_or_raises_profile_error(
    work_dir: Path, content: str | bytes
) -> None:
    path = work_dir / "arbitrary.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(content)
    check_loads_or_profile_error(path)


def test_unmutated_base_data_is_valid() -> None:
    # Guards the generator: mutations start from a profile that really loads.
    assert parse_profile(copy.deepcopy(BASE_DATA)).name == "jetson-orin-nano"
