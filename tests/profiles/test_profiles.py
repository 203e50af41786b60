"""Hardware profiles: shipped files, lookup by name/alias/path, user overrides, and every kind of
invalid file producing a `ProfileError` that names the file, the key and what is allowed."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from seekdeploy.errors import ProfileError
from seekdeploy.profiles.loader import (
    list_profiles,
    load_profile,
    load_profile_file,
    parse_profile,
    profile_search_dirs,
    scan_profiles,
)
from seekdeploy.profiles.schema import Precision, RuntimeName
from seekdeploy.roles import Role

SHIPPED = {"jetson-orin-nano", "jetson-agx-orin", "jetson-nano", "raspberry-pi-5", "x86-cpu",
           "x86-cpu-openvino", "x86-cpu-demo"}
REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def valid_data() -> dict[str, Any]:
    """The shipped x86-cpu profile in the YAML layout, as a fresh mutable dict."""
    data = load_profile_file(REPO_PROFILES / "x86-cpu.yaml").to_json()
    data.pop("source_path")
    return copy.deepcopy(data)


def write_profile(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(tmp_path: Path, data: Any) -> str:
    path = write_profile(tmp_path / "bad.yaml", data)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert str(path) in message, "every profile error names the file"
    return message


# --- shipped profiles and lookup ------------------------------------------------------------------


def test_every_shipped_profile_loads_with_both_budgets(tmp_cwd: Path) -> None:
    profiles = list_profiles()
    assert {p.name for p in profiles} == SHIPPED
    for profile in profiles:
        assert load_profile(profile.name) == profile
        base, motivated = profile.budget("base"), profile.budget(Role.MOTIVATED)
        assert 0 < base.latency_ms < motivated.latency_ms, profile.name
        assert profile.runtime.precision in profile.hardware.peak_gflops
        assert profile.hardware.source, f"{profile.name} must cite where its figures come from"
        assert profile.source_path.read_text().startswith("#"), "a header comment cites the source"


def test_x86_cpu_is_the_measurable_demo_profile(tmp_cwd: Path) -> None:
    profile = load_profile("x86-cpu")
    assert profile.runtime.name is RuntimeName.ONNXRUNTIME
    assert profile.runtime.precision is Precision.FP32
    assert profile.runtime.threads == 0
    assert profile.budget("base").latency_ms == 1.0
    assert profile.budget("motivated").latency_ms == 3.0
    assert profile.budget("base").latency_percentile == 95.0


def test_alias_resolves_case_insensitively(tmp_cwd: Path) -> None:
    assert load_profile("jetson").name == "jetson-orin-nano"
    assert load_profile("JETSON").name == "jetson-orin-nano"
    assert load_profile("rpi5").runtime.name is RuntimeName.ONNXRUNTIME


def test_user_file_by_path_str_and_path(tmp_path: Path, tmp_cwd: Path) -> None:
    data = valid_data() | {"name": "my-board", "aliases": []}
    path = write_profile(tmp_path / "elsewhere" / "board.yaml", data)
    assert load_profile(path).name == "my-board"
    assert load_profile(str(path)).source_path == path
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "missing.yaml")
    with pytest.raises(ProfileError, match="pass the name without the suffix"):
        load_profile("x86-cpu.yaml")


def test_user_profiles_folder_overrides_shipped(tmp_cwd: Path) -> None:
    data = valid_data()
    data["budgets"]["base"]["latency_ms"] = 1.25
    write_profile(tmp_cwd / "profiles" / "mine.yaml", data)  # same name as the shipped one
    extra = valid_data() | {"name": "extra", "aliases": ["xx"]}
    write_profile(tmp_cwd / "profiles" / "extra.yml", extra)
    assert profile_search_dirs()[0] == tmp_cwd / "profiles"
    assert load_profile("x86-cpu").budget("base").latency_ms == 1.25
    assert load_profile("cpu").source_path == tmp_cwd / "profiles" / "mine.yaml"
    assert load_profile("xx").name == "extra"
    names = [p.name for p in list_profiles()]
    assert sorted(names) == sorted(SHIPPED | {"extra"})  # overridden, not duplicated


def test_unknown_name_lists_available_and_suggests(tmp_cwd: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("jetson-orin-nanoo")
    message = str(caught.value)
    assert "did you mean 'jetson-orin-nano'" in message
    assert all(name in message for name in SHIPPED)


def test_invalid_user_file_is_skipped_for_other_names_but_reported(tmp_cwd: Path) -> None:
    broken = tmp_cwd / "profiles" / "broken.yaml"
    broken.parent.mkdir()
    broken.write_text("name: [unclosed\n")
    assert load_profile("x86-cpu").name == "x86-cpu"
    scan = scan_profiles()
    assert [path for path, _ in scan.errors] == [broken]
    with pytest.raises(ProfileError, match="broken.yaml"):
        list_profiles()
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile("broken")  # asking for the broken file by name shows why it is broken
    with pytest.raises(ProfileError, match="invalid files were skipped"):
        load_profile("nope")


def test_duplicate_alias_in_one_folder_is_an_error(tmp_cwd: Path) -> None:
    for name in ("a", "b"):
        data = valid_data() | {"name": name, "aliases": ["same"]}
        write_profile(tmp_cwd / "profiles" / f"{name}.yaml", data)
    errors = scan_profiles().errors
    assert len(errors) == 1 and "already used by" in str(errors[0][1])


def test_to_json_round_trips(tmp_cwd: Path) -> None:
    for profile in list_profiles():
        data = json.loads(json.dumps(profile.to_json()))
        data.pop("source_path")
        assert parse_profile(data) == dataclasses.replace(profile, source_path=None)


# --- invalid files --------------------------------------------------------------------------------


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x86\ndevice:\n  cpu_arch: x86_64\n   cpu_cores: 2\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value) and "line 4" in str(caught.value)


def test_unknown_nested_key_suggests_and_lists_allowed(tmp_path: Path) -> None:
    data = valid_data()
    data["budgets"]["base"]["latency_mss"] = data["budgets"]["base"].pop("latency_ms")
    message = load_error(tmp_path, data)
    assert "'budgets.base.latency_mss'" in message
    assert "did you mean 'latency_ms'" in message
    assert "latency_percentile" in message and "peak_memory_mib" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, valid_data() | {"runtim": {}})
    assert "'runtim'" in message and "did you mean 'runtime'" in message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("device", "cpu_cores", "four", "an integer"),
        ("device", "cpu_cores", True, "an integer"),
        ("device", "cpu_arch", "arm64", "aarch64"),
        ("runtime", "tensorrt_version", 10.3, 'quote it'),
        ("runtime", "threads", -1, ">= 0"),
        ("runtime", "execution_providers", "CPUExecutionProvider", "a list"),
        ("runtime", "execution_providers", ["CPU"], "CPUExecutionProvider"),
        ("input", "height", 0, ">= 1"),
        ("measurement", "duration_ms", float("nan"), "a number"),
        ("hardware", "memory_bandwidth_gbs", 1e400, "a number"),
    ],
)
def test_wrong_type_or_value_names_key_and_value(
    tmp_path: Path, section: str, key: str, value: Any, expected: str
) -> None:
    data = valid_data()
    data[section][key] = value
    message = load_error(tmp_path, data)
    assert f"'{section}.{key}" in message and expected in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("latency_ms", -1.0, "greater than 0"),
        ("latency_ms", 0, "greater than 0"),
        ("peak_memory_mib", -5, "greater than 0"),
        ("latency_percentile", 0, "(0, 100]"),
        ("latency_percentile", 100.5, "(0, 100]"),
        ("min_accuracy", 1.5, "[0, 1]"),
    ],
)
def test_bad_budget_values(tmp_path: Path, key: str, value: float, expected: str) -> None:
    data = valid_data()
    data["budgets"]["motivated"][key] = value
    message = load_error(tmp_path, data)
    assert f"'budgets.motivated.{key}'" in message
    assert expected in message and str(value) in message


def test_percentile_100_is_allowed(tmp_path: Path) -> None:
    data = valid_data()
    data["budgets"]["base"]["latency_percentile"] = 100
    profile = load_profile(write_profile(tmp_path / "ok.yaml", data))
    assert profile.budget("base").latency_percentile == 100.0


def test_unknown_enum_value_lists_allowed(tmp_path: Path) -> None:
    data = valid_data()
    data["runtime"]["precision"] = "fp-16"
    message = load_error(tmp_path, data)
    assert "'runtime.precision'" in message and "did you mean 'fp16'" in message
    assert "fp32, fp16, int8" in message


def test_unknown_role_and_missing_role(tmp_path: Path) -> None:
    data = valid_data()
    data["budgets"]["motivation"] = data["budgets"].pop("motivated")
    assert "did you mean 'motivated'" in load_error(tmp_path, data)
    data["budgets"].pop("motivation")
    assert "no budget for motivated" in load_error(tmp_path, data)


def test_peak_figure_needed_for_runtime_precision(tmp_path: Path) -> None:
    data = valid_data()
    data["runtime"]["precision"] = "int8"
    assert "'hardware.peak_gflops'" in load_error(tmp_path, data)


def test_missing_section_and_non_mapping_file(tmp_path: Path) -> None:
    data = valid_data()
    del data["device"]
    assert "'device' is missing" in load_error(tmp_path, data)
    assert "must be a mapping" in load_error(tmp_path, None)
    assert "must be a mapping" in load_error(tmp_path, ["a", "list"])


def test_python_tag_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert "refused" in str(caught.value) and "line 1" in str(caught.value)
    assert not marker.exists()


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(path)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_list_show_validate(tmp_cwd: Path, run_cli: Any) -> None:
    listed = run_cli("profiles", "list")
    assert listed.exit_code == 0
    assert all(name in listed.stdout for name in SHIPPED)
    assert "p95 <= 1 ms" in listed.stdout and "shipped" in listed.stdout

    shown = run_cli("profiles", "show", "jetson", "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["name"] == "jetson-orin-nano"
    readable = run_cli("profiles", "show", "x86-cpu")
    assert "latency_ms: 1.0" in readable.stdout and "resolved from" in readable.stdout

    good = write_profile(tmp_cwd / "good.yaml", valid_data())
    ok = run_cli("profiles", "validate", str(good))
    assert ok.exit_code == 0 and ok.stdout.startswith("valid: x86-cpu")
    bad_data = valid_data()
    bad_data["budgets"]["base"]["latency_ms"] = -2
    bad = write_profile(tmp_cwd / "bad.yaml", bad_data)
    failed = run_cli("profiles", "validate", str(good), str(bad))
    assert failed.exit_code == 1 and "budgets.base.latency_ms" in failed.stderr


def test_cli_unknown_profile_is_one_line_exit_1(tmp_cwd: Path, run_cli: Any) -> None:
    result = run_cli("profiles", "show", "jetsn")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "did you mean 'jetson'" in result.stderr


# --- packaging ------------------------------------------------------------------------------------


def test_non_editable_wheel_ships_the_profiles(tmp_path: Path) -> None:
    # Build from a copy so the build/ folder never lands in the shared checkout.
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = REPO_PROFILES.parent
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(repo / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".tmp-*")
    for folder in ("seekdeploy", "profiles"):
        shutil.copytree(repo / folder, source / folder, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheel"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("seekdeploy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"seekdeploy/shipped_profiles/{name}.yaml" for name in SHIPPED}
    assert shipped <= names
    assert "seekdeploy/profiles/loader.py" in names and "seekdeploy/cli/main.py" in names
    assert not any(name.startswith("profiles/") for name in names)
