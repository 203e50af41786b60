"""The report's CPU section: fp32 vs INT8, and the reference runtime (ONNX Runtime) vs every other
runtime that runs the export's ONNX copies (`Runtime.runs_precision_copies`: OpenVINO), per role.

Size and test top-1 come from the export's manifests (the INT8 proof, and another runtime's own
top-1 where its export step proved it: the `files` of the manifest section named after it, e.g.
OpenVINO's parity); latency from every profiling result saved in the export folder (`profile*.json` beside the roles, `*.profile*.json` inside them: e.g. `seekdeploy profile
exports/<run>/base/model.int8.onnx --profile x86-cpu --role base`), keyed by the model file's
precision, the runtime and the batch. The section is absent when the export has no INT8 copy and
no result of a runtime other than the reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seekdeploy import layout
from seekdeploy.backends import REFERENCE_RUNTIME, list_backends
from seekdeploy.roles import ROLE_NAMES

PRECISION_OF_FILE = {**{name: precision for precision, name in layout.ONNX_BY_PRECISION.items()},
                     layout.ONNX_OPTIMIZED: "fp32"}
COLUMNS = ("role", "precision", "runtime", "file KiB", "test top-1", "batch", "p50 ms", "vs fp32")


def cpu_section(export_dir: Path, manifests: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """Rows (one per role, precision, runtime and measured batch) and the files they came from."""
    latency, sources = _measured_latency(export_dir)
    runtimes = [REFERENCE_RUNTIME, *(backend.name for backend in list_backends()
                                     if backend.runtime.runs_precision_copies and backend.name != REFERENCE_RUNTIME)]
    rows = []
    for role in ROLE_NAMES:
        manifest = manifests.get(role) or {}
        # runtime -> proofs per file: the reference's own (parity), the others' in their manifest section
        proven = {runtime: ((manifest.get(runtime) or {}).get("files")) or {} for runtime in runtimes}
        proven[REFERENCE_RUNTIME] = files = (manifest.get("parity") or {}).get("files") or {}
        for name, precision in PRECISION_OF_FILE.items():
            if name not in files or name == layout.ONNX_OPTIMIZED:
                continue
            size_kib = manifest["files"][name]["bytes"] / 1024.0
            top1 = {runtime: (proven[runtime].get(name) or {}).get("test_top1") for runtime in runtimes}
            for runtime in runtimes:
                measured = sorted((batch, ms) for (r, p, rt, batch), ms in latency.items()
                                  if (r, p, rt) == (role, precision, runtime))
                for batch, p50_ms in measured or [(None, None)]:
                    if p50_ms is None and top1[runtime] is None:
                        continue
                    fp32_ms = latency.get((role, "fp32", runtime, batch))
                    rows.append({"role": role, "precision": precision, "runtime": runtime, "file_kib": size_kib,
                                 "test_top1": top1[runtime], "batch": batch, "p50_ms": p50_ms,
                                 "ratio_vs_fp32": p50_ms / fp32_ms if p50_ms and fp32_ms else None})
    if not any(row["precision"] == "int8" or row["runtime"] != REFERENCE_RUNTIME for row in rows):
        return None
    return {"rows": rows, "latency_sources": sources}


def _measured_latency(export_dir: Path) -> tuple[dict[tuple, float], list[str]]:
    # (role, precision, runtime, batch) -> p50 ms, from the newest file that measured it.
    found = sorted([*export_dir.glob("profile*.json"), *export_dir.glob("*/*.profile*.json")],
                   key=lambda path: path.stat().st_mtime)
    latency, sources = {}, []
    for path in found:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable side file; the verdict section reports profile.json itself
        results = document.get("results") if isinstance(document, dict) else None
        for result in results if isinstance(results, list) else []:
            precision = PRECISION_OF_FILE.get(str(result.get("model_file")))
            role, runtime = result.get("role"), result.get("runtime")
            if precision is None or role not in ROLE_NAMES or not isinstance(result.get("latency"), dict):
                continue
            latency[(role, precision, runtime, result.get("batch"))] = result["latency"]["median_ms"]
            for entry in result.get("sweep") or []:
                latency[(role, precision, runtime, entry.get("batch"))] = entry["latency"]["median_ms"]
            sources.append(str(path))
    return latency, sorted(set(sources))


def cpu_rows(section: dict[str, Any]) -> list[list[str]]:
    """The section's rows as table cells (Markdown and HTML)."""
    def cell(value: Any, pattern: str) -> str:
        return "-" if value is None else pattern.format(value)

    return [[row["role"], row["precision"], row["runtime"], cell(row["file_kib"], "{:.1f}"),
             cell(row["test_top1"], "{:.2%}"), cell(row["batch"], "{}"), cell(row["p50_ms"], "{:.4f}"),
             cell(row["ratio_vs_fp32"], "{:.2f}x")] for row in section["rows"]]
