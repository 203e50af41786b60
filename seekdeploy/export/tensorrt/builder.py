"""Build a TensorRT engine from ONNX with TensorRT's Python API (on the device that will run it).

The build itself is the one TensorRT core's `build_serialized_engine` (the device agent builds
with it too); this module adds the atomic write and the engine's sidecar.

Written against NVIDIA's documented API (`trt.Builder`, `OnnxParser.parse_from_file`,
`create_builder_config`, `set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)`, `BuilderFlag.FP16
/ INT8`, `create_optimization_profile`, `build_serialized_network`). It cannot run without an
NVIDIA GPU and TensorRT, so nothing here is executed by the CPU test suite.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from seekdeploy._io import atomic_write_bytes, sha256_file
from seekdeploy.backends import _tensorrt_core as tensorrt_core
from seekdeploy.errors import ExportError, require
from seekdeploy.export.tensorrt.engines import EngineSidecar, write_engine_sidecar
from seekdeploy.profiles.schema import Precision


def detect_gpu() -> tuple[str, str | None]:
    """(GPU name, compute capability) from nvidia-smi, or the Jetson device-tree model name."""
    smi = shutil.which("nvidia-smi")
    if smi:
        run = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=False)
        first = run.stdout.strip().splitlines()[:1]
        if run.returncode == 0 and first:
            name, _, capability = first[0].partition(",")
            return name.strip(), capability.strip() or None
    tree = Path("/proc/device-tree/model")
    if tree.is_file():  # Jetson: no nvidia-smi before JetPack 6
        return tree.read_text(errors="replace").strip("\x00\n "), None
    return "unknown", None


def build_engine_python(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: Precision | str,
    batch_min: int = 1,
    batch_opt: int = 1,
    batch_max: int = 1,
    workspace_mib: int = 1024,
    calibrator: Any = None,
    profile_name: str = "unknown",
) -> EngineSidecar:
    """Parse `onnx_path`, build a serialized engine at `engine_path` (atomically) and its sidecar.

    FP16 and INT8 are requested with builder flags; INT8 needs `calibrator` (see
    `create_entropy_calibrator`) and also enables FP16 for layers without INT8 kernels. The batch
    range becomes one optimization profile on the model's single input.
    """
    trt = require("tensorrt", "tensorrt", "building TensorRT engines")
    precision = Precision(precision)
    if precision is Precision.INT8 and calibrator is None:
        raise ExportError("INT8 engines need a calibrator over real training images (create_entropy_calibrator)")
    try:
        serialized = tensorrt_core.build_serialized_engine(
            trt, str(onnx_path), batch_range=(batch_min, batch_opt, batch_max), precision=precision.value,
            workspace_mib=workspace_mib, calibrator=calibrator)  # one profile over the batch range
    except tensorrt_core.TensorRTBuildError as exc:
        raise ExportError(f"{exc}. Run lint_for_tensorrt on {onnx_path} for the cause") from exc
    atomic_write_bytes(engine_path, serialized)
    gpu_name, capability = detect_gpu()
    sidecar = EngineSidecar(
        engine_file=Path(engine_path).name, tensorrt_version=trt.__version__, gpu_name=gpu_name,
        compute_capability=capability, precision=precision, onnx_sha256=sha256_file(onnx_path),
        profile=profile_name, batch_min=batch_min, batch_opt=batch_opt, batch_max=batch_max,
    )
    write_engine_sidecar(engine_path, sidecar)
    return sidecar
