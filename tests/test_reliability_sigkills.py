"""One hundred real SIGKILLs across `train`, `export` and `profile`, at random moments: after every
kill each artifact is either absent or complete and valid (checkpoint loads and never goes back,
export files match their manifests, profile.json loads and every result matches its schema), the
killed runs resume and finish, and the last clean export equals the first. Children come from the
fork server (`forkserver.py`); the counts are printed and recorded in SECURITY.md."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from forkserver import ForkServer, fork_server  # noqa: F401 (a fixture)
from helpers import write_tiny_profile
from seekdeploy._io import TMP_PREFIX
from seekdeploy.runtime.results import load_profile_document
from kills import check_published, kill_and_resume, kill_exports

TOTAL_KILLS = 100
TRAIN_KILLS = 2 * 20  # two runs, resumed after every kill
EXPORT_KILLS = 30
# x86-cpu at 8x8 grey with a protocol of a few tens of milliseconds per window.
FAST_PROTOCOL = (("warmup_ms: 200", "warmup_ms: 10"), ("warmup_iterations: 10", "warmup_iterations: 2"),
                 ("duration_ms: 1000", "duration_ms: 60"), ("min_iterations: 100", "min_iterations: 10"))


def check_profile_json(path: Path) -> int:
    """Absent (0), or a whole profile.json whose every result matches the schema (its role count)."""
    if not path.exists():
        return 0
    document = load_profile_document(path)  # raises on truncated JSON or a malformed result
    roles = sorted(result["role"] for result in document["results"])
    assert roles == ["base", "motivated"], roles
    assert len(document["verdicts"]) == 2
    return len(roles)


def kill_profiles(server: ForkServer, export_dir: Path, profile: Path, logs: Path, kills: int,
                  seed: int) -> dict[str, int]:
    """A clean `profile` to time it, then SIGKILLs at random moments until `kills` have landed
    (a run that finished first does not count), then a clean one."""
    out = export_dir / "profile.json"
    argv = ["profile", str(export_dir), "--profile", str(profile), "--repeats", "2", "--out", str(out)]
    started = time.monotonic()
    pid = server.start(argv, logs / "profile-first.log")
    assert server.wait(pid) in (0, 3), (logs / "profile-first.log").read_text()  # 3: over budget
    duration_s = time.monotonic() - started
    assert check_profile_json(out) == 2
    rng = random.Random(seed)
    counts = {"kills": 0, "finished_first": 0, "absent_after_kill": 0}
    for attempt in range(3 * kills):
        if counts["kills"] >= kills:
            break
        if attempt % 3 == 0 and out.exists():
            out.unlink()  # sometimes there is no previous file to fall back on
        pid = server.start(argv, logs / f"profile-kill{attempt}.log")
        time.sleep(rng.uniform(0.0, duration_s))
        os.kill(pid, signal.SIGKILL)
        code = server.wait(pid)
        if code == -signal.SIGKILL:
            counts["kills"] += 1
            counts["absent_after_kill"] += check_profile_json(out) == 0
        else:
            assert code in (0, 3), (logs / f"profile-kill{attempt}.log").read_text()
            counts["finished_first"] += 1
            assert check_profile_json(out) == 2
    pid = server.start(argv, logs / "profile-last.log")
    assert server.wait(pid) in (0, 3), (logs / "profile-last.log").read_text()
    assert check_profile_json(out) == 2
    counts["stray_temp_files"] = len(list(export_dir.glob(f"{TMP_PREFIX}*")))
    return counts


@pytest.mark.slow  # 100 kills and the runs between them: ~13 min on the loaded 2-core VM
def test_one_hundred_sigkills_across_train_export_and_profile(fork_server, tmp_path) -> None:
    profile = write_tiny_profile(tmp_path, extra=FAST_PROTOCOL)
    logs = iter(range(10_000))

    def start(argv: list[str]) -> int:
        return fork_server.start(argv, tmp_path / f"train{next(logs)}.log")

    train = {"kills": 0, "mid_write": 0, "early": 0}
    for round_number in range(2):  # each round: 20 kills, resumed after each, then finished
        counts = kill_and_resume(start, fork_server.wait, tmp_path / f"run{round_number}", profile,
                                 epochs=80, kills=TRAIN_KILLS // 2, seed=100 + round_number,
                                 max_delay_s=0.5)
        train = {key: train[key] + counts[key] for key in train}
    run = tmp_path / "run0"  # finished: its export is what the export and profile kills use
    export = kill_exports(fork_server, run, tmp_path / "exports", tmp_path, kills=EXPORT_KILLS,
                          seed=5)
    export_dir = tmp_path / "exports" / run.name
    assert check_published(export_dir) == 2
    profile_kills = TOTAL_KILLS - train["kills"] - export["kills"]
    profiled = kill_profiles(fork_server, export_dir, profile, tmp_path, kills=profile_kills, seed=9)
    total = train["kills"] + export["kills"] + profiled["kills"]
    print(f"reliability: train {train}, export {export}, profile {profiled}, total kills {total}")
    assert total >= TOTAL_KILLS, (train, export, profiled)
    # Under load an export often finishes before its random kill lands (14 of 30 landed on
    # 2026-11-29, load average 7-10): every phase must still see real kills.
    assert train["mid_write"] >= 1 and export["kills"] >= EXPORT_KILLS // 3
