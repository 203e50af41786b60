"""`seekdeploy train` killed with SIGKILL at random moments, over and over: every time the run
folder holds a loadable last-good checkpoint and `--resume` finishes the run. A full disk (a file
size limit) is a clear error that keeps the previous checkpoint.

Each training process is a real process killed by a real SIGKILL. To afford dozens of kills on a
small shared machine, they are forked from a "fork server" that has already imported torch and
seekdeploy (a fresh interpreter spends seconds importing torch before it trains at all); the slow
test also uses plain `python -m seekdeploy` processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from forkserver import SINGLE_THREAD_ENV, fork_server  # noqa: F401 (a fixture)
from seekdeploy._io import TMP_PREFIX
from seekdeploy.train.checkpoint import CHECKPOINT_NAME, FORMAT, load_run
from helpers import TINY_TRAIN

# Two optimizer steps per epoch and a checkpoint after every epoch: writes are tiny and frequent.
TRAIN_ARGS = [*TINY_TRAIN, "--batch-size", "512", "--seed", "5", "--condition", "streak:k=1,hold=1"]


def check_last_good(run: Path, previous_step: int) -> int:
    """Assert the run folder's checkpoint loads (weights_only) and did not go back; its step."""
    payload = torch.load(run / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert payload["format"] == FORMAT
    step = payload["progress"]["step"]
    assert step >= previous_step, "a kill lost progress that had been checkpointed"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The records are written before the checkpoint: they may run ahead of it, never behind.
    assert len(metrics) >= 2 * payload["progress"]["epoch"]
    return step


def stray_temp_files(run: Path) -> list[Path]:
    """Temporary files a kill left mid-write (readers ignore them)."""
    return sorted(run.glob(f"{TMP_PREFIX}*"))


def wait_for_checkpoint_write(run: Path, deadline: float) -> None:
    """Return as soon as a checkpoint's temporary file exists (a write is under way)."""
    prefix = f"{TMP_PREFIX}{CHECKPOINT_NAME}."
    while time.monotonic() < deadline:
        if any(entry.name.startswith(prefix) for entry in os.scandir(run)):
            return
        time.sleep(0.0005)


def kill_and_resume(start, wait, run: Path, profile: Path, epochs: int, kills: int,
                    seed: int, max_delay_s: float) -> dict[str, int]:
    """Start training, SIGKILL it `kills` times at random moments (resuming after each), then let
    the last resume finish. Returns counts of what happened."""
    rng = random.Random(seed)
    argv = ["train", "--profile", str(profile), *TRAIN_ARGS, "--epochs", str(epochs), "--out", str(run)]
    counts = {"kills": 0, "mid_write": 0, "early": 0}
    step = 0
    seen_strays: set[Path] = set()
    pid = start(argv)
    for attempt in range(kills):
        # The first kill lands as soon as the run folder is made, before any epoch has finished.
        awaited = run / ("config.yaml" if attempt == 0 else CHECKPOINT_NAME)
        deadline = time.monotonic() + 120
        while not awaited.exists():
            assert time.monotonic() < deadline, f"no {awaited.name} appeared"
            time.sleep(0.002)
        if attempt % 2:
            wait_for_checkpoint_write(run, deadline)  # odd kills land inside a checkpoint write
        elif attempt:
            time.sleep(rng.uniform(0.0, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        code = wait(pid)
        if code == 0:
            break  # it finished before the kill landed; nothing more to interrupt
        assert code == -signal.SIGKILL, code
        counts["kills"] += 1
        strays = {p for p in stray_temp_files(run) if CHECKPOINT_NAME in p.name}
        counts["mid_write"] += bool(strays - seen_strays)
        seen_strays |= strays
        # What a user does next: resume when there is a checkpoint, else run the command again.
        if (run / CHECKPOINT_NAME).exists():
            step = check_last_good(run, step)
            pid = start(["train", "--resume", str(run)])
        else:
            counts["early"] += 1
            pid = start(argv)
    assert wait(pid) == 0
    final = torch.load(run / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert final["progress"]["finished"] and final["progress"]["epoch"] == epochs
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["final"]["steps"] == final["progress"]["step"] == 2 * epochs
    steps = [json.loads(line)["step"] for line in (run / "motivation.jsonl").read_text().splitlines()]
    assert steps == list(range(2 * epochs)), "motivation.jsonl lost or repeated steps"
    assert not stray_temp_files(run), "--resume leaves no temp files of killed writes behind"
    load_run(run)  # the finished run is usable by slice/export
    return counts


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
    payload = torch.load(run / CHECKPOINT_NAME, weights_only=True)
    payload["config"]["epochs"] = 2
    payload["progress"]["finished"] = False
    torch.save(payload, run / CHECKPOINT_NAME)
    before = (run / CHECKPOINT_NAME).read_bytes()
    code, log = train(["--resume", str(run)], "limited.log", fsize_bytes=len(before) // 2)
    assert code == 1, log
    assert "Traceback" not in log
    assert "File too large" in log and "previous file" in log, log
    assert (run / CHECKPOINT_NAME).read_bytes() == before
    assert not stray_temp_files(run)
    code, log = train(["--resume", str(run)], "resumed.log")
    assert code == 0, log
    assert torch.load(run / CHECKPOINT_NAME, weights_only=True)["progress"]["epoch"] == 2
