"""What the stages of `seekdeploy run` share: the request (`PipelineConfig`), the stages (`Stage`),
pipeline.json (`PipelineState`), the context every stage receives and `run_stage`, which skips a
current stage or runs and records it.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json, safe_name
from seekdeploy.errors import SeekdeployError
from seekdeploy.layout import EXPORTS_DIR, RUNS_DIR, default_run_name
from seekdeploy.train.config import TrainConfig

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.measure.profile import ProfileOutcome, RemoteSettings
    from seekdeploy.profiles.schema import HardwareProfile


class Stage(str, enum.Enum):
    """The pipeline's stages, in order."""

    CALIBRATE = "calibrate"
    TRAIN = "train"
    SLICE = "slice"
    EXPORT = "export"
    CASCADE = "cascade"
    PROFILE = "profile"
    REPORT = "report"


@dataclass(frozen=True)
class PipelineConfig:
    """What `seekdeploy run` was asked for (the training options default to `TrainConfig`'s)."""

    profile: str
    arch: str = TrainConfig.arch
    data: str = TrainConfig.data
    data_dir: str | None = None
    workers: int | None = None  # imagefolder decoding processes (TrainConfig.workers)
    skip_bad_files: bool = False  # imagefolder: leave unusable files out (TrainConfig.skip_bad_files)
    epochs: int | None = None  # None: the dataset's (`train.config.default_epochs`)
    condition: str = TrainConfig.condition
    name: str | None = None
    runs_dir: Path = Path(RUNS_DIR)
    exports_dir: Path = Path(EXPORTS_DIR)
    hosts: tuple[str, ...] = ()
    remote: RemoteSettings | None = None  # for --host
    force: bool = False
    calibrate: bool = True  # time the target before planning when no calibration matches it

    def run_name(self, profile_name: str) -> str:
        """`--name`, or `<profile>-<arch>-<data>` as `seekdeploy train` names its runs."""
        return safe_name(self.name or default_run_name(profile_name, self.arch, self.data), "run name")

    def train_request(self) -> dict[str, Any]:
        """The training options that decide whether an existing run is the one asked for."""
        return {"arch": self.arch, "data": self.data, "epochs": self.training_epochs, "condition": self.condition}

    @property
    def training_epochs(self) -> int:
        """`--epochs`, else the dataset's default."""
        from seekdeploy.train.config import default_epochs

        return self.epochs or default_epochs(self.data)


@dataclass
class PipelineState:
    """pipeline.json: one entry per stage (status, times, what it produced or why it was skipped)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, run_name: str, profile_name: str) -> PipelineState:
        """The state at `path`, or a fresh one (an unreadable file is started over, not trusted)."""
        import json

        data: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        if not isinstance(data, dict) or data.get("kind") != layout.PIPELINE_KIND:
            data = {}
        data.update(kind=layout.PIPELINE_KIND, schema_version=1, run=run_name, profile=profile_name)
        data.setdefault("stages", {})
        return cls(path, data)

    def stage(self, stage: Stage) -> dict[str, Any]:
        """The mutable entry of `stage`."""
        return self.data["stages"].setdefault(stage.value, {})

    def mark(self, stage: Stage, status: str, **fields: Any) -> None:
        """Set `stage`'s status (and fields) and write pipeline.json atomically."""
        entry = self.stage(stage)
        entry.update(status=status, **fields)
        self.save()

    def save(self) -> None:
        """Write pipeline.json atomically."""
        atomic_write_json(self.path, self.data)


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did: ran, or skipped because its artifacts are current; with a detail line."""

    stage: Stage
    ran: bool
    detail: str
    seconds: float = 0.0


@dataclass
class PipelineContext:
    """Everything the stages share: the request, resolved profile, folders and state."""

    config: PipelineConfig
    profile: HardwareProfile
    run_dir: Path
    export_dir: Path
    state: PipelineState
    console: Console
    outcome: list[ProfileOutcome] | None = None  # the profile stage's, one per device
    say: Callable[[str], None] = print
    table_console: Console | None = None  # where the profile stage prints its latency table (None: not at all)


def now_utc() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_stage(context: PipelineContext, stage: Stage, is_current: Callable[[], str | None],
              execute: Callable[[], str]) -> StageOutcome:
    """Skip `stage` when `is_current()` gives a reason; else run `execute()` and record it.

    The state file says `running` while a stage runs, `done` after it, `failed`/`interrupted` when it
    raised; a skip leaves the stage's recorded times alone and adds `last_skipped_utc`.
    """
    state = context.state
    reason = is_current()
    if reason is not None:
        state.mark(stage, "done", last_skipped_utc=now_utc())
        context.say(f"[{stage.value}] skipped: {reason}")
        return StageOutcome(stage, ran=False, detail=reason)
    context.say(f"[{stage.value}] running…")
    state.mark(stage, "running", started_utc=now_utc(), finished_utc=None, error=None)
    started = time.perf_counter()
    try:
        detail = execute()
    except BaseException as exc:
        # Ctrl-C / SIGTERM (training saves first and raises with exit code 130) vs a real failure.
        stopped = isinstance(exc, KeyboardInterrupt) or getattr(exc, "exit_code", None) == 130
        state.mark(stage, "interrupted" if stopped else "failed", error=str(exc)[:500] or type(exc).__name__,
                   finished_utc=now_utc(), seconds=round(time.perf_counter() - started, 3))
        raise
    seconds = time.perf_counter() - started
    state.mark(stage, "done", finished_utc=now_utc(), seconds=round(seconds, 3), detail=detail)
    context.say(f"[{stage.value}] done in {seconds:.1f} s: {detail}")
    return StageOutcome(stage, ran=True, detail=detail, seconds=seconds)


class PipelineError(SeekdeployError):
    """The pipeline cannot continue with what is on disk; the message says how to proceed."""


@dataclass(frozen=True)
class PipelineResult:
    """The end of a pipeline: the summary line, whether every budget passed, and where things are."""

    passed: bool
    summary: str
    run_dir: Path
    export_dir: Path
    stages: tuple[StageOutcome, ...]
    errors: tuple[SeekdeployError, ...] = ()  # a failed report, devices that gave no result
    over_budget: bool = False  # some role FAILed a budget (exit 3)
