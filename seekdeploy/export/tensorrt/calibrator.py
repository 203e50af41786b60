"""INT8 entropy calibration over real training images, with a cache keyed by the ONNX file.

A calibration cache holds per-tensor dynamic ranges of one specific network; reusing it for a
re-exported model would silently mis-quantize. The cache name therefore carries the ONNX file's
sha256 (`model.<sha12>.calib`), and a cache for another hash is never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy._io import atomic_write_bytes, sha256_file
from seekdeploy.errors import ExportError, require

if TYPE_CHECKING:
    import numpy as np

_HASH_CHARS = 12


def calibration_cache_path(onnx_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """`<cache_dir or onnx folder>/<onnx stem>.<sha256[:12]>.calib` for this exact ONNX file."""
    onnx_path = Path(onnx_path)
    digest = sha256_file(onnx_path)[:_HASH_CHARS]
    folder = Path(cache_dir) if cache_dir is not None else onnx_path.parent
    return folder / f"{onnx_path.stem}.{digest}.calib"


def read_calibration_cache(onnx_path: str | Path, cache_dir: str | Path | None = None) -> bytes | None:
    """The cache for exactly this ONNX file, or None (caches of other files are ignored)."""
    path = calibration_cache_path(onnx_path, cache_dir)
    return path.read_bytes() if path.is_file() and path.stat().st_size > 0 else None


def write_calibration_cache(onnx_path: str | Path, cache: bytes, cache_dir: str | Path | None = None) -> Path:
    """Store `cache` (from TensorRT) atomically under this ONNX file's hashed cache name."""
    return atomic_write_bytes(calibration_cache_path(onnx_path, cache_dir), bytes(cache))


def calibration_batches(images_float32: np.ndarray, batch_size: int, max_batches: int | None = None) -> Iterator[np.ndarray]:
    """Yield contiguous (batch_size, C, H, W) float32 batches of normalized training images.

    The last partial batch is dropped: a calibration profile has one fixed batch size.
    """
    import numpy as np

    images = np.asarray(images_float32, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] < batch_size:
        raise ExportError(
            f"INT8 calibration needs at least {batch_size} normalized images shaped (N, C, H, W); "
            f"got {images.shape}. Use more training images or a smaller calibration batch"
        )
    count = images.shape[0] // batch_size
    if max_batches is not None:
        count = min(count, max_batches)
    for index in range(count):
        yield np.ascontiguousarray(images[index * batch_size:(index + 1) * batch_size])


def _cuda_runtime() -> Any:
    # cuda-python moved its runtime bindings from `cuda.cudart` to `cuda.bindings.runtime` in 12.x.
    try:
        from cuda.bindings import runtime
    except ImportError:
        runtime = require("cuda.cudart", "tensorrt", "INT8 calibration (pip install cuda-python)")
    return runtime


def create_entropy_calibrator(onnx_path: str | Path, images_float32: np.ndarray, *,
                              batch_size: int = 8, max_batches: int = 32,
                              cache_dir: str | Path | None = None) -> Any:
    """A `tensorrt.IInt8EntropyCalibrator2` feeding real images, caching under this ONNX file's hash.

    Needs TensorRT and cuda-python (device memory for the batches); never executed on a machine
    without an NVIDIA GPU.
    """
    trt = require("tensorrt", "tensorrt", "INT8 calibration")
    cudart = _cuda_runtime()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds calibration batches through one device buffer; cache keyed by ONNX sha256."""

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = calibration_batches(images_float32, batch_size, max_batches)
            nbytes = batch_size * int(images_float32[0].size) * 4
            error, self._device = cudart.cudaMalloc(nbytes)
            if int(error) != 0:
                raise ExportError(f"cudaMalloc of {nbytes} bytes for calibration failed ({error})")

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None  # tells TensorRT calibration data is exhausted
            kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            (error,) = cudart.cudaMemcpy(self._device, batch.ctypes.data, batch.nbytes, kind)
            if int(error) != 0:
                raise ExportError(f"copying a calibration batch to the GPU failed ({error})")
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return read_calibration_cache(onnx_path, cache_dir)

        def write_calibration_cache(self, cache: Any) -> None:
            write_calibration_cache(onnx_path, bytes(cache), cache_dir)

        def __del__(self) -> None:
            if getattr(self, "_device", None):
                cudart.cudaFree(self._device)

    return EntropyCalibrator()
