"""The agent's TensorRT path: build the engine ON the device, then time it with the same protocol.

Standalone (standard library + numpy + TensorRT; shipped beside `agent.py`, `timing.py`, `_cuda.py`
and `_tensorrt_core.py`): it cannot import seekdeploy. The engine file name, the trtexec command
line and the engine builder are the one TensorRT core (`_tensorrt_core.py`) the exporter uses too;
only the timing (trtexec's times parsing, the CUDA-event loop) is the agent's own. Two builders, the first
that the device has wins: the TensorRT Python API (timed by `timing.measure` with CUDA events via
libcudart/ctypes), else the `trtexec` binary (its `--exportTimes` per-iteration latencies are
summarized by the same `LatencyStats.from_samples`). trtexec has no warm-up iteration count, so
there the warm-up is time-only. The engine is written as
`model.<profile>.trt<major.minor>.<precision>.engine` with a `.json` sidecar, and listed in
`artifacts.json` for the host to copy back.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import time

try:  # inside seekdeploy (the runner, the tests)
    from . import _tensorrt_core as core
except ImportError:  # on the device: a flat folder beside agent.py
    import _tensorrt_core as core

ARTIFACTS_FILE = "artifacts.json"
# The export contract fixes the input name; reading it from the protobuf would need onnx here.
INPUT_NAME = "input"


REQUIRED_MODULES = ()  # the Python bindings or the trtexec binary: `measure` looks for either


class TensorRTAgentError(Exception):
    """The engine could not be built or timed on this device."""


MeasureError = TensorRTAgentError  # what agent.py catches from `measure`


def timed_trtexec_command(trtexec: str, onnx: str, engine: str, shape: list, input_name: str,
                          precision: str, protocol, workspace_mib: int, times_file: str,
                          calibration_cache: str | None = None, trt_version: str | None = None) -> list:
    """The core's trtexec command that builds `engine` at the fixed `shape`, then times it under
    `protocol` with per-iteration times written to `times_file`."""
    timing_flags = [f"--warmUp={int(round(protocol.warmup_ms))}",
                    f"--duration={max(protocol.duration_ms / 1000.0, 0.001):g}",
                    f"--iterations={int(protocol.min_iterations)}", f"--exportTimes={times_file}"]  # fmt: skip
    return core.trtexec_command(trtexec, onnx, engine, input_name=input_name, shape=shape, precision=precision,
                                workspace_mib=workspace_mib, trt_version=trt_version,
                                calibration_cache=calibration_cache, extra=timing_flags)  # fmt: skip


def parse_trtexec_times(data: list) -> tuple:
    """Per-iteration (latency_ms, compute_ms) lists from trtexec's `--exportTimes` JSON."""
    latency_ms, compute_ms = [], []
    for entry in data:
        if not isinstance(entry, dict):
            continue
        if "latencyMs" in entry:
            latency_ms.append(float(entry["latencyMs"]))
        elif "endD2HMs" in entry and "startH2DMs" in entry:
            latency_ms.append(float(entry["endD2HMs"]) - float(entry["startH2DMs"]))
        if "computeMs" in entry:
            compute_ms.append(float(entry["computeMs"]))
    return latency_ms, compute_ms


def measure(args, timing, numpy, protocol, input_shape_of, watch_load=None) -> dict:
    """Build the engine for `args.model` and time it; returns the agent's `measured` dict."""
    precision = args.precision or "fp32"
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        trt = None
    trtexec = args.trtexec or shutil.which("trtexec") or _jetpack_trtexec()
    if trt is None and trtexec is None:
        raise TensorRTAgentError(
            "neither TensorRT's Python bindings nor trtexec were found on this device; install "
            "JetPack's python3-libnvinfer or put trtexec (/usr/src/tensorrt/bin) on PATH"
        )
    version = trt.__version__ if trt is not None else _trtexec_version(trtexec)
    folder = os.path.dirname(os.path.abspath(args.model))
    name = core.engine_filename(args.profile_name, core.major_minor(version), precision)
    engine = os.path.join(folder, name)
    shape = input_shape_of(args, args.batch)
    started = time.perf_counter()
    if trt is not None:
        builder = "tensorrt-python"
        _build_with_api(trt, args, engine, shape, precision)
        measured = _time_with_api(trt, engine, shape, args, timing, numpy, protocol)
    else:
        builder = "trtexec"
        measured = _build_and_time_trtexec(trtexec, args, engine, shape, precision, protocol, timing, version)
    _write_sidecar(engine, args, version, precision, shape, builder, time.perf_counter() - started)
    with open(os.path.join(folder, ARTIFACTS_FILE), "w", encoding="utf-8") as handle:
        json.dump({"files": [name, name + ".json"]}, handle)
    measured.update(model_file=engine, providers=[f"TensorRT {version}"])
    return measured


def _build_with_api(trt, args, engine: str, shape: list, precision: str) -> None:
    calibrator = _cache_calibrator(trt, args.calibration_cache) if precision == "int8" else None
    try:
        serialized = core.build_serialized_engine(
            trt, args.model, batch_range=(shape[0],) * 3, chw=shape[1:], precision=precision,
            workspace_mib=args.workspace_mib, calibrator=calibrator)  # the profile's fixed input shape
    except core.TensorRTBuildError as exc:
        raise TensorRTAgentError(str(exc))
    with open(engine, "wb") as handle:
        handle.write(serialized)


def _cache_calibrator(trt, cache_path: str | None):
    if not cache_path or not os.path.isfile(cache_path):
        raise TensorRTAgentError(
            "INT8 needs the calibration cache from `seekdeploy export --precision int8`; none was shipped"
        )

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        # Only replays the export's cache: no calibration data lives on the device.
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            return None

        def read_calibration_cache(self):
            with open(cache_path, "rb") as handle:
                return handle.read()

        def write_calibration_cache(self, cache) -> None:
            return None

    return CacheCalibrator()


def _time_with_api(trt, engine: str, shape: list, args, timing, numpy, protocol) -> dict:
    cuda_module = importlib.import_module("_cuda")
    cuda = cuda_module.CudaRuntime()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with open(engine, "rb") as handle:
        loaded = runtime.deserialize_cuda_engine(handle.read())
    context = loaded.create_execution_context()
    names = [loaded.get_tensor_name(i) for i in range(loaded.num_io_tensors)]
    stream, start, stop = cuda.stream_create(), cuda.event_create(), cuda.event_create()
    hosts, buffers = {}, {}
    for name in names:
        dtype = trt.nptype(loaded.get_tensor_dtype(name))
        if loaded.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, tuple(shape))
            hosts[name] = numpy.random.default_rng(0).standard_normal(shape).astype(dtype)
    for name in names:
        if name not in hosts:
            out_shape = tuple(context.get_tensor_shape(name))
            hosts[name] = numpy.empty(out_shape, dtype=trt.nptype(loaded.get_tensor_dtype(name)))
        buffers[name] = cuda.malloc(max(hosts[name].nbytes, 1))
        context.set_tensor_address(name, buffers[name])
    inputs = [n for n in names if loaded.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    to_device, to_host = cuda_module.HOST_TO_DEVICE, cuda_module.DEVICE_TO_HOST

    def infer() -> None:
        # H2D + compute + D2H, like trtexec's "Latency"; the events bracket compute only.
        for name in inputs:
            host = hosts[name]
            cuda.memcpy_async(buffers[name], host.ctypes.data, host.nbytes, to_device, stream)
        cuda.event_record(start, stream)
        context.execute_async_v3(stream)
        cuda.event_record(stop, stream)
        for name in names:
            if name not in inputs:
                host = hosts[name]
                cuda.memcpy_async(host.ctypes.data, buffers[name], host.nbytes, to_host, stream)

    try:
        runs = [timing.measure(infer, protocol, sync=lambda: cuda.stream_synchronize(stream),
                               batch=shape[0], device_time_ms=lambda: cuda.event_elapsed_ms(start, stop))
                for _ in range(max(1, args.repeats))]  # fmt: skip
    finally:
        for address in buffers.values():
            cuda.free(address)
        cuda.stream_destroy(stream)
    return {"runs": runs, "sweep": [], "peak_memory_mib": timing.peak_rss_mib()}


def _build_and_time_trtexec(trtexec: str, args, engine: str, shape: list, precision: str,
                            protocol, timing, version: str) -> dict:
    times_file = engine + ".times.json"
    argv = timed_trtexec_command(trtexec, args.model, engine, shape, INPUT_NAME, precision, protocol,
                                 args.workspace_mib, times_file, args.calibration_cache, version)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.isfile(times_file):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise TensorRTAgentError(f"trtexec failed (exit {done.returncode}):\n{tail}")
    with open(times_file, encoding="utf-8") as handle:
        latency_ms, compute_ms = parse_trtexec_times(json.load(handle))
    os.remove(times_file)
    if not latency_ms:
        raise TensorRTAgentError("trtexec's --exportTimes file held no per-iteration latencies")
    device = timing.LatencyStats.from_samples(compute_ms, shape[0]) if compute_ms else None
    stats = timing.LatencyStats.from_samples(latency_ms, shape[0], device)
    # The trtexec process's memory is not ours to read; leave it unknown rather than guess.
    return {"runs": [stats], "sweep": [], "peak_memory_mib": None}


def _write_sidecar(engine: str, args, version: str, precision: str, shape: list, builder: str,
                   build_s: float) -> None:
    sidecar = {"engine": os.path.basename(engine), "profile": args.profile_name,
               "tensorrt_version": version, "precision": precision, "input_shape": shape,
               "builder": builder, "workspace_mib": args.workspace_mib,
               "calibration_cache": os.path.basename(args.calibration_cache or "") or None,
               "onnx_file": os.path.basename(args.model), "build_and_time_s": round(build_s, 3)}  # fmt: skip
    with open(engine + ".json", "w", encoding="utf-8") as handle:
        json.dump(sidecar, handle, indent=1)


def _jetpack_trtexec() -> str | None:
    path = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs it, off PATH
    return path if os.access(path, os.X_OK) else None


def _trtexec_version(trtexec: str) -> str:
    done = subprocess.run([trtexec, "--help"], capture_output=True, text=True, check=False)
    for word in (done.stdout + done.stderr).replace("[", " ").replace("]", " ").split():
        if word.startswith("v") and word[1:2].isdigit():  # "TensorRT.trtexec [TensorRT v100300]"
            digits = word[1:]
            if digits.isdigit() and len(digits) >= 5:  # 10.x: major*10000 + minor*100 + patch
                return f"{int(digits[:-4])}.{int(digits[-4:-2])}"
            if digits.isdigit() and len(digits) == 4:  # 8.x: major*1000 + minor*100 + patch
                return f"{digits[0]}.{digits[1]}"
    return "unknown"
