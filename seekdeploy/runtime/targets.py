"""Find what to profile in an EXPORT argument: an export folder, one role's folder, or a .onnx file.

An export folder is `exports/<run>/` with `<role>/model.onnx` and `<role>/manifest.json`; the
manifest gives the input shape (`input.shape`, (B, C, H, W) with the batch possibly dynamic) and
the test accuracy (`accuracy.test_top1`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seekdeploy.errors import ExportError, RuntimeBackendError
from seekdeploy.profiles.schema import ROLE_NAMES as ROLES

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelTarget:
    """One model to profile: its role, files and what its manifest says."""

    role: str
    model_path: Path  # the ONNX file (engines are found beside it)
    manifest: dict[str, Any] | None

    @property
    def input_chw(self) -> tuple[int, int, int] | None:
        """(C, H, W) from the manifest's `input.shape`, or None when it has none."""
        shape = ((self.manifest or {}).get("input") or {}).get("shape")
        if not isinstance(shape, list) or len(shape) != 4:
            return None
        dims = shape[1:]
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            return None
        return (dims[0], dims[1], dims[2])

    @property
    def accuracy(self) -> float | None:
        """The manifest's test top-1 in [0, 1] of this very file (its own parity proof for an
        fp16 or INT8 copy), or None."""
        manifest = self.manifest or {}
        proof = ((manifest.get("parity") or {}).get("files") or {}).get(self.model_path.name) or {}
        value = proof.get("test_top1") if self.model_path.name != MODEL_FILE else None
        if value is None:
            value = (manifest.get("accuracy") or {}).get("test_top1")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# The copy a CPU runtime runs for a profile's precision, where the export made it.
CPU_RUNTIMES = ("onnxruntime", "openvino")
PRECISION_COPIES = {"fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def for_precision(targets: Sequence[ModelTarget], runtime: str, precision: str | None) -> list[ModelTarget]:
    """`targets` with each role's fp16 / INT8 ONNX copy in place of model.onnx, for a CPU runtime
    and that precision, where the copy was exported beside it (what `profile --host` ships too)."""
    name = PRECISION_COPIES.get(str(precision)) if runtime in CPU_RUNTIMES else None
    return [ModelTarget(t.role, t.model_path.with_name(name), t.manifest)
            if name and t.model_path.name == MODEL_FILE and t.model_path.with_name(name).is_file() else t
            for t in targets]


def find_targets(export: Path, role: str | None = None) -> list[ModelTarget]:
    """The models in `export` for `role` (None = every role present), in base, motivated order."""
    if not export.exists():
        raise ExportError(f"{export} does not exist; pass an export folder (exports/<run>) or a .onnx file")
    if export.is_file():
        if export.suffix != ".onnx":
            raise ExportError(f"{export} is not an .onnx file or an export folder")
        return [ModelTarget(role or "base", export, _read_manifest(export.parent / MANIFEST_FILE))]
    if (export / MODEL_FILE).is_file():  # one role's folder: exports/<run>/<role>
        name = role or (export.name if export.name in ROLES else "base")
        return [ModelTarget(name, export / MODEL_FILE, _read_manifest(export / MANIFEST_FILE))]
    wanted = (role,) if role else ROLES
    targets = [
        ModelTarget(name, export / name / MODEL_FILE, _read_manifest(export / name / MANIFEST_FILE))
        for name in wanted
        if (export / name / MODEL_FILE).is_file()
    ]
    if not targets:
        looked = ", ".join(str(export / name / MODEL_FILE) for name in wanted)
        raise ExportError(f"no model to profile: looked for {looked}; run `seekdeploy export` first")
    return targets


def find_engine(target: ModelTarget, profile_name: str, precision: str) -> Path:
    """The TensorRT engine `model.<profile>.trt<version>.<precision>.engine` beside the ONNX file."""
    pattern = f"model.{profile_name}.trt*.{precision}.engine"
    engines = sorted(target.model_path.parent.glob(pattern))
    if not engines:
        raise RuntimeBackendError(
            f"no TensorRT engine matching {target.model_path.parent / pattern}; build it on the "
            "device with the export's build_engine.sh, or profile with --runtime onnxruntime"
        )
    return engines[-1]


def load_torch_module(target: ModelTarget, export: Path, run_dir: Path | None) -> Any:
    """The role's static torch module rebuilt from its training run (eager reference timing).

    The run is `run_dir`, else the manifest's `run_dir`, else `runs/<run>` beside `exports/`.
    """
    from seekdeploy.nn import to_static  # torch: only when the torch runtime is asked for
    from seekdeploy.train.checkpoint import load_run

    folder = run_dir or _run_dir_from(target, export)
    if folder is None or not folder.is_dir():
        raise RuntimeBackendError(
            f"the torch runtime rebuilds the model from its training run, but no run folder was "
            f"found (looked at {folder}); pass --run runs/<name>"
        )
    run = load_run(folder)
    spec = run.base_spec if target.role == "base" else run.motivated_spec
    return to_static(run.supernet, spec, run.bn_role_for(target.role))


def _run_dir_from(target: ModelTarget, export: Path) -> Path | None:
    declared = (target.manifest or {}).get("run_dir")
    if isinstance(declared, str) and declared:
        return Path(declared)
    export_dir = export if export.is_dir() else export.parent
    if (export_dir / MODEL_FILE).is_file():  # a role folder: exports/<run>/<role>
        export_dir = export_dir.parent
    return export_dir.parent.parent / "runs" / export_dir.name


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}; re-run `seekdeploy export`") from exc
    if not isinstance(manifest, dict):
        raise ExportError(f"{path} is not a JSON object; re-run `seekdeploy export`")
    return manifest


def roles_of(targets: Sequence[ModelTarget]) -> list[str]:
    """The roles of `targets`, in order."""
    return [target.role for target in targets]
