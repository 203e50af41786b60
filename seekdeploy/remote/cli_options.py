"""The `--host` family of Click options, for the `profile` command to reuse.

Usage in a command module (imports click and the standard-library `remote.ssh`, whose `SshOptions`
gives the defaults, so `--help` stays light)::

    @remote_options
    def profile(..., **remote):
        options, python, trtexec = ssh_options_from_cli(**remote)   # or pass them on as they are
        outcomes = profile_remote(export, profile, remote["hosts"], options=options, python=python,
                                  trtexec=trtexec)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from seekdeploy.remote.ssh import DEVICE_PYTHON, SshOptions  # standard library only

_SSH = SshOptions()  # the defaults the options show

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(command: F) -> F:
    """Add --host (repeatable), --identity, --ssh-config, --accept-new-host-key, --remote-timeout,
    --connect-timeout, --python and --trtexec to a Click command."""
    decorators = [
        click.option("--host", "hosts", multiple=True, metavar="USER@HOST[:PORT]",
                     help="Profile on this device over SSH (repeat for several, run in parallel)."),
        click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="SSH private key (default: ssh's own choice and ~/.ssh/config)."),
        click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Use this ssh config file instead of ~/.ssh/config."),
        click.option("--accept-new-host-key", is_flag=True,
                     help="Trust a device's host key on first connection (StrictHostKeyChecking=accept-new)."),
        click.option("--remote-timeout", type=click.FloatRange(min=1), default=_SSH.command_timeout_s,
                     show_default=True,
                     help="Seconds the agent may run on the device before it is stopped."),
        click.option("--connect-timeout", type=click.IntRange(min=1), default=_SSH.connect_timeout_s,
                     show_default=True,
                     help="Seconds to wait for the SSH connection."),
        click.option("--python", "remote_python", default=DEVICE_PYTHON, show_default=True,
                     help="The device's Python interpreter (name or path)."),
        click.option("--trtexec", "remote_trtexec", default=None,
                     help="Path of trtexec on the device when it is not on PATH."),
    ]  # fmt: skip
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def ssh_options_from_cli(
    *,
    identity: Path | None = None,
    ssh_config: Path | None = None,
    accept_new_host_key: bool = False,
    remote_timeout: float = _SSH.command_timeout_s,
    connect_timeout: int = _SSH.connect_timeout_s,
    remote_python: str = DEVICE_PYTHON,
    remote_trtexec: str | None = None,
    **_ignored: Any,
) -> tuple[Any, str, str | None]:
    """(SshOptions, device python, device trtexec) from the values `remote_options` collected."""

    options = SshOptions(identity_file=identity, ssh_config=ssh_config,
                         accept_new_host_key=accept_new_host_key, command_timeout_s=remote_timeout,
                         connect_timeout_s=connect_timeout)  # fmt: skip
    return options, remote_python, remote_trtexec
