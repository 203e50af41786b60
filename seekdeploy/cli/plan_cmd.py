"""`seekdeploy plan` (pick a nested pair that fits the budgets) and `seekdeploy calibrate`.

Imports only click and the torch-free family registry (the --arch choices) at module level; the
model code (torch) loads inside the commands, and planning itself needs none.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from seekdeploy.layout import PROFILES_DIR
from seekdeploy.nn.registry import DEFAULT_FAMILY, list_families  # light: no torch at import
from seekdeploy.plan.defaults import (DEFAULT_CALIBRATION_FOCUS, DEFAULT_CALIBRATION_SEED, DEFAULT_CALIBRATION_SPECS,
                                      DEFAULT_MAX_BASE_RATIO, DEFAULT_SHAPE_RULE, ShapeRule)

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.plan.planner import PairPlan

FAMILIES = tuple(list_families())


@contextmanager
def _calibration_warnings_to(console: Console) -> Iterator[None]:
    # A stale or foreign calibration is worth one readable line, not a Python warning trace.
    from seekdeploy.plan.calibration_file import CalibrationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, CalibrationWarning):
            console.print(f"[yellow]warning:[/] {warning.message}", highlight=False)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


@click.command("plan")
@click.option("--profile", "profile_name", required=True, help="Hardware profile name, alias or YAML path.")
@click.option("--arch", type=click.Choice(FAMILIES), default=DEFAULT_FAMILY, show_default=True, help="Model family.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Calibration file [profiles/<profile>.latency.json].")
@click.option("--roofline", is_flag=True, help="Ignore any calibration; predict with the roofline.")
@click.option("--max-base-ratio", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=DEFAULT_MAX_BASE_RATIO,
              show_default=True, help="The base may have at most this fraction of the motivated model's FLOPs.")
@click.option("--shape", type=click.Choice([rule.value for rule in ShapeRule]), default=DEFAULT_SHAPE_RULE.value, show_default=True,
              help="Which shapes both roles may take. " + "; ".join(f"{rule.value}: {rule.description}"
                                                                     for rule in ShapeRule) + ".")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
def plan(profile_name: str, arch: str, calibration: Path | None, roofline: bool, max_base_ratio: float,
         shape: str, as_json: bool) -> None:
    """Pick the largest motivated spec within its budgets and the largest base nested in it, at most
    --max-base-ratio of its FLOPs, within the base budgets; say what stopped each role growing.

    Latency is predicted at each budget's percentile by the profile's calibration when it matches
    this device, else by the roofline of the profile's declared peak GFLOP/s and bandwidth; the
    plan names the predictor and how far off it was on the last run `seekdeploy run` profiled.
    """
    from rich.console import Console

    from seekdeploy.plan.calibration_file import load_predictor
    from seekdeploy.plan.planner import plan_pair
    from seekdeploy.plan.predictor import RooflinePredictor
    from seekdeploy.profiles.loader import load_profile

    console = Console(stderr=as_json)
    profile = load_profile(profile_name)
    with _calibration_warnings_to(console):
        predictor = RooflinePredictor(profile) if roofline else load_predictor(profile, arch, calibration)
    from seekdeploy.plan.track_record import check_line, last_check

    result = plan_pair(profile, arch, predictor, max_base_ratio=max_base_ratio, shape=shape)
    check = last_check(profile, arch, predictor)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json() | {"last_check": check}, indent=2) + "\n")
        return
    _print_plan(console, result, check_line(check, predictor.kind))


def _print_plan(console: Console, result: PairPlan, last_time: str) -> None:
    from rich import box
    from rich.table import Table

    predictor = result.predictor
    source = f" ({predictor.get('model')}, {predictor.get('source')})" if predictor["kind"] == "calibrated" else ""
    percentiles = sorted({f"p{rp.budget.latency_percentile:g}" for rp in (result.base, result.motivated)})
    table = Table(title=f"{result.family} on {result.profile} · {predictor['kind']} predictor{source}",
                  title_justify="left", box=box.SIMPLE_HEAD,
                  caption=f"latency ms at the budget percentile ({', '.join(percentiles)}), used = latency / "
                          "budget · memory, file: MiB predicted/budget")
    for column in ("role", "params", "MFLOP", "latency", "budget", "used", "memory", "file"):
        table.add_column(column, justify="left" if column == "role" else "right", no_wrap=True)
    for role_plan in (result.base, result.motivated):
        data = role_plan.to_json()
        table.add_row(role_plan.role.value, f"{data['params'] / 1e6:.2f}M", f"{data['flops'] / 1e6:.1f}",
                      f"{data['predicted_latency_ms']:.3f}", f"{data['budget_latency_ms']:g}",
                      f"{data['budget_used']:.0%}",
                      _of_budget(data["predicted_memory_mib"], role_plan.budget.peak_memory_mib),
                      _of_budget(data["predicted_file_size_mib"], role_plan.budget.file_size_mib))
    console.print(table)
    for line in (f"base:      {result.base.candidate.spec}", f"motivated: {result.motivated.candidate.spec}",
                 *result.summary_lines()):
        console.print(line, highlight=False)
    console.print(f"searched {result.searched} specs in {result.search_seconds:.2f} s")
    console.print(last_time, highlight=False)
    console.print("PASSED: planned a nested pair within every budget", style="bold green")


def _of_budget(value: float, budget: float | None) -> str:
    return f"{value:.2f}" if budget is None else f"{value:.2f}/{budget:g}"


@click.command("calibrate")
@click.option("--profile", "profile_name", required=True, help="Hardware profile name, alias or YAML path.")
@click.option("--arch", type=click.Choice(FAMILIES), default=DEFAULT_FAMILY, show_default=True,
              help="Model family whose specs are measured.")
@click.option("--specs", "spec_count", type=click.IntRange(min=6), default=DEFAULT_CALIBRATION_SPECS, show_default=True,
              help="How many design specs to export and time (corners + random).")
@click.option("--focus", type=click.IntRange(min=0), default=DEFAULT_CALIBRATION_FOCUS, show_default=True,
              help="More specs, timed after a first fit, where it predicts the profile's latency budgets "
                   "(accuracy where the planner chooses; 0: none).")
@click.option("--host", default=None, help="Time on this device over SSH (user@host[:port]) instead of here.")
@click.option("--seed", type=int, default=DEFAULT_CALIBRATION_SEED, show_default=True,
              help="Seed of the random design specs.")
@click.option("--opset", type=click.IntRange(min=13), default=None,
              help="ONNX opset of the design exports [the one `export` uses for the profile].")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(PROFILES_DIR),
              show_default=True, help="Folder of the calibration file <profile>.latency.json.")
def calibrate(profile_name: str, arch: str, spec_count: int, focus: int, host: str | None, seed: int,
              opset: int | None, out_dir: Path) -> None:
    """Export and time a design of specs on the target and fit the profile's latency model.

    Writes <out-dir>/<profile>.latency.json with the device fingerprint; `plan` and `train` use
    it on a matching device and ignore it (with a warning) anywhere else.
    """
    from rich.console import Console

    from seekdeploy.plan.calibration import calibrate_profile
    from seekdeploy.profiles.loader import load_profile

    console = Console()
    profile = load_profile(profile_name)
    where = host or "this machine"
    console.print(f"calibrating {profile.name} ({arch}, {spec_count} specs + {focus} near the budgets) on {where}…")

    with CalibrationProgress(console) as progress:
        result = calibrate_profile(profile, arch, specs=spec_count, host=host, seed=seed, opset=opset,
                                   focus=focus, folder=out_dir, on_progress=progress.update)
    fit = result.fit
    others = ", ".join(f"{name} {mape:.1f}%" for name, mape in fit.heldout_mape_by_model.items())
    console.print(f"fit: {fit.model} · held-out MAPE {fit.heldout_mape_percent:.1f}% · "
                  f"fit MAPE {fit.train_mape_percent:.1f}% (candidates: {others})", highlight=False)
    if result.retimed_points:
        console.print(f"{result.retimed_points} design point(s) the fit missed by far were timed again "
                      "(the quieter timing is kept)", highlight=False)
    console.print(f"tail ratios (pXX / typical): {result.tail_ratios}", highlight=False)
    if result.fit_suspect:
        console.print(f"[yellow]warning:[/] the fit predicts design specs it did not see with "
                      f"{fit.heldout_mape_percent:.0f}% error even after timing them all again: the device was "
                      "probably busy. Calibrate again when it is idle (the new file replaces this one), or "
                      "plan with --roofline", highlight=False)
    if result.tail_capped:
        console.print("[yellow]warning:[/] latency tails were extreme (another load on the device?); "
                      "ratios are capped: recalibrate on an idle device")
    console.print(f"written to {result.path}")
    console.print("PASSED: calibrated", style="bold green")


class CalibrationProgress:
    """A rich progress bar per stage (export, time) on a terminal; a line per finished stage otherwise."""

    _LABELS = {"export": "exporting", "time": "timing", "re-export": "re-exporting", "re-time": "re-timing",
               "focus-export": "exporting specs near the budgets", "focus-time": "timing specs near the budgets"}

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> CalibrationProgress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("  {task.description:<13}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=self.console)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        """`done` of `total` steps of `stage` are finished."""
        label = self._LABELS.get(stage, stage)
        if self._progress is None:
            if done == total:
                self.console.print(f"  {label}: {total}/{total} done", highlight=False)
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)
