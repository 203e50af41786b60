"""`seekdeploy run` and `profile --host`: stage skipping from artifacts, the child-process
measurement, `--host` errors, and (slow) a real pipeline killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

try:
    from sshd import make_tiny_onnx, sshd_server, tiny_profile  # noqa: F401 (a fixture)
except ImportError:  # tests/ imported as a package
    from tests.sshd import make_tiny_onnx, sshd_server, tiny_profile  # noqa: F401 (a fixture)

from seekdeploy.measure.profile import ProfileSettings, profile_local
from seekdeploy.pipeline import PipelineConfig, PipelineState, Stage, open_context, summarize

from helpers import write_tiny_profile


def write_pipeline_profile(folder: Path, **budgets: dict) -> Path:
    """`helpers.write_tiny_profile` at a 3x8x8 input (as `make_export`'s models) named tiny-cpu, with
    a protocol of a few milliseconds and latency budgets no model here can miss (unless `budgets`
    overrides them)."""
    path = write_tiny_profile(folder, name="tiny-cpu", extra=(("channels: 1", "channels: 3"),))
    data = yaml.safe_load(path.read_text())
    data["input"].update(batch_sweep=[2])
    data["measurement"] = {"warmup_ms": 0, "warmup_iterations": 2, "duration_ms": 20, "min_iterations": 5}
    for budget in data["budgets"].values():
        budget["latency_ms"] = 1000.0  # these tests check the mechanics; a shared CPU is noisy
    for role, override in budgets.items():
        data["budgets"][role].update(override)
    path.write_text(yaml.safe_dump(data))
    return path


def make_export(root: Path) -> Path:
    """exports/<run>/ with both roles as tiny real ONNX models and manifests."""
    for role in ("base", "motivated"):
        (root / role).mkdir(parents=True, exist_ok=True)
        make_tiny_onnx(root / role / "model.onnx")
        manifest = {"input": {"shape": ["batch", 3, 8, 8]}, "accuracy": {"test_top1": 0.9}, "files": {}}
        (root / role / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_export(tmp_path_factory.mktemp("exports") / "run1")


# ---- --host option errors: refused before anything is trained, measured or connected ----


@pytest.mark.parametrize("host, why", [
    ("root@bad host", "not a plain host name"),
    ("-oProxyCommand=touch_pwned", "not a plain"),
    ("user@device:99999", "outside 1-65535"),
    ("user@device:ssh", "not a number"),
])  # fmt: skip
def test_run_refuses_a_malformed_host_before_training(run_cli, tmp_cwd: Path, host: str, why: str) -> None:
    profile = write_pipeline_profile(tmp_cwd)
    result = run_cli("run", "--profile", str(profile), "--host", host)
    assert result.exit_code == 1 and why in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_cwd / "runs").exists()  # nothing started


def test_profile_host_errors(run_cli, tmp_path: Path, export_dir: Path) -> None:
    profile = str(write_pipeline_profile(tmp_path))
    bad = run_cli("profile", str(export_dir), "--profile", profile, "--host", "me@dev;reboot")
    assert bad.exit_code == 1 and "invalid SSH host" in bad.stderr
    runtime = run_cli("profile", str(export_dir), "--profile", profile, "--host", "me@dev", "--runtime", "torch")
    assert runtime.exit_code == 1 and "--runtime cannot be combined with --host" in runtime.stderr
    out = run_cli("profile", str(export_dir), "--profile", profile, "--host", "a@x", "--host", "b@y",
                  "--out", str(tmp_path / "p.json"))  # fmt: skip
    assert out.exit_code == 1 and "profile.<host>.json" in out.stderr
    missing = run_cli("profile", str(export_dir), "--profile", profile, "--host")
    assert missing.exit_code == 2 and "requires an argument" in missing.stderr


@pytest.mark.ssh
def test_profile_host_end_to_end_over_real_ssh(run_cli, sshd_server, tmp_path: Path, export_dir: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  UserKnownHostsFile {sshd_server.known_hosts}\n  StrictHostKeyChecking yes\n")
    profile = str(write_pipeline_profile(tmp_path))
    result = run_cli("profile", str(export_dir), "--profile", profile, "--host", sshd_server.host,
                     "--identity", str(sshd_server.client_key), "--ssh-config", str(config),
                     "--python", sys.executable)  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASSED"
    document = json.loads((export_dir / "profile.json").read_text())
    assert document["host"] == sshd_server.host
    assert [r["host"] for r in document["results"]] == [sshd_server.host] * 2
    assert [r["role"] for r in document["results"]] == ["base", "motivated"]


# ---- the local measurement runs in a child process ----


def test_local_profile_measures_in_a_child_process(tmp_path: Path, export_dir: Path) -> None:
    import resource

    from seekdeploy.profiles.loader import load_profile

    profile = load_profile(str(write_pipeline_profile(tmp_path)))
    out = tmp_path / "profile.json"
    outcome = profile_local(export_dir, profile, ProfileSettings(out=out))
    assert outcome.passed and out.is_file()
    own_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process has torch
    for result in outcome.results:
        assert result["host"] == "local" and result["latency"]["iterations"] >= 5
        # The child holds python + numpy + onnxruntime + a tiny model, far below this process.
        assert 10 < result["peak_memory_mib"] < min(250, own_peak_mib)


def test_child_agent_errors_are_user_errors(run_cli, tmp_path: Path, export_dir: Path) -> None:
    profile = str(write_pipeline_profile(tmp_path))
    provider = run_cli("profile", str(export_dir), "--profile", profile, "--providers", "CUDAExecutionProvidr")
    assert provider.exit_code == 1 and "not available" in provider.stderr and "Traceback" not in provider.stderr
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    result = run_cli("profile", str(broken), "--profile", profile)
    assert result.exit_code == 1 and "onnxruntime cannot load broken.onnx" in result.stderr


def test_fp16_models_load_without_matmul_transpose_fusion(tmp_path: Path) -> None:
    import importlib.util

    from seekdeploy.backends.agent_onnxruntime import disabled_optimizers
    from seekdeploy.remote.agent_files import stage_agent

    assert disabled_optimizers("m/model.fp16.onnx") == ["MatmulTransposeFusion"]
    assert disabled_optimizers("m/model.onnx", "fp16") == ["MatmulTransposeFusion"]
    assert disabled_optimizers("m/model.onnx", "fp32") == []
    staged = stage_agent(tmp_path / "agent").with_name("agent_onnxruntime.py")  # what the device runs
    spec = importlib.util.spec_from_file_location("staged_agent_onnxruntime", staged)
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    assert agent.disabled_optimizers("x/model.fp16.onnx") == ["MatmulTransposeFusion"]
    assert agent.disabled_optimizers("x/model.onnx", "fp32") == []


def test_int8_remote_plan_ships_the_exports_hashed_calibration_cache(tmp_path: Path) -> None:
    from seekdeploy.errors import RemoteError
    from seekdeploy.export.tensorrt.calibrator import write_calibration_cache
    from seekdeploy.measure.remote import build_plan
    from seekdeploy.remote.target import SshTarget

    model = make_tiny_onnx(tmp_path / "model.onnx")
    (tmp_path / "old.cache").write_bytes(b"a cache of some other network")
    target = SshTarget.parse("me@orin")
    with pytest.raises(RemoteError, match=r"model\.[0-9a-f]{12}\.calib"):
        build_plan(model, tiny_profile("tensorrt", "int8"), "base", target)
    cache = write_calibration_cache(model, b"ranges")
    plan = build_plan(model, tiny_profile("tensorrt", "int8"), "base", target)
    assert plan.calibration_cache == cache and plan.request.calibration_cache_name == cache.name


# ---- deciding "finished" from artifacts ----


def _context(tmp_path: Path, export_root: Path, profile: Path):
    config = PipelineConfig(profile=str(profile), name=export_root.name, runs_dir=tmp_path / "runs",
                            exports_dir=export_root.parent)  # fmt: skip
    return open_context(config, console=None, say=lambda line: None)


def test_profile_stage_is_current_until_the_export_changes(tmp_path: Path) -> None:
    from seekdeploy.pipeline import stages as pipeline_stages

    export_root = make_export(tmp_path / "exports" / "run2")
    profile = write_pipeline_profile(tmp_path)
    context = _context(tmp_path, export_root, profile)
    assert pipeline_stages.is_current_profile(context) is None  # nothing measured yet
    pipeline_stages.execute_profile(context)
    reason = pipeline_stages.is_current_profile(context)
    assert reason is not None and "profile.json is newer than the export" in reason
    assert [v.passed for v in context.outcome[0].verdicts] == [True, True]
    later = time.time() + 5
    os.utime(export_root / "motivated" / "manifest.json", (later, later))  # a re-export
    assert pipeline_stages.is_current_profile(context) is None


def test_stored_verdicts_are_rejudged_against_todays_budgets(tmp_path: Path) -> None:
    from seekdeploy.pipeline import stages as pipeline_stages

    export_root = make_export(tmp_path / "exports" / "run3")
    context = _context(tmp_path, export_root, write_pipeline_profile(tmp_path))
    pipeline_stages.execute_profile(context)
    stricter = _context(tmp_path, export_root, write_pipeline_profile(tmp_path, base={"latency_ms": 1e-6}))
    assert pipeline_stages.is_current_profile(stricter) is not None
    passed, line = summarize(stricter.outcome)
    assert not passed and line.startswith("FAILED base FAIL (p95 ") and "/ motivated PASS" in line


def test_export_is_current_only_for_the_checkpoint_it_came_from(tmp_path: Path) -> None:
    from seekdeploy.pipeline import stages as pipeline_stages
    from seekdeploy._io import sha256_file

    export_root = make_export(tmp_path / "exports" / "run4")
    (export_root / "pair.json").write_text("{}")
    context = _context(tmp_path, export_root, write_pipeline_profile(tmp_path))
    checkpoint = context.run_dir / "checkpoint.pt"
    checkpoint.write_bytes(b"weights v1")
    manifest = json.loads((export_root / "base" / "manifest.json").read_text())
    for role in ("base", "motivated"):
        data = {**manifest, "checkpoint_sha256": sha256_file(checkpoint), "files": {"model.onnx": {}}}
        (export_root / role / "manifest.json").write_text(json.dumps(data))
    assert "exported from this checkpoint" in pipeline_stages.is_current_export(context)
    checkpoint.write_bytes(b"weights v2")  # retrained
    assert pipeline_stages.is_current_export(context) is None


def test_pipeline_state_survives_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text('{"kind": "seekdeploy.pipe')  # torn
    state = PipelineState.load(path, "run", "x86-cpu")
    state.mark(Stage.TRAIN, "running", started_utc="t0")
    loaded = json.loads(path.read_text())
    assert loaded["stages"] == {"train": {"status": "running", "started_utc": "t0"}}
    assert loaded["run"] == "run" and loaded["kind"] == "seekdeploy.pipeline"


def test_run_reuses_a_run_folder_only_for_the_same_settings(run_cli, tmp_cwd: Path) -> None:
    profile = write_pipeline_profile(tmp_cwd)
    run_dir = tmp_cwd / "runs" / "other"
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"x")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"profile": "tiny-cpu", "arch": "resnet", "data": "digits", "epochs": 9, "condition": "never"}))
    result = run_cli("run", "--profile", str(profile), "--name", "other", "--epochs", "1")
    assert result.exit_code == 1 and "epochs 9 (asked 1)" in result.stderr and "--force" in result.stderr


# ---- slow: a real pipeline interrupted twice and resumed ----


def _start_run(cwd: Path, profile: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "seekdeploy", "run", "--profile", str(profile), "--epochs", "2",
            "--name", "demo", *extra]  # fmt: skip
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, process: subprocess.Popen, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"seekdeploy run ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the pipeline")
        time.sleep(0.2)


def _stages(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "pipeline.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.slow
def test_pipeline_resumes_after_interruptions_and_a_finished_rerun_does_nothing(tmp_path: Path) -> None:
    profile = write_pipeline_profile(tmp_path)
    run_dir = tmp_path / "runs" / "demo"
    # 1. SIGTERM during training, after the first epoch's checkpoint: training saves and stops.
    first = _start_run(tmp_path, profile)
    _wait_for(lambda: (run_dir / "checkpoint.pt").is_file(), first)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err
    assert _stages(run_dir)["train"]["status"] == "interrupted"
    # 2. Resume; SIGKILL (no clean-up at all) once training is done and the export is running.
    second = _start_run(tmp_path, profile)
    _wait_for(lambda: _stages(run_dir).get("export", {}).get("status") == "running", second)
    second.kill()
    second.communicate()
    trained = _stages(run_dir)["train"]
    assert trained["status"] == "done"
    # 3. Finish: training and slicing are not redone, export onwards runs.
    done = subprocess.run([sys.executable, "-m", "seekdeploy", "run", "--profile", str(profile),
                           "--epochs", "2", "--name", "demo"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode in (0, 3), done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("[calibrate] skipped:") and "already planned" in lines[0]
    assert lines[1].startswith("[train] skipped:") and lines[2].startswith("[slice] skipped:")
    assert "[export] running…" in lines and "[profile] running…" in lines
    report_line = next(line for line in lines if line.startswith("[report] done"))
    assert "test images" in report_line and "McNemar p = " in report_line  # is the pair's gap chance?
    assert lines[-1].startswith(("PASSED base", "FAILED base"))
    assert _stages(run_dir)["train"]["finished_utc"] == trained["finished_utc"]
    assert (tmp_path / "exports" / "demo" / "profile.json").is_file()
    # 4. A finished pipeline: every stage skipped, nothing rewritten, the same summary.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "exports").rglob("*") if p.is_file()}
    again = subprocess.run([sys.executable, "-m", "seekdeploy", "run", "--profile", str(profile),
                            "--epochs", "2", "--name", "demo"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == done.returncode
    rerun = again.stdout.strip().splitlines()
    assert [line.split("]")[0] + "]" for line in rerun[:-1]] == [
        "[calibrate]", "[train]", "[slice]", "[export]", "[cascade]", "[profile]", "[report]"]
    assert all("] skipped:" in line for line in rerun[:-1])
    assert rerun[-1] == lines[-1]
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "exports").rglob("*") if p.is_file()}


def test_a_real_export_is_current_by_the_checkpoint_its_manifests_record(tiny_export, tmp_path: Path) -> None:
    # The exporter writes the key the pipeline reads (layout.CHECKPOINT_SHA256); no pipeline.json
    # entry helps here, so the manifests alone decide.
    import shutil

    from seekdeploy._io import sha256_file
    from seekdeploy.pipeline import stages as pipeline_stages

    export_root = tmp_path / "exports" / "tiny"
    shutil.copytree(tiny_export.dir, export_root)
    context = _context(tmp_path, export_root, write_pipeline_profile(tmp_path))
    shutil.copy(tiny_export.run / "checkpoint.pt", context.run_dir / "checkpoint.pt")
    manifest = json.loads((export_root / "base" / "manifest.json").read_text())
    assert pipeline_stages.manifest_checkpoint_sha256(manifest) == sha256_file(context.run_dir / "checkpoint.pt")
    assert context.state.stage(Stage.EXPORT) == {}
    assert "exported from this checkpoint" in pipeline_stages.is_current_export(context)
    (context.run_dir / "checkpoint.pt").write_bytes(b"retrained")
    assert pipeline_stages.is_current_export(context) is None
