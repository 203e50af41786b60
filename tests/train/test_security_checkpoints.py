"""Hostile and broken checkpoints: a pickle payload is refused without running it, and any
checkpoint that `torch.load(weights_only=True)` accepts but that is not a seekdeploy run is a
`CheckpointError` (for `load_run` and for `train --resume`), never a stray exception; a checkpoint
that declares a model larger than its weights is refused before the model is allocated."""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seekdeploy import layout
from seekdeploy.errors import CheckpointError, SeekdeployError
from seekdeploy.roles import Role
from seekdeploy.train.checkpoint import load_run, read_checkpoint, save_checkpoint
from seekdeploy.train.session import resume_session


class MakesMarker:
    """Unpickling this would run `os.system("touch MARKER")`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


class OpensMarker:
    """Unpickling this would create the marker through `builtins.open` (no shell)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _hostile_files(folder: Path, good: dict[str, Any], marker: Path) -> dict[str, Path]:
    """Checkpoint files that each carry a code-running pickle payload somewhere."""
    files = {}
    evil_top = folder / "top"
    evil_top.mkdir()
    torch.save(MakesMarker(marker), evil_top / layout.CHECKPOINT)
    files["whole payload"] = evil_top
    nested = folder / "nested"
    nested.mkdir()
    payload = copy.copy(good)
    payload["config"] = {**good["config"], "seed": OpensMarker(marker)}
    torch.save(payload, nested / layout.CHECKPOINT)
    files["inside the config"] = nested
    in_state = folder / "state"
    in_state.mkdir()
    payload = copy.copy(good)
    payload["state_dict"] = {**good["state_dict"], "extra": MakesMarker(marker)}
    torch.save(payload, in_state / layout.CHECKPOINT)
    files["inside the state_dict"] = in_state
    legacy = folder / "legacy"
    legacy.mkdir()  # a plain (non-zip) pickle stream, the pre-1.6 torch.save format
    (legacy / layout.CHECKPOINT).write_bytes(pickle.dumps(MakesMarker(marker), protocol=2))
    files["legacy pickle"] = legacy
    spliced = folder / "spliced"
    spliced.mkdir()  # a genuine zip checkpoint whose data.pkl was swapped for the payload
    _splice_data_pkl(nested / layout.CHECKPOINT, spliced / layout.CHECKPOINT,
                     pickle.dumps(MakesMarker(marker), protocol=2))
    files["spliced data.pkl"] = spliced
    return files


def _splice_data_pkl(source: Path, target: Path, data: bytes) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            content = data if item.filename.endswith("/data.pkl") else old.read(item.filename)
            new.writestr(item, content)


def test_pickle_payloads_are_refused_without_running(tiny_run: Path, tmp_path: Path,
                                                     run_cli) -> None:
    marker = tmp_path / "PWNED"
    good = read_checkpoint(tiny_run / layout.CHECKPOINT)
    files = _hostile_files(tmp_path, good, marker)
    assert len(files) == 5
    for where, run_dir in files.items():
        with pytest.raises(CheckpointError, match="corrupt|not a seekdeploy"):
            read_checkpoint(run_dir / layout.CHECKPOINT)
        with pytest.raises(CheckpointError):
            load_run(run_dir)
        result = run_cli("train", "--resume", str(run_dir))
        assert result.exit_code == 1, (where, result)
        assert "checkpoint" in result.stderr and "Traceback" not in result.stderr, where
        assert not marker.exists(), f"the payload {where} ran"


def test_plain_torch_load_would_have_run_it(tmp_path: Path) -> None:
    # Guards the test above: the payload is live, so its refusal means something.
    marker = tmp_path / "PWNED"
    torch.save(OpensMarker(marker), tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


# ---- foreign but loadable data: mutate a real payload and demand CheckpointError or success ----

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.floats(),
                    st.text(max_size=8), st.just(torch.zeros(2, 3)))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def _paths(data: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            if key != "state_dict" or depth:  # 100 tensor names would drown everything else
                found += _paths(value, (*prefix, key), depth + 1)
    return found


@st.composite
def mutations(draw: st.DrawFn, paths: list[tuple]) -> list[tuple[tuple, str, Any]]:
    return [(draw(st.sampled_from(paths)), draw(st.sampled_from(["replace", "delete"])),
             draw(values)) for _ in range(draw(st.integers(1, 3)))]


def _mutate(payload: dict[str, Any], changes: list[tuple[tuple, str, Any]]) -> dict[str, Any]:
    data = copy.deepcopy(payload)
    for path, action, value in changes:
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if action == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, TypeError, IndexError):
            continue  # an earlier change removed this path
    return data


@pytest.fixture(scope="module")
def good_payload(tiny_run: Path) -> dict[str, Any]:
    return read_checkpoint(tiny_run / layout.CHECKPOINT)


def _save(folder: Path, payload: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    torch.save(payload, folder / layout.CHECKPOINT)
    return folder


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_checkpoint_loads_or_raises_checkpoint_error(good_payload, tmp_path, data) -> None:
    changes = data.draw(mutations(_paths(good_payload)))
    run_dir = _save(tmp_path / "mutated", _mutate(good_payload, changes))
    try:
        run = load_run(run_dir)
    except SeekdeployError:
        return
    # What loaded is a usable run: an eval-mode supernet, two specs of its family, and for each
    # role one of the supernet's own sets of BN statistics.
    assert not run.supernet.training
    assert run.base_spec.family == run.motivated_spec.family == run.supernet.family
    assert {run.bn_role_for(Role.BASE), run.bn_role_for(Role.MOTIVATED)} <= set(run.bn_roles)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_checkpoint_resumes_or_raises_seekdeploy_error(good_payload, tmp_path, data) -> None:
    changes = data.draw(mutations(_paths(good_payload)))
    run_dir = _save(tmp_path / "mutated-resume", _mutate(good_payload, changes))
    try:
        resume_session(run_dir)
    except SeekdeployError:
        return


def test_truncated_checkpoints_are_corrupt_errors(tiny_run: Path, tmp_path: Path) -> None:
    data = (tiny_run / layout.CHECKPOINT).read_bytes()
    for cut in (0, 1, 100, len(data) // 2, len(data) - 1):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        (folder / layout.CHECKPOINT).write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_run(folder)


HOSTILE_LOAD = """
import resource, sys
from seekdeploy.errors import CheckpointError
from seekdeploy.train.checkpoint import load_run
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_run(sys.argv[1])
except CheckpointError as exc:
    print("REFUSED", exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("GREW_KIB", after - before)
"""


def test_a_checkpoint_declaring_a_huge_model_is_refused_before_allocating_it(tiny_run, tmp_path) -> None:
    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    import seekdeploy.train.checkpoint  # noqa: F401  (warm imports before measuring)

    payload = read_checkpoint(run_dir / layout.CHECKPOINT)
    # ~150 M parameters declared (600 MB of float32) beside the tiny run's real weights.
    payload["model"]["config"]["width"] = [4096, 8192]
    save_checkpoint(run_dir / layout.CHECKPOINT, {k: v for k, v in payload.items()
                                                if k not in ("format", "format_version")})
    with pytest.raises(CheckpointError, match="declared model does not match the stored weights"):
        load_run(run_dir)
    with pytest.raises(CheckpointError, match="declared model does not match"):
        resume_session(run_dir)
    done = subprocess.run([sys.executable, "-c", "import torch; import seekdeploy.nn\n" + HOSTILE_LOAD,
                           str(run_dir)], capture_output=True, text=True, timeout=120)
    assert "REFUSED" in done.stdout, done.stdout + done.stderr
    grew_kib = int(done.stdout.split("GREW_KIB")[1])
    assert grew_kib < 100 * 1024, f"the loader's peak memory grew by {grew_kib} KiB"
