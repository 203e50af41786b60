"""`seekdeploy doctor`: which runtimes, devices, tools and datasets are usable here."""

from __future__ import annotations

import click


@click.command("doctor")
def doctor() -> None:
    """Check which runtimes, accelerators, tools and datasets are usable on this machine.

    One line per item; each unusable item says why and how to fix it. Always exits 0: a missing
    optional backend (TensorRT, a GPU) is normal on a development machine.
    """
    from seekdeploy.doctor import check_environment

    checks = check_environment()
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = click.style("ok", fg="green") if check.usable else click.style("--", fg="yellow")
        line = f"{mark}  {check.name:<{width}}  {check.detail}"
        if not check.usable and check.fix:
            line += f"\n    {' ' * width}  fix: {check.fix}"
        click.echo(line)
    usable = sum(check.usable for check in checks)
    click.echo(f"{usable} of {len(checks)} items usable here.")
