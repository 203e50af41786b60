"""Turn what ssh and the device print into one clear `RemoteError` per failure mode.

ssh exits with 255 for its own failures and says why on stderr; the remote shell exits with 127
when a command is missing; the agent and the preflight probe print a tagged line
(`seekdeploy-agent: missing-module NAME`) when a Python module is absent. Each case gets its own
error subclass, so callers and tests can tell them apart, and a message that names the fix.
"""

from __future__ import annotations

from seekdeploy.backends import list_backends
from seekdeploy.errors import RemoteError
from seekdeploy.remote.target import SshTarget

SSH_FAILURE_EXIT = 255
COMMAND_NOT_FOUND_EXIT = 127
MISSING_MODULE_TAG = "seekdeploy-agent: missing-module "


class HostUnreachableError(RemoteError):
    """The device could not be reached (refused, timed out, no route, unknown name)."""


class KeyRefusedError(RemoteError):
    """The device refused every offered key."""


class UnknownHostKeyError(RemoteError):
    """The device's host key is not in known_hosts and strict checking is on."""


class HostKeyChangedError(RemoteError):
    """The device's host key differs from the one recorded in known_hosts."""


class MissingPythonError(RemoteError):
    """The device has no Python interpreter at the requested name or path."""


class MissingModuleError(RemoteError):
    """A Python module the agent needs (numpy, the runtime) is missing on the device."""


class RemoteTimeoutError(RemoteError):
    """A remote command ran past its time limit."""


class ConnectionDroppedError(RemoteError):
    """An established SSH connection dropped while copying or running."""


class AgentFailedError(RemoteError):
    """The agent started but could not measure the model."""


_UNREACHABLE_MARKERS = {
    "connection refused": "the connection was refused: is sshd running there and is the port right?",
    "could not resolve hostname": "the host name does not resolve: check the spelling or use an IP",
    "connection timed out": "the connection timed out: is the device on and on this network?",
    "operation timed out": "the connection timed out: is the device on and on this network?",
    "no route to host": "there is no route to the host: check the network and the address",
    "network is unreachable": "the network is unreachable from here: check the address",
    "connection closed by": "the device closed the connection before logging in (MaxStartups?)",
    "connection reset": "the connection was reset before logging in",
}


# An established session that ends abruptly: ssh prints "Connection to HOST closed by remote host."
_DROPPED_MARKERS = ("closed by remote host", "broken pipe", "client_loop: send disconnect")


def classify_ssh_failure(stderr: str, target: SshTarget, known_hosts: str) -> RemoteError:
    """Map the stderr of an ssh that exited with 255 to the matching `RemoteError` subclass."""
    host_label = target.label
    text = stderr.lower()
    last_line = _last_line(stderr)
    if "remote host identification has changed" in text or "has changed and you have" in text:
        return HostKeyChangedError(
            f"the host key of {host_label} has CHANGED since it was recorded in {known_hosts}. "
            "This can be a reinstalled device or a man-in-the-middle: verify the new key's "
            "fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
            f"remove the old entry with: ssh-keygen -R {_known_hosts_name(target)}"
        )
    if "host key verification failed" in text:
        return UnknownHostKeyError(
            f"the host key of {host_label} is not known ({known_hosts}) and strict host-key checking "
            f"is on. Connect once by hand ({_interactive_command(target)}) and compare the "
            "fingerprint, or pass --accept-new-host-key to trust it on first use"
        )
    if "permission denied" in text:
        return KeyRefusedError(
            f"{host_label} refused the SSH key ({last_line}). Install your public key there "
            "(ssh-copy-id), pass the right one with --identity, or check the user name; "
            "password logins are not used (BatchMode)"
        )
    if any(marker in text for marker in _DROPPED_MARKERS):
        return ConnectionDroppedError(
            f"the connection to {host_label} dropped while working (ssh said: {last_line}). "
            "Nothing was kept from this attempt; check the device and the network, then retry"
        )
    for marker, why in _UNREACHABLE_MARKERS.items():
        if marker in text:
            return HostUnreachableError(f"cannot reach {host_label}: {why} (ssh said: {last_line})")
    return RemoteError(f"ssh to {host_label} failed: {last_line or 'no message (exit 255)'}")


def missing_python_error(python: str, host_label: str) -> MissingPythonError:
    """The error for a device where `python` (a name or path) does not run."""
    return MissingPythonError(
        f"{python!r} was not found on {host_label}: install Python 3.8 or newer there "
        "(apt install python3) or pass --python with the path of the device's interpreter"
    )


def missing_module_error(module: str, python: str, host_label: str) -> MissingModuleError:
    """The error for a Python module that the agent needs and the device lacks."""
    hints = {backend.name: backend.agent.install_hint for backend in list_backends()
             if backend.agent is not None and backend.agent.install_hint}
    hints["numpy"] = "python3 -m pip install numpy (or apt install python3-numpy)"
    hint = hints.get(module, f"python3 -m pip install {module}")
    return MissingModuleError(
        f"{module} is not importable by {python} on {host_label}: install it on the device with "
        f"`{hint}`, or pass --python with an interpreter that has it"
    )


def find_missing_module(stderr: str) -> str | None:
    """The module named by the agent's tagged missing-module line, if any."""
    for line in stderr.splitlines():
        words = line[len(MISSING_MODULE_TAG) :].split() if line.startswith(MISSING_MODULE_TAG) else []
        if words:
            return words[0]
    return None


def timeout_error(what: str, host_label: str, timeout_s: float) -> RemoteTimeoutError:
    """The error for a remote command that ran past `timeout_s`."""
    return RemoteTimeoutError(
        f"{what} on {host_label} did not finish within {timeout_s:g} s and was stopped; raise the "
        "limit with --remote-timeout, or shorten the measurement (profile measurement.duration_ms)"
    )


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _interactive_command(target: SshTarget) -> str:
    port = f"-p {target.port} " if target.port else ""
    return f"ssh {port}{target.destination}"


def _known_hosts_name(target: SshTarget) -> str:
    # known_hosts records non-default ports as "[host]:port".
    return f"'[{target.host}]:{target.port}'" if target.port else target.host
