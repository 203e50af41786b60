"""How well does the latency predictor predict specs it never saw? Roofline vs calibrated.

Calibrates the profile on a design (corners + random specs of the family grid), then exports and
times N *other* random specs of the same grid (never used for fitting) with the same protocol
(the profiling runner, `calibration.CALIBRATION_WINDOWS` windows, the quietest window's median is
the measured typical latency; held-out specs are timed once, never re-timed) and compares each
predictor's typical latency with it: mean absolute percentage error (MAPE) and the share of specs
within +-10 %. Also reported: the budget-percentile prediction (typical x tail factor) against
the percentile of the window the profiling runner reports. Writes JSON.

    python bench/predictor_accuracy.py --profile x86-cpu [--arch resnet] [--specs 24] [--test-specs 30]

Timing windows are short (--duration-ms) so the whole run takes minutes on 2 cores; the
calibration is written to a temporary folder, not to ./profiles/, unless --keep-calibration.
To see what a busy device does to the figures, run it under `bench/background_load.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _errors(predicted: list[float], measured: list[float]) -> dict[str, float]:
    predicted_array, measured_array = np.asarray(predicted), np.asarray(measured)  # (N,)
    relative = (predicted_array - measured_array) / measured_array
    return {"mape_percent": float(100 * np.mean(np.abs(relative))),
            "within_10_percent_share": float(np.mean(np.abs(relative) <= 0.10)),
            "median_signed_error_percent": float(100 * np.median(relative))}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="x86-cpu")
    parser.add_argument("--arch", default="resnet", choices=["resnet", "mbconv", "vit"])
    parser.add_argument("--specs", type=int, default=24, help="design specs used for the fit")
    parser.add_argument("--test-specs", type=int, default=30, help="held-out specs never fitted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--opset", type=int, default=None, help="export opset [the profile's]")
    parser.add_argument("--warmup-ms", type=float, default=50.0)
    parser.add_argument("--duration-ms", type=float, default=250.0)
    parser.add_argument("--min-iterations", type=int, default=30)
    parser.add_argument("--keep-calibration", action="store_true", help="write it to ./profiles/")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output [bench/results/predictor_accuracy/<profile>.<arch>.json]")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    from seekdeploy._io import atomic_write_json
    from seekdeploy.plan.calibration import calibrate_profile, default_opset, measure_specs
    from seekdeploy.plan.predictor import RooflinePredictor
    from seekdeploy.plan.space import design_specs
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.profiles.schema import MeasurementProtocol

    profile = load_profile(args.profile)
    protocol = MeasurementProtocol(warmup_ms=args.warmup_ms, warmup_iterations=5,
                                   duration_ms=args.duration_ms, min_iterations=args.min_iterations)
    opset = args.opset or default_opset(profile)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    design = design_specs(args.arch, args.specs, seed=args.seed, profile=profile)
    held_out = design_specs(args.arch, args.test_specs, seed=args.seed + 1, exclude=frozenset(design),
                            corners=False, profile=profile)
    folder = Path("profiles") if args.keep_calibration else Path(tempfile.mkdtemp(prefix="seekdeploy-bench-"))
    print(f"calibrating {profile.name}/{args.arch} on {len(design)} specs (opset {opset})…", flush=True)
    calibration = calibrate_profile(profile, args.arch, design=design, opset=opset, protocol=protocol,
                                    folder=folder, seed=args.seed)
    print(f"  fit {calibration.fit.model}: cross-validated MAPE {calibration.fit.heldout_mape_percent:.1f}% "
          f"({calibration.retimed_points} design points re-timed, "
          f"{time.perf_counter() - started:.0f} s)", flush=True)
    if calibration.fit_suspect:
        print("  warning: the fit stays poor after re-timing the design: the machine was busy", flush=True)
    print(f"timing {len(held_out)} held-out specs…", flush=True)
    measured, _ = measure_specs(profile, held_out, opset=opset, protocol=protocol, seed=args.seed + 1)
    predictors = {"roofline": RooflinePredictor(profile), "calibrated": calibration.predictor}
    medians = [m.median_ms for m in measured]
    percentile = profile.budget("base").latency_percentile
    tails = [float(m.reported[f"p{percentile:g}_ms"]) for m in measured]
    summary, rows = {}, []
    for name, predictor in predictors.items():
        typical = [predictor.predict_latency_ms(m.spec) for m in measured]
        at_percentile = [predictor.predict_percentile_ms(m.spec, percentile) for m in measured]
        summary[name] = {"typical": _errors(typical, medians),
                         f"p{percentile:g}": _errors(at_percentile, tails)}
    for m in measured:
        rows.append({**m.to_json(), **{f"{name}_ms": p.predict_latency_ms(m.spec) for name, p in predictors.items()}})
    seconds = time.perf_counter() - started
    _print_table(summary, percentile)
    document = {"kind": "seekdeploy.bench.predictor_accuracy", "profile": profile.name, "arch": args.arch,
                "design_specs": len(design), "held_out_specs": len(held_out), "opset": opset,
                "retimed_design_points": calibration.retimed_points,
                "fit_suspect": calibration.fit_suspect,
                "protocol": vars(args) | {"out": None}, "fit": calibration.fit.__dict__,
                "tail_ratios": calibration.tail_ratios, "fingerprint": calibration.fingerprint,
                "summary": summary, "held_out": rows, "seconds": seconds,
                "load_average_1min": {"start": load_at_start[0], "end": os.getloadavg()[0]},
                "goal": {"mape_percent_max": 10.0, "within_10_percent_share_min": 0.8}}
    out = args.out or Path("bench/results/predictor_accuracy") / f"{profile.name}.{args.arch}.json"
    atomic_write_json(out, json.loads(json.dumps(document, default=str)))
    print(f"written to {out} ({seconds:.0f} s)")


def _print_table(summary: dict[str, Any], percentile: float) -> None:
    print(f"{'predictor':<14} {'MAPE %':>6} {'within 10%':>11} {'bias %':>8}   "
          f"{'p' + format(percentile, 'g') + ' MAPE %':>12} {'within 10%':>11}")
    for name, figures in summary.items():
        typical, tail = figures["typical"], figures[f"p{percentile:g}"]
        tail_text = f"{tail['mape_percent']:>12.1f} {tail['within_10_percent_share']:>11.0%}"
        print(f"{name:<14} {typical['mape_percent']:>6.1f} {typical['within_10_percent_share']:>11.0%} "
              f"{typical['median_signed_error_percent']:>+8.1f}   {tail_text}")


if __name__ == "__main__":
    main()
