"""Fixtures shared by every test module. Add only fixtures more than one module needs."""

from __future__ import annotations

import os

# Tiny models on a 2-core machine: one intra-op thread per process is fastest and keeps the
# subprocesses the tests start (train, export, torchrun ranks) from oversubscribing the cores.
# Set before anything imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Image folders decoded by any test (and the CLI subprocesses it starts) are cached here,
    never in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("image-cache")
    before = os.environ.get("SEEKDEPLOY_CACHE_DIR")
    os.environ["SEEKDEPLOY_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SEEKDEPLOY_CACHE_DIR", None)
    else:
        os.environ["SEEKDEPLOY_CACHE_DIR"] = before


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


# ---- the tiny profile, run and export, built once per test session -------------------------------
# Session-scoped: treat them as read-only (copy a folder before changing anything in it).

@dataclass(frozen=True)
class TinyExport:
    """A finished export of `tiny_run`: `dir` is exports/tiny (base/, motivated/, pair.json)."""

    run: Path
    dir: Path
    stdout: str


@pytest.fixture(scope="session")
def tiny_profile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped x86-cpu profile at a 1x8x8 input, named tiny-test (`helpers.write_tiny_profile`)."""
    from helpers import write_tiny_profile

    return write_tiny_profile(tmp_path_factory.mktemp("tiny-profile"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/tiny: one epoch on 8x8 digits through the library API (`helpers.train_tiny_run`), ~1 s."""
    from helpers import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyExport:
    """`seekdeploy export tiny_run --precision fp16` (ONNX fp32 + fp16, parity, manifests, pair.json)."""
    from helpers import cli_in_process

    out = tmp_path_factory.mktemp("exports")
    code, stdout, stderr = cli_in_process("export", str(tiny_run), "--out", str(out), "--precision", "fp16")
    assert code == 0, stderr
    return TinyExport(run=tiny_run, dir=out / tiny_run.name, stdout=stdout)
