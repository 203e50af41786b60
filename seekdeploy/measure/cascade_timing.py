"""Time the cascade on real inputs: its latency is a distribution over the test split's images.

Every test image is run at batch 1 through cascade.onnx, the base's model.onnx and the motivated
model's model.onnx, in rotating order per image, so the three see the same machine conditions; the
whole split is timed `passes` times and each image keeps its median. Reported: the cascade's mean,
p50 and p95, its escalation rate, the latency of each path (images that stop at the base, images the
motivated model answers), each model alone, the ratios the issue asks for (cascade mean over the
motivated model's, stop-at-base over the base alone), the threshold frontier (test top-1 vs mean
latency from the two measured path latencies) and the motivated budget judged on the measured
distribution. Timing: `time.perf_counter()` around `session.run` (CPU: returns when done).

Where OpenVINO is installed, the same three files are timed again by OpenVINO on the CPU with the
same threads and the same protocol, in a child process after ONNX Runtime's window (so OpenVINO's
threads are not running while ONNX Runtime is timed, and its CPU plugin never runs in the calling
process), each file compiled for a static batch-1 input
as OpenVINO deployments compile it; the timed call is the synchronous `InferRequest.infer`, reading
the input and writing the outputs in place. Its figures and whether its decisions equal ONNX
Runtime's go to profile.json's `CASCADE_TIMING_KEY` section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json
from seekdeploy.backends.openvino import CASCADE_TIMING_KEY
from seekdeploy.roles import Role

BASE, MOTIVATED = Role.BASE.value, Role.MOTIVATED.value  # JSON keys of profile.json

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.profiles.schema import Budget

DEFAULT_PASSES = 3
WARMUP_RUNS = 50
FRONTIER_THRESHOLDS = tuple(round(i / 20, 2) for i in range(21))  # 0.00, 0.05, ..., 1.00
CASCADE = "cascade"  # the timed name of cascade.onnx beside the roles'

# One synchronous batch-1 inference: (1, C, H, W) float32 -> the model's outputs, indexed by position.
Infer = Callable[["np.ndarray"], Any]


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


def _onnxruntime_infer(session: Any) -> Infer:
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})


def _time_images(runners: dict[str, Infer], images: np.ndarray, passes: int) -> dict[str, np.ndarray]:
    # name -> (N,) per-image median latency in ms, plus "answered_by" (N,) from the cascade's run.
    import numpy as np

    names = list(runners)
    times = {name: np.zeros((passes, len(images))) for name in names}
    answered = np.zeros(len(images), dtype=np.int64)
    for name in names:  # warm every runner up on real images
        for image in images[:WARMUP_RUNS]:
            runners[name](np.ascontiguousarray(image[None]))
    for p in range(passes):
        for i, image in enumerate(images):
            batch = np.ascontiguousarray(image[None])  # (1, C, H, W)
            for k in range(len(names)):
                name = names[(i + k + p) % len(names)]
                start = time.perf_counter()
                out = runners[name](batch)
                times[name][p, i] = (time.perf_counter() - start) * 1e3
                if name == CASCADE and p == 0:
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
    runners = {CASCADE: _onnxruntime_infer(cascade.session),
               **{role: _onnxruntime_infer(_session(export.role(role).onnx(), threads)) for role in (BASE, MOTIVATED)}}
    images = np.ascontiguousarray(images, dtype=np.float32)
    measured = _time_images(runners, images, passes)
    timed = _summarize(measured)
    outputs = cascade.run(images)
    document = {
        "kind": layout.CASCADE_KIND, "split": "test", "n_images": int(len(images)), "batch": 1,
        "threads": threads, "passes": passes, "runtime": "onnxruntime (CPUExecutionProvider)",
        "threshold": cascade.threshold, "top1": float(np.mean(outputs.logits.argmax(axis=1) == labels)), **timed,
        "frontier": _frontier_from(export, outputs.confidence, images, labels, timed["paths"], timed["alone"]),
        "budget": _judge(budget, measured[CASCADE]),
        CASCADE_TIMING_KEY: _time_openvino(export, images, passes, threads, measured["answered_by"]),
    }
    atomic_write_json(folder.profile_document, document)
    return document


def _summarize(measured: dict[str, np.ndarray]) -> dict[str, Any]:
    # The escalation rate and the stats of the cascade, of each of its paths and of each model alone.
    escalated = measured["answered_by"] == 1
    paths = {BASE: _stats(measured[CASCADE][~escalated]), MOTIVATED: _stats(measured[CASCADE][escalated])}
    alone = {BASE: _stats(measured[BASE]), MOTIVATED: _stats(measured[MOTIVATED])}
    overall = _stats(measured[CASCADE])
    return {"escalation_rate": float(escalated.mean()), "cascade": overall, "paths": paths, "alone": alone,
            "ratios": _ratios(overall, paths, alone)}


def _time_openvino(export: layout.ExportLayout, images: np.ndarray, passes: int, threads: int,
                   onnxruntime_answered_by: np.ndarray) -> dict[str, Any]:
    # profile.json's CASCADE_TIMING_KEY section: the same protocol run by OpenVINO (see module docstring).
    import multiprocessing

    import numpy as np

    from seekdeploy.backends.openvino import NOT_INSTALLED_REASON, openvino_installed

    if not openvino_installed():
        return {"run": False, "reason": NOT_INSTALLED_REASON}
    files = {CASCADE: export.cascade.onnx, BASE: export.role(BASE).onnx(), MOTIVATED: export.role(MOTIVATED).onnx()}
    # OpenVINO runs in a child process: once its CPU plugin has inferred in a process, a SIGTERM
    # delivered to that process crashed it (SIGSEGV in the delivery), and training in the same
    # process stops on SIGTERM.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        measured, version, device = pool.apply(_openvino_timing, ({name: str(path) for name, path in files.items()},
                                                                  images, passes, threads))
    return {"run": True, "version": version, "device": device, "threads": threads, **_summarize(measured),
            "decisions_equal_onnxruntime": bool(np.array_equal(measured["answered_by"], onnxruntime_answered_by))}


def _openvino_timing(files: dict[str, str], images: np.ndarray, passes: int,
                     threads: int) -> tuple[dict[str, np.ndarray], str, str]:
    # In the child: (the per-image medians of every file under OpenVINO, its version, its device).
    from seekdeploy.backends.agent_openvino import DEVICE, input_name_of, version_of
    from seekdeploy.backends.openvino import compile_for_cpu, import_openvino

    def infer(path: str) -> Infer:
        compiled, request = compile_for_cpu(path, threads, (1, *images.shape[1:]))
        name = input_name_of(compiled)
        # Input and outputs shared in place (the cascade's decision is read before the next run):
        # with the default copies the demo export's base took 0.26 ms a call instead of 0.19.
        return lambda batch: request.infer({name: batch}, share_inputs=True, share_outputs=True)

    measured = _time_images({name: infer(path) for name, path in files.items()}, images, passes)
    return measured, version_of(import_openvino()), DEVICE


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
    lines.append("  " + openvino_line(document[CASCADE_TIMING_KEY]))
    budget = document.get("budget")
    if budget:
        verdict = "PASS" if budget["passed"] else "FAIL"
        lines.append(f"  {verdict} cascade p{budget['percentile']:g} {budget['measured_ms']:.3f} ms vs the motivated "
                     f"budget {budget['latency_ms']:g} ms (measured distribution)")
    return lines


def openvino_line(section: dict[str, Any]) -> str:
    """One line on profile.json's CASCADE_TIMING_KEY section: the cascade's mean and its ratios under OpenVINO,
    or why OpenVINO did not time it."""
    if not section["run"]:
        return f"OpenVINO: not timed ({section['reason']})"
    ratios, stop_at_base = section["ratios"], section["ratios"]["stop_at_base_median_over_base_median"]
    return (f"OpenVINO {section['version']} ({section['device']}, {section['threads']} thread(s)): cascade mean "
            f"{section['cascade']['mean_ms']:.3f} ms, p95 {section['cascade']['p95_ms']:.3f}; cascade mean / motivated "
            f"mean {ratios['cascade_mean_over_motivated_mean']:.2f}x"
            + (f", stop-at-base p50 / base p50 {stop_at_base:.2f}x" if stop_at_base is not None else "")
            + ("; decisions equal onnxruntime's" if section["decisions_equal_onnxruntime"]
               else "; decisions DIFFER from onnxruntime's"))
