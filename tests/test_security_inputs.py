"""Hostile and broken inputs other than checkpoints: YAML with code tags, path traversal in names
and archive members, host strings with shell metacharacters, and ONNX files that are truncated,
read data from outside their folder, or take another input shape."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import onnx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from seekdeploy.errors import ExportError, ProfileError, RemoteError, SeekdeployError
from seekdeploy.export.onnx_export import load_onnx_checked
from seekdeploy.profiles.loader import load_profile_file
from sshd import make_tiny_onnx

REPO = Path(__file__).resolve().parents[1]
X86 = yaml.safe_load((REPO / "profiles" / "x86-cpu.yaml").read_text())


def _profile_text(size: int = 8, channels: int = 3, **top: Any) -> str:
    """x86-cpu with a (channels, size, size) input, a protocol of a few tens of milliseconds, and
    top-level keys replaced by `top`."""
    data = copy.deepcopy(X86)
    data.update(name=f"tiny{size}", aliases=[])
    data["input"].update(channels=channels, height=size, width=size, batch_sweep=[1])
    data["measurement"] = {"warmup_ms": 5, "warmup_iterations": 2, "duration_ms": 20,
                           "min_iterations": 5}
    data.update(top)
    return yaml.safe_dump(data, sort_keys=False)


def _with_tag(where: str, tag: str) -> str:
    """A valid profile's text with the YAML `tag` as the value at `where`."""
    placeholder = "PLACEHOLDER_VALUE"
    if where == "top":
        return f"{tag}\n"
    data = yaml.safe_load(_profile_text())
    if where == "budgets.base.latency_ms":
        data["budgets"]["base"]["latency_ms"] = placeholder
    else:
        data[where] = placeholder
    text = yaml.safe_dump(data, sort_keys=False)
    assert text.count(placeholder) == 1
    return text.replace(placeholder, tag)


# ---- YAML ----------------------------------------------------------------------------------

def _code_tags(marker: Path) -> dict[str, str]:
    touch = f"touch {marker}"
    return {
        "object/apply": f"!!python/object/apply:os.system [{touch!r}]",
        "object/new": f"!!python/object/new:subprocess.Popen [[touch, {str(marker)!r}]]",
        "name": "!!python/name:os.system",
        "module": "!!python/module:os",
        "object": "!!python/object:pathlib.Path {}",
    }


@pytest.mark.parametrize("where", ["name", "description", "budgets.base.latency_ms", "top"])
def test_yaml_code_tags_are_refused_and_never_run(where: str, tmp_path: Path, run_cli) -> None:
    marker = tmp_path / "PWNED"
    for tag_name, tag in _code_tags(marker).items():
        text = _with_tag(where, tag)
        path = tmp_path / f"{tag_name.replace('/', '-')}.yaml"
        path.write_text(text)
        with pytest.raises(ProfileError, match=str(path)):
            load_profile_file(path)
        validate = run_cli("profiles", "validate", str(path))
        assert validate.exit_code == 1 and "Traceback" not in validate.stderr
        train = run_cli("train", "--profile", str(path), "--out", str(tmp_path / "run"))
        assert train.exit_code == 1 and "Traceback" not in train.stderr, train
        assert not marker.exists(), f"{tag_name} at {where} ran"
    assert not (tmp_path / "run").exists()


def test_yaml_alias_bomb_is_a_quick_error(tmp_path: Path) -> None:
    lines = ["aliases:", "  - &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text(_profile_text().replace("aliases: []", "\n".join(lines)))
    assert "&b9" in path.read_text()
    started = time.perf_counter()
    with pytest.raises(ProfileError, match="aliases"):
        load_profile_file(path)
    assert time.perf_counter() - started < 5.0  # 9**9 strings were never expanded


# ---- names that become paths ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".", "-rf", "a\\b", "x\x00y"])
def test_profile_name_with_path_parts_is_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / "named.yaml"
    path.write_text(_profile_text().replace("name: tiny8", f"name: {json.dumps(name)}"))
    assert json.dumps(name) in path.read_text()
    with pytest.raises(ProfileError, match="name"):
        load_profile_file(path)


def test_run_names_with_dot_dot_or_separators_are_refused(tmp_path: Path, run_cli) -> None:
    profile = tmp_path / "tiny8.yaml"
    profile.write_text(_profile_text())
    for out in (f"{tmp_path}/runs/..", f"{tmp_path}/runs/a/..", "..", ""):
        result = run_cli("train", "--profile", str(profile), "--out", out)
        assert result.exit_code == 1, (out, result)
        assert "invalid run name" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny8.yaml"]


def test_default_run_name_of_an_imagefolder_is_a_plain_name(tmp_path: Path) -> None:
    from seekdeploy.cli.train_cmd import _run_dir

    # The default run name keeps only the folder's name, so a relative path is not refused.
    folder = _run_dir(None, "x86-cpu", "resnet", f"imagefolder:{tmp_path}/pics/../photos")
    assert folder == Path("runs") / "x86-cpu-resnet-imagefolder-photos"
    # An explicit --out is the user's own choice of folder, wherever it is.
    assert _run_dir("../elsewhere/run1", "p", "resnet", "digits") == Path("../elsewhere/run1")


def _no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    started: list[tuple] = []

    def forbidden(*args: object, **kwargs: object) -> None:
        started.append(args)
        raise AssertionError(f"a subprocess was started: {args!r}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    return started


@pytest.mark.parametrize("member", ["../escape.py", "/etc/cron.d/x", "a/../../b", "..", "", "-x"])
def test_archive_members_with_paths_are_refused_before_ssh(member: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from seekdeploy.remote.ssh import SshSession

    local = tmp_path / "file.py"
    local.write_text("print('hi')\n")
    started = _no_subprocess(monkeypatch)
    with pytest.raises(SeekdeployError, match="invalid remote file name"):
        SshSession("me@device").upload({member: local}, "/tmp/seekdeploy.AbCdEfGh12")
    assert not started


@pytest.mark.parametrize("path", ["/", "/tmp", "/home/me", "~", "/tmp/seekdeploy.", "tmp/x",
                                  "/tmp/seekdeploy.abc; rm -rf ~", "/tmp/seekdeploy.AbCdEfGh12 /"])
def test_remote_delete_refuses_anything_but_its_temp_folder(path: str, monkeypatch) -> None:
    from seekdeploy.remote.ssh import SshSession

    started = _no_subprocess(monkeypatch)
    with pytest.raises(ValueError, match="refusing to remove"):
        SshSession("me@device").remove_dir(path)
    with pytest.raises(RemoteError, match="unexpected path"):
        SshSession("me@device").checked_temp_dir([path])
    assert not started


# ---- host strings ---------------------------------------------------------------------------

METACHARACTERS = list(" ;|&$`'\"<>()*?!\\\n\t{}#~") + ["$(touch x)", "`id`", "-oProxyCommand=x"]


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 30), meta=st.sampled_from(METACHARACTERS))
def test_host_with_a_metacharacter_anywhere_never_reaches_a_process(position: int, meta: str) -> None:
    from seekdeploy.measure.remote import profile_remote

    good = "admin@jetson-01.lab:2222"
    host = good[:position] + meta + good[position:]
    with pytest.MonkeyPatch.context() as patch:
        started = _no_subprocess(patch)
        with pytest.raises(RemoteError, match="SSH host"):
            profile_remote("missing.onnx", object(), ["me@ok-host", host])
    assert not started


def test_a_valid_host_is_one_argument_after_double_dash() -> None:
    from seekdeploy.remote.ssh import SshSession

    argv = SshSession("admin@jetson-01.lab:2222").ssh_argv("true")
    assert argv[argv.index("--") + 1] == "admin@jetson-01.lab"
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv


# ---- ONNX files -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("onnx") / "model.onnx")


def _with_external_weight(source: Path, target: Path, location: str) -> Path:
    model = onnx.load(str(source))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model.SerializeToString())
    return target


def _broken_models(tiny: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model path, a phrase the error must contain)."""
    data = tiny.read_bytes()
    secret = folder / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    cases: dict[str, tuple[Path, str]] = {}
    for cut in (0, 10, len(data) // 2, len(data) - 3):
        path = folder / f"cut{cut}" / "model.onnx"
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        cases[f"truncated to {cut} bytes"] = (path, "empty|corrupt|truncated|cannot load|invalid")
    garbage = folder / "garbage" / "model.onnx"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    cases["garbage"] = (garbage, "corrupt|truncated|cannot load|invalid")
    for name, location in (("relative", "../secret.bin"), ("absolute", str(secret)),
                           ("deep", "a/../../secret.bin")):
        path = _with_external_weight(tiny, folder / f"external-{name}" / "model.onnx", location)
        cases[f"external data {name}"] = (path, "outside|escapes|cannot load")
    return cases


def test_broken_onnx_files_are_refused_by_the_loader(tiny_onnx: Path, tmp_path: Path) -> None:
    cases = _broken_models(tiny_onnx, tmp_path)
    for name, (path, _) in cases.items():
        with pytest.raises(ExportError):
            load_onnx_checked(path)
    assert load_onnx_checked(tiny_onnx).graph.input[0].name == "input"


def test_broken_onnx_files_are_clear_errors_in_profile(tiny_onnx: Path, tmp_path: Path,
                                                       run_cli) -> None:
    profile = tmp_path / "tiny8.yaml"
    profile.write_text(_profile_text(8))
    cases = _broken_models(tiny_onnx, tmp_path)
    for name, (path, phrase) in cases.items():
        result = run_cli("profile", str(path), "--profile", str(profile),
                         "--out", str(tmp_path / "out.json"))
        assert result.exit_code == 1, (name, result)
        assert "Traceback" not in result.stderr, name
        assert re.search(phrase, result.stderr), (name, result.stderr)
    assert not (tmp_path / "out.json").exists()


def test_wrong_input_shape_is_a_clear_error_in_profile(tiny_onnx: Path, tmp_path: Path,
                                                       run_cli) -> None:
    profile = tmp_path / "tiny16.yaml"
    profile.write_text(_profile_text(16))
    grey = tmp_path / "grey.yaml"
    grey.write_text(_profile_text(8, channels=1))
    for path in (profile, grey):
        result = run_cli("profile", str(tiny_onnx), "--profile", str(path),
                         "--out", str(tmp_path / "out.json"))
        assert result.exit_code == 1, result
        assert "Traceback" not in result.stderr
        assert "input" in result.stderr and ("dimension" in result.stderr
                                             or "shape" in result.stderr), result.stderr
