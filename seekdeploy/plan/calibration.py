"""Calibrate a profile: export and time a designed set of specs on the target, fit, store.

Each design spec (`space.design_specs`: corners + seeded random picks of the part of the family's
grid the profile's budgets can reach) is built with `build_static` (random weights: latency does
not depend on their values), exported with `export_onnx` at the profile's input, and timed with
the profile's protocol through the profiling runner (`measure.local.profile_model`) here, or
through the remote agent (`remote.profile_remote`) with `host`, in interleaved rounds of timed
windows (`measure_specs`).

What the fit targets is the median of the *quietest* window (the lowest median): the model's
typical latency on an otherwise idle device. Other work on a shared device only ever adds time, so
the quietest of several windows is the best estimate of what the model itself costs (the advice
of Python's `timeit` for the same reason). The fit (`fit.choose_fit`) is checked against every
design point, and a point it misses by far more than the rest is timed again once (a window
disturbed throughout is the usual cause), keeping the quieter measurement, before the final fit.

With `focus`, the first fit then predicts where each latency budget lies in the grid and that many
more specs near it (`space.focus_specs`) are timed and fitted with the rest: the design spans the
grid, the budgets need accuracy in one small part of it.

The tail ratios (p90/p95/p99 of the window the profiling runner reports, over the quiet median)
turn the typical latency into a budget percentile, so a device that is usually busy gets a larger
factor rather than a shifted fit. They are stored per design point (`tail_curve`, each point's
ratio smoothed with its neighbours in latency), since fixed noise weighs more on fast models
(measured on a quiet 2-core VM: p95/median 1.41-1.45 at 0.15 ms, 1.11-1.12 at 1.1 ms), and as the
median over the design (`tail_ratios`, for files and readers without the curve).
"""

from __future__ import annotations

import datetime
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy.backends import get_backend
from seekdeploy.errors import ConfigError, RemoteError
from seekdeploy.plan.calibration_file import (LOCAL_HOST, calibration_path, device_fingerprint,
                                              write_calibration)
from seekdeploy.plan.defaults import DEFAULT_CALIBRATION_SEED, DEFAULT_CALIBRATION_SPECS, ShapeRule
from seekdeploy.plan.fit import FitResult, choose_fit
from seekdeploy.plan.predictor import (FIT_MODELS, CalibratedPredictor, RooflinePredictor, feature_vector,
                                       input_geometry, spec_layers)

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec
    from seekdeploy.profiles.schema import HardwareProfile, MeasurementProtocol

# A device with more tail than this (other load, thermal throttling) says more about the moment
# than about the model; the factor is capped and the run warns.
MAX_TAIL_RATIO = 3.0
TAIL_PERCENTILES = ("90", "95", "99")
REPORTED_PERCENTILE = 95.0  # the budget percentile whose reporting rule picks the tail window
# Each spec is timed in six windows, two in each of three rounds over all specs, and the quietest
# window is fitted, so other work on the device does not pull the fit (on a 2-core VM under heavy
# background load, fitting the median of three back-to-back windows gave ~22 % held-out error
# instead of ~6 %).
CALIBRATION_ROUNDS = 3
CALIBRATION_WINDOWS_PER_ROUND = 2
# A design point the fit misses by more than this (relative), and by more than RETIME_SPREAD times
# the design's median miss, is timed again once.
RETIME_MIN_ERROR = 0.10
RETIME_SPREAD = 3.0
# A fit whose cross-validated error is above this (%) has the whole design timed again once, and
# is reported (`CalibrationResult.fit_suspect`) if it stays above. On a quiet 2-core VM the fits
# of all three families cross-validate at 1-7 %; designs timed while other work kept the VM busy
# fitted at 13-34 % and predicted held-out specs 20-26 % off.
RETIME_ALL_MAPE = 10.0


@dataclass(frozen=True)
class Measurement:
    """One design spec and its measured latency statistics (ms)."""

    spec: SubnetSpec
    latency: dict[str, Any]  # LatencyStats.to_json() of the quietest window (lowest median)
    reported: dict[str, Any]  # the window `profile` would report at p95 (`windows.reported_window`)
    timings: int = 1  # how many times the spec was timed (2 when the fit asked for a re-time)

    @classmethod
    def from_results(cls, spec: SubnetSpec, results: Sequence[dict[str, Any]]) -> Measurement:
        """From one spec's profiling results (local or remote): the quietest of all their windows,
        and the window `profile` would report for all of them when judging a p95 budget, so the
        tail the planner predicts is the tail a profile measures."""
        from seekdeploy.runtime.windows import reported_window

        windows = [window for result in results for window in (result.get("repeats") or [result["latency"]])]
        quietest = min(windows, key=lambda window: float(window["median_ms"]))
        return cls(spec, quietest, windows[reported_window(windows, REPORTED_PERCENTILE)])

    @property
    def median_ms(self) -> float:
        """The typical latency the fit targets: the quietest window's median."""
        return float(self.latency["median_ms"])

    def to_json(self) -> dict[str, Any]:
        """Spec text plus the summary figures (no raw samples)."""
        keys = ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms", "iterations")
        return {"spec": self.spec.to_text(), **{key: self.latency.get(key) for key in keys},
                "reported": {key: self.reported.get(key) for key in keys}, "timings": self.timings}


@dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate_profile` measured, fitted and wrote."""

    path: Path
    predictor: CalibratedPredictor
    fit: FitResult
    tail_ratios: dict[str, float]
    measurements: tuple[Measurement, ...]
    fingerprint: dict[str, Any]
    tail_capped: bool

    @property
    def retimed_points(self) -> int:
        """How many design points were timed twice."""
        return retimed_count(self.measurements)

    @property
    def fit_suspect(self) -> bool:
        """The fit predicts unseen design points worse than RETIME_ALL_MAPE even after re-timing."""
        return self.fit.heldout_mape_percent > RETIME_ALL_MAPE


def retimed_count(measurements: Sequence[Measurement]) -> int:
    """How many of `measurements` were timed twice (see `retime_outliers`)."""
    return sum(m.timings > 1 for m in measurements)


def default_opset(profile: HardwareProfile) -> int:
    """The opset `seekdeploy export` would use for this profile (the runtime backend's ceiling for
    its declared version, e.g. 17 for TensorRT 8.x, else the default)."""
    from seekdeploy.export.onnx_export import DEFAULT_OPSET

    ceiling_of = get_backend(profile.runtime.name).onnx_opset_ceiling
    ceiling = ceiling_of(str(profile.runtime.tensorrt_version or "")) if ceiling_of else None
    return min(ceiling, DEFAULT_OPSET) if ceiling else DEFAULT_OPSET


def measure_specs(profile: HardwareProfile, specs: Sequence[SubnetSpec], *, host: str | None = None, opset: int | None = None,
                  protocol: MeasurementProtocol | None = None, workdir: Path | None = None, seed: int = 0,
                  rounds: int = CALIBRATION_ROUNDS,
                  on_progress: Callable[[str, int, int], None] | None = None) -> tuple[list[Measurement], dict]:
    """Export every spec, then time them all on the target in interleaved rounds; return the
    measurements and the environment.

    Each round times every spec for `CALIBRATION_WINDOWS_PER_ROUND` windows, so a spec's windows
    are spread over the whole run and one long spell of other work on the device cannot cover all
    of them. `protocol` overrides the profile's measurement protocol (an object with its four
    fields). `on_progress(stage, done, total)` is called after each export ("export") and each
    timing ("time").
    """
    import torch

    from seekdeploy.export.onnx_export import export_onnx
    from seekdeploy.nn import build_static

    runtime = get_backend(profile.runtime.name).name
    if host is None and not get_backend(runtime).runtime.calibrates_here:
        raise ConfigError(f"profile {profile.name} runs {runtime}, which cannot be timed here; calibrate on "
                          f"the device with --host user@device")
    if rounds < 1:
        raise ConfigError(f"a calibration needs at least one timing round, got {rounds}")
    geometry = input_geometry(profile)
    shape = (profile.input.batch, profile.input.channels, profile.input.height, profile.input.width)
    report = on_progress or (lambda stage, done, total: None)
    environment: dict[str, Any] = {}
    results: list[list[dict[str, Any]]] = [[] for _ in specs]
    with tempfile.TemporaryDirectory(prefix="seekdeploy-calibrate-", dir=workdir) as folder:
        paths = []
        for index, spec in enumerate(specs):
            torch.manual_seed(seed + index)
            model = build_static(spec, **geometry).eval()
            paths.append(Path(folder) / f"design{index:03d}.onnx")
            export_onnx(model, paths[-1], input_shape=shape, opset=opset or default_opset(profile))
            report("export", index + 1, len(specs))
        for round_index in range(rounds):
            for index, onnx_path in enumerate(paths):
                result = _time_model(profile, onnx_path, host, protocol)
                environment = result.get("environment") or environment
                results[index].append(result)
                report("time", round_index * len(paths) + index + 1, rounds * len(paths))
    return [Measurement.from_results(spec, timed) for spec, timed in zip(specs, results)], environment


def _time_model(profile: HardwareProfile, onnx_path: Path, host: str | None, protocol: MeasurementProtocol | None) -> dict[str, Any]:
    from seekdeploy.runtime.timing import ProtocolSettings

    settings = ProtocolSettings.from_protocol(protocol or profile.measurement)
    if host is not None:
        import dataclasses

        from seekdeploy.measure.remote import profile_remote

        timed_profile = dataclasses.replace(profile, measurement=protocol) if protocol else profile
        outcome = profile_remote(onnx_path, timed_profile, [host], repeats=CALIBRATION_WINDOWS_PER_ROUND)[host]
        if outcome.error is not None:
            raise outcome.error
        if outcome.result is None:
            raise RemoteError(f"{host} returned no latency result for {onnx_path.name}")
        return outcome.result
    from seekdeploy.measure.local import ProfileRequest, profile_model

    shape = (profile.input.batch, profile.input.channels, profile.input.height, profile.input.width)
    runtime = get_backend(profile.runtime.name).name  # one that calibrates here
    request = ProfileRequest(model=onnx_path, runtime=runtime, input_shape=shape, protocol=settings,
                             providers=tuple(profile.runtime.execution_providers),
                             threads=int(profile.runtime.threads),
                             precision=profile.runtime.precision.value,
                             repeats=CALIBRATION_WINDOWS_PER_ROUND)
    return profile_model(request)


def measured_tail_ratios(measurements: Sequence[Measurement]) -> tuple[dict[str, float], bool]:
    """Median over the design of the reported window's pXX over the quiet median, for p90, p95 and
    p99 (capped); and whether a cap hit."""
    ratios, capped = {}, False
    for percentile in TAIL_PERCENTILES:
        ratio = statistics.median(float(m.reported[f"p{percentile}_ms"]) / m.median_ms for m in measurements)
        capped = capped or ratio > MAX_TAIL_RATIO
        ratios[percentile] = round(max(1.0, min(ratio, MAX_TAIL_RATIO)), 4)
    return ratios, capped


def measured_tail_curve(measurements: Sequence[Measurement]) -> dict[str, list[list[float]]]:
    """Per percentile, [typical ms, ratio] of every design point sorted by latency, each ratio
    the median of the point's and its two neighbours' (one disturbed window does not make a dent),
    capped to [1, MAX_TAIL_RATIO]."""
    ordered = sorted(measurements, key=lambda m: m.median_ms)
    curve = {}
    for percentile in TAIL_PERCENTILES:
        ratios = [float(m.reported[f"p{percentile}_ms"]) / m.median_ms for m in ordered]
        smoothed = [statistics.median(ratios[max(0, i - 1):i + 2]) for i in range(len(ratios))]
        curve[percentile] = [[round(m.median_ms, 6), round(max(1.0, min(r, MAX_TAIL_RATIO)), 4)]
                             for m, r in zip(ordered, smoothed)]
    return curve


def fit_measurements(profile: HardwareProfile, measurements: Sequence[Measurement], target: str = "median_ms") -> FitResult:
    """Choose and fit the latency model on `measurements`' `target` statistic (default: the median;
    "min_ms" gives the contention-free latency, which a busy shared machine still measures)."""
    roofline = RooflinePredictor(profile)
    geometry = input_geometry(profile)
    features = {model: [feature_vector(model, spec_layers(m.spec, geometry), roofline.batch, roofline)
                        for m in measurements] for model in FIT_MODELS}
    return choose_fit(features, [float(m.latency[target]) for m in measurements])


def points_to_retime(profile: HardwareProfile, fit: FitResult, measurements: Sequence[Measurement]) -> list[int]:
    """Indices of the design points to time again: every one when the fit predicts unseen design
    points badly (RETIME_ALL_MAPE), else those it misses by far more than the others (RETIME_*)."""
    if fit.heldout_mape_percent > RETIME_ALL_MAPE:
        return list(range(len(measurements)))
    predictor = CalibratedPredictor(profile, fit.model, fit.coefficients)
    misses = [abs(predictor.predict_latency_ms(m.spec) / m.median_ms - 1.0) for m in measurements]
    limit = max(RETIME_MIN_ERROR, RETIME_SPREAD * statistics.median(misses))
    return [index for index, miss in enumerate(misses) if miss > limit]


def retime_outliers(profile: HardwareProfile, measurements: list[Measurement], fit: FitResult, *,
                    retime: Callable[[list[SubnetSpec]], list[Measurement]]) -> tuple[list[Measurement], FitResult]:
    """Time the points `points_to_retime` names once more, keep each one's quieter timing, and refit.

    A point that times the same again was not disturbed: it keeps its place and the fit learns from
    it. No point is timed more than twice. Returns the (possibly updated) measurements and the
    final fit.
    """
    outliers = [index for index in points_to_retime(profile, fit, measurements) if measurements[index].timings == 1]
    if not outliers:
        return measurements, fit
    updated = list(measurements)
    for index, again in zip(outliers, retime([measurements[index].spec for index in outliers])):
        first = measurements[index]
        quieter = again if again.median_ms < first.median_ms else first
        updated[index] = Measurement(first.spec, quieter.latency, quieter.reported, timings=2)
    return updated, fit_measurements(profile, updated)


def calibrate_profile(profile: HardwareProfile, family: str, *, specs: int = DEFAULT_CALIBRATION_SPECS, host: str | None = None,
                      seed: int = DEFAULT_CALIBRATION_SEED, opset: int | None = None, protocol: MeasurementProtocol | None = None,
                      design: Sequence[SubnetSpec] | None = None, folder: str | Path = layout.PROFILES_DIR,
                      rounds: int = CALIBRATION_ROUNDS, shape: ShapeRule = ShapeRule.FREE, focus: int = 0,
                      on_progress: Callable[[str, int, int], None] | None = None) -> CalibrationResult:
    """Measure a design of `specs` specs of `family` on the target, fit, and store the calibration.

    `design` replaces the generated design (tests, benchmarks). The file is
    `<folder>/<profile>.latency.json`, written atomically; fits of other families stay when the
    device fingerprint is unchanged. `rounds` timing rounds over the design (fewer: quicker, noisier);
    `shape` draws the design from the specs that shape rule allows only. `focus` more specs, those
    the first fit places near the budgets (`space.focus_specs`), are timed after it and fitted with
    the rest (not with a given `design`).
    """
    from seekdeploy.plan.space import design_specs

    chosen = list(design) if design is not None else design_specs(family, specs, seed=seed, profile=profile,
                                                                         shape=shape)
    if host is not None:  # a device that cannot be reached fails now, not after every export
        from seekdeploy.measure.remote import check_device

        check_device(host, get_backend(profile.runtime.name).name)
    measurements, environment = measure_specs(profile, chosen, host=host, opset=opset, protocol=protocol,
                                              seed=seed, rounds=rounds, on_progress=on_progress)

    def retime(specs_again: list[SubnetSpec]) -> list[Measurement]:
        return measure_specs(profile, specs_again, host=host, opset=opset, protocol=protocol, seed=seed, rounds=rounds,
                             on_progress=on_progress and (lambda stage, done, total: on_progress(
                                 f"re-{stage}", done, total)))[0]

    measurements, fit = retime_outliers(profile, measurements, fit_measurements(profile, measurements),
                                        retime=retime)
    focused: list[SubnetSpec] = []
    if focus > 0 and design is None:
        from seekdeploy.plan.space import focus_specs

        first = CalibratedPredictor(profile, fit.model, fit.coefficients, tail_curve=measured_tail_curve(measurements))
        focused = focus_specs(family, profile, first, focus, exclude=frozenset(m.spec for m in measurements),
                              shape=shape)
        if focused:
            more = measure_specs(profile, focused, host=host, opset=opset, protocol=protocol, seed=seed + len(chosen),
                                 rounds=rounds, on_progress=on_progress and (lambda stage, done, total: on_progress(
                                     f"focus-{stage}", done, total)))[0]
            measurements = [*measurements, *more]
            fit = fit_measurements(profile, measurements)
    tail_ratios, capped = measured_tail_ratios(measurements)
    tail_curve = measured_tail_curve(measurements)
    fingerprint = device_fingerprint(profile, environment, host or LOCAL_HOST)
    used_protocol = protocol or profile.measurement
    entry = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": fit.model, "coefficients": list(fit.coefficients), "tail_ratios": tail_ratios,
        "tail_curve": tail_curve, "focus": [spec.to_text() for spec in focused],
        "fit": {"train_mape_percent": fit.train_mape_percent, "heldout_mape_percent": fit.heldout_mape_percent,
                "heldout_mape_by_model": fit.heldout_mape_by_model, "target": "quietest-window median_ms",
                "retimed": retimed_count(measurements)},
        "protocol": {key: getattr(used_protocol, key) for key in
                     ("warmup_ms", "warmup_iterations", "duration_ms", "min_iterations")},
        "opset": opset or default_opset(profile), "seed": seed, "rounds": rounds,
        "measurements": [m.to_json() for m in measurements],
    }
    path = write_calibration(calibration_path(profile, folder), fingerprint, family, entry)
    predictor = CalibratedPredictor(profile, fit.model, fit.coefficients, tail_ratios, source=str(path),
                                    tail_curve=tail_curve)
    return CalibrationResult(path, predictor, fit, tail_ratios, tuple(measurements), fingerprint, capped)
