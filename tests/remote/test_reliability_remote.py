"""The SSH connection dropping mid-copy or mid-run: the server-side sshd process of the session
is SIGKILLed (found as a child of the test sshd). The result is a clear `RemoteError`, the device's
temp folder is gone once a new connection cleans up, and a retry works."""

from __future__ import annotations

import glob
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from seekdeploy.errors import RemoteError
from seekdeploy.measure.remote import build_plan, profile_host
from seekdeploy.remote.ssh import SshOptions, SshSession
from sshd import make_tiny_onnx, sshd_server, tiny_profile  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ssh
PYTHON = sys.executable


def _options(server) -> SshOptions:
    return SshOptions(identity_file=server.client_key, known_hosts_file=server.known_hosts,
                      connect_timeout_s=5, command_timeout_s=120.0)


def _remote_dirs() -> set[str]:
    # The test device is this machine, so its /tmp is ours to inspect.
    return set(glob.glob("/tmp/seekdeploy.*"))


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if text.encode() in Path(cmdline).read_bytes():
                found.append(int(cmdline.split("/")[2]))
        except OSError:
            continue
    return found


def drop_connections(server) -> int:
    """SIGKILL the per-connection sshd processes of the test server (its children); their count."""
    victims = _children(server.process.pid)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(victims)


def _wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the remote side never got there"
        time.sleep(0.002)


def _in_background(function) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_drop_mid_copy_is_a_remote_error_and_leaves_nothing(sshd_server, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 192)  # 192 MiB: a copy that lasts long enough to cut
    session = SshSession(sshd_server.host, _options(sshd_server))
    before = _remote_dirs()

    def copy() -> None:
        with session.temp_dir() as folder:
            session.upload({"big.bin": big}, folder)

    thread, box = _in_background(copy)
    _wait_for(lambda: any(Path(d, "big.bin").exists() for d in _remote_dirs() - before))
    assert drop_connections(sshd_server) >= 1
    thread.join(60)
    error = box.get("error")
    assert isinstance(error, RemoteError), box
    print(f"mid-copy drop: {type(error).__name__}: {error}")
    assert sshd_server.host.split("@")[1].split(":")[0] in str(error)
    _wait_for(lambda: _remote_dirs() == before, 10)  # the `finally` cleaned up on a new connection
    with session.temp_dir() as folder:  # the retry
        session.upload({"big.bin": big}, folder)
        assert Path(folder, "big.bin").stat().st_size == big.stat().st_size
    assert _remote_dirs() == before


def test_drop_mid_run_is_a_remote_error_and_a_retry_works(sshd_server, tmp_path: Path) -> None:
    model = make_tiny_onnx(tmp_path / "model.onnx")
    session = SshSession(sshd_server.host, _options(sshd_server))
    plan = build_plan(model, tiny_profile(duration_ms=4000.0), "base", session.target, PYTHON)
    before = _remote_dirs()
    thread, box = _in_background(lambda: profile_host(session, plan))
    # Mid-run: the model is unpacked, so the agent is measuring now.
    _wait_for(lambda: any(Path(d, "model.onnx").exists() for d in _remote_dirs() - before))
    folder = (_remote_dirs() - before).pop()
    time.sleep(0.5)
    assert _processes_mentioning(folder), "the agent is not running"
    assert drop_connections(sshd_server) >= 1
    thread.join(60)
    outcome = box["value"]
    assert not outcome.ok and isinstance(outcome.error, RemoteError), outcome
    print(f"mid-run drop: {type(outcome.error).__name__}: {outcome.error}")
    assert "closed" in str(outcome.error) or "connection" in str(outcome.error).lower()
    _wait_for(lambda: _remote_dirs() == before, 10)
    _wait_for(lambda: not _processes_mentioning(folder), 10)  # no agent left running there
    retry = profile_host(session, build_plan(model, tiny_profile(duration_ms=50.0), "base",
                                             session.target, PYTHON))
    assert retry.ok, retry.error
    assert retry.result["latency"]["iterations"] >= 5
    assert _remote_dirs() == before
