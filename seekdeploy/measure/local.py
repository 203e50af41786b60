"""Profile one model with one runner: windows of the timing protocol, memory, size, batch sweep.

This is the library layer under `seekdeploy profile`; it returns a model result dict in the
schema of `result_schema.py`, identical to what the remote agent produces on a device.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seekdeploy._io import sha256_file
from seekdeploy.errors import RuntimeBackendError
from seekdeploy.runtime.environment import collect_environment, watch_load
from seekdeploy.runtime.result_schema import build_model_result, build_sweep_entry
from seekdeploy.backends import create_runner, version_distributions
from seekdeploy.runtime.runners import Runner
from seekdeploy.runtime.timing import (
    ProtocolSettings,
    TimedWindow,
    measure,
    measure_windows,
    peak_rss_mib,
    quietest_index,
    reset_peak_rss,
)

if TYPE_CHECKING:
    from torch import nn

MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class ProfileRequest:
    """What to measure: the model, how to run it, its input shape (B, C, H, W) and the protocol."""

    model: str | Path | nn.Module  # a file for onnxruntime/openvino/tensorrt, a module for torch
    runtime: str
    input_shape: tuple[int, int, int, int]
    protocol: ProtocolSettings
    role: str | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0
    repeats: int = 1
    sweep_batches: tuple[int, ...] = ()
    precision: str | None = None
    seed: int = 0


def profile_model(
    request: ProfileRequest, make_runner: Callable[[ProfileRequest], Runner] | None = None
) -> dict[str, Any]:
    """Measure `request` and return its model result dict (results-JSON schema 1).

    `request.repeats` windows are timed back to back, each with the machine's load; the quietest one
    (lowest median, `timing.quietest_index`) is reported and every window is kept under "repeats".
    Interleaving windows across models is `runtime.windows.profile_interleaved`. Peak memory is the
    process VmHWM reset just before the model is loaded, so it covers load + inference (plus the
    interpreter) but not earlier work of this process.
    """
    if request.repeats < 1:
        raise RuntimeBackendError(f"--repeats must be at least 1, got {request.repeats}")
    runner = (make_runner or _default_runner)(request)
    reset_peak_rss()
    with runner:
        feed = make_feed(runner, request.input_shape, request.seed)
        runner.infer(feed)  # fail fast on a shape/type mismatch before the timed protocol
        windows = _measure_windows(runner, feed, request)
        peak_memory_mib = peak_rss_mib() or None
        sweep = _run_sweep(runner, request) if request.sweep_batches else None
        providers = list(getattr(runner, "session_providers", []))  # a runtime with providers says which ran
    reported = windows[quietest_index([window.stats.median_ms for window in windows])].stats
    model_file = Path(request.model) if isinstance(request.model, (str, Path)) else None
    return build_model_result(
        role=request.role,
        # The basename, as the remote agent records it, so local and remote results compare.
        model_file=model_file.name if model_file is not None else type(request.model).__name__,
        model_sha256=sha256_file(model_file) if model_file is not None else None,
        runtime=request.runtime,
        providers=providers,
        threads=request.threads,
        input_shape=request.input_shape,
        protocol=request.protocol.to_json(),
        latency=reported.to_json(),
        repeats=[window.to_json() for window in windows],
        peak_memory_mib=peak_memory_mib,
        file_size_mib=model_file_size_mib(model_file) if model_file is not None else None,
        environment=collect_environment(request.runtime, providers, request.threads,
                                        distributions=version_distributions()),
        sweep=sweep,
        precision=request.precision,
    )


def make_feed(runner: Runner, input_shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal input (models see normalized images) for every input of the runner."""
    rng = np.random.default_rng(seed)
    feed = {}
    for info in runner.input_infos():
        _check_shape(info.name, info.shape, input_shape)
        feed[info.name] = rng.standard_normal(input_shape).astype(info.dtype)  # (B, C, H, W)
    return feed


def model_file_size_mib(path: Path) -> float:
    """Size of the model file plus its ONNX external-data file (`<name>.data`) if there is one."""
    total = path.stat().st_size
    external = path.with_name(path.name + ".data")
    if external.is_file():
        total += external.stat().st_size
    return total / MIB


def _default_runner(request: ProfileRequest) -> Runner:
    return create_runner(request.runtime, request.model, request.providers, request.threads,
                         request.precision)


def _measure_windows(runner: Runner, feed: dict[str, np.ndarray], request: ProfileRequest) -> list[TimedWindow]:
    device_time = getattr(runner, "last_compute_ms", None)
    return measure_windows(
        lambda: runner.infer(feed), request.protocol, request.repeats, sync=runner.sync,
        batch=request.input_shape[0], device_time_ms=device_time, watch_load=watch_load,
    )  # fmt: skip


def _run_sweep(runner: Runner, request: ProfileRequest) -> list[dict[str, Any]]:
    entries = []
    for batch in request.sweep_batches:
        shape = (int(batch), *request.input_shape[1:])
        feed = make_feed(runner, shape, request.seed)
        reset_peak_rss()
        runner.infer(feed)
        stats = measure(lambda f=feed: runner.infer(f), request.protocol, sync=runner.sync, batch=shape[0])
        entries.append(build_sweep_entry(shape, stats.to_json(), peak_rss_mib() or None))
    return entries


def _check_shape(name: str, declared: tuple[int | None, ...], wanted: tuple[int, ...]) -> None:
    if len(declared) != len(wanted):
        raise RuntimeBackendError(
            f"model input {name!r} has rank {len(declared)} but the input shape is {list(wanted)}"
        )
    for axis, (have, want) in enumerate(zip(declared, wanted)):
        if have is not None and have != want:
            hint = (
                "export it with a dynamic batch axis or pass --batch " + str(have)
                if axis == 0
                else "check the profile's input channels/height/width against the model"
            )
            raise RuntimeBackendError(
                f"model input {name!r} has fixed shape {list(declared)} but {list(wanted)} was "
                f"asked for (axis {axis}); {hint}"
            )


def cv_percent(values: list[float]) -> float:
    """Coefficient of variation (population std / mean) in percent; 0.0 for fewer than 2 values."""
    if len(values) < 2 or statistics.fmean(values) == 0:
        return 0.0
    return 100.0 * statistics.pstdev(values) / statistics.fmean(values)
