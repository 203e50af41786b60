"""`seekdeploy export` killed with SIGKILL at random moments: no truncated `model.onnx`,
`manifest.json` or `pair.json` is ever left under its final name, every manifest describes the
model beside it, and the next export completes. (Children come from the fork server, see
`forkserver.py`.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from forkserver import fork_server  # noqa: F401 (a fixture)
from helpers import TINY_TRAIN, write_tiny_profile
from kills import kill_exports

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




def test_sigkill_export_at_random_moments(fork_server, trained_run, tmp_path) -> None:
    counts = kill_exports(fork_server, trained_run, tmp_path / "exports", tmp_path, kills=5, seed=7)
    print(f"reliability: {counts}")
    assert counts["kills"] >= 3, counts


@pytest.mark.slow  # ~40 exports
def test_many_sigkills_of_export(fork_server, trained_run, tmp_path) -> None:
    counts = kill_exports(fork_server, trained_run, tmp_path / "exports", tmp_path, kills=40, seed=1)
    print(f"reliability: {counts}")
    assert counts["kills"] >= 30, counts
