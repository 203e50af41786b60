"""`profile_remote` end to end against a REAL OpenSSH server on 127.0.0.1 (host keys checked).

The "device" is this machine: the test sshd accepts one generated key, the client trusts its
host key through a generated known_hosts file, and the agent runs under this interpreter (given
as `python=`, since the device's PATH need not have it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

try:
    from sshd import (client_options, free_port, make_tiny_onnx, remote_dirs, sshd_server,
                      tiny_profile, write_fake_trtexec)  # noqa: F401 (a fixture)
except ImportError:  # tests/ imported as a package
    from tests.sshd import (client_options, free_port, make_tiny_onnx, remote_dirs, sshd_server,
                            tiny_profile, write_fake_trtexec)  # noqa: F401 (a fixture)

from seekdeploy.remote import diagnose
from seekdeploy.measure.remote import profile_remote
from seekdeploy.remote.ssh import SshSession
from seekdeploy.runtime.result_schema import build_model_result, validate_model_result

pytestmark = pytest.mark.ssh
PYTHON = sys.executable


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exports") / "base"
    folder.mkdir()
    make_tiny_onnx(folder / "model.onnx")
    return folder


def test_profile_remote_end_to_end_with_a_dead_host(sshd_server, export_dir: Path) -> None:
    before = remote_dirs()
    dead = f"root@127.0.0.1:{free_port()}"
    outcomes = profile_remote(export_dir, tiny_profile(), [sshd_server.host, dead],
                              options=client_options(sshd_server), python=PYTHON)  # fmt: skip
    assert set(outcomes) == {sshd_server.host, dead}
    good, bad = outcomes[sshd_server.host], outcomes[dead]
    assert good.ok and not bad.ok
    assert isinstance(bad.error, diagnose.HostUnreachableError)
    assert "connection was refused" in str(bad.error)
    result = good.result
    assert validate_model_result(result) == []
    local = build_model_result(role="base", model_file="model.onnx", runtime="onnxruntime",
                               providers=[], threads=1, input_shape=[1, 3, 8, 8], protocol={},
                               latency={}, environment={})  # fmt: skip
    assert set(result) == set(local)
    assert result["host"] == sshd_server.host and result["role"] == "base"
    assert result["model_file"] == "model.onnx" and result["latency"]["iterations"] >= 5
    assert remote_dirs() == before  # the device's temp folder is gone


def test_timeout_is_reported_and_cleaned_up(sshd_server, export_dir: Path) -> None:
    before = remote_dirs()
    outcome = profile_remote(export_dir, tiny_profile(duration_ms=60_000.0), [sshd_server.host],
                             options=client_options(sshd_server, command_timeout_s=2.0),
                             python=PYTHON)[sshd_server.host]  # fmt: skip
    assert isinstance(outcome.error, diagnose.RemoteTimeoutError)
    assert "did not finish within 2 s" in str(outcome.error)
    assert remote_dirs() == before
    session = SshSession(sshd_server.host, client_options(sshd_server))
    with pytest.raises(diagnose.RemoteTimeoutError):
        session.run(["sleep", "10"], timeout_s=1)  # the local limit alone also holds


def test_tensorrt_engine_is_built_remotely_and_copied_back(sshd_server, tmp_path: Path, export_dir: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes((export_dir / "model.onnx").read_bytes())
    trtexec = write_fake_trtexec(tmp_path, PYTHON)
    outcome = profile_remote(folder, tiny_profile("tensorrt", "fp16"), [sshd_server.host],
                             options=client_options(sshd_server), python=PYTHON,
                             trtexec=str(trtexec))[sshd_server.host]  # fmt: skip
    assert outcome.ok, outcome.error
    engine = folder / "model.tiny-test.trt10.3.fp16.engine"
    assert outcome.fetched_files == (engine, folder / (engine.name + ".json"))
    assert engine.read_bytes() == b"fake engine"
    assert json.loads((folder / (engine.name + ".json")).read_text())["precision"] == "fp16"
    assert outcome.result["runtime"] == "tensorrt" and outcome.result["model_file"] == engine.name


def test_profile_on_a_host_interleaves_windows_and_records_the_device_load(sshd_server, tmp_path: Path) -> None:
    from seekdeploy.measure.profile import ProfileSettings, RemoteSettings, profile_on_hosts
    from seekdeploy.runtime.windows import quiet_windows

    export = tmp_path / "run"
    for role in ("base", "motivated"):
        (export / role).mkdir(parents=True)
        make_tiny_onnx(export / role / "model.onnx")
    done: list[str] = []
    outcomes = profile_on_hosts(export, tiny_profile(), [sshd_server.host], ProfileSettings(repeats=2),
                                RemoteSettings(options=client_options(sshd_server), python=PYTHON),
                                on_done=lambda outcome: done.append(outcome.result["role"]))  # fmt: skip
    assert done == ["base", "motivated", "motivated", "base"]  # one agent run per window, rotated
    (outcome,) = outcomes
    assert outcome.error is None, outcome.error
    for result in outcome.results:
        assert validate_model_result(result) == []
        assert [window["round"] for window in result["repeats"]] == [0, 1]
        statistic = {"quietest window: lowest p95": "p95_ms",  # the base's budget
                     "quietest window: lowest median": "median_ms"}[result["windows"]["rule"]]  # no budget
        # ranked among the windows not slowed throughout (median within the tolerance of the lowest)
        values = [result["repeats"][index][statistic] for index in quiet_windows(result["repeats"])]
        assert result["latency"][statistic] == min(values) and result["windows"]["count"] == 2
        assert all(window["load"]["interval_s"] > 0 for window in result["repeats"])  # read on the device
        assert result["environment"]["load"]["windows"] == 2
    assert outcome.verdicts[0].windows == 2  # the tiny profile budgets the base only
    assert json.loads((export / "profile.json").read_text())["host"] == sshd_server.host
