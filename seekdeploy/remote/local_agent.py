"""Run the standalone latency agent on THIS machine, in a fresh child process.

A measurement made inside the seekdeploy process would count whatever that process loaded before
(torch alone is ~0.5 GiB of RSS after training), so its peak memory would not be the model's. The
agent that `profile --host` ships to devices needs only numpy and the runtime, so running it here
under `sys.executable` gives an honest peak (interpreter + numpy + runtime + model) and a result of
exactly the schema a remote device returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy.backends import REFERENCE_RUNTIME, get_backend
from seekdeploy.errors import MissingDependencyError, RuntimeBackendError
from seekdeploy.remote.agent_files import AgentRequest, agent_argv, stage_agent

if TYPE_CHECKING:
    from seekdeploy.runtime.timing import ProtocolSettings

_EXIT_MISSING_MODULE = 3  # agent.py's exit codes
_EXIT_FAILED = 4
_ERROR_TAG = "seekdeploy-agent: error "
_MISSING_TAG = "seekdeploy-agent: missing-module "
_STARTUP_SLACK_S = 120.0  # interpreter start, imports and model load on a busy machine


def measure_in_child(
    model_path: str | Path,
    *,
    input_shape: Sequence[int],
    protocol: ProtocolSettings,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int = 0,
    role: str | None = None,
    precision: str | None = None,
    repeats: int = 1,
    sweep_batches: Sequence[int] = (),
    runtime: str = REFERENCE_RUNTIME,
) -> dict[str, Any]:
    """Measure an ONNX model with `runtime` (a backend the agent times here: `DeviceAgent.times_here`) in a
    child `python agent.py` and return its result.

    `input_shape` is (B, C, H, W); `protocol` is a `ProtocolSettings`. The result dict has the
    results-JSON schema (host "local"). A failure of the child becomes `RuntimeBackendError` (or
    `MissingDependencyError` when numpy or the runtime cannot be imported) with its message.
    """
    model_path = Path(model_path)
    backend = get_backend(runtime)
    if backend.runtime.require_here is not None:  # checked here first, so the error names the install
        backend.runtime.require_here()
    if not model_path.is_file():
        raise RuntimeBackendError(f"ONNX model {model_path} does not exist; export it first")
    batch, *chw = (int(d) for d in input_shape)
    request = AgentRequest(
        model_name=model_path.name, runtime=runtime, providers=tuple(providers),
        threads=int(threads), input_chw=tuple(chw), batch=batch, warmup_ms=protocol.warmup_ms,
        warmup_iterations=protocol.warmup_iterations, duration_ms=protocol.duration_ms,
        min_iterations=protocol.min_iterations, precision=precision, role=role,
        repeats=max(1, int(repeats)), sweep_batches=tuple(int(b) for b in sweep_batches),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="seekdeploy-agent-") as folder:
        stage_agent(Path(folder), runtime)
        _link_model(model_path, Path(folder))
        argv = agent_argv(sys.executable, folder, request)
        done = _run_child(argv, _timeout_s(request), model_path)
    _raise_for_exit(done, model_path, runtime)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RuntimeBackendError(f"the latency agent printed no results JSON for {model_path}: {exc}") from exc


def _link_model(model_path: Path, folder: Path) -> None:
    # The agent reads the model from its own folder; a link avoids copying large models. The
    # external-data file (`model.onnx.data`) must sit beside the model, so it is linked too.
    for source in (model_path, model_path.with_name(model_path.name + ".data")):
        if not source.is_file():
            continue
        try:
            os.symlink(source.resolve(), folder / source.name)
        except OSError:  # filesystems without symlinks
            import shutil

            shutil.copyfile(source, folder / source.name)


def _timeout_s(request: AgentRequest) -> float:
    windows = request.repeats + len(request.sweep_batches)
    per_window_s = (request.warmup_ms + request.duration_ms) / 1000.0
    # min_iterations can stretch a window far past duration_ms for a slow model: allow 10x.
    return _STARTUP_SLACK_S + 10.0 * windows * per_window_s


def _run_child(argv: list[str], timeout_s: float, model_path: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeBackendError(
            f"measuring {model_path} did not finish within {timeout_s:.0f} s; shorten the "
            "profile's measurement (duration_ms, min_iterations) or check the machine's load"
        ) from exc


def _raise_for_exit(done: subprocess.CompletedProcess, model_path: Path, runtime: str = REFERENCE_RUNTIME) -> None:
    if done.returncode == 0:
        return
    lines = done.stderr.strip().splitlines()
    if done.returncode == _EXIT_MISSING_MODULE:
        missing = next((line[len(_MISSING_TAG):] for line in lines if line.startswith(_MISSING_TAG)), "?")
        fix = get_backend(runtime).runtime.install_fix
        raise MissingDependencyError(
            f"{sys.executable} cannot import {missing}, which measuring ONNX models needs; install it with: {fix}"
        )
    tagged = [line[len(_ERROR_TAG):] for line in lines if line.startswith(_ERROR_TAG)]
    if done.returncode == _EXIT_FAILED and tagged:
        raise RuntimeBackendError(tagged[-1])
    detail = "\n".join(lines[-10:]) or "no message"
    # Anything else (a crash, a signal) is not a user error, but the message must reach the user.
    raise RuntimeBackendError(
        f"the latency agent failed on {model_path} (exit {done.returncode}): {detail}"
    )
