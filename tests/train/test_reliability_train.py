"""`seekdeploy train` killed with SIGKILL at random moments, over and over: every time the run
folder holds a loadable last-good checkpoint and `--resume` finishes the run. A full disk (a file
size limit) is a clear error that keeps the previous checkpoint.

Each training process is a real process killed by a real SIGKILL. To afford dozens of kills on a
small shared machine, they are forked from a "fork server" that has already imported torch and
seekdeploy (a fresh interpreter spends seconds importing torch before it trains at all); the slow
test also uses plain `python -m seekdeploy` processes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from forkserver import SINGLE_THREAD_ENV, fork_server  # noqa: F401 (a fixture)
from seekdeploy import layout
from kills import TRAIN_ARGS, kill_and_resume, stray_temp_files


def test_sigkill_at_random_moments_then_resume(fork_server, tiny_profile_file, tmp_path) -> None:
    logs = iter(range(1000))

    def start(argv: list[str]) -> int:
        return fork_server.start(argv, tmp_path / f"log{next(logs)}.txt")

    counts = kill_and_resume(start, fork_server.wait, tmp_path / "run", tiny_profile_file,
                             epochs=30, kills=5, seed=11, max_delay_s=0.4)
    print(f"reliability: {counts}")
    assert counts["kills"] >= 4 and counts["mid_write"] >= 1, counts


@pytest.mark.slow  # ~60 kills and fresh interpreters: minutes on the shared machine
def test_many_sigkills_then_resume(fork_server, tiny_profile_file, tmp_path) -> None:
    logs = iter(range(10_000))

    def start(argv: list[str]) -> int:
        return fork_server.start(argv, tmp_path / f"log{next(logs)}.txt")

    total = {"kills": 0, "mid_write": 0, "early": 0}
    for round_number in range(3):
        counts = kill_and_resume(start, fork_server.wait, tmp_path / f"run{round_number}",
                                 tiny_profile_file, epochs=120, kills=20, seed=round_number,
                                 max_delay_s=0.6)
        total = {key: total[key] + counts[key] for key in total}
    print(f"reliability: {total}")
    assert total["kills"] >= 50 and total["mid_write"] >= 1, total


@pytest.mark.slow  # fresh interpreters (torch import each time)
def test_sigkill_of_real_cli_processes(tiny_profile_file, tmp_path) -> None:
    processes: dict[int, subprocess.Popen] = {}

    def start(argv: list[str]) -> int:
        process = subprocess.Popen([sys.executable, "-m", "seekdeploy", *argv], env=SINGLE_THREAD_ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes[process.pid] = process
        return process.pid

    def wait(pid: int) -> int:
        return processes.pop(pid).wait(timeout=300)

    counts = kill_and_resume(start, wait, tmp_path / "run", tiny_profile_file, epochs=40, kills=6,
                             seed=3, max_delay_s=1.0)
    assert counts["kills"] >= 5, counts


def test_full_disk_is_a_clear_error_and_keeps_the_checkpoint(fork_server, tiny_profile_file,
                                                             tmp_path) -> None:
    run = tmp_path / "run"

    def train(argv: list[str], name: str, fsize_bytes: int | None = None) -> tuple[int, str]:
        pid = fork_server.start(["train", *argv], tmp_path / name, fsize_bytes)
        return fork_server.wait(pid), (tmp_path / name).read_text()

    code, log = train(["--profile", str(tiny_profile_file), *TRAIN_ARGS, "--epochs", "1", "--out",
                       str(run)], "first.log")
    assert code == 0, log
    # Turn the finished one-epoch run into an unfinished two-epoch one, so `--resume` trains an
    # epoch and saves again, under a file-size limit below the checkpoint's size.
    payload = torch.load(run / layout.CHECKPOINT, weights_only=True)
    payload["config"]["epochs"] = 2
    payload["progress"]["finished"] = False
    torch.save(payload, run / layout.CHECKPOINT)
    before = (run / layout.CHECKPOINT).read_bytes()
    code, log = train(["--resume", str(run)], "limited.log", fsize_bytes=len(before) // 2)
    assert code == 1, log
    assert "Traceback" not in log
    assert "File too large" in log and "previous file" in log, log
    assert (run / layout.CHECKPOINT).read_bytes() == before
    assert not stray_temp_files(run)
    code, log = train(["--resume", str(run)], "resumed.log")
    assert code == 0, log
    assert torch.load(run / layout.CHECKPOINT, weights_only=True)["progress"]["epoch"] == 2
