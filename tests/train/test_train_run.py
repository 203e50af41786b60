"""`train_pair` in process: the closing line says what was trained, and a run stopped by a
signal (even before its first step) resumes, on its saved device unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seekdeploy import layout
from seekdeploy.errors import ConfigError
from seekdeploy.train.checkpoint import read_checkpoint, save_checkpoint
from seekdeploy.train.run import TrainSummary, train_pair
from seekdeploy.train.session import resume_session
from helpers import Display


def _summary(top1, parts, condition="schedule:p=0.4") -> TrainSummary:
    return TrainSummary(run_dir=Path("runs/x"), test_top1=top1, motivated_fraction=0.4,
                        train_flops=1.0, standalone_motivated_flops=2.0, seconds=1.0,
                        cost_flops=parts, num_classes=10, condition=condition)


def test_the_closing_line_says_what_was_trained_and_whether_it_learned() -> None:
    pair = {"base_steps": 1.0, "motivated_steps": 1.0}
    passed, line = _summary({"base": 0.91, "motivated": 0.93}, pair).verdict()
    assert passed and line.startswith("PASSED: trained the pair") and "91.0%" in line
    passed, line = _summary({"base": 0.91, "motivated": 0.12}, {"base_steps": 1.0},
                            "never").verdict()
    assert passed and "the base model only (condition never)" in line
    passed, line = _summary({"base": 0.91, "motivated": 0.11}, pair).verdict()
    assert not passed and line.startswith("WARNING") and "motivated model scored 11.0%" in line
    # A joint run trains the base on motivated batches too.
    assert _summary({}, {"motivated_steps": 1.0, "joint_base_passes": 1.0}).trained_roles == [
        "base", "motivated"]


def _interrupted_run_trained_on(tmp_path: Path, device: str) -> Path:
    """A run stopped mid-way whose checkpoint and config.yaml say it trained on `device`."""
    from seekdeploy.train._signals import TrainingInterrupted
    from seekdeploy.train.loop import run_training
    from seekdeploy.train.config import TrainConfig
    from seekdeploy.train.run import start_run
    from types import SimpleNamespace

    run_dir = tmp_path / "run"
    config = TrainConfig(arch="resnet", data="digits", epochs=2, batch_size=64, seed=0,
                         base_spec="depth=1,1;width=2,4", motivated_spec="depth=1,1;width=4,8",
                         device="cpu")
    session = start_run(config, run_dir, profile=SimpleNamespace(
        name="tiny", input=SimpleNamespace(channels=1, height=8, width=8)))
    with pytest.raises(TrainingInterrupted):
        run_training(session, Display(signal_at_step=5))
    payload = read_checkpoint(run_dir / layout.CHECKPOINT)
    payload["config"]["device"] = device
    save_checkpoint(run_dir / layout.CHECKPOINT, {k: v for k, v in payload.items()
                                                if k not in ("format", "format_version")})
    config_yaml = run_dir / "config.yaml"
    config_yaml.write_text(config_yaml.read_text().replace("device: cpu", f"device: {device}"))
    return run_dir


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resume_continues_on_the_saved_device_unless_told_otherwise(tmp_path) -> None:
    from seekdeploy.train.run import saved_device

    run_dir = _interrupted_run_trained_on(tmp_path, "cuda")  # as if trained on a GPU
    assert saved_device(run_dir) == "cuda"
    with pytest.raises(ConfigError, match="--device cuda"):
        resume_session(run_dir)  # the saved device, not the command line's default
    session = resume_session(run_dir, device="cpu")  # an explicit --device moves it
    assert session.device.type == "cpu" and session.progress.step == 5
    summary = train_pair(None, run_dir, resume=True, device="cpu")
    assert summary.trained_roles == ["base", "motivated"]


def test_cli_resume_honours_an_explicit_device(tmp_path) -> None:
    from helpers import cli_in_process

    run_dir = _interrupted_run_trained_on(tmp_path, "cpu")
    code, out, err = cli_in_process("train", "--resume", str(run_dir), "--device", "cpu")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith(("PASSED", "WARNING"))


def test_a_signal_before_the_first_step_saves_and_stops_cleanly(tmp_path, tiny_profile_file, monkeypatch) -> None:
    """SIGTERM while the run is being set up or its time estimated (the step-0 checkpoint already
    exists) stops like one mid-epoch: TrainingInterrupted (exit 130), a resumable checkpoint."""
    import os
    import signal

    from seekdeploy.profiles.loader import load_profile_file
    from seekdeploy.train import estimate
    from seekdeploy.train._signals import TrainingInterrupted
    from seekdeploy.train.config import TrainConfig

    def announce_then_signal(console, session, profile):
        os.kill(os.getpid(), signal.SIGTERM)  # lands before the training loop exists
        return None

    monkeypatch.setattr(estimate, "announce_training", announce_then_signal)
    config = TrainConfig(arch="resnet", data="digits", epochs=1, batch_size=64, seed=0,
                         base_spec="depth=1,1;width=2,4", motivated_spec="depth=1,1;width=4,8", device="cpu")
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_pair(config, run_dir, profile=load_profile_file(tiny_profile_file))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back
    stopped = read_checkpoint(run_dir / layout.CHECKPOINT)["progress"]
    assert stopped["step"] <= 1 and not stopped["finished"]
    monkeypatch.undo()
    summary = train_pair(None, run_dir, resume=True, device="cpu")
    assert summary.trained_roles == ["base", "motivated"]
