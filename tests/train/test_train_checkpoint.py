"""Checkpoints in-process: exact resume after a real SIGTERM, NaN guard, weights_only, corruption."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import Display
from seekdeploy.errors import CheckpointError, SpecError, TrainingDiverged
from seekdeploy.roles import Role
from seekdeploy.train._signals import TrainingInterrupted
from seekdeploy.train.checkpoint import load_run, read_checkpoint
from seekdeploy.train.config import TrainConfig
from seekdeploy.train.loop import run_training
from seekdeploy.train.run import choose_specs, finish_run, start_run
from seekdeploy.train.session import resume_session

PROFILE = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
CONFIG = TrainConfig(arch="resnet", data="digits", epochs=2, batch_size=64, seed=5,
                     condition="random:p=0.3", base_spec="depth=1,1;width=2,4",
                     motivated_spec="depth=1,1;width=4,8", device="cpu", bn_recalibrate_batches=2)


def _train(run_dir: Path, signal_at_step: int | None = None):
    session = start_run(CONFIG, run_dir, profile=PROFILE)
    run_training(session, Display(signal_at_step))
    return finish_run(session, "tiny")


def test_resume_after_sigterm_mid_epoch_is_bit_identical(tmp_path) -> None:
    straight = _train(tmp_path / "straight")
    session = start_run(CONFIG, tmp_path / "broken", profile=PROFILE)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        run_training(session, Display(signal_at_step=27))  # epoch 1 has 20 steps: stop in epoch 2
    resumed = resume_session(tmp_path / "broken")
    assert (resumed.progress.epoch, resumed.progress.batch_in_epoch) == (1, 7)
    run_training(resumed, Display())
    summary = finish_run(resumed, "tiny")
    a = read_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = read_checkpoint(tmp_path / "broken" / "checkpoint.pt")
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    assert summary.test_top1 == straight.test_top1
    assert summary.motivated_fraction == straight.motivated_fraction > 0
    assert 0 < summary.cost_ratio < 1
    metrics = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("straight", "broken")]
    strip = lambda lines: [line.split('"seconds"')[0] for line in lines]  # noqa: E731
    assert strip(metrics[0]) == strip(metrics[1]) and len(metrics[0]) == 4

    loaded = load_run(tmp_path / "broken")
    assert not loaded.supernet.training
    assert loaded.bn_role_for(Role.BASE) == "base" and loaded.dataset_name == "digits"
    assert loaded.motivated_spec.contains(loaded.base_spec)
    # Everything is loadable with weights_only=True (already the case above); say it directly too.
    torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=True)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path) -> None:
    session = start_run(TrainConfig(**{**CONFIG.to_dict(), "epochs": 2, "bn_recalibrate_batches": 0}),
                        tmp_path / "run", profile=PROFILE)
    session.config = TrainConfig(**{**CONFIG.to_dict(), "epochs": 1})
    run_training(session, Display())
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    session.config = TrainConfig(**{**CONFIG.to_dict(), "epochs": 2})
    with torch.no_grad():
        next(session.supernet.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="last checkpoint is kept"):
        run_training(session, Display())
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved


def test_corrupt_missing_and_foreign_checkpoints(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nothing")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(run)
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_run(run)
    torch.save({"format": "something-else"}, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a seekdeploy"):
        load_run(run)


def test_choose_specs_rejects_non_nested_pair() -> None:
    with pytest.raises(SpecError, match="not nested"):
        choose_specs(PROFILE, "resnet", "depth=2,2,2;width=32,16,8", "depth=3,3,3;width=16,32,64")
    config, base, motivated = choose_specs(PROFILE, "resnet", None, None)
    assert motivated.contains(base) and config.max_spec().contains(motivated)
