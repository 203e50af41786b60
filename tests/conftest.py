"""Fixtures shared by every test module. Add only fixtures more than one module needs."""

from __future__ import annotations

import os

# Tiny models on a 2-core machine: one intra-op thread per process is fastest and keeps the
# subprocesses the tests start (train, export, torchrun ranks) from oversubscribing the cores.
# Set before anything imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary folder (so `./profiles/`, `runs/`, `exports/` are
    the test's own) and return that folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass(frozen=True)
class CliResult:
    """What one in-process CLI invocation returned and printed."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Call the real `seekdeploy` entry point in-process, through its error boundary:
    `run_cli("profiles", "list")` -> CliResult(exit_code, stdout, stderr)."""
    from seekdeploy.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before this call
        exit_code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(exit_code, captured.out, captured.err)

    return run
