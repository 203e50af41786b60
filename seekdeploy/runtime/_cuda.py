"""The few CUDA runtime calls the TensorRT runner needs, through ctypes on libcudart.

Standard library ONLY: no pycuda / cuda-python dependency, so the remote agent can ship this file
to a Jetson whose JetPack provides libcudart but no Python CUDA bindings.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_LIBRARY_NAMES = (
    "libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.10.2",
    "/usr/local/cuda/lib64/libcudart.so", "cudart64_12.dll", "cudart64_110.dll",
)  # fmt: skip
HOST_TO_DEVICE = 1  # cudaMemcpyKind
DEVICE_TO_HOST = 2


class CudaError(RuntimeError):
    """A CUDA runtime call returned an error code."""


class CudaRuntime:
    """Thin wrapper: every call checks its cudaError_t and raises `CudaError` naming the call."""

    def __init__(self) -> None:
        self._lib = _load_cudart()

    def _check(self, call: str, code: int) -> None:
        if code != 0:
            get_name = self._lib.cudaGetErrorString
            get_name.restype = ctypes.c_char_p
            raise CudaError(f"{call} failed: {get_name(code).decode(errors='replace')} ({code})")

    def malloc(self, nbytes: int) -> int:
        """Device allocation of `nbytes`; returns the device address."""
        pointer = ctypes.c_void_p()
        self._check("cudaMalloc", self._lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(nbytes)))
        return int(pointer.value or 0)

    def free(self, address: int) -> None:
        """Free a `malloc` allocation."""
        self._check("cudaFree", self._lib.cudaFree(ctypes.c_void_p(address)))

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        """Queue a copy of `nbytes` on `stream` (HOST_TO_DEVICE or DEVICE_TO_HOST)."""
        code = self._lib.cudaMemcpyAsync(
            ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
            ctypes.c_int(kind), ctypes.c_void_p(stream),
        )  # fmt: skip
        self._check("cudaMemcpyAsync", code)

    def stream_create(self) -> int:
        """A new CUDA stream handle."""
        stream = ctypes.c_void_p()
        self._check("cudaStreamCreate", self._lib.cudaStreamCreate(ctypes.byref(stream)))
        return int(stream.value or 0)

    def stream_synchronize(self, stream: int) -> None:
        """Block until all work queued on `stream` is done."""
        self._check("cudaStreamSynchronize", self._lib.cudaStreamSynchronize(ctypes.c_void_p(stream)))

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream handle."""
        self._check("cudaStreamDestroy", self._lib.cudaStreamDestroy(ctypes.c_void_p(stream)))

    def event_create(self) -> int:
        """A new CUDA event handle (with timing)."""
        event = ctypes.c_void_p()
        self._check("cudaEventCreate", self._lib.cudaEventCreate(ctypes.byref(event)))
        return int(event.value or 0)

    def event_record(self, event: int, stream: int) -> None:
        """Record `event` on `stream`."""
        code = self._lib.cudaEventRecord(ctypes.c_void_p(event), ctypes.c_void_p(stream))
        self._check("cudaEventRecord", code)

    def event_elapsed_ms(self, start: int, end: int) -> float:
        """Milliseconds between two recorded events (both must have completed)."""
        elapsed = ctypes.c_float()
        code = self._lib.cudaEventElapsedTime(
            ctypes.byref(elapsed), ctypes.c_void_p(start), ctypes.c_void_p(end)
        )
        self._check("cudaEventElapsedTime", code)
        return float(elapsed.value)

    def event_destroy(self, event: int) -> None:
        """Destroy an event handle."""
        self._check("cudaEventDestroy", self._lib.cudaEventDestroy(ctypes.c_void_p(event)))


def _load_cudart() -> ctypes.CDLL:
    found = ctypes.util.find_library("cudart")
    candidates = ((found,) if found else ()) + _LIBRARY_NAMES
    errors = []
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise CudaError(
        "the CUDA runtime library (libcudart) cannot be loaded; install the CUDA toolkit / JetPack "
        f"or add its lib folder to LD_LIBRARY_PATH (tried: {', '.join(candidates)})"
    )
