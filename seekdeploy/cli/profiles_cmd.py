"""`seekdeploy profiles list|show|validate`: the declared hardware targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from seekdeploy.roles import ROLES, Role

if TYPE_CHECKING:
    from seekdeploy.profiles.schema import HardwareProfile


@click.group("profiles")
def profiles() -> None:
    """The declared hardware targets (YAML files in ./profiles/ and shipped with seekdeploy)."""


@profiles.command("list")
def list_command() -> None:
    """Table of every profile: runtime, precision, input and latency budgets per role.

    Profiles in ./profiles/ of the current directory override shipped ones of the same name.
    Invalid files are reported below the table.
    """
    from rich.console import Console
    from rich.table import Table

    from seekdeploy.profiles.loader import profile_search_dirs, scan_profiles

    scan = scan_profiles()
    shipped_dir = profile_search_dirs()[-1]
    table = Table(title="Hardware profiles")
    for column in ("name", "aliases", "runtime", "precision", "input", "base budget",
                   "motivated budget", "source"):
        table.add_column(column, no_wrap=column in {"name", "input"})
    for profile in sorted(scan.profiles, key=lambda p: p.name):
        size = profile.input
        table.add_row(
            profile.name,
            ", ".join(profile.aliases),
            profile.runtime.name.value,
            profile.runtime.precision.value,
            f"{size.batch}x{size.channels}x{size.height}x{size.width}",
            *(_latency_budget_text(profile, role) for role in ROLES),
            _source_text(profile.source_path, shipped_dir),
        )
    console = Console()
    if not console.is_terminal:
        # Piped or captured output has no width to detect; don't crush the table into 80 columns.
        console = Console(width=160)
    console.print(table)
    for path, error in scan.errors:
        click.secho(f"skipped {path}: {error}", fg="yellow", err=True)


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved profile as JSON.")
def show_command(name: str, as_json: bool) -> None:
    """Show one resolved profile (NAME, alias or path to a .yaml file), defaults filled in."""
    import yaml

    from seekdeploy.profiles.loader import load_profile

    profile = load_profile(name)
    data = profile.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    source = data.pop("source_path")
    click.echo(f"# {profile.name}, resolved from {source}")
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip())


@profiles.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def validate_command(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Check profile FILES: prints "valid: ..." for a good file, else every problem in it (key
    path, bad value, what is allowed); exit 1 if any file is invalid."""
    from seekdeploy.errors import ProfileError
    from seekdeploy.profiles.loader import load_profile_file
    failures = 0
    for path in files:
        try:
            profile = load_profile_file(path)
        except ProfileError as error:
            failures += 1
            click.secho(f"invalid: {error}", fg="red", err=True)
            continue
        budgets = ", ".join(f"{role} {_latency_budget_text(profile, role)}"
                            for role in ROLES)
        click.echo(f"valid: {profile.name} ({profile.runtime.name.value}, "
                   f"{profile.runtime.precision.value}; {budgets}) from {path}")
    if failures:
        ctx.exit(1)


def _latency_budget_text(profile: HardwareProfile, role: Role) -> str:
    budget = profile.budget(role)
    return f"p{budget.latency_percentile:g} <= {budget.latency_ms:g} ms"


def _source_text(source_path: Path | None, shipped_dir: Path) -> str:
    if source_path is None:
        return "?"
    if source_path.parent == shipped_dir:
        return "shipped"
    try:
        return str(source_path.relative_to(Path.cwd()))
    except ValueError:
        return str(source_path)
