"""Kill drivers the SIGKILL tests share (tests/train, tests/export and the 100-kill test): start a
real process, SIGKILL it at random moments, check every artifact left behind, resume."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import torch

from forkserver import ForkServer
from helpers import TINY_TRAIN
from seekdeploy import layout
from seekdeploy._io import TMP_PREFIX, sha256_file
from seekdeploy.export.onnx_export import load_onnx_checked
from seekdeploy.train.checkpoint import load_run

# Two optimizer steps per epoch and a checkpoint after every epoch: writes are tiny and frequent.
TRAIN_ARGS = [*TINY_TRAIN, "--batch-size", "512", "--seed", "5", "--condition", "streak:k=1,hold=1"]


def check_last_good(run: Path, previous_step: int) -> int:
    """Assert the run folder's checkpoint loads (weights_only) and did not go back; its step."""
    payload = torch.load(run / layout.CHECKPOINT, map_location="cpu", weights_only=True)
    assert payload["format"] == layout.CHECKPOINT_FORMAT
    step = payload["progress"]["step"]
    assert step >= previous_step, "a kill lost progress that had been checkpointed"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The records are written before the checkpoint: they may run ahead of it, never behind.
    assert len(metrics) >= 2 * payload["progress"]["epoch"]
    return step


def stray_temp_files(run: Path) -> list[Path]:
    """Temporary files a kill left mid-write (readers ignore them)."""
    return sorted(run.glob(f"{TMP_PREFIX}*"))


EXTRA_KILLS = 6


def wait_for_checkpoint_write(run: Path, deadline: float) -> None:
    """Return as soon as a checkpoint's temporary file exists (a write is under way)."""
    prefix = f"{TMP_PREFIX}{layout.CHECKPOINT}."
    while time.monotonic() < deadline:
        if any(entry.name.startswith(prefix) for entry in os.scandir(run)):
            return
        time.sleep(0.0005)


def kill_and_resume(start, wait, run: Path, profile: Path, epochs: int, kills: int,
                    seed: int, max_delay_s: float) -> dict[str, int]:
    """Start training, SIGKILL it `kills` times at random moments (resuming after each), then let
    the last resume finish. Returns counts of what happened.

    Odd kills aim inside a checkpoint write; one can miss (the write ends between seeing its
    temporary file and the kill landing, likelier on a busy machine), so up to EXTRA_KILLS more
    kills are made until one has landed mid-write."""
    rng = random.Random(seed)
    argv = ["train", "--profile", str(profile), *TRAIN_ARGS, "--epochs", str(epochs), "--out", str(run)]
    counts = {"kills": 0, "mid_write": 0, "early": 0}
    step = 0
    seen_strays: set[Path] = set()
    pid = start(argv)
    for attempt in range(kills + EXTRA_KILLS):
        if attempt >= kills and counts["mid_write"]:
            break
        # The first kill lands as soon as the run folder is made, before any epoch has finished.
        awaited = run / (layout.CONFIG if attempt == 0 else layout.CHECKPOINT)
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
        strays = {p for p in stray_temp_files(run) if layout.CHECKPOINT in p.name}
        counts["mid_write"] += bool(strays - seen_strays)
        seen_strays |= strays
        # What a user does next: resume when there is a checkpoint, else run the command again.
        if (run / layout.CHECKPOINT).exists():
            step = check_last_good(run, step)
            pid = start(["train", "--resume", str(run)])
        else:
            counts["early"] += 1
            pid = start(argv)
    assert wait(pid) == 0
    final = torch.load(run / layout.CHECKPOINT, map_location="cpu", weights_only=True)
    assert final["progress"]["finished"] and final["progress"]["epoch"] == epochs
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["final"]["steps"] == final["progress"]["step"] == 2 * epochs
    steps = [json.loads(line)["step"] for line in (run / "motivation.jsonl").read_text().splitlines()]
    assert steps == list(range(2 * epochs)), "motivation.jsonl lost or repeated steps"
    assert not stray_temp_files(run), "--resume leaves no temp files of killed writes behind"
    load_run(run)  # the finished run is usable by slice/export
    return counts


def check_published(export_dir: Path) -> int:
    """Assert every file under its final name is whole and consistent; return the role count."""
    roles = 0
    for role in ("base", "motivated"):
        folder = export_dir / role
        if not folder.exists():
            continue
        roles += 1
        manifest = json.loads((folder / "manifest.json").read_text())
        load_onnx_checked(folder / "model.onnx")
        for name, entry in manifest["files"].items():
            assert sha256_file(folder / name) == entry["sha256"], f"{role}/{name} != its manifest"
    if (export_dir / "pair.json").exists():
        json.loads((export_dir / "pair.json").read_text())
    return roles


def kill_exports(server: ForkServer, run: Path, out: Path, logs: Path, kills: int,
                 seed: int) -> dict[str, int]:
    """One clean export to time it, `kills` exports SIGKILLed at random moments, then a clean
    one whose files must equal the first's."""
    argv = ["export", str(run), "--out", str(out)]
    started = time.monotonic()
    pid = server.start(argv, logs / "first.log")
    assert server.wait(pid) == 0, (logs / "first.log").read_text()
    duration_s = time.monotonic() - started
    export_dir = out / run.name
    first = {p.relative_to(export_dir): sha256_file(p) for p in export_dir.rglob("model.onnx")}
    rng = random.Random(seed)
    counts = {"kills": 0, "finished_first": 0, "roles_missing": 0}
    for attempt in range(kills):
        pid = server.start(argv, logs / f"kill{attempt}.log")
        time.sleep(rng.uniform(0.0, duration_s))
        os.kill(pid, signal.SIGKILL)
        code = server.wait(pid)
        if code == 0:
            counts["finished_first"] += 1
        else:
            assert code == -signal.SIGKILL, (logs / f"kill{attempt}.log").read_text()
            counts["kills"] += 1
        counts["roles_missing"] += 2 - check_published(export_dir)
    pid = server.start(argv, logs / "last.log")
    assert server.wait(pid) == 0, (logs / "last.log").read_text()
    assert check_published(export_dir) == 2
    last = {p.relative_to(export_dir): sha256_file(p) for p in export_dir.rglob("model.onnx")
            if not p.relative_to(export_dir).parts[0].startswith(TMP_PREFIX)}
    assert last == first, "the export after the kills differs from the one before"
    counts["stray_stages"] = len(list(export_dir.glob(f"{TMP_PREFIX}*")))
    return counts
