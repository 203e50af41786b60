"""A real OpenSSH server on 127.0.0.1 for the remote-profiling tests.

`start_sshd(folder)` generates a host key and a client key with ssh-keygen, writes an sshd_config
that accepts only that client key, starts `/usr/sbin/sshd -D -e` on a free port and waits until it
accepts connections. The returned `SshdServer` also carries a known_hosts file that trusts the
server, so tests can connect with host-key checking ON, exactly as users do. Import the
`sshd_server` fixture from this module into a test module to use it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_PATH = Path("/usr/sbin/sshd")
SSHD_SKIP_REASON = "needs OpenSSH's /usr/sbin/sshd and ssh-keygen (apt install openssh-server)"


def sshd_available() -> bool:
    """True when an OpenSSH server and client can be started here."""
    return SSHD_PATH.exists() and bool(shutil.which("ssh-keygen")) and bool(shutil.which("ssh"))


@dataclass
class SshdServer:
    """A running test sshd and the client-side files that reach it."""

    port: int
    client_key: Path  # authorized private key
    other_key: Path  # a valid key the server does NOT accept
    known_hosts: Path  # trusts this server's host key
    host_public_key: str  # "ssh-ed25519 AAAA..." of the server
    folder: Path
    process: subprocess.Popen

    @property
    def host(self) -> str:
        """The `user@host:port` string that reaches this server."""
        return f"root@127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate sshd and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "seekdeploy-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _write_config(folder: Path, port: int, host_key: Path, authorized: Path) -> Path:
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {folder / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    return config


def _wait_listening(port: int, process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {process.stderr.read()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port} within {timeout_s} s")


def start_sshd(folder: Path) -> SshdServer:
    """Start a key-only sshd on a free 127.0.0.1 port with its files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation folder
    host_key, client_key, other_key = folder / "host_key", folder / "client_key", folder / "other_key"
    for key in (host_key, client_key, other_key):
        _keygen(key)
    authorized = folder / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    port = free_port()
    config = _write_config(folder, port, host_key, authorized)
    host_public_key = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public_key}\n")
    process = subprocess.Popen(
        [str(SSHD_PATH), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = SshdServer(port, client_key, other_key, known_hosts, host_public_key, folder, process)
    try:
        _wait_listening(port, process)
    except RuntimeError:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory):
    """A running test sshd for the whole test module; skipped with a reason when sshd is absent."""
    if not sshd_available():
        pytest.skip(SSHD_SKIP_REASON)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


# ---- small things the remote tests share: a tiny ONNX model and a fast profile ----


def make_tiny_onnx(path: Path) -> Path:
    """Export a tiny conv classifier (input `input` (B, 3, 8, 8), output `logits`) with torch."""
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5),
    ).eval()  # fmt: skip
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice is expected
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 3, 8, 8),), str(path), input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return path


def tiny_profile(runtime: str = "onnxruntime", precision: str = "fp32", duration_ms: float = 20.0):
    """A HardwareProfile for 8x8 inputs with a protocol of a few tens of milliseconds."""
    from seekdeploy.profiles import schema

    return schema.HardwareProfile(
        name="tiny-test",
        device=schema.DeviceSpec(cpu_arch="x86_64", cpu_cores=2, memory_mib=1024),
        runtime=schema.RuntimeSpec(schema.RuntimeName(runtime), schema.Precision(precision), threads=1),
        input=schema.InputSpec(channels=3, height=8, width=8, batch=1),
        hardware=schema.HardwareFigures({schema.Precision.FP32: 1.0}, 1.0),
        budgets={schema.Role.BASE: schema.Budget(latency_ms=100.0)},
        measurement=schema.MeasurementProtocol(5.0, 3, duration_ms, 5),
    )


def write_fake_trtexec(folder: Path, python: str) -> Path:
    """A stand-in `trtexec` (no GPU here) that saves an engine and per-iteration times like it.

    It records its arguments in `trtexec.args.json` beside itself, so tests can check the flags.
    """
    script = folder / "trtexec"
    script.write_text(
        f"#!{python}\n"
        "import json, os, sys\n"
        "if '--help' in sys.argv:\n"
        "    print('&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --help'); sys.exit(0)\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "json.dump(sys.argv[1:], open(os.path.join(here, 'trtexec.args.json'), 'w'))\n"
        "opts = dict(a.split('=', 1) for a in sys.argv[1:] if '=' in a)\n"
        "open(opts['--saveEngine'], 'wb').write(b'fake engine')\n"
        "n = int(opts['--iterations'])\n"
        "times = [{'count': n}] + [{'latencyMs': 1.0 + i / 100, 'computeMs': 0.5} for i in range(n)]\n"
        "json.dump(times, open(opts['--exportTimes'], 'w'))\n"
    )
    script.chmod(0o755)
    return script


def client_options(server: SshdServer, **changes):
    """`SshOptions` for a client of `server` (its key, its known_hosts), with `changes` applied."""
    from seekdeploy.remote.ssh import SshOptions

    settings = {"identity_file": server.client_key, "known_hosts_file": server.known_hosts,
                "connect_timeout_s": 5, "command_timeout_s": 120.0}  # fmt: skip
    settings.update(changes)
    return SshOptions(**settings)


def remote_dirs() -> set[str]:
    """The agent's work folders on the test device (this machine, so its /tmp is ours to inspect)."""
    return set(glob.glob("/tmp/seekdeploy.*"))
