"""`seekdeploy train` as a real process: kill with a real signal, resume, compare bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_TRAIN

TINY = [*TINY_TRAIN, "--batch-size", "16", "--seed", "3", "--condition", "streak:k=2,hold=1", "--deterministic"]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "seekdeploy", "train", *args]


def _env() -> dict[str, str]:
    # One thread: the same kernels in both processes, and fair to the shared machine.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _metrics(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("seconds")
    return lines


@pytest.mark.slow  # three real processes (~25 s CPU; over a minute on the shared 2-core machine)
def test_sigterm_then_resume_is_bit_identical(tmp_path, tiny_profile_file) -> None:
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    common = ["--profile", str(tiny_profile_file), "--epochs", "4", *TINY]
    done = subprocess.run(_command(*common, "--out", str(straight)), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "test top-1" in done.stdout and "motivated fraction" in done.stdout

    process = subprocess.Popen(_command(*common, "--out", str(broken)), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    metrics = broken / "metrics.jsonl"
    # After the first epoch's checkpoint (metrics.jsonl gets its first lines then); the step-0
    # checkpoint written at start-up comes before the signal handler is installed.
    while not (metrics.exists() and metrics.read_text().strip()) and process.poll() is None:
        assert time.monotonic() < deadline, "no epoch checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    stopped = torch.load(broken / "checkpoint.pt", weights_only=True)
    assert not stopped["progress"]["finished"]
    assert 0 < stopped["progress"]["step"] < 4 * (1294 // 16)

    resumed = subprocess.run(_command("--resume", str(broken)), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    first = torch.load(straight / "checkpoint.pt", weights_only=True)
    second = torch.load(broken / "checkpoint.pt", weights_only=True)
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for name, tensor in first["state_dict"].items():
        assert torch.equal(tensor, second["state_dict"][name]), name
    assert _metrics(straight) == _metrics(broken)
    assert (straight / "motivation.jsonl").read_text() == (broken / "motivation.jsonl").read_text()
    assert first["final"]["test_top1"] == second["final"]["test_top1"]
    manifest = json.loads((broken / "manifest.json").read_text())
    assert manifest["final"]["costs"]["cost_ratio"] < 1.0


def test_bad_specs_and_existing_runs_are_clear_errors(tmp_path, tiny_profile_file) -> None:
    not_nested = subprocess.run(
        _command("--profile", str(tiny_profile_file), "--base", "depth=2,1;width=2,4",
                 "--motivated", "depth=1,1;width=4,8", "--out", str(tmp_path / "r")),
        env=_env(), capture_output=True, text=True, timeout=120)
    assert not_nested.returncode == 1
    assert "not nested" in not_nested.stderr and "Traceback" not in not_nested.stderr
    bad_condition = subprocess.run(
        _command("--profile", str(tiny_profile_file), "--condition", "streek"),
        env=_env(), capture_output=True, text=True, timeout=120)
    assert bad_condition.returncode == 1 and "did you mean 'streak'" in bad_condition.stderr
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "config.yaml").write_text("arch: resnet\n")
    again = subprocess.run(_command("--profile", str(tiny_profile_file), "--out", str(existing)),
                           env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "--resume" in again.stderr
    missing = subprocess.run(_command("--resume", str(tmp_path / "nope")), env=_env(),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_motivated_fraction_trains_that_point_of_the_frontier(tmp_path, tiny_profile_file) -> None:
    from helpers import cli_in_process

    run = tmp_path / "run"
    code, out, err = cli_in_process("train", "--profile", str(tiny_profile_file), *TINY_TRAIN,
                                    "--epochs", "1", "--batch-size", "64", "--motivated-fraction", "0.7",
                                    "--out", str(run))
    assert code == 0, err
    assert "condition: schedule:p=0.7,ramp=0.4" in (run / "config.yaml").read_text().replace("'", "")
    assert "motivated fraction: 70.0% of batches" in out
    code, _, err = cli_in_process("train", "--profile", str(tiny_profile_file), *TINY_TRAIN,
                                  "--motivated-fraction", "0.7", "--condition", "never",
                                  "--out", str(tmp_path / "both"))
    assert code != 0 and "give one of the two" in err


def test_train_help_imports_no_torch() -> None:
    code = ("import sys; from seekdeploy.cli.main import main; "
            "rc = main(['train', '--help']); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr
