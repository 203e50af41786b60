"""Helpers several test modules share (import as `from helpers import …`; tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import os
import signal
import io
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]

# `seekdeploy train` options for a tiny digits pair (8x8 with `write_tiny_profile`): a base of
# depth=1,1;width=2,4 inside depth=1,1;width=4,8. Tests append their own batch size, seed, epochs.
TINY_TRAIN = ["--data", "digits", "--arch", "resnet", "--base", "depth=1,1;width=2,4",
              "--motivated", "depth=1,1;width=4,8"]


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


def train_tiny_run(run_dir: Path, epochs: int = 1, *, channels: int = 1, height: int = 8,
                   width: int = 8, name: str = "tiny", **config: object) -> Path:
    """A digits run (private BN, resnet base depth=1,1;width=4,8 inside depth=1,2;width=8,16, at
    1x8x8 unless told), trained through the library API in a few seconds; returns `run_dir`.
    `config` overrides any TrainConfig field; `name` is the recorded profile's name."""
    import torch

    from seekdeploy.train.config import TrainConfig
    from seekdeploy.train.loop import run_training
    from seekdeploy.train.run import finish_run, start_run

    torch.set_num_threads(1)  # the tiny model is slower with thread contention than without
    settings = {"arch": "resnet", "data": "digits", "epochs": epochs, "batch_size": 64, "seed": 0,
                "condition": "random:p=0.3", "base_spec": "depth=1,1;width=4,8",
                "motivated_spec": "depth=1,2;width=8,16", "device": "cpu", **config}
    profile = SimpleNamespace(name=name, input=SimpleNamespace(channels=channels, height=height,
                                                               width=width))
    session = start_run(TrainConfig(**settings), run_dir, profile=profile)
    run_training(session, QuietDisplay())
    finish_run(session, name)
    return run_dir


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """Run `seekdeploy ARGS` in this process (usable in module-scoped fixtures, unlike the
    `run_cli` fixture); returns (exit code, stdout, stderr)."""
    from seekdeploy.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


class Display:
    """Quiet display; optionally sends this process a real SIGTERM at a given step."""

    def __init__(self, signal_at_step: int | None = None) -> None:
        self.signal_at_step, self.steps = signal_at_step, 0
        self.lines: list[str] = []

    def update_step(self, *args) -> None:
        self.steps += 1
        if self.steps == self.signal_at_step:
            os.kill(os.getpid(), signal.SIGTERM)

    def log(self, text: str) -> None:
        self.lines.append(text)


def interrupted_and_resumed(config, tmp_path: Path, profile, signal_at_step: int):
    """Train `config` straight through in tmp_path/straight, and again in tmp_path/broken with a
    real SIGTERM at `signal_at_step` then a resume; returns (straight checkpoint, resumed
    checkpoint, the resumed session) for the caller to compare."""
    import pytest

    from seekdeploy.train import loop
    from seekdeploy.train.checkpoint import read_checkpoint
    from seekdeploy.train.run import finish_run, start_run
    from seekdeploy.train.session import resume_session

    straight = start_run(config, tmp_path / "straight", profile=profile)
    loop.run_training(straight, Display())
    finish_run(straight, "tiny")
    broken = start_run(config, tmp_path / "broken", profile=profile)
    with pytest.raises(loop.TrainingInterrupted):
        loop.run_training(broken, Display(signal_at_step=signal_at_step))
    resumed = resume_session(tmp_path / "broken")
    loop.run_training(resumed, Display())
    finish_run(resumed, "tiny")
    return (read_checkpoint(tmp_path / "straight" / "checkpoint.pt"),
            read_checkpoint(tmp_path / "broken" / "checkpoint.pt"), resumed)


def assert_same_weights(a: dict, b: dict) -> None:
    """Two checkpoints hold bit-identical tensors under the same names."""
    import torch

    assert set(a["state_dict"]) == set(b["state_dict"])
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
