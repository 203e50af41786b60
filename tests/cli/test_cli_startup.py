"""The CLI starts fast and light: `--help` of the group and of EVERY registered command (found by
walking the Click tree, so commands added later are covered) loads no torch, onnx, onnxruntime or
tensorrt; user errors are one line and exit 1 without a traceback unless `--debug`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import click
import pytest

from seekdeploy import __version__
from seekdeploy.cli.main import cli

HEAVY_MODULES = ("torch", "onnx", "onnxruntime", "tensorrt")
SEEKDEPLOY = shutil.which("seekdeploy")
needs_script = pytest.mark.skipif(SEEKDEPLOY is None, reason="the seekdeploy console script is not "
                                  "on PATH; run pip install -e '.[dev]'")

# Runs in a fresh interpreter: import the CLI, then ask every command for --help, recording which
# heavy modules are loaded after each step (attributing a leak to the first command that caused it).
WALK_SCRIPT = r"""
import json, sys
import click
HEAVY = %r
def heavy():
    return sorted(m for m in HEAVY if m in sys.modules)
from seekdeploy.cli.main import cli, main
report = {"<import>": heavy()}
def walk(command, path):
    yield path
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], path + [name])
for path in walk(cli, []):
    code = main(path + ["--help"])
    report[" ".join(path) or "<group>"] = {"exit": code, "heavy": heavy()}
print("REPORT" + json.dumps(report))
"""


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            paths += command_paths(command.commands[name], (*path, name))
    return paths


def run_seekdeploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEEKDEPLOY, *args], capture_output=True, text=True, timeout=120)


def test_help_of_every_command_loads_no_heavy_module() -> None:
    result = subprocess.run([sys.executable, "-c", WALK_SCRIPT % (HEAVY_MODULES,)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report.pop("<import>") == [], "importing seekdeploy.cli.main loaded a heavy module"
    expected = {" ".join(path) or "<group>" for path in command_paths(cli)}
    assert set(report) == expected
    assert {"profiles list", "profiles show", "doctor"} <= expected
    for name, entry in report.items():
        assert entry["exit"] == 0, f"`seekdeploy {name} --help` exited {entry['exit']}"
        assert entry["heavy"] == [], f"`seekdeploy {name} --help` imported {entry['heavy']}"


@needs_script
def test_help_is_fast() -> None:
    # Best of three: the shared 2-core machine is noisy, a slow import is slow every time.
    timings_s = []
    for _ in range(3):
        start = time.perf_counter()
        result = run_seekdeploy("--help")
        timings_s.append(time.perf_counter() - start)
        assert result.returncode == 0 and "profiles" in result.stdout
    assert min(timings_s) < 1.5, f"seekdeploy --help took {min(timings_s):.2f} s"


@needs_script
def test_version() -> None:
    result = run_seekdeploy("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"seekdeploy, version {__version__}"


@needs_script
def test_user_error_is_one_line_exit_1_and_debug_shows_traceback() -> None:
    result = run_seekdeploy("profiles", "show", "no-such-board")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: unknown profile 'no-such-board'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

    debug = run_seekdeploy("--debug", "profiles", "show", "no-such-board")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ProfileError" in debug.stderr


@needs_script
def test_usage_error_exit_2() -> None:
    result = run_seekdeploy("no-such-command")
    assert result.returncode == 2 and "No such command" in result.stderr
