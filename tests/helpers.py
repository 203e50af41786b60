"""Helpers several test modules share (import as `from helpers import …`; tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_tiny_profile(folder: Path, name: str = "tiny-test",
                       extra: tuple[tuple[str, str], ...] = ()) -> Path:
    """The shipped x86-cpu profile shrunk to a 1x8x8 input (a training epoch on digits then takes a
    fraction of a second), renamed to `name`, with `extra` (old, new) text replacements applied."""
    text = (REPO / "profiles" / "x86-cpu.yaml").read_text()
    for old, new in (("name: x86-cpu", f"name: {name}"), ("aliases: [cpu, local]", "aliases: []"),
                     ("channels: 3", "channels: 1"), ("height: 32", "height: 8"),
                     ("width: 32", "width: 8"), *extra):
        text = text.replace(old, new)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


class QuietDisplay:
    """A training progress display that shows nothing (for library-level training in fixtures)."""

    def update_step(self, *args) -> None:
        pass

    def log(self, text: str) -> None:
        pass


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """Run `seekdeploy ARGS` in this process (usable in module-scoped fixtures, unlike the
    `run_cli` fixture); returns (exit code, stdout, stderr)."""
    from seekdeploy.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
