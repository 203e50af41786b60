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

from seekdeploy import layout
from seekdeploy.backends import get_backend
from seekdeploy.errors import ExportError
from seekdeploy.roles import ROLES, Role


@dataclass(frozen=True)
class ModelTarget:
    """One model to profile: its role, files and what its manifest says."""

    role: Role
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
    def static_path(self) -> Path:
        """The role's `static.pt` (the torch reference runtime's model), beside the ONNX file."""
        return self.model_path.parent / layout.STATIC_MODEL

    @property
    def accuracy(self) -> float | None:
        """The manifest's test top-1 in [0, 1] of this very file (its own parity proof for an
        fp16 or INT8 copy), or None."""
        manifest = self.manifest or {}
        proof = ((manifest.get("parity") or {}).get("files") or {}).get(self.model_path.name) or {}
        value = proof.get("test_top1") if self.model_path.name != layout.ONNX_FP32 else None
        if value is None:
            value = (manifest.get("accuracy") or {}).get("test_top1")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# The copy a CPU runtime (`Runtime.runs_precision_copies`) runs for a profile's precision.
PRECISION_COPIES = {p: layout.ONNX_BY_PRECISION[p] for p in ("fp16", "int8")}


def for_precision(targets: Sequence[ModelTarget], runtime: str, precision: str | None) -> list[ModelTarget]:
    """`targets` with each role's fp16 / INT8 ONNX copy in place of model.onnx, for a CPU runtime
    and that precision, where the copy was exported beside it (what `profile --host` ships too)."""
    name = PRECISION_COPIES.get(str(precision)) if get_backend(runtime).runtime.runs_precision_copies else None
    return [ModelTarget(t.role, t.model_path.with_name(name), t.manifest)
            if name and t.model_path.name == layout.ONNX_FP32 and t.model_path.with_name(name).is_file() else t
            for t in targets]


def find_targets(export: Path, role: Role | None = None) -> list[ModelTarget]:
    """The models in `export` for `role` (None = every role present), in base, motivated order."""
    if not export.exists():
        raise ExportError(f"{export} does not exist; pass an export folder (exports/<run>) or a .onnx file")
    if export.is_file():
        if export.suffix != ".onnx":
            raise ExportError(f"{export} is not an .onnx file or an export folder")
        return [ModelTarget(role or Role.BASE, export, _read_manifest(export.parent / layout.MANIFEST))]
    if (export / layout.ONNX_FP32).is_file():  # one role's folder: exports/<run>/<role>
        name = role or (Role(export.name) if export.name in ROLES else Role.BASE)
        return [ModelTarget(name, export / layout.ONNX_FP32, _read_manifest(export / layout.MANIFEST))]
    wanted = (role,) if role else ROLES
    targets = [
        ModelTarget(name, export / name / layout.ONNX_FP32, _read_manifest(export / name / layout.MANIFEST))
        for name in wanted
        if (export / name / layout.ONNX_FP32).is_file()
    ]
    if not targets:
        looked = ", ".join(str(export / name / layout.ONNX_FP32) for name in wanted)
        raise ExportError(f"no model to profile: looked for {looked}; run `seekdeploy export` first")
    return targets


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
