"""Data-parallel training under torchrun, as real processes: 2 CPU ranks with gloo on digits.

Each rank writes its own debug file (SEEKDEPLOY_DIST_DEBUG_DIR) with the role and loss of every
step and hashes of its parameters, whole state and optimizer state, so the tests compare what the
ranks really hold, not what rank 0 wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seekdeploy.errors import ConfigError
from seekdeploy.train import distributed
from helpers import write_tiny_profile

# 8x8 digits, a tiny pair, global batch 16 (8 per rank): two epochs of 80 steps in ~2 s.
TINY = ["--data", "digits", "--arch", "resnet", "--base", "depth=1,1;width=4,8",
        "--motivated", "depth=1,1;width=8,16", "--batch-size", "16", "--lr", "0.3",
        "--seed", "1", "--condition", "streak:k=2,hold=1", "--device", "cpu"]
STEPS_PER_EPOCH = 1294 // 16


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory) -> Path:
    """x86-cpu with an 8x8 single-channel input."""
    return write_tiny_profile(tmp_path_factory.mktemp("profiles"), name="tiny-ddp")


def _env(debug_dir: Path | None = None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra})
    if debug_dir is not None:
        env[distributed.DEBUG_DIR_ENV] = str(debug_dir)
    return env


def _torchrun(*args: str) -> list[str]:
    # --standalone: a private rendezvous on a free port (other test runs may share the machine).
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "seekdeploy", "train", *args]


def _single(*args: str) -> list[str]:
    return [sys.executable, "-m", "seekdeploy", "train", *args]


def _ranks(debug_dir: Path) -> list[dict]:
    return [json.loads((debug_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def _motivation(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "motivation.jsonl").read_text().splitlines()]


def _final(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["final"]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory, tiny_profile) -> tuple[Path, Path, str]:
    """One 2-rank torchrun training of 2 epochs: (run folder, debug folder, stdout)."""
    root = tmp_path_factory.mktemp("ddp")
    run, debug = root / "run", root / "debug"
    done = subprocess.run(_torchrun("--profile", str(tiny_profile), "--epochs", "2", *TINY,
                                    "--out", str(run)),
                          env=_env(debug), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return run, debug, done.stdout


def test_ranks_train_the_same_roles_and_end_with_identical_models(two_rank_run) -> None:
    run, debug, stdout = two_rank_run
    rank0, rank1 = _ranks(debug)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["pid"] != rank1["pid"]  # two real processes
    assert rank0["step"] == rank1["step"] == 2 * STEPS_PER_EPOCH
    # One decision for all ranks: the same role (and the same averaged loss) at every step.
    assert rank0["roles"] == rank1["roles"]
    assert rank0["losses"] == rank1["losses"]
    assert 0 < rank0["roles"].count("motivated") < len(rank0["roles"])  # both roles really ran
    # Parameters are identical by construction (never broadcast after the start), BN buffers by
    # the end-of-epoch broadcast, optimizer state by construction.
    assert rank0["params_sha256"] == rank1["params_sha256"]
    assert rank0["state_sha256"] == rank1["state_sha256"]
    assert rank0["optimizer_sha256"] == rank1["optimizer_sha256"]
    # Rank 0's files record exactly what every rank trained.
    assert [record["role"] for record in _motivation(run)] == rank0["roles"]
    # Only rank 0 prints the summary; its closing line says what was trained.
    assert stdout.count("trained the pair") == 1


def test_every_rank_evaluates_its_own_share(two_rank_run) -> None:
    # The last evaluation before the final save is the test split: each rank took half of it and
    # one all-reduce summed the counts, so no rank waits idle in a collective (a large split would
    # otherwise run into --dist-timeout).
    run, debug, _ = two_rank_run
    rank0, rank1 = _ranks(debug)
    for role in ("base", "motivated"):
        share0, share1 = rank0["evaluated_samples"][role], rank1["evaluated_samples"][role]
        assert share0 > 0 and share1 > 0 and abs(share0 - share1) <= 1
    final = _final(run)
    digits_test = 0.2 * 1797  # the digits split's test fraction of its 1,797 images
    assert abs(share0 + share1 - digits_test) < 2
    assert 0.0 <= final["test_top1"]["base"] <= 1.0


def test_only_rank_zero_writes_and_the_manifest_records_the_world_size(two_rank_run) -> None:
    run, _, _ = two_rank_run
    assert sorted(path.name for path in run.iterdir()) == [
        "checkpoint.pt", "config.yaml", "manifest.json", "metrics.jsonl", "motivation.jsonl"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert manifest["final"]["steps"] == 2 * STEPS_PER_EPOCH  # global batch: same steps as 1 process
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["role"]) for m in metrics] == [
        (0, "base"), (0, "motivated"), (1, "base"), (1, "motivated")]


@pytest.mark.slow  # one more process (~10 s on the shared machine)
def test_accuracy_matches_a_single_process_run_of_the_same_global_batch(
        two_rank_run, tiny_profile, tmp_path) -> None:
    """Same data order, same augmentation, same global batch; what differs is BatchNorm's batch
    statistics (8 samples per rank instead of 16, as in DDP without SyncBatchNorm) and the float
    summation order. The first steps' losses therefore agree to ~1e-2; later, the streak condition
    sees slightly different losses and picks some different roles, so the two runs follow
    different but equally good trajectories: at this size, single-process runs of different seeds
    spread about ±4 points of test top-1, hence the 10-point tolerance."""
    run, _, _ = two_rank_run
    single = tmp_path / "single"
    done = subprocess.run(_single("--profile", str(tiny_profile), "--epochs", "2", *TINY,
                                  "--out", str(single)),
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first = [record["loss"] for record in _motivation(single)[:10]]
    second = [record["loss"] for record in _motivation(run)[:10]]
    assert max(abs(a - b) for a, b in zip(first, second)) < 0.03, (first, second)
    one, two = _final(single), _final(run)
    assert one["steps"] == two["steps"]
    for role in ("base", "motivated"):
        assert two["test_top1"][role] > 0.5  # it learned: chance is 0.1
        assert abs(one["test_top1"][role] - two["test_top1"][role]) < 0.10, (role, one, two)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _started(debug: Path, rank: int) -> bool:
    # rank<R>.json holds "step" once the step-0 checkpoint point is passed: training is under way.
    path = debug / f"rank{rank}.json"
    try:
        return "step" in json.loads(path.read_text())
    except (OSError, ValueError):
        return False


def test_a_dead_rank_stops_the_others_with_a_clear_message(tmp_path, tiny_profile) -> None:
    """Two ranks launched by hand (no torchrun to tear the group down): SIGKILL rank 1 mid-run;
    rank 0 must exit with DistributedError's message within --dist-timeout + margin."""
    debug, timeout_s = tmp_path / "debug", 20
    common = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    args = _single("--profile", str(tiny_profile), "--epochs", "50", *TINY, "--out",
                   str(tmp_path / "run"), "--dist-timeout", str(timeout_s))
    ranks = [subprocess.Popen(args, env=_env(debug, **common, RANK=str(rank), LOCAL_RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    try:
        _wait_for(lambda: _started(debug, 0) and _started(debug, 1), 240, "training to start")
        time.sleep(0.5)
        assert ranks[0].poll() is None, "rank 0 finished before it could be orphaned"
        ranks[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = ranks[0].communicate(timeout=timeout_s + 30)
        waited_s = time.monotonic() - killed_at
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert ranks[0].returncode == 1, stderr
    assert "rank 0 of 2" in stderr and "died or stopped answering" in stderr, stderr
    assert "Traceback" not in stderr
    assert waited_s < timeout_s + 30


@pytest.mark.slow  # torchrun's own teardown; ~15 s
def test_torchrun_tears_the_group_down_when_a_rank_dies(tmp_path, tiny_profile) -> None:
    debug, timeout_s = tmp_path / "debug", 20
    launcher = subprocess.Popen(
        _torchrun("--profile", str(tiny_profile), "--epochs", "50", *TINY, "--out",
                  str(tmp_path / "run"), "--dist-timeout", str(timeout_s)),
        env=_env(debug), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _started(debug, 0) and _started(debug, 1), 240, "training to start")
        pids = [json.loads((debug / f"rank{rank}.json").read_text())["pid"] for rank in (0, 1)]
        os.kill(pids[1], signal.SIGKILL)
        launcher.communicate(timeout=timeout_s + 60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the surviving rank is gone too


@pytest.mark.slow  # three torchrun launches (~45 s on the shared machine)
def test_distributed_resume_continues_bit_for_bit(tmp_path, tiny_profile) -> None:
    """SIGTERM both ranks mid-run: they agree on the step, rank 0 saves; a torchrun --resume then
    ends with the same weights as an uninterrupted 2-rank run."""
    straight, broken, debug = tmp_path / "straight", tmp_path / "broken", tmp_path / "debug"
    common = ["--profile", str(tiny_profile), "--epochs", "4", *TINY, "--deterministic"]
    done = subprocess.run(_torchrun(*common, "--out", str(straight)), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    ranks = [subprocess.Popen(_single(*common, "--out", str(broken)),
                              env=_env(debug, **env, RANK=str(rank), LOCAL_RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    _wait_for(lambda: _started(debug, 0) and _started(debug, 1), 240, "training to start")
    time.sleep(0.5)
    for process in ranks:
        process.send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=120) for process in ranks]
    assert [process.returncode for process in ranks] == [130, 130], outputs
    stopped = torch.load(broken / "checkpoint.pt", weights_only=True)["progress"]
    assert 0 < stopped["step"] < 4 * STEPS_PER_EPOCH and not stopped["finished"]
    resumed = subprocess.run(_torchrun("--resume", str(broken)), env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    first = torch.load(straight / "checkpoint.pt", weights_only=True)["state_dict"]
    second = torch.load(broken / "checkpoint.pt", weights_only=True)["state_dict"]
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_launch_env_reads_torchrun_variables_and_rejects_nonsense() -> None:
    assert distributed.launch_env({}) is None
    env = distributed.launch_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank) == (1, 4, 1)
    with pytest.raises(ConfigError, match="RANK"):
        distributed.launch_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="inconsistent"):
        distributed.launch_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_single_process_helpers_are_no_ops() -> None:
    inputs, labels = torch.zeros(6, 1, 2, 2), torch.arange(6)
    assert distributed.shard_batch(inputs, labels)[1] is labels
    assert distributed.average_loss(torch.tensor(1.5), motivated=False) == 1.5
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert distributed.per_rank_batch_size(7) == 7 and distributed.is_main()


def test_batch_size_not_divisible_by_the_ranks_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert distributed.per_rank_batch_size(16) == 8
    with pytest.raises(ConfigError, match="--batch-size 15 is the global batch and must be "
                                          "divisible by the 2 processes; use e.g. --batch-size 14"):
        distributed.per_rank_batch_size(15)
