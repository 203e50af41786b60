"""A small SSH session over the system `ssh` binary: run, upload, download, temp folders.

Everything goes through `subprocess` argument lists (never `shell=True`). The one string that does
reach a shell is the remote command, which sshd hands to the device's login shell; it is always
built with `shlex.quote` on every argument. Authentication is key-based only (`BatchMode=yes`, so a
password prompt can never hang a run), `~/.ssh/config` applies unless the user names another file,
and host keys are checked strictly unless the user opts into trust-on-first-use.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from seekdeploy._io import atomic_path, safe_name
from seekdeploy.errors import RemoteError
from seekdeploy.remote import diagnose
from seekdeploy.remote.target import SshTarget

log = logging.getLogger(__name__)

# mktemp's answer must look exactly like this before we ever `rm -rf` it.
_TEMP_DIR_RE = re.compile(r"/[A-Za-z0-9._/-]*/seekdeploy\.[A-Za-z0-9]{8,}")
_TEMP_TEMPLATE = "seekdeploy.XXXXXXXXXX"
UPLOAD_FAILED_EXIT = 90  # our own code for "tar could not unpack"; agents never use it


def mktemp_command() -> list[str]:
    """The argument list that makes a private seekdeploy folder in the device's /tmp."""
    return ["mktemp", "-d", f"/tmp/{_TEMP_TEMPLATE}"]


DEVICE_PYTHON = "python3"  # the device's interpreter unless --python names another


@dataclass(frozen=True)
class SshOptions:
    """How to connect: identity, config, host-key policy and time limits (seconds)."""

    identity_file: Path | None = None  # --identity; otherwise ssh's defaults and ~/.ssh/config
    ssh_config: Path | None = None  # --ssh-config; otherwise ~/.ssh/config as ssh always does
    known_hosts_file: Path | None = None  # otherwise ~/.ssh/known_hosts
    accept_new_host_key: bool = False  # True = StrictHostKeyChecking=accept-new (TOFU)
    connect_timeout_s: int = 10
    server_alive_interval_s: int = 15
    command_timeout_s: float = 600.0
    ssh_binary: str = "ssh"

    def ssh_arguments(self) -> list[str]:
        """The ssh options these settings stand for (everything before the destination)."""
        checking = "accept-new" if self.accept_new_host_key else "yes"
        args = [
            "-o", "BatchMode=yes",
            "-o", f"StrictHostKeyChecking={checking}",
            "-o", f"ConnectTimeout={int(self.connect_timeout_s)}",
            "-o", f"ServerAliveInterval={int(self.server_alive_interval_s)}",
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        if self.ssh_config is not None:
            args += ["-F", str(self.ssh_config)]
        if self.identity_file is not None:
            args += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts_file is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        return args


@dataclass(frozen=True)
class CommandResult:
    """What a remote command returned."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")


def quote_command(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted; the only way commands are built."""
    if not argv:
        raise ValueError("empty remote command")
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def with_remote_timeout(argv: Sequence[str], timeout_s: float) -> str:
    """A command line that runs `argv` under the device's `timeout` when it has one.

    Killing the local ssh does not always stop the remote process, so the device enforces the
    limit itself; where coreutils' `timeout` is missing the local limit still applies.
    """
    limit = str(max(1, int(timeout_s)))
    plain = quote_command(argv)
    guarded = quote_command(["timeout", "-k", "5", limit, *argv])
    return f"if command -v timeout >/dev/null 2>&1; then exec {guarded}; else exec {plain}; fi"


class SshSession:
    """Commands and file transfers to one device over the system ssh client."""

    def __init__(self, target: SshTarget | str, options: SshOptions | None = None) -> None:
        self.target = target if isinstance(target, SshTarget) else SshTarget.parse(target)
        self.options = options or SshOptions()

    def ssh_argv(self, remote_command: str) -> list[str]:
        """The full local argument list that runs `remote_command` (already quoted) remotely."""
        port = ["-p", str(self.target.port)] if self.target.port else []
        # "--" ends ssh's options: the destination can never be read as one.
        return [self.options.ssh_binary, *self.options.ssh_arguments(), *port, "--",
                self.target.destination, remote_command]  # fmt: skip

    def run(
        self,
        argv: Sequence[str] | None = None,
        *,
        command: str | None = None,
        stdin: bytes | IO[bytes] | None = None,
        stdout_file: IO[bytes] | None = None,
        timeout_s: float | None = None,
        what: str = "the remote command",
    ) -> CommandResult:
        """Run `argv` (quoted here) or a pre-quoted `command` on the device.

        ssh's own failures (exit 255) become the matching `RemoteError`; a run past `timeout_s`
        (default: the session's command timeout) becomes `RemoteTimeoutError`. Other exit codes
        are returned for the caller to interpret.
        """
        if (argv is None) == (command is None):
            raise ValueError("give exactly one of argv or command")
        remote_command = command if command is not None else quote_command(argv or [])
        limit_s = self.options.command_timeout_s if timeout_s is None else timeout_s
        try:
            completed = subprocess.run(
                self.ssh_argv(remote_command),
                input=stdin if isinstance(stdin, bytes) else None,
                stdin=None if isinstance(stdin, bytes) else (stdin or subprocess.DEVNULL),
                stdout=stdout_file or subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=limit_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise diagnose.timeout_error(what, self.target.label, limit_s) from exc
        except FileNotFoundError as exc:
            raise RemoteError(
                f"the ssh client {self.options.ssh_binary!r} is not installed here: "
                "apt install openssh-client"
            ) from exc
        stderr = (completed.stderr or b"").decode("utf-8", errors="replace")
        if completed.returncode == diagnose.SSH_FAILURE_EXIT:
            raise diagnose.classify_ssh_failure(stderr, self.target, self._known_hosts_label())
        return CommandResult(completed.returncode, completed.stdout or b"", stderr)

    def check(self, argv: Sequence[str], *, what: str, timeout_s: float | None = None) -> CommandResult:
        """Run `argv` and raise `RemoteError` naming `what` unless it exits 0."""
        result = self.run(argv, timeout_s=timeout_s, what=what)
        if result.returncode != 0:
            raise RemoteError(
                f"{what} failed on {self.target.label} (exit {result.returncode}): "
                f"{result.stderr.strip() or result.text.strip() or 'no message'}"
            )
        return result

    def make_temp_dir(self) -> str:
        """Create a private folder on the device with `mktemp -d` and return its absolute path."""
        result = self.check(mktemp_command(), what="mktemp -d", timeout_s=60)
        return self.checked_temp_dir(result.text.strip().splitlines()[-1:])

    def checked_temp_dir(self, lines: Sequence[str]) -> str:
        """Validate what `mktemp_command()` printed (its last line) and return the folder."""
        path = lines[-1].strip() if lines else ""
        if not _TEMP_DIR_RE.fullmatch(path):
            raise RemoteError(f"mktemp on {self.target.label} answered an unexpected path {path!r}")
        return path

    def remove_dir(self, remote_dir: str) -> None:
        """Delete a folder made by `make_temp_dir` (refuses any other path)."""
        if not _TEMP_DIR_RE.fullmatch(remote_dir):
            raise ValueError(f"refusing to remove {remote_dir!r}: not a seekdeploy temp folder")
        self.check(["rm", "-rf", "--", remote_dir], what=f"removing {remote_dir}", timeout_s=60)

    @contextlib.contextmanager
    def temp_dir(self, existing: str | None = None) -> Iterator[str]:
        """A device temp folder (new, or `existing` from mktemp) removed afterwards, even on failure."""
        remote_dir = self.make_temp_dir() if existing is None else self.checked_temp_dir([existing])
        try:
            yield remote_dir
        finally:
            try:
                self.remove_dir(remote_dir)
            except RemoteError as exc:
                # Do not mask the body's own error; the folder lives in /tmp and is small.
                log.warning("could not remove %s on %s: %s", remote_dir, self.target.label, exc)

    def upload(
        self,
        files: Mapping[str, Path],
        remote_dir: str,
        then: str = "true",
        timeout_s: float | None = None,
        what: str = "uploading files",
    ) -> CommandResult:
        """Unpack `files` (`name -> local path`) into `remote_dir` from one tar stream, then run `then`.

        `then` is a pre-quoted command run in the same connection only when the unpacking worked
        (saving a round trip per run); a failed unpack exits with `UPLOAD_FAILED_EXIT`.
        """
        unpack = quote_command(["tar", "-x", "-f", "-", "-C", remote_dir])
        command = f"{unpack} || exit {UPLOAD_FAILED_EXIT}; {then}"
        with tempfile.TemporaryFile() as archive:
            _write_tar(archive, files)
            archive.seek(0)
            result = self.run(command=command, stdin=archive, timeout_s=timeout_s, what=what)
        if result.returncode == UPLOAD_FAILED_EXIT:
            raise RemoteError(
                f"could not unpack files into {remote_dir} on {self.target.label}: "
                f"{result.stderr.strip()}; is `tar` installed and /tmp writable there?"
            )
        return result

    def download(self, remote_path: str, local_path: Path, timeout_s: float | None = None) -> Path:
        """Copy one remote file to `local_path` atomically (a failed copy leaves nothing)."""
        local_path = Path(local_path)
        with atomic_path(local_path) as tmp, open(tmp, "wb") as handle:
            result = self.run(["cat", "--", remote_path], stdout_file=handle,
                              timeout_s=timeout_s, what=f"downloading {remote_path}")  # fmt: skip
            if result.returncode != 0:
                raise RemoteError(
                    f"could not read {remote_path} on {self.target.label}: {result.stderr.strip()}"
                )
        return local_path

    def _known_hosts_label(self) -> str:
        return str(self.options.known_hosts_file or "~/.ssh/known_hosts")


def _write_tar(archive: IO[bytes], files: Mapping[str, Path]) -> None:
    # ustar: the most portable format (busybox tar on small devices reads it too).
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, local in files.items():
            info = tar.gettarinfo(str(local), arcname=safe_name(name, "remote file name"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(local, "rb") as handle:
                tar.addfile(info, handle)
