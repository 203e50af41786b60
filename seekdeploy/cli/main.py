"""The `seekdeploy` command group and the error boundary every command runs inside."""

from __future__ import annotations

import os
import sys

import click

from seekdeploy import __version__
from seekdeploy.errors import SeekdeployError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="seekdeploy")
@click.option("--debug", is_flag=True, help="Show full tracebacks for user errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Train a nested base/motivated classifier pair, export it, and check it on the device.

    \b
    Typical use:
      seekdeploy run --profile x86-cpu-demo     # the whole pipeline on the built-in digits data
      seekdeploy profiles list                  # the declared hardware targets
      seekdeploy doctor                         # what runtimes and datasets work here
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# (module, command attribute): one line per working command. Each module imports only click and
# light helpers at import time, so `seekdeploy --help` never loads torch or onnx.
_COMMANDS: list[tuple[str, str]] = [
    ("seekdeploy.cli.run_cmd", "run"),
    ("seekdeploy.cli.export_cmd", "slice_command"), ("seekdeploy.cli.export_cmd", "export_command"),
    ("seekdeploy.cli.plan_cmd", "plan"), ("seekdeploy.cli.plan_cmd", "calibrate"),
    ("seekdeploy.cli.report_cmd", "report"),
    ("seekdeploy.cli.train_cmd", "train"),
    ("seekdeploy.cli.profile_cmd", "profile_command"),
    ("seekdeploy.cli.profiles_cmd", "profiles"),
    ("seekdeploy.cli.doctor_cmd", "doctor"),
]


def _register_commands() -> None:
    import importlib

    for module_name, attribute in _COMMANDS:
        module = importlib.import_module(module_name)
        cli.add_command(getattr(module, attribute))


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a `SeekdeployError` becomes one message and its exit code, not a traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        exit_code = cli.main(args=args, prog_name="seekdeploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SeekdeployError as exc:
        if debug:
            raise
        click.secho(f"Error: {exc}", fg="red", err=True)
        if exc.exit_immediately:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    # With standalone_mode=False, `ctx.exit(n)` inside a command comes back as the return value.
    return exit_code if isinstance(exit_code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
