"""`exports/<run>/<role>/manifest.json`: everything a consumer needs to run and trust one export.

The manifest says what the model is (run, role, family, spec, params, FLOPs), how to feed it (input
name, shape, layout, dtype, normalization, class labels, and `input.preprocessing`: the complete
recipe from a source image, resize and colour included), what it returns, how it was made (opset,
exporter, library versions), what every file in the folder is (sha256, bytes, precision), how well
it matches what was trained (parity per file) and how accurate it is (test split, through
onnxruntime).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from seekdeploy import layout
from seekdeploy._io import sha256_file

MANIFEST_SCHEMA_VERSION = 1
NORMALIZATION = "x = (pixels / 255 - mean) / std, per channel; pixels are uint8 in [0, 255], NCHW"

# File name -> (kind, precision) for files whose meaning is fixed by their name.
_KNOWN_FILES = {
    layout.ONNX_FP32: ("onnx", "fp32"),
    layout.ONNX_OPTIMIZED: ("onnx-ort-optimized", "fp32"),
    layout.ONNX_FP16: ("onnx", "fp16"),
    layout.ONNX_INT8: ("onnx-qdq", "int8"),
    layout.STATIC_MODEL: ("torch-static-state-dict", "fp32"),
    layout.ENGINE_SCRIPT: ("tensorrt-build-script", None),
    layout.CALIBRATION_IMAGES: ("int8-calibration-images", "fp32"),
}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced and checked the export."""
    import importlib
    import platform
    import sys

    import numpy
    import onnx
    import torch

    from seekdeploy import __version__
    from seekdeploy.backends import REFERENCE_RUNTIME

    reference = importlib.import_module(REFERENCE_RUNTIME)  # the runtime every parity proof ran in
    return {"seekdeploy": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            REFERENCE_RUNTIME: reference.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def _describe_file(path: Path) -> dict[str, Any]:
    kind, precision = _KNOWN_FILES.get(path.name, ("other", None))
    if path.name.endswith(layout.ENGINE_SUFFIX):
        kind, precision = "tensorrt-engine", path.name.rsplit(".", 2)[-2]
    elif path.name.endswith(layout.ENGINE_SIDECAR_SUFFIX):
        kind = "tensorrt-engine-sidecar"
    elif path.name.endswith(".calib"):
        kind = "int8-calibration-cache"
    return {"kind": kind, "precision": precision, "sha256": sha256_file(path),
            "bytes": path.stat().st_size}


def describe_files(role_dir: Path) -> dict[str, dict[str, Any]]:
    """sha256, size, kind and precision of every file in a role folder except the manifest."""
    return {path.name: _describe_file(path) for path in sorted(role_dir.iterdir())
            if path.is_file() and path.name != layout.MANIFEST}


def input_spec(*, shape: tuple[int, int, int, int], dynamic_batch: bool, mean: tuple[float, ...],
               std: tuple[float, ...], class_names: tuple[str, ...], name: str = "input",
               preprocessing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's `input` block: how to turn images into the model's input.

    `preprocessing` (from the dataset, `seekdeploy.data._preprocessing`) is the complete recipe
    from a source image: its pixel range, resize semantics, colour handling and step order; the
    block repeats mean and std inside it so it can be followed on its own.
    """
    recipe = {**(preprocessing or {}), "mean": list(mean), "std": list(std),
              "normalization": NORMALIZATION}
    return {"name": name, "shape": list(shape), "dynamic_batch": dynamic_batch, "layout": "NCHW",
            "dtype": "float32", "channels": shape[1], "height": shape[2], "width": shape[3],
            "mean": list(mean), "std": list(std), "normalization": NORMALIZATION,
            "preprocessing": recipe, "class_labels": list(class_names)}


def output_spec(*, batch: int, num_classes: int, name: str = "logits") -> dict[str, Any]:
    """The manifest's `output` block."""
    return {"name": name, "shape": [batch, num_classes], "dtype": "float32",
            "meaning": "unnormalized class scores; argmax indexes input.class_labels"}


def build_manifest(*, header: dict[str, Any], role_dir: Path, input_block: dict[str, Any],
                   output_block: dict[str, Any], export_info: dict[str, Any],
                   accuracy: dict[str, Any], parity: dict[str, Any],
                   extras: dict[str, Any]) -> dict[str, Any]:
    """Assemble a role's manifest; `files` is computed from what is in `role_dir` now."""
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION, "kind": layout.EXPORT_KIND, **header,
        "input": input_block, "output": output_block, **export_info,
        "files": describe_files(role_dir), "accuracy": accuracy, "parity": parity, **extras,
        "versions": library_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
