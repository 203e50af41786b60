"""`seekdeploy run`: calibrate → train → slice → export → profile → report, resumable stage by stage.

Each stage calls the same library function its own command does. Whether a stage is finished is
decided from its artifacts, never from memory: the training run's manifest.json (written only
after the final checkpoint), export manifests that name the checkpoint's sha256, a profile.json
newer than the export for the same profile and device, a report newer than that profile.json.
`runs/<name>/pipeline.json` records what each stage did and when (written atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from seekdeploy import layout
from seekdeploy.errors import SeekdeployError
from seekdeploy.pipeline import calibrate, cascade_stage, stages
from seekdeploy.pipeline.context import (
    PipelineConfig,
    PipelineContext,
    PipelineError,
    PipelineResult,
    PipelineState,
    Stage,
    now_utc,
    run_stage,
)

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.measure.profile import ProfileOutcome


def open_context(config: PipelineConfig, console: Console, say: Callable[[str], None],
                 table_console: Console | None = None) -> PipelineContext:
    """Resolve the profile and folders and load pipeline.json (nothing is trained or written)."""
    from seekdeploy.profiles.loader import load_profile

    profile = load_profile(config.profile)
    name = config.run_name(profile.name)
    run_dir, export_dir = Path(config.runs_dir) / name, Path(config.exports_dir) / name
    if run_dir.exists() and not run_dir.is_dir():
        raise PipelineError(f"{run_dir} exists and is not a folder; pass --name or --runs-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    state = PipelineState.load(run_dir / layout.PIPELINE_STATE, name, profile.name)
    return PipelineContext(config, profile, run_dir, export_dir, state, console, say=say,
                           table_console=table_console)


def run_pipeline(config: PipelineConfig, console: Console | None = None, say: Callable[[str], None] = print,
                 table_console: Console | None = None) -> PipelineResult:
    """Run every stage that is not current, in order, and return the verdict summary.

    `say` prints the stage lines; `console` (rich, stderr by default) gets training progress;
    `table_console` (if given) the latency table of a profile stage that ran. Raises what a stage
    raises (training interrupted: exit 130, after saving a checkpoint).
    """
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    context = open_context(config, console, say, table_console)
    if config.force:
        stages.remove_previous(context)
        context.state.data["stages"] = {}
        say(f"[pipeline] --force: removed the previous training files and {context.export_dir}")
    context.state.data["config"] = {"profile": config.profile, **config.train_request(),
                                    "hosts": list(config.hosts), "exports_dir": str(config.exports_dir)}
    context.state.save()
    plan = [
        (Stage.CALIBRATE, calibrate.is_current_calibrate, calibrate.execute_calibrate),
        (Stage.TRAIN, stages.is_current_train, stages.execute_train),
        (Stage.SLICE, stages.is_current_slice, stages.execute_slice),
        (Stage.EXPORT, stages.is_current_export, stages.execute_export),
        (Stage.CASCADE, cascade_stage.is_current_cascade, cascade_stage.execute_cascade),
        (Stage.PROFILE, stages.is_current_profile, stages.execute_profile),
        (Stage.REPORT, stages.is_current_report, stages.execute_report),
    ]
    done, errors = [], []
    for stage, check, execute in plan:
        try:
            done.append(run_stage(context, stage, lambda f=check: f(context), lambda f=execute: f(context)))
        except SeekdeployError as exc:
            if stage is not Stage.REPORT:
                raise
            # The verdict stands without the report: say why it is missing, then still summarize.
            say(f"[report] failed: {exc}")
            errors.append(exc)
        if stage is Stage.PROFILE and done[-1].ran:  # recorded before the report can fail
            line = calibrate.record_prediction_checks(context)
            if line:
                say(f"[plan] {line}")
    errors += [outcome.error for outcome in context.outcome or () if outcome.error is not None]
    passed, summary = summarize(context.outcome or [])
    context.state.data.update(passed=passed, summary=summary, finished_utc=now_utc())
    context.state.save()
    over_budget = any(not v.passed for o in context.outcome or () for v in o.verdicts)
    return PipelineResult(passed, summary, context.run_dir, context.export_dir, tuple(done),
                          tuple(errors), over_budget)


def summarize(outcomes: list[ProfileOutcome]) -> tuple[bool, str]:
    """(all passed, the closing line): `PASSED base p95 … / motivated p95 …` or `FAILED …`."""
    parts, passed = [], bool(outcomes)
    for outcome in outcomes:
        where = "" if outcome.host == "local" else f"on {outcome.host}: "
        if outcome.error is not None:
            parts.append(f"{where}no result ({type(outcome.error).__name__})")
            passed = False
            continue
        roles = []
        for verdict in outcome.verdicts:
            passed = passed and verdict.passed
            checks = verdict.failures() or [c for c in verdict.checks if c.name.value in ("latency", "accuracy")]
            figures = ", ".join(check.describe().split(" (margin")[0] for check in checks)
            roles.append(f"{verdict.role} {verdict.status} ({figures or 'no budget'})")  # PASS, FAIL or UNSTABLE
        parts.append(where + " / ".join(roles))
    return passed, f"{'PASSED' if passed else 'FAILED'} " + "; ".join(parts or ["nothing was profiled"])
