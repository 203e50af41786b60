"""INT8 vs fp32 and ONNX Runtime vs OpenVINO on a CPU target, for both roles of a trained pair.

    python bench/int8_vs_fp32.py runs/<run> --profile x86-cpu [--windows 3]

Exports the run with `--precision int8` (model.onnx + model.int8.onnx per role, with the INT8
proof: agreement and test top-1 drop), then times every (role, precision, runtime) with the
profile's protocol and threads, at batch 1 and batch 32, through the same standalone agent
`seekdeploy profile` uses (a fresh child process per measurement). The measurements are
interleaved in `--windows` rounds so background load falls on all of them alike; per figure the
quietest window (lowest median) is kept. Reports, per role: p50 latency of each combination, the
INT8/fp32 latency ratio per runtime and batch (goal <= 0.6), the file size ratio, test top-1 of
fp32 and INT8 in both runtimes and the drop (goal <= 0.5 pp). The machine's load is recorded
beside the figures (load average, and the cores other programs, niced ones apart, kept busy).
Writes JSON and Markdown to `--out-dir` (default bench/results/int8_vs_fp32/<run>).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json, atomic_write_text

BATCHES = (1, 32)
PRECISION_FILES = {"fp32": "model.onnx", "int8": layout.ONNX_INT8}
RUNTIMES = ("onnxruntime", "openvino")
GOAL_LATENCY_RATIO = 0.6
GOAL_DROP_PP = 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="trained run folder (runs/<name>)")
    parser.add_argument("--profile", default="x86-cpu", help="CPU hardware profile (default x86-cpu)")
    parser.add_argument("--windows", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the profile's)")
    parser.add_argument("--calibration-method", default="minmax", help="minmax | entropy | percentile")
    parser.add_argument("--calibration-images", type=int, default=256, help="training images (default 256)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default bench/results/int8_vs_fp32/<run>")
    return parser.parse_args(argv)


def export_pair(run: Path, profile: str, folder: Path, args: argparse.Namespace) -> Path:
    """Export both roles with the INT8 copy into `folder`; returns the export folder."""
    from seekdeploy.export.export_run import export_run
    from seekdeploy.export.options import parse_export_options

    options = parse_export_options(precision="int8", profile=profile, out_dir=folder,
                                   calibration_method=args.calibration_method,
                                   calibration_images=args.calibration_images,
                                   max_accuracy_drop_pp=100.0)  # measure the drop, never refuse here
    return export_run(run, options).export_dir


def time_round(export_dir: Path, hardware: Any, chw: tuple[int, int, int], threads: int) -> dict[tuple, dict]:
    """One window of every (role, precision, runtime): batch 1 timed, batch 32 as its sweep."""
    from seekdeploy.remote.local_agent import measure_in_child
    from seekdeploy.runtime.timing import ProtocolSettings

    protocol = ProtocolSettings.from_protocol(hardware.measurement)
    figures = {}
    for role in ("base", "motivated"):
        for precision, name in PRECISION_FILES.items():
            for runtime in RUNTIMES:
                result = measure_in_child(
                    export_dir / role / name, input_shape=(1, *chw), protocol=protocol,
                    providers=tuple(hardware.runtime.execution_providers), threads=threads,
                    role=role, precision=precision, sweep_batches=BATCHES[1:], runtime=runtime)  # fmt: skip
                by_batch = {1: result["latency"], **{e["batch"]: e["latency"] for e in result["sweep"]}}
                for batch in BATCHES:
                    figures[(role, precision, runtime, batch)] = {
                        "p50_ms": by_batch[batch]["median_ms"], "p95_ms": by_batch[batch]["p95_ms"],
                        "iterations": by_batch[batch]["iterations"]}
    return figures


def niced_and_other_cores(load: dict[str, Any]) -> dict[str, float]:
    """Cores kept busy during a round by niced processes (the shared benchmarks) and by the rest,
    excluding this benchmark's own children (nice 0, named python)."""
    processes = load.get("busy_processes") or []
    niced = sum(p["cores"] for p in processes if (p.get("nice") or 0) > 0)
    return {"niced_busy_cores": round(niced, 2), "busy_cores": round(load.get("busy_cores") or 0.0, 2)}


def accuracies(export_dir: Path, run: Path) -> dict[tuple, float]:
    """Test top-1 of every (role, precision, runtime): ONNX Runtime's from the manifests, OpenVINO's
    measured here on the same test split."""
    from seekdeploy.export.parity import accuracy
    from seekdeploy.export.static_models import load_eval_data
    from seekdeploy.backends.openvino import openvino_logits
    from seekdeploy.train.checkpoint import load_run

    data = load_eval_data(load_run(run), calibration_images=1)
    top1 = {}
    for role in ("base", "motivated"):
        manifest = json.loads((export_dir / role / "manifest.json").read_text())
        for precision, name in PRECISION_FILES.items():
            top1[(role, precision, "onnxruntime")] = manifest["parity"]["files"][name]["test_top1"]
            logits = openvino_logits(export_dir / role / name, data.test_images)
            top1[(role, precision, "openvino")] = accuracy(logits, data.test_labels)
    return top1


def summarize(export_dir: Path, rounds: list[dict], top1: dict[tuple, float]) -> list[dict[str, Any]]:
    """Per role: quietest-window latency of every combination, ratios, sizes and accuracy."""
    rows = []
    for role in ("base", "motivated"):
        sizes = {p: (export_dir / role / name).stat().st_size for p, name in PRECISION_FILES.items()}
        row: dict[str, Any] = {"role": role, "file_bytes": sizes, "size_ratio": sizes["int8"] / sizes["fp32"]}
        for runtime in RUNTIMES:
            for batch in BATCHES:
                row[f"{runtime}_b{batch}"] = _latency_cell(rounds, (role, runtime, batch))
            fp32_top1, int8_top1 = top1[(role, "fp32", runtime)], top1[(role, "int8", runtime)]
            row[f"{runtime}_top1"] = {"fp32": fp32_top1, "int8": int8_top1, "drop_pp": 100 * (fp32_top1 - int8_top1)}
        rows.append(row)
    return rows


def _latency_cell(rounds: list[dict], key: tuple[str, str, int]) -> dict[str, Any]:
    # Quietest window of each precision, their ratio, and the median of the per-window ratios
    # (fp32 and INT8 timed moments apart in the same round, so load drift cancels out).
    import statistics

    role, runtime, batch = key
    windows = {p: [r[(role, p, runtime, batch)]["p50_ms"] for r in rounds] for p in PRECISION_FILES}
    fp32, int8 = min(windows["fp32"]), min(windows["int8"])
    paired = statistics.median(i / f for f, i in zip(windows["fp32"], windows["int8"]))
    return {"fp32_p50_ms": fp32, "int8_p50_ms": int8, "ratio": int8 / fp32, "paired_ratio_median": paired,
            "windows_p50_ms": windows}


def _goal(value: float, goal: float, unit: str = "") -> str:
    return "met" if value <= goal else f"missed by {value - goal:.2f}{unit}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The tables docs/results.md quotes."""
    header = (f"INT8 vs fp32 on {meta['profile']} ({meta['run']}; {meta['windows']} interleaved windows, "
              f"quietest kept; threads {meta['threads']}; load average {meta['loadavg_start']} -> "
              f"{meta['loadavg_end']}; per round {meta['round_loads']})")
    return "\n".join([header, "", *_latency_table(rows), "", *_accuracy_table(rows), "",
                      "ONNX Runtime vs OpenVINO, same run (p50 ms, quietest window):", "",
                      *_runtime_table(rows)]) + "\n"


def _table(columns: list[str], cells: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(row) + " |" for row in cells)]


def _latency_table(rows: list[dict[str, Any]]) -> list[str]:
    cells = []
    for row in rows:
        for runtime in RUNTIMES:
            for batch in BATCHES:
                cell = row[f"{runtime}_b{batch}"]
                cells.append([row["role"], runtime, str(batch), f"{cell['fp32_p50_ms']:.4f}", f"{cell['int8_p50_ms']:.4f}",
                              f"{cell['ratio']:.2f}", f"{cell['paired_ratio_median']:.2f}",
                              _goal(cell["ratio"], GOAL_LATENCY_RATIO)])
    return _table(["role", "runtime", "batch", "fp32 p50 ms", "INT8 p50 ms", "INT8/fp32",
                   "median per-window ratio", "goal <= 0.6"], cells)


def _accuracy_table(rows: list[dict[str, Any]]) -> list[str]:
    cells = []
    for row in rows:
        sizes = row["file_bytes"]
        for runtime in RUNTIMES:
            acc = row[f"{runtime}_top1"]
            cells.append([row["role"], f"{sizes['fp32']:,}", f"{sizes['int8']:,}", f"{row['size_ratio']:.2f}", runtime,
                          f"{acc['fp32']:.2%}", f"{acc['int8']:.2%}", f"{acc['drop_pp']:.2f}",
                          _goal(acc["drop_pp"], GOAL_DROP_PP, " pp")])
    return _table(["role", "fp32 bytes", "INT8 bytes", "size ratio", "runtime", "fp32 top-1", "INT8 top-1",
                   "drop pp", "goal <= 0.5 pp"], cells)


def _runtime_table(rows: list[dict[str, Any]]) -> list[str]:
    cells = []
    for row in rows:
        for precision in PRECISION_FILES:
            for batch in BATCHES:
                ort, ov = (row[f"{r}_b{batch}"][f"{precision}_p50_ms"] for r in RUNTIMES)
                cells.append([row["role"], precision, str(batch), f"{ort:.4f}", f"{ov:.4f}", f"{ov / ort:.2f}"])
    return _table(["role", "precision", "batch", "onnxruntime", "openvino", "openvino/onnxruntime"], cells)


def main(argv: list[str] | None = None) -> int:
    """Export, time in interleaved rounds, summarize, write JSON and Markdown."""
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.runtime.environment import read_loadavg, watch_load

    args = parse_args(argv)
    hardware = load_profile(args.profile)
    out_dir = args.out_dir or Path("bench/results/int8_vs_fp32") / args.run.name
    threads = hardware.runtime.threads if args.threads is None else args.threads
    loadavg_start = read_loadavg()
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as folder:
        export_dir = export_pair(args.run, args.profile, Path(folder), args)
        chw = tuple(json.loads((export_dir / "base" / "manifest.json").read_text())["input"]["shape"][1:])
        rounds, loads = [], []
        for index in range(args.windows):
            finish = watch_load()
            rounds.append(time_round(export_dir, hardware, chw, threads))
            loads.append(niced_and_other_cores(finish()))
            print(f"round {index + 1}/{args.windows}: load {loads[-1]}", file=sys.stderr)
        rows = summarize(export_dir, rounds, accuracies(export_dir, args.run))
    meta = {"run": str(args.run), "profile": hardware.name, "windows": args.windows,
            "threads": threads, "calibration_method": args.calibration_method,
            "calibration_images": args.calibration_images, "loadavg_start": loadavg_start,
            "loadavg_end": read_loadavg(), "round_loads": loads, "cpu_count": os.cpu_count()}
    text = markdown(rows, meta)
    print(text)
    atomic_write_json(out_dir / "summary.json", {"meta": meta, "roles": rows})
    atomic_write_text(out_dir / "summary.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
