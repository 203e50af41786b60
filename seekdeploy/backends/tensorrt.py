"""TensorRT engine runner (TensorRT 10 name-based tensor API, `execute_async_v3`).

One `infer` = copy inputs host->device, record a CUDA event, enqueue the engine, record a second
event, copy outputs device->host, synchronize the stream. The host-side sample therefore matches
trtexec's "Latency" (H2D + compute + D2H); `last_compute_ms()` is the GPU compute time between the
two events ("GPU Compute Time"), which `measure(..., device_time_ms=runner.last_compute_ms)` records
beside it. Memory comes from libcudart through ctypes (`_cuda.py`), so no pycuda is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy.errors import RuntimeBackendError, require
from seekdeploy.runtime._cuda import DEVICE_TO_HOST, HOST_TO_DEVICE, CudaError, CudaRuntime
from seekdeploy.runtime.runners import Runner, TensorInfo


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
            dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name))).name
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
            host = np.ascontiguousarray(feed[name], dtype=dtype)
            context.set_input_shape(name, tuple(host.shape))
            address = self._device_buffer(name, host.nbytes)
            cuda.memcpy_async(address, host.ctypes.data, host.nbytes, HOST_TO_DEVICE, stream)
            hosts.append(host)
        outputs = []
        for name in self._io_names(want_input=False):
            shape = tuple(context.get_tensor_shape(name))
            dtype = self._trt.nptype(self._engine.get_tensor_dtype(name))
            out = np.empty(shape, dtype=dtype)
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
