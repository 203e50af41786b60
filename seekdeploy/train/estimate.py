"""How long the planned run will take on this machine, measured before it starts.

`estimate_training(session)` times real training steps (`loop.train_step`, so joint steps,
distillation, AMP and the sliced optimizer all count) of each role on real batches of the run's
training data, and one evaluation batch of each role, on a scratch copy of the session: the run's
weights, optimizer state and random streams are untouched. It then extrapolates to the run's
remaining steps and epochs at the condition's expected motivated fraction, which comes from the
condition's own code replayed over the run's length on two synthetic base-loss curves (one that
keeps improving, one that has stalled): rate controllers (`schedule`, `random`, `target`) give one
figure, signal conditions (`streak`, `slope`, ...) a range. `ProgressDisplay` turns the estimate
into the progress bar's ETA, corrected by the speed actually observed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seekdeploy.roles import Role
from seekdeploy.train.records import format_seconds

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.data.dataset import ImageSplit
    from seekdeploy.profiles.schema import HardwareProfile
    from seekdeploy.train.session import TrainSession

WARMUP_STEPS = 1  # the first step of a role allocates buffers and picks kernels: not timed
TIMED_STEPS = 3
LONG_STEP_S = 60.0  # a warm-up step this slow is timing enough (single process only)
TIMED_BUDGET_S = 5.0  # a single process stops timing a role after this many seconds of timed steps
SIMULATED_STEPS_MAX = 3000
SHARE_POINTS = 100
LONG_RUN_S = 3600.0


@dataclass(frozen=True)
class TrainingEstimate:
    """Measured seconds per step and per evaluation, and the run's remaining shape."""

    step_seconds: dict[str, float]  # role -> one training step (motivated: with its joint base pass)
    eval_seconds_per_epoch: float  # validation of both roles
    test_seconds: float  # the final test evaluation of both roles
    steps_per_epoch: int
    epochs: int
    done_steps: int
    motivated_fraction: tuple[float, float]  # (low, high) expected share of motivated steps
    device: str
    timed_steps: int = 0  # steps timed after the warm-up, per role (the fewest of the two roles)
    # Where the range is one figure (a rate controller): the replay's cumulative motivated share
    # of the run at SHARE_POINTS + 1 evenly spaced points (0 .. the whole run), so the share of
    # the steps still to come is known even when it changes over the run (`start`, `ramp`).
    share_curve: tuple[float, ...] = ()

    def remaining_fraction(self, done_steps: int) -> float | None:
        """The expected motivated share of the steps after `done_steps` (None without a curve)."""
        total = self.steps_per_epoch * self.epochs
        if not self.share_curve or done_steps >= total:
            return None
        position = done_steps / total * (len(self.share_curve) - 1)
        low = min(int(position), len(self.share_curve) - 2)
        done = self.share_curve[low] + (position - low) * (self.share_curve[low + 1] - self.share_curve[low])
        return min(1.0, max(0.0, (self.share_curve[-1] - done) / (1.0 - done_steps / total)))

    def step_mean_s(self, fraction: float) -> float:
        """Mean seconds of a step when `fraction` of the steps are motivated."""
        return (1.0 - fraction) * self.step_seconds[Role.BASE] + fraction * self.step_seconds[Role.MOTIVATED]

    def remaining_seconds(self, done_steps: int, fraction: float | None = None) -> float:
        """Seconds still to go after `done_steps` steps (training, each remaining epoch's
        evaluation and the final test), at `fraction` motivated (default: the middle of the range)."""
        fraction = sum(self.motivated_fraction) / 2 if fraction is None else fraction
        total = self.steps_per_epoch * self.epochs
        epochs_left = self.epochs - min(self.epochs, done_steps // max(1, self.steps_per_epoch))
        return (max(0, total - done_steps) * self.step_mean_s(fraction)
                + epochs_left * self.eval_seconds_per_epoch + self.test_seconds)

    def seconds_range(self) -> tuple[float, float]:
        """(fewest, most) seconds for the rest of the run over the expected motivated fraction."""
        low, high = (self.remaining_seconds(self.done_steps, f) for f in self.motivated_fraction)
        return min(low, high), max(low, high)

    def describe(self) -> list[str]:
        """The lines `train` and `run` print before training."""
        low, high = self.seconds_range()
        span = format_seconds(low) if high - low < 0.1 * high else f"{format_seconds(low)} to {format_seconds(high)}"
        share = self.motivated_fraction
        share_text = f"{share[0]:.0%}" if share[1] - share[0] < 0.01 else f"{share[0]:.0%}-{share[1]:.0%}"
        steps_left = self.steps_per_epoch * self.epochs - self.done_steps
        lines = [f"estimated training time here: {span} ({steps_left} steps on {self.device}: base step "
                 f"{self.step_seconds[Role.BASE]:.3g} s, motivated step {self.step_seconds[Role.MOTIVATED]:.3g} s, "
                 f"{share_text} motivated; evaluation {self.eval_seconds_per_epoch:.3g} s an epoch; "
                 f"timed from {_timed_text(self.timed_steps)} of each role)"]
        if high > LONG_RUN_S:
            lines.append(f"warning: that is over {format_seconds(LONG_RUN_S)} here; Ctrl-C saves a checkpoint. "
                         "Fewer --epochs, a smaller pair (--base/--motivated, or `seekdeploy plan "
                         "--max-base-ratio`) or a GPU shortens it")
        return lines


def _timed_text(steps: int) -> str:
    if steps == 0:
        return "its first real step (slow enough to time alone)"
    return f"{steps} real step{'s' if steps != 1 else ''} after a warm-up"


def estimate_training(session: TrainSession) -> TrainingEstimate:
    """Time real steps of each role on a scratch copy of `session` and extrapolate (module doc)."""
    import torch

    from seekdeploy.train import distributed

    devices = [session.device.index or 0] if session.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # e.g. dropout draws from the global generator
        scratch = _scratch_copy(session)
        fixed = distributed.world_size() > 1  # every rank must run the same collectives
        timed = {role.value: _time_steps(scratch, role, fixed) for role in (Role.BASE, Role.MOTIVATED)}
        batch = {role.value: _time_eval_batch(scratch, role) for role in (Role.BASE, Role.MOTIVATED)}
    config = session.config
    per_split = {name: math.ceil(len(getattr(session.dataset, name)) / config.eval_batch_size)
                 for name in ("val", "test")}
    step = {role: seconds for role, (seconds, _) in timed.items()}
    (low, high), curve = _replay_condition(session)
    return TrainingEstimate(step_seconds=step, eval_seconds_per_epoch=per_split["val"] * sum(batch.values()),
                            test_seconds=per_split["test"] * sum(batch.values()),
                            steps_per_epoch=session.steps_per_epoch, epochs=config.epochs,
                            done_steps=session.progress.step, motivated_fraction=(low, high),
                            device=str(session.device), timed_steps=min(count for _, count in timed.values()),
                            share_curve=curve if high - low < 0.01 else ())


def _scratch_copy(session: TrainSession) -> TrainSession:
    # Deep copy of the live training objects; the data, records and condition are shared (train_step
    # only reads the data and never touches the others); the random generators are cloned.
    import torch

    memo: dict[int, Any] = {id(session.dataset): session.dataset, id(session.records): session.records,
                            id(session.condition): session.condition}
    for generator in (session.augment_generator, session.order_generator):
        clone = torch.Generator(device=generator.device)
        clone.set_state(generator.get_state())
        memo[id(generator)] = clone
    return copy.deepcopy(session, memo)


def _sync(session: TrainSession) -> None:
    if session.device.type == "cuda":
        import torch

        torch.cuda.synchronize(session.device)


def _time_steps(scratch: TrainSession, role: Role, fixed: bool) -> tuple[float, int]:
    """(seconds of one step, how many steps after the warm-up were timed; 0 = the warm-up alone).

    The warm-up step allocates buffers and picks kernels (it took 3x a later step in a measured
    CPU run), so it is used only when it alone took over `LONG_STEP_S`. A single process stops
    timing once `TIMED_BUDGET_S` has been spent; under torchrun every rank times the same count.
    """
    from seekdeploy.train.loop import train_step

    train = scratch.dataset.train
    size = min(scratch.config.batch_size, len(train))
    images, labels = train.images[:size].to(scratch.device), train.labels[:size].to(scratch.device)
    timings = []
    for index in range(WARMUP_STEPS + TIMED_STEPS):
        _sync(scratch)
        started = time.perf_counter()
        train_step(scratch, images, labels, role)
        _sync(scratch)
        timings.append(time.perf_counter() - started)
        if not fixed and index == 0 and timings[0] > LONG_STEP_S:
            return timings[0], 0  # a step this slow is timing enough; more would only delay the run
        if not fixed and index >= WARMUP_STEPS and sum(timings[WARMUP_STEPS:]) > TIMED_BUDGET_S:
            break
    timed = timings[WARMUP_STEPS:]
    # The quickest timed step: other work on a shared machine only ever adds time (timeit's advice);
    # the progress display then scales the estimate by the speed the run really gets.
    return min(timed), len(timed)


def _time_eval_batch(scratch: TrainSession, role: Role) -> float:
    from seekdeploy.train.loop import evaluate

    split = scratch.dataset.val if len(scratch.dataset.val) else scratch.dataset.test
    sample = _Slice(split, scratch.config.eval_batch_size)
    evaluate(scratch, sample, role)  # warm-up
    _sync(scratch)
    started = time.perf_counter()
    evaluate(scratch, sample, role)
    _sync(scratch)
    return time.perf_counter() - started


class _Slice:
    """The first `count` images of a split (what `evaluate` reads: images, labels, len)."""

    def __init__(self, split: ImageSplit, count: int) -> None:
        self.images, self.labels = split.images[:count], split.labels[:count]

    def __len__(self) -> int:
        return len(self.labels)


def expected_motivated_fraction(session: TrainSession) -> tuple[float, float]:
    """(low, high) share of motivated steps the run's condition will give, from its own code
    replayed over the run's steps on an improving and on a stalled base-loss curve."""
    return _replay_condition(session)[0]


def _replay_condition(session: TrainSession) -> tuple[tuple[float, float], tuple[float, ...]]:
    """(`expected_motivated_fraction`, the improving curve's cumulative motivated share of the
    run at SHARE_POINTS + 1 evenly spaced points)."""
    import random

    from seekdeploy.train.conditions import create_condition
    from seekdeploy.train.loop import trains_base_too

    config = session.config
    total = session.steps_per_epoch * config.epochs
    steps = min(total, SIMULATED_STEPS_MAX)
    marks = {round(i * steps / SHARE_POINTS): i for i in range(SHARE_POINTS + 1)}
    fractions, curves = [], []
    for curve in ("improving", "stalled"):
        # The replay is the run compressed to `steps`: a condition that schedules over the run
        # (a rising share) must see that length, or the replay covers only its start.
        condition = create_condition(config.condition, seed=config.seed, total_steps=steps)
        noise = random.Random(config.seed)
        motivated, shares = 0, [0.0] * (SHARE_POINTS + 1)
        for step in range(steps):
            role = condition.decide(step).role
            motivated += role is Role.MOTIVATED
            if step + 1 in marks:
                shares[marks[step + 1]] = motivated / max(1, steps)
            if role is Role.BASE or trains_base_too(session, role):
                loss = 2.0 * math.exp(-3.0 * step / steps) if curve == "improving" else 1.0 + noise.gauss(0, 0.05)
                condition.observe_base_loss(loss)
        fractions.append(motivated / max(1, steps))
        curves.append(tuple(shares))
    return (min(fractions), max(fractions)), curves[0]


def announce_training(console: Console, session: TrainSession,
                      profile: HardwareProfile | None = None) -> TrainingEstimate:
    """Print the plan (for a new run with a profile) and the estimated training time; return the
    estimate for the progress display."""
    if profile is not None and getattr(profile, "budgets", None):
        from seekdeploy.plan.planner import describe_pair

        for line in describe_pair(profile, session.config.arch, session.specs):
            console.print(line, highlight=False)
    estimate = estimate_training(session)
    for line in estimate.describe():
        console.print(line, highlight=False)
    return estimate
