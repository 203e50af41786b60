"""The SSH layer and every failure mode, against a REAL OpenSSH server on 127.0.0.1 (host keys checked).

The "device" is this machine: the test sshd accepts one generated key, the client trusts its
host key through a generated known_hosts file, and the agent runs under this interpreter (given
as `python=`, since the device's PATH need not have it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    from sshd import client_options, remote_dirs, sshd_server, tiny_profile  # noqa: F401 (a fixture)
except ImportError:  # tests/ imported as a package
    from tests.sshd import client_options, remote_dirs, sshd_server, tiny_profile  # noqa: F401 (a fixture)

from seekdeploy.errors import RemoteError
from seekdeploy.remote import diagnose
from seekdeploy.measure.remote import profile_remote
from seekdeploy.remote.ssh import SshSession

pytestmark = pytest.mark.ssh
PYTHON = sys.executable


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # These tests stop before the model is loaded, so any bytes will do (no torch needed).
    folder = tmp_path_factory.mktemp("exports") / "base"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"never loaded")
    return folder


def test_session_runs_copies_and_cleans_up(sshd_server, tmp_path: Path) -> None:
    session = SshSession(sshd_server.host, client_options(sshd_server))
    echoed = session.check(["printf", "%s|", "a b", "$(id)", "x;y", "it's"], what="printf")
    assert echoed.text == "a b|$(id)|x;y|it's|"
    source = tmp_path / "payload.bin"
    source.write_bytes(bytes(range(256)) * 100)
    with session.temp_dir() as folder:
        assert Path(folder).is_dir()
        session.upload({"payload.bin": source}, folder)
        back = session.download(f"{folder}/payload.bin", tmp_path / "back.bin")
        assert back.read_bytes() == source.read_bytes()
    assert not Path(folder).exists()
    with pytest.raises(ZeroDivisionError), session.temp_dir() as failing_folder:
        1 / 0
    assert not Path(failing_folder).exists()  # removed even though the body failed


def test_failed_agent_still_removes_the_remote_folder(sshd_server, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a protobuf")
    before = remote_dirs()
    outcome = profile_remote(broken, tiny_profile(), [sshd_server.host],
                             options=client_options(sshd_server), python=PYTHON)[sshd_server.host]  # fmt: skip
    assert isinstance(outcome.error, diagnose.AgentFailedError)
    assert "onnxruntime cannot load model.onnx" in str(outcome.error)
    assert remote_dirs() == before


def test_unknown_and_changed_host_keys(sshd_server, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    strict = SshSession(sshd_server.host, client_options(sshd_server, known_hosts_file=empty))
    with pytest.raises(diagnose.UnknownHostKeyError, match="--accept-new-host-key"):
        strict.check(["true"], what="true")
    trusting = SshSession(sshd_server.host, client_options(sshd_server, known_hosts_file=empty,
                                                     accept_new_host_key=True))  # fmt: skip
    trusting.check(["true"], what="true")
    assert empty.read_text().strip()  # the key was recorded on first use
    other = (sshd_server.folder / "other_key.pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd_server.port} {' '.join(other)}\n")
    session = SshSession(sshd_server.host, client_options(sshd_server, known_hosts_file=changed))
    with pytest.raises(diagnose.HostKeyChangedError, match="CHANGED"):
        session.check(["true"], what="true")


def test_refused_key(sshd_server) -> None:
    session = SshSession(sshd_server.host, client_options(sshd_server, identity_file=sshd_server.other_key))
    with pytest.raises(diagnose.KeyRefusedError, match="refused the SSH key"):
        session.check(["true"], what="true")


def test_missing_python_and_modules(sshd_server, export_dir: Path, tmp_path: Path) -> None:
    numpy_only = tmp_path / "numpy_only"
    numpy_only.mkdir()
    import numpy

    (numpy_only / "numpy").symlink_to(Path(numpy.__file__).parent)
    wrapper = tmp_path / "python-without-onnxruntime"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={numpy_only} exec {PYTHON} -S "$@"\n')
    wrapper.chmod(0o755)
    cases = {
        "/nonexistent/python3": (diagnose.MissingPythonError, "was not found"),
        str(wrapper): (diagnose.MissingModuleError, "onnxruntime is not importable"),
        f"{PYTHON} -S": (diagnose.MissingPythonError, "was not found"),  # one word, not a command line
    }
    for python, (error_type, phrase) in cases.items():
        outcome = profile_remote(export_dir, tiny_profile(), [sshd_server.host],
                                 options=client_options(sshd_server), python=python)[sshd_server.host]  # fmt: skip
        assert isinstance(outcome.error, error_type), (python, outcome.error)
        assert phrase in str(outcome.error)


def test_no_hosts_is_an_error(export_dir: Path) -> None:
    with pytest.raises(RemoteError, match="no --host"):
        profile_remote(export_dir, tiny_profile(), [])


def test_check_device_reaches_the_device_and_names_what_is_missing(sshd_server) -> None:
    from seekdeploy.measure.remote import check_device

    before = remote_dirs()
    check_device(sshd_server.host, "onnxruntime", python=PYTHON, options=client_options(sshd_server))
    assert remote_dirs() == before  # the probe's work folder is gone
    with pytest.raises(diagnose.MissingPythonError, match="no-such-python"):
        check_device(sshd_server.host, "onnxruntime", python="no-such-python",
                     options=client_options(sshd_server))
    with pytest.raises(diagnose.MissingModuleError, match="tensorrt"):
        check_device(sshd_server.host, "tensorrt", python=PYTHON, options=client_options(sshd_server))
    assert remote_dirs() == before
