"""The up-front training-time estimate: it leaves the run untouched, its arithmetic, the expected
motivated fraction from the condition's own code, the ETA it gives the progress display, and what
`train` prints before training."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import write_tiny_profile

from seekdeploy.train.checkpoint import read_checkpoint
from seekdeploy.train.config import TrainConfig
from seekdeploy.train.estimate import (TIMED_STEPS, TrainingEstimate, estimate_training, expected_motivated_fraction,
                                       format_seconds)
from seekdeploy.train.loop import run_training
from seekdeploy.train.records import ProgressDisplay
from seekdeploy.train.run import finish_run, start_run

PROFILE = SimpleNamespace(name="tiny", input=SimpleNamespace(channels=1, height=8, width=8))
CONFIG = TrainConfig(arch="resnet", data="digits", epochs=1, batch_size=64, seed=3, condition="random:p=0.5",
                     base_spec="depth=1,1;width=2,4", motivated_spec="depth=1,1;width=4,8", device="cpu",
                     bn_recalibrate_batches=2)
TINY_SPECS = ("--base", "depth=1,1;width=2,4", "--motivated", "depth=1,1;width=4,8")


class Quiet:
    def update_step(self, *args) -> None:
        pass

    def log(self, text: str) -> None:
        pass


def _train(run_dir: Path, estimate_first: bool) -> tuple[dict, TrainingEstimate | None]:
    session = start_run(CONFIG, run_dir, profile=PROFILE)
    estimate = estimate_training(session) if estimate_first else None
    run_training(session, Quiet())
    finish_run(session, "tiny")
    return read_checkpoint(run_dir / "checkpoint.pt"), estimate


def test_estimating_first_leaves_the_run_bit_identical(tmp_path) -> None:
    plain, _ = _train(tmp_path / "plain", estimate_first=False)
    estimated, estimate = _train(tmp_path / "estimated", estimate_first=True)
    for name, tensor in plain["state_dict"].items():
        assert torch.equal(tensor, estimated["state_dict"][name]), name
    assert plain["final"]["test_top1"] == estimated["final"]["test_top1"]
    assert estimate.steps_per_epoch * estimate.epochs == plain["progress"]["step"] and estimate.done_steps == 0
    assert all(seconds > 0 for seconds in estimate.step_seconds.values())
    assert estimate.eval_seconds_per_epoch > 0 and estimate.test_seconds > 0
    assert estimate.timed_steps == TIMED_STEPS  # tiny steps: no shortcut on a slow first step
    assert f"timed from {TIMED_STEPS} real steps after a warm-up" in estimate.describe()[0]
    assert estimate.motivated_fraction[0] == pytest.approx(0.5, abs=0.15)


def test_remaining_time_is_steps_times_the_mix_plus_evaluations() -> None:
    estimate = TrainingEstimate({"base": 1.0, "motivated": 3.0}, eval_seconds_per_epoch=5.0, test_seconds=2.0,
                                steps_per_epoch=10, epochs=3, done_steps=0, motivated_fraction=(0.2, 0.6),
                                device="cpu")
    # 30 steps at 0.4 motivated: 30 * (0.6 * 1 + 0.4 * 3) = 54 s, + 3 evaluations + the test.
    assert estimate.remaining_seconds(0) == pytest.approx(54 + 15 + 2)
    assert estimate.remaining_seconds(25, fraction=0.0) == pytest.approx(5 * 1.0 + 1 * 5.0 + 2)
    assert estimate.seconds_range() == pytest.approx((30 * 1.4 + 17, 30 * 2.2 + 17))
    assert "estimated training time here: 59 s to 1 min 23 s" in estimate.describe()[0]
    long = TrainingEstimate({"base": 10.0, "motivated": 30.0}, 0.0, 0.0, 100, 10, 0, (0.4, 0.4), "cpu")
    assert long.describe()[1].startswith("warning: that is over 1 h 00 min here")
    assert format_seconds(7300) == "2 h 01 min" and format_seconds(125) == "2 min 05 s"


@pytest.mark.parametrize(("condition", "low", "high"), [
    ("never", 0.0, 0.0), ("always", 1.0, 1.0), ("schedule:p=0.4", 0.4, 0.4), ("random:p=0.25", 0.2, 0.3),
])  # fmt: skip
def test_rate_controllers_give_their_rate(condition: str, low: float, high: float) -> None:
    session = SimpleNamespace(config=TrainConfig(condition=condition), steps_per_epoch=100)
    got = expected_motivated_fraction(session)
    assert low - 1e-9 <= got[0] <= got[1] <= high + 1e-9


def test_a_rising_share_is_replayed_over_the_whole_run() -> None:
    # 10 epochs of 843 steps: longer than the replay, which must still see the ramp's end.
    config = TrainConfig(condition="schedule:p=0.4,ramp=0.4", epochs=10)
    low, high = expected_motivated_fraction(SimpleNamespace(config=config, steps_per_epoch=843))
    assert low == pytest.approx(0.4, abs=0.01) and high == pytest.approx(0.4, abs=0.01)


def test_the_eta_of_a_share_that_changes_over_the_run_counts_the_steps_to_come() -> None:
    from rich.console import Console

    from seekdeploy.train.estimate import _replay_condition

    # The base alone for 40 % of the run, then every batch motivated (a motivated step 3 s, a
    # base step 1 s): after the first phase the rest costs 3 s a step, not the 1 s seen so far.
    config = TrainConfig(condition="schedule:p=0.6,start=0.4", epochs=10)
    (low, high), curve = _replay_condition(SimpleNamespace(config=config, steps_per_epoch=10))
    assert (low, high) == (pytest.approx(0.6), pytest.approx(0.6))
    estimate = TrainingEstimate({"base": 1.0, "motivated": 3.0}, 0.0, 0.0, 10, 10, 0, (low, high),
                                "cpu", share_curve=curve)
    assert estimate.remaining_fraction(0) == pytest.approx(0.6)
    assert estimate.remaining_fraction(40) == pytest.approx(1.0)
    display = ProgressDisplay(Console(file=io.StringIO()), 100, 0, estimate=estimate)
    for _ in range(40):
        display.update_step(0, "base", 1.0, 0.0)
    display._started = time.perf_counter() - 40.0  # the 40 base steps took their predicted 40 s
    assert display.remaining_seconds() == pytest.approx(60 * 3.0, rel=0.05)
    # A signal's share is not known in advance: no curve, the run's own mix.
    assert TrainingEstimate({"base": 1.0, "motivated": 3.0}, 0.0, 0.0, 10, 10, 0, (0.1, 0.3),
                            "cpu").remaining_fraction(40) is None


def test_a_signal_condition_gives_a_range_from_its_own_code() -> None:
    from seekdeploy.train.config import MotivatedStep

    # With motivated steps alone, streak:k=3,hold=1 motivates at most 1 batch in 4 (3 improving base
    # steps, then 1), and only while the base improves.
    config = TrainConfig(condition="streak:k=3,hold=1", motivated_step=MotivatedStep.ALONE)
    low, high = expected_motivated_fraction(SimpleNamespace(config=config, steps_per_epoch=100))
    assert 0.0 <= low < high <= 0.25 + 1e-9 and high > 0.2


def test_progress_display_turns_the_estimate_into_an_eta_on_epoch_lines() -> None:
    from rich.console import Console

    estimate = TrainingEstimate({"base": 1.0, "motivated": 3.0}, 5.0, 2.0, 10, 3, 0, (0.5, 0.5), "cpu")
    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, width=200), 30, 0, estimate=estimate)
    assert display.remaining_seconds() == pytest.approx(30 * 2.0 + 15 + 2)
    display.update_step(0, "base", 1.0, 0.0)
    assert display.remaining_seconds() == pytest.approx(29 * 2.0 + 15 + 2)  # too early to rescale
    display.log("epoch 1/3: base val top-1 50.00%")
    assert "epoch 1/3: base val top-1 50.00% · about" in out.getvalue() and "left" in out.getvalue()
    assert ProgressDisplay(Console(file=io.StringIO()), 30, 0).remaining_seconds() is None


def test_train_prints_the_pair_and_the_estimate_before_training(run_cli, tmp_path) -> None:
    profile = write_tiny_profile(tmp_path)
    done = run_cli("train", "--profile", str(profile), *TINY_SPECS, "--epochs", "1", "--batch-size", "512",
                   "--out", str(tmp_path / "run"))
    assert done.exit_code == 0, done.stderr
    err = done.stderr
    assert "plan (roofline predictor, profile tiny-test):" in err
    assert "base:      resnet:depth=1,1;width=2,4" in err and "(specs given, not planned)" in err
    assert err.index("estimated training time here:") < err.index("epoch 1/1")
    assert " left" in err.split("epoch 1/1")[1]  # the epoch line carries the ETA


def test_a_planned_pair_is_printed_with_what_bounded_each_role() -> None:
    from seekdeploy.plan.planner import describe_pair, plan_pair
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.roles import Role

    profile = load_profile("jetson")
    planned = plan_pair(profile, "vit")
    lines = describe_pair(profile, "vit", {Role.BASE: planned.base.candidate.spec,
                                           Role.MOTIVATED: planned.motivated.candidate.spec})
    text = "\n".join(lines)
    assert "x the motivated FLOPs (rule: <= 0.5x)" in text
    assert "base limited by:" in text and "motivated limited by:" in text
    assert f"{planned.base.candidate.flops / 1e6:.1f} MFLOP" in text
