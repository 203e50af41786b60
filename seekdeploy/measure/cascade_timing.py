"""Time the cascade on real inputs: its latency is a distribution over the test split's images.

Every test image is run at batch 1 through cascade.onnx, the base's model.onnx and the motivated
model's model.onnx, in rotating order per image, so the three see the same machine conditions; the
whole split is timed `passes` times and each image keeps its median. Reported: the cascade's mean,
p50 and p95, its escalation rate, the latency of each path (images that stop at the base, images the
motivated model answers), each model alone, the ratios the issue asks for (cascade mean over the
motivated model's, stop-at-base over the base alone), the threshold frontier (test top-1 vs mean
latency from the two measured path latencies) and the motivated budget judged on the measured
distribution. Timing: `time.perf_counter()` around `session.run` (CPU: returns when done).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json
from seekdeploy.roles import Role

BASE, MOTIVATED = Role.BASE.value, Role.MOTIVATED.value  # JSON keys of profile.json

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.profiles.schema import Budget

DEFAULT_PASSES = 3
WARMUP_RUNS = 50
FRONTIER_THRESHOLDS = tuple(round(i / 20, 2) for i in range(21))  # 0.00, 0.05, ..., 1.00


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_latency_ms(path: Path, runs: int = 200, threads: int = 1) -> float:
    """Median batch-1 latency of an ONNX classifier over `runs` runs on a zero image (path latency)."""
    import numpy as np

    session = _session(path, threads)
    meta = session.get_inputs()[0]
    image = np.zeros([1, *meta.shape[1:]], dtype=np.float32)
    samples = []
    for index in range(WARMUP_RUNS + runs):
        start = time.perf_counter()
        session.run(None, {meta.name: image})
        if index >= WARMUP_RUNS:
            samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def _time_images(sessions: dict[str, Any], images: np.ndarray, passes: int) -> dict[str, np.ndarray]:
    # name -> (N,) per-image median latency in ms, plus "answered_by" (N,) from the cascade's run.
    import numpy as np

    names = list(sessions)
    inputs = {name: session.get_inputs()[0].name for name, session in sessions.items()}
    times = {name: np.zeros((passes, len(images))) for name in names}
    answered = np.zeros(len(images), dtype=np.int64)
    for name in names:  # warm every session up on real images
        for image in images[:WARMUP_RUNS]:
            sessions[name].run(None, {inputs[name]: image[None]})
    for p in range(passes):
        for i, image in enumerate(images):
            batch = np.ascontiguousarray(image[None])  # (1, C, H, W)
            for k in range(len(names)):
                name = names[(i + k + p) % len(names)]
                start = time.perf_counter()
                out = sessions[name].run(None, {inputs[name]: batch})
                times[name][p, i] = (time.perf_counter() - start) * 1e3
                if name == "cascade" and p == 0:
                    answered[i] = out[1][0]
    medians = {name: np.median(t, axis=0) for name, t in times.items()}
    return {**medians, "answered_by": answered}


def _stats(samples: np.ndarray) -> dict[str, float | int]:
    import numpy as np

    if samples.size == 0:
        return {"n": 0}
    return {"n": int(samples.size), "mean_ms": float(samples.mean()), "p50_ms": float(np.percentile(samples, 50)),
            "p95_ms": float(np.percentile(samples, 95)), "min_ms": float(samples.min()),
            "max_ms": float(samples.max())}


def frontier(confidence: np.ndarray, base_correct: np.ndarray, motivated_correct: np.ndarray,
             base_path_ms: float, escalated_path_ms: float) -> list[dict[str, float]]:
    """Test top-1 and expected mean latency at each threshold, from the measured path latencies."""
    import numpy as np

    points = []
    for threshold in FRONTIER_THRESHOLDS:
        unsure = confidence < threshold
        rate = float(unsure.mean())
        points.append({"threshold": threshold, "escalation_rate": rate,
                       "top1": float(np.where(unsure, motivated_correct, base_correct).mean()),
                       "mean_latency_ms": (1 - rate) * base_path_ms + rate * escalated_path_ms})
    return points


def profile_cascade(export_dir: Path, images: np.ndarray, labels: np.ndarray, *, threads: int = 1,
                    passes: int = DEFAULT_PASSES, budget: Budget | None = None) -> dict[str, Any]:
    """Time the cascade and both models on `images` (see module docstring); write and return
    `exports/<run>/cascade/profile.json`."""
    import numpy as np

    from seekdeploy.export.cascade_check import open_cascade, read_cascade_manifest

    export = layout.ExportLayout(Path(export_dir))
    folder = export.cascade
    manifest = read_cascade_manifest(folder.folder)
    cascade = open_cascade(folder.onnx, manifest, threads=threads)  # refuses a corrupt or mismatched file
    sessions = {"cascade": cascade.session, BASE: _session(export.role(BASE).onnx(), threads),
                MOTIVATED: _session(export.role(MOTIVATED).onnx(), threads)}
    images = np.ascontiguousarray(images, dtype=np.float32)
    measured = _time_images(sessions, images, passes)
    escalated = measured["answered_by"] == 1
    paths = {BASE: _stats(measured["cascade"][~escalated]), MOTIVATED: _stats(measured["cascade"][escalated])}
    alone = {BASE: _stats(measured[BASE]), MOTIVATED: _stats(measured[MOTIVATED])}
    overall = _stats(measured["cascade"])
    outputs = cascade.run(images)
    document = {
        "kind": layout.CASCADE_KIND, "split": "test", "n_images": int(len(images)), "batch": 1,
        "threads": threads, "passes": passes, "runtime": "onnxruntime (CPUExecutionProvider)",
        "threshold": cascade.threshold, "escalation_rate": float(escalated.mean()),
        "top1": float(np.mean(outputs.logits.argmax(axis=1) == labels)),
        "cascade": overall, "paths": paths, "alone": alone,
        "ratios": _ratios(overall, paths, alone),
        "frontier": _frontier_from(export, outputs.confidence, images, labels, paths, alone),
        "budget": _judge(budget, measured["cascade"]),
    }
    atomic_write_json(folder.profile_document, document)
    return document


def _ratios(overall: dict, paths: dict, alone: dict) -> dict[str, float | None]:
    def ratio(a: dict, b: dict, key: str) -> float | None:
        return a[key] / b[key] if a.get("n") and b.get("n") else None

    return {"cascade_mean_over_motivated_mean": ratio(overall, alone[MOTIVATED], "mean_ms"),
            "stop_at_base_median_over_base_median": ratio(paths[BASE], alone[BASE], "p50_ms"),
            "stop_at_base_mean_over_base_mean": ratio(paths[BASE], alone[BASE], "mean_ms")}


def _frontier_from(export: layout.ExportLayout, confidence: np.ndarray, images: np.ndarray, labels: np.ndarray,
                   paths: dict, alone: dict) -> list[dict[str, float]]:
    # Path latencies measured inside the cascade where both paths were taken, else the models alone.
    from seekdeploy.export.parity import run_onnx

    base_ms = paths[BASE]["mean_ms"] if paths[BASE].get("n") else alone[BASE]["mean_ms"]
    escalated_ms = (paths[MOTIVATED]["mean_ms"] if paths[MOTIVATED].get("n")
                    else alone[BASE]["mean_ms"] + alone[MOTIVATED]["mean_ms"])
    base_ok = run_onnx(export.role(BASE).onnx(), images).argmax(axis=1) == labels
    motivated_ok = run_onnx(export.role(MOTIVATED).onnx(), images).argmax(axis=1) == labels
    return frontier(confidence, base_ok, motivated_ok, base_ms, escalated_ms)


def _judge(budget: Budget | None, samples: np.ndarray) -> dict[str, Any] | None:
    # The motivated role's latency budget, at its percentile, over the cascade's measured distribution.
    import numpy as np

    if budget is None:
        return None
    measured = float(np.percentile(samples, budget.latency_percentile))
    return {"role_budget": MOTIVATED, "latency_ms": budget.latency_ms, "percentile": budget.latency_percentile,
            "measured_ms": measured, "passed": measured <= budget.latency_ms}


def profile_export_cascade(export_dir: Path, profile: Any, threads: int | None = None,
                           passes: int = DEFAULT_PASSES) -> dict[str, Any]:
    """`profile` of an export folder holding cascade/: the run's whole test split, batch 1, the profile's
    threads (1 where it says 0), the motivated budget judged on the measured distribution."""
    from seekdeploy._io import read_json_object
    from seekdeploy.export.static_models import load_eval_data
    from seekdeploy.train.checkpoint import load_run

    export = layout.ExportLayout(Path(export_dir))
    run_dir = read_json_object(export.role(Role.BASE.value).manifest).get("run_dir") or layout.run_dir_of(export.folder)
    data = load_eval_data(load_run(run_dir), max_parity_images=1, calibration_images=0)
    threads = threads if threads is not None else (profile.runtime.threads or 1)
    return profile_cascade(export.folder, data.test_images, data.test_labels, threads=threads, passes=passes,
                           budget=profile.budget(Role.MOTIVATED))


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What `profile` prints of the cascade's timing."""
    overall, paths, alone, ratios = document["cascade"], document["paths"], document["alone"], document["ratios"]

    def path(stats: dict) -> str:
        return f"{stats['mean_ms']:.3f} ms mean ({stats['n']} images)" if stats.get("n") else "not taken"

    lines = [
        f"cascade over {document['n_images']} test images, batch 1, {document['threads']} thread(s): mean "
        f"{overall['mean_ms']:.3f} ms, p50 {overall['p50_ms']:.3f}, p95 {overall['p95_ms']:.3f}; escalation "
        f"{document['escalation_rate']:.1%}; top-1 {document['top1']:.2%}",
        f"  stop at base {path(paths[BASE])}; escalated {path(paths[MOTIVATED])}",
        f"  alone: base {alone[BASE]['mean_ms']:.3f} ms mean, motivated {alone[MOTIVATED]['mean_ms']:.3f} ms mean; "
        f"cascade mean / motivated mean {ratios['cascade_mean_over_motivated_mean']:.2f}x"
        + (f", stop-at-base p50 / base p50 {ratios['stop_at_base_median_over_base_median']:.2f}x"
           if ratios["stop_at_base_median_over_base_median"] is not None else ""),
    ]
    budget = document.get("budget")
    if budget:
        verdict = "PASS" if budget["passed"] else "FAIL"
        lines.append(f"  {verdict} cascade p{budget['percentile']:g} {budget['measured_ms']:.3f} ms vs the motivated "
                     f"budget {budget['latency_ms']:g} ms (measured distribution)")
    return lines
