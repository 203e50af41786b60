"""The results JSON of one latency profiling of one model (schema_version 1).

Standard library ONLY: the remote agent ships this file and builds its result with the same
`build_model_result`, so a local and a remote measurement have the identical schema.
`seekdeploy.runtime.results` wraps it for the package (the profile.json document, file IO, errors).

One model result::

    {"schema_version": 1, "kind": "seekdeploy.model_latency",
     "role": "base" | "motivated" | null, "model_file": "...", "model_sha256": "..." | null,
     "runtime": "onnxruntime", "providers": [...], "threads": 0, "precision": "fp32" | null,
     "input_shape": [B, C, H, W], "batch": B, "host": "local" | "user@host",
     "protocol": {warmup_ms, warmup_iterations, duration_ms, min_iterations},
     "latency": LatencyStats.to_json(),            # the reported (quietest) window, raw samples kept
     "repeats": [TimedWindow.to_json(), ...],      # every timed window, each with its "load"
                                                   # (and, merged by `profile`, "round" + samples)
     "windows": {"count", "rule", "reported", "median_tolerance_percent", "median_ms", "spread_percent",
                 "interleaved_with"},
                                                   # only in results `runtime.windows` merged
     "peak_memory_mib": float | null, "file_size_mib": float | null,
     "environment": collect_environment(...),     # + "load": the windows' load, summarized
     "sweep": [{"batch": b, "input_shape": [...], "latency": {...}, "peak_memory_mib": ...}] | null}
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
MODEL_RESULT_KIND = "seekdeploy.model_latency"

# key -> accepted JSON types (None is accepted only where listed)
_REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "kind": (str,),
    "role": (str, type(None)),
    "model_file": (str,),
    "runtime": (str,),
    "providers": (list,),
    "threads": (int,),
    "input_shape": (list,),
    "batch": (int,),
    "protocol": (dict,),
    "latency": (dict,),
    "repeats": (list,),
    "peak_memory_mib": (int, float, type(None)),
    "file_size_mib": (int, float, type(None)),
    "environment": (dict,),
    "sweep": (list, type(None)),
}
_LATENCY_KEYS = (
    "min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "std_ms",
    "throughput_per_s", "iterations", "batch",
)  # fmt: skip


def build_model_result(
    *,
    role: str | None,
    model_file: str,
    runtime: str,
    providers: list[str] | tuple[str, ...],
    threads: int,
    input_shape: list[int] | tuple[int, ...],
    protocol: dict[str, Any],
    latency: dict[str, Any],
    environment: dict[str, Any],
    repeats: list[dict[str, Any]] | None = None,
    peak_memory_mib: float | None = None,
    file_size_mib: float | None = None,
    sweep: list[dict[str, Any]] | None = None,
    precision: str | None = None,
    model_sha256: str | None = None,
    host: str = "local",
) -> dict[str, Any]:
    """Assemble one model's result dict in the schema above (plain JSON types only).

    `latency` and each `repeats` entry are `LatencyStats.to_json()` dicts; `sweep` entries come
    from `build_sweep_entry`. The batch is the first dimension of `input_shape`.
    """
    shape = [int(d) for d in input_shape]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": MODEL_RESULT_KIND,
        "role": role,
        "model_file": str(model_file),
        "model_sha256": model_sha256,
        "runtime": str(runtime),
        "providers": [str(p) for p in providers],
        "threads": int(threads),
        "precision": precision,
        "input_shape": shape,
        "batch": shape[0] if shape else 1,
        "host": host,
        "protocol": dict(protocol),
        "latency": dict(latency),
        "repeats": list(repeats) if repeats is not None else [_without_samples(latency)],
        "peak_memory_mib": None if peak_memory_mib is None else float(peak_memory_mib),
        "file_size_mib": None if file_size_mib is None else float(file_size_mib),
        "environment": dict(environment),
        "sweep": None if sweep is None else list(sweep),
    }


def build_sweep_entry(
    input_shape: list[int] | tuple[int, ...],
    latency: dict[str, Any],
    peak_memory_mib: float | None = None,
) -> dict[str, Any]:
    """One batch size of a `--sweep`: the shape, its latency summary (no raw samples), memory."""
    shape = [int(d) for d in input_shape]
    return {
        "batch": shape[0],
        "input_shape": shape,
        "latency": _without_samples(latency),
        "peak_memory_mib": None if peak_memory_mib is None else float(peak_memory_mib),
    }


def validate_model_result(data: Any) -> list[str]:
    """Problems that make `data` not a schema-1 model result; an empty list means it is valid."""
    if not isinstance(data, dict):
        return [f"a model result must be a JSON object, got {type(data).__name__}"]
    problems: list[str] = []
    for key, types in _REQUIRED_KEYS.items():
        if key not in data:
            problems.append(f"missing key {key!r}")
        elif not isinstance(data[key], types) or isinstance(data[key], bool):
            problems.append(f"{key!r} has type {type(data[key]).__name__}")
    if data.get("schema_version") not in (None, SCHEMA_VERSION):
        problems.append(
            f"schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; "
            "use the same seekdeploy version on both ends"
        )
    latency = data.get("latency")
    if isinstance(latency, dict):
        problems.extend(f"latency lacks {key!r}" for key in _LATENCY_KEYS if key not in latency)
    return problems


def _without_samples(latency: dict[str, Any]) -> dict[str, Any]:
    # Raw samples are kept once, in "latency"; summaries elsewhere stay small.
    trimmed = {key: value for key, value in latency.items() if key != "samples_ms"}
    if isinstance(trimmed.get("device_compute"), dict):
        trimmed["device_compute"] = _without_samples(trimmed["device_compute"])
    return trimmed
