"""`seekdeploy run --profile P`: the whole pipeline, resumable, with one PASSED/FAILED line at the end.

Imports only click (and the click-only `--host` options) at module level; the pipeline loads torch,
onnx and onnxruntime inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from seekdeploy.cli._train_options import (arch_option, condition_option, data_option, epochs_option,
                                          skip_bad_files_option, workers_option)
from seekdeploy.layout import EXPORTS_DIR, RUNS_DIR
from seekdeploy.remote.cli_options import remote_options


@click.command("run")
@click.option("--profile", "profile_name", required=True, help="Hardware profile name, alias or YAML path.")
@arch_option
@data_option
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset.")
@workers_option
@skip_bad_files_option
@epochs_option
@condition_option
@click.option("--name", default=None, help="Run name [<profile>-<arch>-<data>].")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(RUNS_DIR),
              show_default=True, help="Where training runs go.")
@click.option("--exports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(EXPORTS_DIR),
              show_default=True, help="Where exports go.")
@click.option("--force", is_flag=True, help="Start over: retrain and redo every stage.")
@click.option("--no-calibrate", "no_calibrate", is_flag=True,
              help="Plan without timing the target first (the calibration on file, else the roofline).")
@remote_options
def run(profile_name: str, arch: str, data: str, data_dir: str | None, workers: int | None, skip_bad_files: bool,
        epochs: int | None, condition: str,
        name: str | None, runs_dir: Path, exports_dir: Path, force: bool, no_calibrate: bool,
        **remote: Any) -> None:
    """Train the base/motivated pair, slice, export, profile (here or on --host) and report.

    \b
    Resumable: a stage whose artifacts are current is skipped (a finished run, an export of this
    checkpoint, a profile.json newer than the export, a report newer than that), and an
    interrupted training continues from its checkpoint. Stage state: runs/<name>/pipeline.json.
    Ends with one PASSED/FAILED line; exit 3 when a budget fails.

    \b
    The pair's size comes from `plan` with ./profiles/<profile>.latency.json, the target's
    measured speed: when none matches the target and it is this machine (or --host), `run` first
    times a quick design and writes it (minutes on 2 cores: 6 at load average 8-9). --no-calibrate
    skips that and plans with the roofline of the profile's declared figures (cautious: small
    models).
    """
    from rich.console import Console

    from seekdeploy.errors import BudgetViolation
    from seekdeploy.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig(
        profile=profile_name, arch=arch, data=data, data_dir=data_dir, workers=workers,
        skip_bad_files=skip_bad_files, epochs=epochs,
        condition=condition, name=name, runs_dir=runs_dir, exports_dir=exports_dir,
        hosts=tuple(remote["hosts"]), remote=_remote_settings(remote), force=force,
        calibrate=not no_calibrate,
    )  # fmt: skip
    _check_hosts(config.hosts)
    result = run_pipeline(config, console=Console(stderr=True), say=lambda line: click.echo(line),
                          table_console=Console())
    click.secho(result.summary, fg="green" if result.passed else "red", bold=True)
    if result.over_budget:  # the verdict is the answer; other problems are notes beside it
        for error in result.errors:
            click.secho(f"note: {error}", fg="yellow", err=True)
        click.get_current_context().exit(BudgetViolation.exit_code)
    if result.errors:
        raise result.errors[0]


def _remote_settings(remote: dict[str, Any]) -> Any:
    if not remote.get("hosts"):
        return None
    from seekdeploy.measure.profile import RemoteSettings
    from seekdeploy.remote.cli_options import ssh_options_from_cli

    options, python, trtexec = ssh_options_from_cli(**remote)
    return RemoteSettings(options=options, python=python, trtexec=trtexec)


def _check_hosts(hosts: tuple[str, ...]) -> None:
    # A malformed --host must fail now, not after minutes of training.
    from seekdeploy.remote.target import SshTarget

    for host in hosts:
        SshTarget.parse(host)
