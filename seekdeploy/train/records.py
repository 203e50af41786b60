"""What a run writes besides checkpoints: metrics.jsonl, motivation.jsonl, manifest.json, and
the progress display.

The JSONL files are kept in memory and rewritten atomically at every checkpoint, so on disk they
always agree with the checkpoint; a resumed run first drops any lines past its checkpoint.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import __version__, layout
from seekdeploy._io import atomic_write_json, atomic_write_text
from seekdeploy.roles import Role

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.train.estimate import TrainingEstimate


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a missing file is empty, a torn last line is dropped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash; the checkpoint decides what survives anyway
    return records


class RunRecords:
    """The per-step motivation records and per-epoch metrics of one run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.motivation: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []

    def load_until(self, step: int, epoch: int) -> None:
        """Read the files of a run being resumed, keeping only what its checkpoint covers."""
        self.motivation = [r for r in read_jsonl(self.run_dir / layout.MOTIVATION) if r["step"] < step]
        self.metrics = [r for r in read_jsonl(self.run_dir / layout.METRICS) if r["epoch"] < epoch]

    def add_step(self, record: dict[str, Any]) -> None:
        """One motivation.jsonl line (step, epoch, role, reason, base loss)."""
        self.motivation.append(record)

    def add_epoch(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl line (epoch and role)."""
        self.metrics.append(record)

    def flush(self) -> None:
        """Rewrite both files atomically."""
        for name, records in ((layout.MOTIVATION, self.motivation), (layout.METRICS, self.metrics)):
            text = "".join(json.dumps(record) + "\n" for record in records)
            atomic_write_text(self.run_dir / name, text)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on, for manifests."""
    import numpy
    import torch

    return {"seekdeploy": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": numpy.__version__, "platform": platform.platform()}


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` of a run (atomic)."""
    return atomic_write_json(run_dir / layout.MANIFEST, manifest)


def format_seconds(seconds: float) -> str:
    """`42 s`, `3 min 20 s`, `2 h 05 min`."""
    seconds = round(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class ProgressDisplay:
    """A rich progress bar on a terminal; one line per epoch otherwise (never one per step).

    With an `estimate` (`train.estimate.TrainingEstimate`) the time left is the estimate's, scaled by
    how fast the run has actually gone against it (so it is sensible from the first step and follows
    the real speed after), shown on the bar and appended to each epoch line.
    """

    def __init__(self, console: Console, total_steps: int, done_steps: int,
                 estimate: TrainingEstimate | None = None) -> None:
        self.console = console
        self.estimate = estimate
        self._progress = None
        self._task = None
        self._done = done_steps
        self._started = time.perf_counter()
        self._predicted_s = 0.0  # what the estimate says the steps done so far should have taken
        self._motivated = 0
        self._steps = 0
        if console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            remaining = TextColumn("[cyan]{task.fields[eta]}") if estimate is not None else TimeRemainingColumn()
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), remaining, console=console, transient=True)
            self._task = self._progress.add_task("train", total=total_steps, completed=done_steps,
                                                 status="", eta=self.eta_text())

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update_step(self, epoch: int, role: str, loss: float, motivated_fraction: float) -> None:
        """Advance the bar by one step."""
        self._account(epoch, role)
        if self._progress is not None:
            status = f"epoch {epoch + 1} {role:<9} loss {loss:.3f} motivated {motivated_fraction:.0%}"
            self._progress.update(self._task, advance=1, status=status, eta=self.eta_text())

    def _account(self, epoch: int, role: str) -> None:
        self._done += 1
        self._steps += 1
        self._motivated += role == Role.MOTIVATED
        if self.estimate is not None:
            self._predicted_s += self.estimate.step_seconds.get(role, 0.0)

    def remaining_seconds(self) -> float | None:
        """The estimate's time left, scaled by the speed observed so far (None without an estimate)."""
        if self.estimate is None:
            return None
        # A rate controller's share of the steps to come is known from its replay; a signal's
        # is best read from the run's own mix, once there is one.
        fraction = self.estimate.remaining_fraction(self._done)
        if fraction is None and self._steps >= 20:
            fraction = self._motivated / self._steps
        left = self.estimate.remaining_seconds(self._done, fraction)
        if self._steps >= 3 and self._predicted_s > 0:
            observed = (time.perf_counter() - self._started) / self._predicted_s
            left *= min(5.0, max(0.2, observed))
        return left

    def eta_text(self) -> str:
        """"about 3 min 20 s left" (empty without an estimate)."""
        left = self.remaining_seconds()
        return "" if left is None else f"about {format_seconds(left)} left"

    def log(self, text: str) -> None:
        """A line that stays (epoch summaries, notes); epoch lines get the time left."""
        if self.estimate is not None and text.startswith("epoch "):  # logged after its evaluation
            self._predicted_s += self.estimate.eval_seconds_per_epoch
            text = f"{text} · {self.eta_text()}"
        self.console.print(text, highlight=False)
