"""`seekdeploy profile EXPORT --profile P [--host user@host]`: measure latency here or on devices
over SSH and check each role's budget.

Imports only click at module level; numpy, onnxruntime and torch load inside the command. The
measuring itself is `seekdeploy.measure.profile` (shared with `seekdeploy run`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from seekdeploy.backends import backend_names
from seekdeploy.measure.profile import DEFAULT_WINDOWS
from seekdeploy.remote.cli_options import remote_options
from seekdeploy.roles import ROLE_NAMES, parse_role

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.measure.profile import ProfileOutcome
    from seekdeploy.measure.remote import RemoteOutcome
    from seekdeploy.profiles.schema import HardwareProfile


@click.command("profile")
@click.argument("export", type=click.Path(path_type=Path))
@click.option("--profile", "profile_name", required=True, help="Hardware profile name, alias or YAML path.")
@click.option("--role", type=click.Choice(ROLE_NAMES), default=None,
              help="Profile one role only (default: every role in the export).")
@click.option("--runtime", type=click.Choice(backend_names()), default=None,
              help="Runtime to measure with (default: the profile's).")
@click.option("--providers", default=None, help="Comma-separated onnxruntime execution providers "
              "(default: the profile's).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Intra-op threads, 0 = runtime default (default: the profile's).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size (default: the profile's).")
@click.option("--sweep", is_flag=True, help="Also time the profile's batch_sweep sizes (or 1,2,4,8,16).")
@click.option("--repeats", type=click.IntRange(min=1), default=DEFAULT_WINDOWS, show_default=True,
              help="Timed windows per role, each the whole protocol, interleaved across the roles; "
                   "the quietest window (lowest latency at the budget's percentile) is judged, and "
                   "windows that straddle a budget make the verdict UNSTABLE.")
@click.option("--fail-unstable", is_flag=True,
              help="Exit 3 when a verdict is UNSTABLE, even if the quietest windows pass.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None, hidden=True,
              help="Unused: --runtime torch times the export's static.pt (kept so old scripts still run).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON on stdout (table on stderr).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the results JSON (default: profile.json in the export folder).")
@remote_options
@click.pass_context
def profile_command(ctx: click.Context, export: Path, profile_name: str, **options: Any) -> None:
    """Measure latency of an export here or on devices (--host) and give PASS/FAIL per budget
    (exit 3 on FAIL).

    \b
    Each role is timed in --repeats windows interleaved across the roles; the quietest window
    (lowest latency at the budget's percentile: other work only adds time) decides PASS/FAIL,
    the spread between windows and the machine's load are shown, and a budget some windows meet
    and others miss is reported as UNSTABLE ("PASS in 3 of 5 windows"), not as a clean verdict.

    \b
    EXPORT is an export folder (exports/<run>/ with <role>/model.onnx and manifest.json),
    one role's folder, or a single .onnx file (checked as the base role unless --role is given).
    Locally an ONNX model is timed in a fresh child process, so its peak memory is its own.
    With --host (repeatable) each device runs the same protocol through a small agent over SSH;
    one device writes profile.json, several write profile.<host>.json each.
    """
    from rich.console import Console

    profile = load_profile_for_cli(profile_name)
    console = Console(stderr=True) if options["as_json"] else Console()
    outcomes = profile_outcomes(export, profile, options, console)
    from seekdeploy.measure.profile import print_outcomes

    passed = print_outcomes(console, export, profile, outcomes)
    _profile_cascade(console, export, profile, options)
    if options["as_json"]:
        documents = [outcome.document for outcome in outcomes if outcome.document is not None]
        payload = documents[0] if len(documents) == 1 else documents
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        from seekdeploy.errors import RemoteError

        hosts = ", ".join(outcome.host for outcome in failed)
        raise RemoteError(f"no results from {hosts}; the reason is printed above for each")
    unstable = any(verdict.unstable for outcome in outcomes for verdict in outcome.verdicts)
    if not passed or (unstable and options["fail_unstable"]):
        from seekdeploy.errors import BudgetViolation

        ctx.exit(BudgetViolation.exit_code)


def _profile_cascade(console: Console, export: Path, profile: HardwareProfile, options: dict[str, Any]) -> None:
    # An export folder holding cascade/ (seekdeploy export --cascade): time it here over the test split.
    from seekdeploy.layout import ExportLayout

    if options.get("hosts") or not ExportLayout(export).cascade.manifest.is_file():
        return
    from seekdeploy.measure.cascade_timing import profile_export_cascade, summary_lines

    document = profile_export_cascade(export, profile, threads=options.get("threads"))
    for line in summary_lines(document):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def load_profile_for_cli(name_or_path: str) -> Any:
    """Load a hardware profile (indirection so tests can hand in a profile object)."""
    from seekdeploy.profiles.loader import load_profile

    return load_profile(name_or_path)


def profile_settings_from_cli(options: dict[str, Any]) -> Any:
    """`ProfileSettings` from the command's option values."""
    from seekdeploy.measure.profile import ProfileSettings

    providers = None
    if options.get("providers"):
        providers = tuple(p.strip() for p in options["providers"].split(",") if p.strip())
    role = parse_role(options["role"]) if options.get("role") else None
    return ProfileSettings(role=role, runtime=options.get("runtime"), providers=providers,
                           threads=options.get("threads"), batch=options.get("batch"),
                           sweep=bool(options.get("sweep")), repeats=options.get("repeats") or DEFAULT_WINDOWS,
                           run_dir=options.get("run_dir"), out=options.get("out"))  # fmt: skip


def profile_outcomes(export: Path, profile: HardwareProfile, options: dict[str, Any],
                     console: Console) -> list[ProfileOutcome]:
    """Measure locally, or on every `--host` in parallel; one `ProfileOutcome` per device."""
    from seekdeploy.measure.profile import RemoteSettings, profile_local, profile_on_hosts
    from seekdeploy.remote.cli_options import ssh_options_from_cli

    settings = profile_settings_from_cli(options)
    hosts = tuple(options.get("hosts") or ())
    if not hosts:
        return [profile_local(export, profile, settings, log=lambda line: console.print(line, highlight=False))]
    ssh_options, python, trtexec = ssh_options_from_cli(**options)
    remote = RemoteSettings(options=ssh_options, python=python, trtexec=trtexec)

    def on_done(outcome: RemoteOutcome) -> None:
        what = f"{outcome.result.get('role') or 'model'} measured" if outcome.ok else "failed"
        console.print(f"{outcome.host}: {what}", highlight=False)

    from seekdeploy.remote.target import SshTarget

    labels = [SshTarget.parse(host).label for host in hosts]  # refuse a bad host before saying anything
    console.print(f"profiling {export} on {', '.join(labels)} over SSH…", highlight=False)
    return profile_on_hosts(export, profile, hosts, settings, remote, on_done=on_done)
