"""`seekdeploy profile EXPORT --profile P`: measure latency here and check each role's budget.

Imports only click at module level; numpy, onnxruntime and torch load inside the command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

DEFAULT_SWEEP_BATCHES = (1, 2, 4, 8, 16)


@click.command("profile")
@click.argument("export", type=click.Path(path_type=Path))
@click.option("--profile", "profile_name", required=True, help="Hardware profile name, alias or YAML path.")
@click.option("--role", type=click.Choice(["base", "motivated"]), default=None,
              help="Profile one role only (default: every role in the export).")
@click.option("--runtime", type=click.Choice(["onnxruntime", "torch", "tensorrt"]), default=None,
              help="Runtime to measure with (default: the profile's runtime).")
@click.option("--providers", default=None, help="Comma-separated onnxruntime execution providers "
              "(default: the profile's).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Intra-op threads, 0 = runtime default (default: the profile's).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size (default: the profile's).")
@click.option("--sweep", is_flag=True, help="Also time the profile's batch_sweep sizes (or 1,2,4,8,16).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the whole timing protocol this many times; the median repeat is reported.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Training run folder (only for --runtime torch; default runs/<run>).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON on stdout (table on stderr).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the results JSON (default: profile.json in the export folder).")
@click.pass_context
def profile_command(ctx: click.Context, export: Path, profile_name: str, **options: Any) -> None:
    """Measure latency of an export on this machine and give PASS/FAIL per budget (exit 3 on FAIL).

    \b
    EXPORT is an export folder (exports/<run>/ with <role>/model.onnx and manifest.json),
    one role's folder, or a single .onnx file (checked as role 'base' unless --role is given).
    """
    from rich.console import Console

    from seekdeploy.runtime.display import print_report
    from seekdeploy.runtime.results import build_profile_document, write_profile_document
    from seekdeploy.runtime.targets import find_targets

    profile = load_profile_for_cli(profile_name)
    targets = find_targets(export, options["role"])
    console = Console(stderr=True) if options["as_json"] else Console()
    results, verdicts = [], []
    for target in targets:
        result, verdict = _profile_target(target, profile, export, options, console)
        results.append(result)
        verdicts.append(verdict)
    document = build_profile_document(
        profile_name=profile.name, export=str(export), results=results, verdicts=verdicts
    )
    out = options["out"] or _default_out(export)
    write_profile_document(out, document)
    title = f"{export} on {profile.name} (written to {out})"
    passed = print_report(console, results, verdicts, title)
    if options["as_json"]:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    if not passed:
        from seekdeploy.errors import BudgetViolation

        ctx.exit(BudgetViolation.exit_code)


def load_profile_for_cli(name_or_path: str) -> Any:
    """Load a hardware profile (indirection so tests can hand in a profile object)."""
    from seekdeploy.profiles.loader import load_profile

    return load_profile(name_or_path)


def _profile_target(target: Any, profile: Any, export: Path, options: dict[str, Any], console: Any) -> tuple:
    from seekdeploy.profiles.schema import Role
    from seekdeploy.runtime.profiling import ProfileRequest, profile_model
    from seekdeploy.runtime.timing import ProtocolSettings
    from seekdeploy.runtime.verdict import RoleVerdict, evaluate_role

    runtime = options["runtime"] or profile.runtime.name.value
    chw = _input_chw(target, profile, console)
    batch = options["batch"] or profile.input.batch
    sweep = (profile.input.batch_sweep or DEFAULT_SWEEP_BATCHES) if options["sweep"] else ()
    request = ProfileRequest(
        model=_model_for(runtime, target, profile, export, options),
        runtime=runtime,
        input_shape=(batch, *chw),
        protocol=ProtocolSettings.from_protocol(profile.measurement),
        role=target.role,
        providers=_providers(options, profile),
        threads=profile.runtime.threads if options["threads"] is None else options["threads"],
        repeats=options["repeats"],
        sweep_batches=tuple(sweep),
        precision=profile.runtime.precision.value,
    )
    console.print(f"profiling {target.role} ({target.model_path}) with {runtime}, input {list(request.input_shape)}…")
    result = profile_model(request)
    if Role(target.role) not in profile.budgets:
        return result, RoleVerdict(role=target.role, checks=())
    return result, evaluate_role(target.role, result, profile.budget(target.role), target.accuracy)


def _input_chw(target: Any, profile: Any, console: Any) -> tuple[int, int, int]:
    declared = (profile.input.channels, profile.input.height, profile.input.width)
    from_manifest = target.input_chw
    if from_manifest is None:
        return declared
    if from_manifest != declared:
        # The model can only take its own input; the profile's is what the device would be fed.
        console.print(
            f"[yellow]note:[/] {target.role} manifest input (C,H,W)={from_manifest} differs from "
            f"profile {profile.name}'s {declared}; using the model's"
        )
    return from_manifest


def _providers(options: dict[str, Any], profile: Any) -> tuple[str, ...]:
    if options["providers"]:
        return tuple(p.strip() for p in options["providers"].split(",") if p.strip())
    return tuple(profile.runtime.execution_providers)


def _model_for(runtime: str, target: Any, profile: Any, export: Path, options: dict[str, Any]) -> Any:
    from seekdeploy.runtime.targets import find_engine, load_torch_module

    if runtime == "tensorrt":
        _require_tensorrt()
        return find_engine(target, profile.name, profile.runtime.precision.value)
    if runtime == "torch":
        return load_torch_module(target, export, options["run_dir"])
    return target.model_path


def _require_tensorrt() -> None:
    from seekdeploy.errors import MissingDependencyError, require

    try:
        require("tensorrt", extra="tensorrt", purpose="timing TensorRT engines")
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"{exc}; or measure the ONNX model here with --runtime onnxruntime"
        ) from exc


def _default_out(export: Path) -> Path:
    if export.is_file():
        return export.with_name(f"{export.stem}.profile.json")
    return export / "profile.json"
