"""Engine file names and the sidecar that guards against loading an engine where it cannot run.

A serialized TensorRT engine only runs with the TensorRT version that built it and on the GPU
model it was built for. Every engine `model.<profile>.trt<version>.<precision>.engine` gets a
sidecar `<engine>.json` recording both (and the ONNX file's sha256), and `check_engine_compatible`
refuses a mismatch with a message that says to rebuild on the device.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from seekdeploy._io import atomic_write_json, safe_name
from seekdeploy.backends import _tensorrt_core as tensorrt_core
from seekdeploy.errors import ExportError
from seekdeploy.profiles.schema import Precision

_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


@dataclass(frozen=True)
class EngineSidecar:
    """Facts about one built engine, written beside it as `<engine>.json`."""

    engine_file: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str | None
    precision: Precision
    onnx_sha256: str
    profile: str
    batch_min: int
    batch_opt: int
    batch_max: int


def engine_filename(profile_name: str, trt_version: str, precision: Precision | str) -> str:
    """`model.<profile>.trt<version>.<precision>.engine`, e.g. `model.jetson-orin-nano.trt8.6.fp16.engine`."""
    safe_name(profile_name, "profile name")
    if not _VERSION.match(trt_version):
        raise ExportError(f"TensorRT version {trt_version!r} is not a version like '8.6' or '10.3.0'")
    return tensorrt_core.engine_filename(profile_name, trt_version, Precision(precision).value)


def sidecar_path(engine_path: str | Path) -> Path:
    """The sidecar of an engine: `<engine>.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_engine_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    """Write `sidecar` atomically beside `engine_path` and return its path."""
    payload = asdict(sidecar)
    payload["precision"] = Precision(sidecar.precision).value
    return atomic_write_json(sidecar_path(engine_path), payload)


def read_engine_sidecar(engine_path: str | Path) -> EngineSidecar:
    """Read an engine's sidecar; `ExportError` when it is missing or malformed."""
    path = sidecar_path(engine_path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        payload["precision"] = Precision(payload["precision"])
        return EngineSidecar(**payload)
    except FileNotFoundError as exc:
        raise ExportError(
            f"engine {engine_path} has no sidecar {path.name}; its TensorRT version and GPU are "
            "unknown, so it cannot be trusted: rebuild it with build_engine.sh on the device"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"engine sidecar {path} is malformed ({exc}); rebuild the engine") from exc


def _version_key(version: str) -> tuple[int, ...]:
    # Compare major.minor.patch: engines are tied to the exact release, not to the build number.
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def _same_gpu(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def check_engine_compatible(
    sidecar: EngineSidecar,
    installed_version: str,
    gpu_name: str,
    *,
    compute_capability: str | None = None,
    onnx_sha256: str | None = None,
) -> None:
    """Refuse (with `ExportError`) an engine built by another TensorRT release, for another GPU, or
    from another ONNX file than the one given by `onnx_sha256`.

    Versions compare on major.minor.patch ("8.6.2" matches "8.6.2.3" but not "8.6.1"); a version
    given with fewer parts ("8.6") matches any release that starts with them.
    """
    built, here = sidecar.tensorrt_version, installed_version
    n = min(len(re.findall(r"\d+", built)), len(re.findall(r"\d+", here)), 3)
    if _version_key(built)[:n] != _version_key(here)[:n]:
        raise ExportError(
            f"engine {sidecar.engine_file} was built by TensorRT {built} but TensorRT {here} is "
            "installed; engines do not carry across TensorRT versions. Rebuild it on this device "
            "with build_engine.sh"
        )
    if not _same_gpu(sidecar.gpu_name, gpu_name):
        raise ExportError(
            f"engine {sidecar.engine_file} was built for GPU {sidecar.gpu_name!r} but this GPU is "
            f"{gpu_name!r}; TensorRT engines are specific to the GPU model. Rebuild it on this device"
        )
    if compute_capability and sidecar.compute_capability and compute_capability != sidecar.compute_capability:
        raise ExportError(
            f"engine {sidecar.engine_file} targets compute capability {sidecar.compute_capability}, "
            f"this GPU has {compute_capability}; rebuild it on this device"
        )
    if onnx_sha256 and onnx_sha256 != sidecar.onnx_sha256:
        raise ExportError(
            f"engine {sidecar.engine_file} was built from a different model.onnx (sha256 "
            f"{sidecar.onnx_sha256[:12]}..., now {onnx_sha256[:12]}...); it is stale: rebuild it"
        )
