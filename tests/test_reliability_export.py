"""`seekdeploy export` killed with SIGKILL at random moments: no truncated `model.onnx`,
`manifest.json` or `pair.json` is ever left under its final name, every manifest describes the
model beside it, and the next export completes. (Children come from the fork server, see
`forkserver.py`.)"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from forkserver import ForkServer, fork_server  # noqa: F401 (a fixture)
from helpers import TINY_TRAIN, write_tiny_profile
from seekdeploy._io import TMP_PREFIX, sha256_file
from seekdeploy.export.onnx_export import load_onnx_checked

TRAIN_ARGS = [*TINY_TRAIN, "--batch-size", "512", "--epochs", "1"]


@pytest.fixture(scope="module")
def trained_run(fork_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run on 8x8 grey digits."""
    folder = tmp_path_factory.mktemp("export-run")
    profile = write_tiny_profile(folder)
    pid = fork_server.start(["train", "--profile", str(profile), *TRAIN_ARGS,
                             "--out", str(folder / "run")], folder / "train.log")
    assert fork_server.wait(pid) == 0, (folder / "train.log").read_text()
    return folder / "run"


def check_published(export_dir: Path) -> int:
    """Assert every file under its final name is whole and consistent; return the role count."""
    roles = 0
    for role in ("base", "motivated"):
        folder = export_dir / role
        if not folder.exists():
            continue
        roles += 1
        manifest = json.loads((folder / "manifest.json").read_text())
        load_onnx_checked(folder / "model.onnx")
        for name, entry in manifest["files"].items():
            assert sha256_file(folder / name) == entry["sha256"], f"{role}/{name} != its manifest"
    if (export_dir / "pair.json").exists():
        json.loads((export_dir / "pair.json").read_text())
    return roles


def kill_exports(server: ForkServer, run: Path, out: Path, logs: Path, kills: int,
                 seed: int) -> dict[str, int]:
    """One clean export to time it, `kills` exports SIGKILLed at random moments, then a clean
    one whose files must equal the first's."""
    argv = ["export", str(run), "--out", str(out)]
    started = time.monotonic()
    pid = server.start(argv, logs / "first.log")
    assert server.wait(pid) == 0, (logs / "first.log").read_text()
    duration_s = time.monotonic() - started
    export_dir = out / run.name
    first = {p.relative_to(export_dir): sha256_file(p) for p in export_dir.rglob("model.onnx")}
    rng = random.Random(seed)
    counts = {"kills": 0, "finished_first": 0, "roles_missing": 0}
    for attempt in range(kills):
        pid = server.start(argv, logs / f"kill{attempt}.log")
        time.sleep(rng.uniform(0.0, duration_s))
        os.kill(pid, signal.SIGKILL)
        code = server.wait(pid)
        if code == 0:
            counts["finished_first"] += 1
        else:
            assert code == -signal.SIGKILL, (logs / f"kill{attempt}.log").read_text()
            counts["kills"] += 1
        counts["roles_missing"] += 2 - check_published(export_dir)
    pid = server.start(argv, logs / "last.log")
    assert server.wait(pid) == 0, (logs / "last.log").read_text()
    assert check_published(export_dir) == 2
    last = {p.relative_to(export_dir): sha256_file(p) for p in export_dir.rglob("model.onnx")
            if not p.relative_to(export_dir).parts[0].startswith(TMP_PREFIX)}
    assert last == first, "the export after the kills differs from the one before"
    counts["stray_stages"] = len(list(export_dir.glob(f"{TMP_PREFIX}*")))
    return counts


def test_sigkill_export_at_random_moments(fork_server, trained_run, tmp_path) -> None:
    counts = kill_exports(fork_server, trained_run, tmp_path / "exports", tmp_path, kills=5, seed=7)
    print(f"reliability: {counts}")
    assert counts["kills"] >= 3, counts


@pytest.mark.slow  # ~40 exports
def test_many_sigkills_of_export(fork_server, trained_run, tmp_path) -> None:
    counts = kill_exports(fork_server, trained_run, tmp_path / "exports", tmp_path, kills=40, seed=1)
    print(f"reliability: {counts}")
    assert counts["kills"] >= 30, counts
