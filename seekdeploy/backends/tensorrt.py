"""The TensorRT backend: its declaration (`BACKEND`), its doctor check and its engine runner
(TensorRT 10 name-based tensor API, `execute_async_v3`). The engine is built on the device
through the one TensorRT core, `_tensorrt_core.py` (the agent's `agent_tensorrt.py` and export's
build script and builder all call it).

One `infer` = copy inputs host->device, record a CUDA event, enqueue the engine, record a second
event, copy outputs device->host, synchronize the stream. The host-side sample therefore matches
trtexec's "Latency" (H2D + compute + D2H); `last_compute_ms()` is the GPU compute time between the
two events ("GPU Compute Time"), which `measure(..., device_time_ms=runner.last_compute_ms)` records
beside it. Memory comes from libcudart through ctypes (`_cuda.py`), so no pycuda is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy.backends._backend import Backend, DeviceAgent, DoctorCheck, ExportStep, Runtime, import_for_doctor
from seekdeploy.errors import MissingDependencyError, RuntimeBackendError, require
from seekdeploy.runtime._cuda import DEVICE_TO_HOST, HOST_TO_DEVICE, CudaError, CudaRuntime
from seekdeploy.runtime.runners import Runner, TensorInfo

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.runtime.targets import ModelTarget

# Where JetPack installs trtexec without putting it on PATH.
TRTEXEC_FALLBACK_PATHS = (Path("/usr/src/tensorrt/bin/trtexec"),)


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine built on (and for) this device."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path) -> None:
        super().__init__()
        self.engine_path = Path(engine_path)
        self._trt: Any = None
        self._runtime: Any = None
        self._cuda: CudaRuntime | None = None
        self._engine: Any = None
        self._context: Any = None
        self._stream = 0
        self._events: tuple[int, int] = (0, 0)
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device address, bytes)

    def _activate(self) -> None:
        trt = require("tensorrt", extra="tensorrt", purpose="running TensorRT engines")
        if not self.engine_path.is_file():
            raise RuntimeBackendError(
                f"TensorRT engine {self.engine_path} does not exist; build it on the device with "
                "the export's build_engine.sh"
            )
        self._trt = trt
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise RuntimeBackendError(
                f"TensorRT {trt.__version__} cannot deserialize {self.engine_path}: engines only "
                "load with the TensorRT version and GPU they were built with; rebuild it here"
            )
        self._context = self._engine.create_execution_context()
        try:
            self._cuda = CudaRuntime()
            self._stream = self._cuda.stream_create()
            self._events = (self._cuda.event_create(), self._cuda.event_create())
        except CudaError as exc:
            raise RuntimeBackendError(str(exc)) from exc

    def _deactivate(self) -> None:
        cuda = self._cuda
        if cuda is not None:
            for address, _ in self._buffers.values():
                cuda.free(address)
            for event in self._events:
                if event:
                    cuda.event_destroy(event)
            if self._stream:
                cuda.stream_destroy(self._stream)
        self._buffers, self._events, self._stream = {}, (0, 0), 0
        self._context = self._engine = self._runtime = self._cuda = None

    def _io_names(self, want_input: bool) -> list[str]:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = [engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
        return [n for n, flag in zip(names, is_input) if flag == want_input]

    def input_infos(self) -> list[TensorInfo]:
        """Engine inputs; dynamic axes (-1) become None."""
        infos = []
        for name in self._io_names(want_input=True):
            shape = tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            dtype = _numpy().dtype(self._trt.nptype(self._engine.get_tensor_dtype(name))).name
            infos.append(TensorInfo(name, shape, dtype))
        return infos

    def _device_buffer(self, name: str, nbytes: int) -> int:
        # Reuse the allocation while the tensor's size is unchanged (the timed loop's case).
        address, size = self._buffers.get(name, (0, 0))
        if size != nbytes:
            if address:
                self._cuda.free(address)
            address = self._cuda.malloc(max(nbytes, 1))
            self._buffers[name] = (address, nbytes)
            self._context.set_tensor_address(name, address)
        return address

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._enqueue(feed)
        except CudaError as exc:
            raise RuntimeBackendError(f"CUDA error while running {self.engine_path}: {exc}") from exc

    def _enqueue(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        cuda, context, stream = self._cuda, self._context, self._stream
        hosts: list[np.ndarray] = []  # keep host arrays alive until the stream is synchronized
        for name in self._io_names(want_input=True):
            if name not in feed:
                raise RuntimeBackendError(f"feed lacks engine input {name!r}; it has {sorted(feed)}")
            dtype = self._trt.nptype(self._engine.get_tensor_dtype(name))
            host = _numpy().ascontiguousarray(feed[name], dtype=dtype)
            context.set_input_shape(name, tuple(host.shape))
            address = self._device_buffer(name, host.nbytes)
            cuda.memcpy_async(address, host.ctypes.data, host.nbytes, HOST_TO_DEVICE, stream)
            hosts.append(host)
        outputs = []
        for name in self._io_names(want_input=False):
            shape = tuple(context.get_tensor_shape(name))
            dtype = self._trt.nptype(self._engine.get_tensor_dtype(name))
            out = _numpy().empty(shape, dtype=dtype)
            self._device_buffer(name, out.nbytes)
            outputs.append((name, out))
        cuda.event_record(self._events[0], stream)
        if not context.execute_async_v3(stream):
            raise RuntimeBackendError(f"TensorRT execute_async_v3 failed for {self.engine_path}")
        cuda.event_record(self._events[1], stream)
        for name, out in outputs:
            cuda.memcpy_async(out.ctypes.data, self._buffers[name][0], out.nbytes, DEVICE_TO_HOST, stream)
        cuda.stream_synchronize(stream)
        del hosts
        return [out for _, out in outputs]

    def sync(self) -> None:
        """Synchronize the runner's CUDA stream (infer already does; this keeps the contract)."""
        if self._cuda is not None and self._stream:
            self._cuda.stream_synchronize(self._stream)

    def last_compute_ms(self) -> float:
        """GPU compute time of the last `infer`, from the CUDA events around `execute_async_v3`."""
        if self._cuda is None:
            raise RuntimeBackendError("TensorRT runner is not active")
        return self._cuda.event_elapsed_ms(*self._events)


def _numpy() -> Any:
    import numpy  # numpy only once an engine runs: listing the backends stays light

    return numpy


def check_tensorrt() -> list[DoctorCheck]:
    """Whether TensorRT's Python bindings import, and where trtexec is."""
    trt, problem = import_for_doctor("tensorrt")
    if trt is None:
        fix = ("pip install 'seekdeploy[tensorrt]' on an x86 machine with an NVIDIA GPU; "
               "on a Jetson it comes with JetPack (python3-libnvinfer)")
        checks = [DoctorCheck("tensorrt", False, problem, fix)]
    else:
        checks = [DoctorCheck("tensorrt", True, f"{getattr(trt, '__version__', 'unknown version')}")]
    return [*checks, _check_trtexec()]


def _check_trtexec() -> DoctorCheck:
    found = shutil.which("trtexec")
    if found:
        return DoctorCheck("trtexec", True, f"on PATH: {found}")
    for candidate in TRTEXEC_FALLBACK_PATHS:
        if candidate.is_file():
            return DoctorCheck("trtexec", False, f"found at {candidate} but not on PATH",
                               f"export PATH=\"$PATH:{candidate.parent}\"")
    return DoctorCheck("trtexec", False, "not on PATH",
                       "install TensorRT (JetPack on a Jetson) and add its bin/ folder to PATH; "
                       "only needed to build engines on this machine")


def find_engine(target: ModelTarget, profile_name: str, precision: str) -> Path:
    """The engine `model.<profile>.trt<version>.<precision>.engine` beside the target's ONNX file
    (`target` is a `seekdeploy.runtime.targets.ModelTarget`)."""
    pattern = layout.engine_glob(profile_name, precision)
    engines = sorted(target.model_path.parent.glob(pattern))
    if not engines:
        raise RuntimeBackendError(
            f"no TensorRT engine matching {target.model_path.parent / pattern}; build it on the "
            "device with the export's build_engine.sh, or profile with --runtime onnxruntime"
        )
    return engines[-1]


def _load_local_model(target: ModelTarget, profile_name: str, precision: str) -> Path:
    try:
        require("tensorrt", extra="tensorrt", purpose="timing TensorRT engines")
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"{exc}; or measure the ONNX model here with --runtime onnxruntime") from exc
    return find_engine(target, profile_name, precision)


def _missing_on_device(probe: dict[str, Any], trtexec: str | None) -> str | None:
    # The agent builds with the Python bindings, else with the trtexec binary: either will do.
    has_trtexec = bool(trtexec or probe.get("trtexec"))
    return "tensorrt" if probe["modules"].get("tensorrt") is None and not has_trtexec else None


BACKEND = Backend(
    name="tensorrt",
    summary="NVIDIA's GPU runtime; engines are built on the device from the exported ONNX",
    runtime=Runtime(
        create_runner=lambda model, providers, threads, precision: TensorRTRunner(model),
        require_here=lambda: require("tensorrt", extra="tensorrt", purpose="timing TensorRT engines"),
        check_here=check_tensorrt,
        load_local_model=_load_local_model,
        install_fix="pip install 'seekdeploy[tensorrt]'",
        distributions=("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-libs"),
        layer_overhead_ms=0.005,
    ),
    agent=DeviceAgent(
        module="agent_tensorrt.py",
        support=("_tensorrt_core.py", "_cuda.py"),
        device_modules=("numpy",),
        probe_modules=("tensorrt",),
        check_probe=_missing_on_device,
        install_hint="install TensorRT's Python bindings (JetPack ships them: apt install python3-libnvinfer)",
        windows_in_one_run=True,
        returns_artifacts=True,
    ),
    export_step=ExportStep(  # lint, then the engine or its build script
        module="seekdeploy.export.tensorrt_step", format="tensorrt", precisions=("fp32", "fp16", "int8")),
    export_formats=("onnx", "tensorrt"),
    onnx_opset_ceiling=lambda version: 17 if str(version or "").startswith("8") else None,  # 8.x parses <= 17
    int8_needs_calibration_cache=True,
)
