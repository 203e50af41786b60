"""The cascade's TensorRT path, written to NVIDIA's documented `If` support and not run here.

TensorRT's ONNX parser turns ONNX `If` into an `IIfConditional` layer. NVIDIA's operator reference
(docs.nvidia.com/deeplearning/tensorrt, operators/If) requires the condition to be a 0-D bool
tensor and both branches to return the same number of outputs of equal rank, of type bool, int32,
float16, float32 or bfloat16; the branch inputs may differ in number and shape. The cascade meets
that: the condition is the 0-D bool `escalate`, the one branch output is the (batch, K) float32
logits in both branches (the then-branch gathers the unsure samples with NonZero, which the parser
reads since TensorRT 8.5, and scatters the motivated logits back into a (batch, K) tensor). The
opset-18 file needs TensorRT 9.0 or newer (`tensorrt.lint` table). TensorRT reads an input that has
an initializer as a weight, so an engine runs at the stored threshold.

Where TensorRT is absent (always on this project's CI), the exporter writes
`build_cascade_engine.sh` (trtexec, batch 1 to the proof batch) and records the path as not run.
"""

from __future__ import annotations

import importlib.util
import shlex
from typing import Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_text
from seekdeploy.export.cascade_graph import INPUT
from seekdeploy.profiles.schema import Precision

MIN_TENSORRT = "9.0"
_MAX_BATCH = 64


def cascade_engine_command(onnx_name: str, input_shape: tuple[int, ...], precision: str = "fp32") -> list[str]:
    """The trtexec argument list that builds the cascade's engine (batch 1 optimal, up to 64)."""
    from seekdeploy.export.tensorrt.trtexec import trtexec_command

    engine = layout.cascade_engine(Precision(precision).value)
    return trtexec_command(onnx_name, engine, precision=precision, batch_min=1, batch_opt=1, batch_max=_MAX_BATCH,
                           input_name=INPUT, input_shape=tuple(int(d) for d in input_shape),
                           trt_version=MIN_TENSORRT)


def write_engine_script(folder: layout.CascadeLayout, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Write `build_cascade_engine.sh` beside cascade.onnx; the manifest's `tensorrt` block, which
    says whether anything was run (never here without TensorRT)."""
    command = cascade_engine_command(layout.CASCADE_ONNX, input_shape)
    script = ("#!/bin/sh\n# Build the cascade's TensorRT engine on the device (TensorRT >= "
              f"{MIN_TENSORRT}); run from this folder.\nset -e\n{shlex.join(command)}\n")
    atomic_write_text(folder.engine_script, script)
    folder.engine_script.chmod(0o755)
    available = importlib.util.find_spec("tensorrt") is not None
    return {"run": False, "tensorrt_installed": available, "script": layout.CASCADE_ENGINE_SCRIPT,
            "min_tensorrt": MIN_TENSORRT, "command": command,
            "status": ("not run: TensorRT is not installed here; build the engine on the device with "
                       f"{layout.CASCADE_ENGINE_SCRIPT}") if not available else
                      "not run by export: build the engine with build_cascade_engine (or the script)",
            "basis": "ONNX If -> IIfConditional: 0-D bool condition, float32 (batch, K) output of equal rank "
                     "in both branches (NVIDIA TensorRT operator reference, If)"}


def build_cascade_engine(onnx_path: Any, engine_path: Any, precision: str = "fp32") -> Any:
    """Build the cascade's engine with TensorRT's Python API (needs TensorRT; not run on this project's CI)."""
    from seekdeploy.export.tensorrt.builder import build_engine_python

    return build_engine_python(onnx_path, engine_path, precision=precision, batch_min=1, batch_opt=1,
                               batch_max=_MAX_BATCH, profile_name="cascade")
