"""`trtexec` command lines, the ready-to-run `build_engine.sh`, and parsing trtexec's summary.

The command line itself comes from the one TensorRT core (`seekdeploy/backends/_tensorrt_core.py`),
which the device agent ships and uses too; this module adds the exporter's checks and the script.

Flags follow NVIDIA's trtexec help: `--onnx`, `--saveEngine`, `--fp16`, `--int8`, `--calib=<cache>`,
`--minShapes/--optShapes/--maxShapes=<input>:BxCxHxW`, `--memPoolSize=workspace:<N>M` (TensorRT
8.4+; the `M` suffix means MiB in every version; 8.0-8.2 take `--workspace=<N>` MiB instead), and
`--skipInference` to build without timing (TensorRT 8.6+; older releases call it `--buildOnly`).
The performance summary looks like `[I] Latency: min = 0.78 ms, max = 1.2 ms, mean = ...,
median = ..., percentile(90%) = ..., percentile(95%) = ..., percentile(99%) = ...` (the
percentiles listed depend on `--percentile`), `[I] Throughput: 1234.5 qps` and
`[I] GPU Compute Time: min = ...` in the same form.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from seekdeploy import layout
from seekdeploy._io import atomic_write_text
from seekdeploy.backends import _tensorrt_core as tensorrt_core
from seekdeploy.errors import ExportError
from seekdeploy.profiles.schema import Precision

_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([0-9.eE+-]+)\s*ms")
_NUMBER = r"([0-9.eE+-]+)"


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: Precision | str,
    batch_min: int = 1,
    batch_opt: int = 1,
    batch_max: int = 1,
    workspace_mib: int = 1024,
    calib_cache: str | Path | None = None,
    input_name: str = "input",
    input_shape: tuple[int, int, int] = (3, 32, 32),
    trt_version: str | None = None,
    trtexec: str = "trtexec",
) -> list[str]:
    """The argument list that builds `engine_path` from `onnx_path` with trtexec (no shell involved).

    `input_shape` is (C, H, W); the batch range becomes one optimization profile. INT8 needs a
    calibration cache (`calib_cache`) written by `EntropyCalibrator` on real training images.
    """
    precision = Precision(precision)
    if not 1 <= batch_min <= batch_opt <= batch_max:
        raise ExportError(f"batch sizes must satisfy 1 <= min <= opt <= max, got {batch_min}/{batch_opt}/{batch_max}")
    if workspace_mib < 1:
        raise ExportError(f"workspace_mib must be >= 1, got {workspace_mib}")
    if precision is Precision.INT8 and calib_cache is None:
        raise ExportError(
            "INT8 needs a calibration cache from real training images; create it with "
            "EntropyCalibrator (seekdeploy export --precision int8 does this) and pass calib_cache"
        )
    return tensorrt_core.trtexec_command(
        trtexec, str(onnx_path), str(engine_path), input_name=input_name, shape=(batch_min, *input_shape),
        opt_shape=(batch_opt, *input_shape), max_shape=(batch_max, *input_shape), precision=precision.value,
        workspace_mib=workspace_mib, trt_version=trt_version,
        calibration_cache=str(calib_cache) if calib_cache is not None else None,
    ) + [tensorrt_core.build_only_flag(trt_version)]


def _parse_stats(line: str) -> dict[str, float]:
    stats = {}
    for name, percentile, value in _STAT.findall(line):
        key = f"p{percentile.rstrip('0').rstrip('.') if '.' in percentile else percentile}" if percentile else name
        stats[f"{key}_ms"] = float(value)
    return stats


def parse_trtexec_output(text: str) -> dict[str, object]:
    """Latency statistics, throughput and GPU compute time from trtexec's performance summary.

    Returns `{"latency": {"min_ms", "max_ms", "mean_ms", "median_ms", "p90_ms", ...},
    "gpu_compute": {...}, "throughput_qps": float}` plus `tensorrt_version`, `gpu_name` and
    `compute_capability` when the log has them. `ExportError` if the summary is missing (the run
    failed, or was built with --skipInference).
    """
    result: dict[str, object] = {}
    for line in text.splitlines():
        body = re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())  # drop "[date] [I] " prefixes
        if body.startswith("Latency:"):
            result["latency"] = _parse_stats(body)
        elif body.startswith("GPU Compute Time:"):
            result["gpu_compute"] = _parse_stats(body)
        elif match := re.match(rf"Throughput:\s*{_NUMBER}\s*qps", body):
            result["throughput_qps"] = float(match.group(1))
        elif match := re.match(r"TensorRT version:\s*(\S+)", body):
            result["tensorrt_version"] = _decode_version(match.group(1))
        elif match := re.match(r"Selected Device:\s*(.+)", body):
            result["gpu_name"] = match.group(1).strip()
        elif match := re.match(r"Compute Capability:\s*(\S+)", body):
            result["compute_capability"] = match.group(1)
    missing = [k for k in ("latency", "throughput_qps", "gpu_compute") if k not in result]
    if missing or not result["latency"]:
        raise ExportError(
            f"trtexec output has no performance summary (missing {', '.join(missing) or 'latency figures'}); "
            "the run failed or skipped inference: read its log, then run it again without --skipInference"
        )
    return result


def _decode_version(token: str) -> str:
    # Old trtexec prints a number (8001 = 8.0.1; 100300 = 10.3.0) instead of a dotted version.
    if not token.isdigit():
        return token
    code = int(token)
    if code >= 100000:
        return f"{code // 10000}.{code // 100 % 100}.{code % 100}"
    return f"{code // 1000}.{code // 100 % 10}.{code % 100}"


_SCRIPT = """#!/usr/bin/env bash
# Build the TensorRT engine for {profile} on the device itself: engines are tied to the GPU model
# and the TensorRT version ({trt_version}) that build them. Generated by seekdeploy; re-run it
# after any change to model.onnx.
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-trtexec}}"
if ! command -v "$TRTEXEC" >/dev/null 2>&1 && [ -x /usr/src/tensorrt/bin/trtexec ]; then
  TRTEXEC=/usr/src/tensorrt/bin/trtexec  # where JetPack installs it
fi
LOG={log}
"$TRTEXEC" {arguments} 2>&1 | tee "$LOG"
if [ ! -s {engine} ]; then
  echo "trtexec produced no engine; see $LOG" >&2
  exit 1
fi
BUILT_VERSION="$(sed -n 's/.*TensorRT version: *\\([0-9.]*\\).*/\\1/p' "$LOG" | head -n 1)"
case "$BUILT_VERSION" in
  {trt_version}|{trt_version}.*) ;;
  *) echo "this device has TensorRT ${{BUILT_VERSION:-unknown}}, the profile declares {trt_version}:" \\
          "fix the profile's tensorrt_version and export again" >&2
     rm -f {engine}
     exit 2 ;;
esac
GPU_NAME="$(sed -n 's/.*Selected Device: *//p' "$LOG" | head -n 1 | tr -d '"\\\\')"
CAPABILITY="$(sed -n 's/.*Compute Capability: *\\([0-9.]*\\).*/\\1/p' "$LOG" | head -n 1)"
printf '{sidecar_format}' "$BUILT_VERSION" "$GPU_NAME" "$CAPABILITY" > {sidecar}
echo "built {engine} (TensorRT $BUILT_VERSION, $GPU_NAME)"
"""

_SIDECAR_FORMAT = (
    '{{"engine_file": {engine}, "tensorrt_version": "%s", "gpu_name": "%s", '
    '"compute_capability": "%s", "precision": "{precision}", "onnx_sha256": "{sha}", '
    '"profile": {profile}, "batch_min": {bmin}, "batch_opt": {bopt}, "batch_max": {bmax}}}\\n'
)


def write_build_script(
    export_dir: str | Path,
    *,
    profile_name: str,
    trt_version: str,
    precision: Precision | str,
    input_shape: tuple[int, int, int],
    batch_min: int = 1,
    batch_opt: int = 1,
    batch_max: int = 1,
    workspace_mib: int = 1024,
    input_name: str = "input",
    onnx_name: str = layout.ONNX_FP32,
    calib_cache_name: str | None = None,
) -> Path:
    """Write `<export_dir>/build_engine.sh` (atomically, executable) that builds this target's engine.

    The script runs the exact `trtexec_command` (every argument shlex-quoted, paths relative to
    the export folder so the folder can be copied to the device), keeps the log, refuses a
    TensorRT version other than the profile's, and writes the engine's JSON sidecar.
    """
    import json
    import os

    from seekdeploy._io import sha256_file
    from seekdeploy.export.tensorrt.engines import engine_filename

    export_dir = Path(export_dir)
    onnx_path = export_dir / onnx_name
    if not onnx_path.is_file():
        raise ExportError(f"{onnx_path} does not exist; export the ONNX model before the build script")
    precision = Precision(precision)
    engine = engine_filename(profile_name, trt_version, precision)
    arguments = trtexec_command(
        onnx_name, engine, precision=precision, batch_min=batch_min, batch_opt=batch_opt,
        batch_max=batch_max, workspace_mib=workspace_mib, calib_cache=calib_cache_name,
        input_name=input_name, input_shape=input_shape, trt_version=trt_version,
    )[1:]  # the binary comes from $TRTEXEC
    sidecar_format = _SIDECAR_FORMAT.format(
        engine=json.dumps(engine), precision=precision.value, sha=sha256_file(onnx_path),
        profile=json.dumps(profile_name), bmin=batch_min, bopt=batch_opt, bmax=batch_max,
    ).replace("'", "")
    text = _SCRIPT.format(
        profile=profile_name, trt_version=shlex.quote(trt_version).strip("'"),
        log=shlex.quote(engine + ".build.log"), arguments=" ".join(shlex.quote(a) for a in arguments),
        engine=shlex.quote(engine), sidecar=shlex.quote(engine + ".json"),
        sidecar_format=sidecar_format,
    )
    script = atomic_write_text(export_dir / layout.ENGINE_SCRIPT, text)
    os.chmod(script, 0o755)
    return script
