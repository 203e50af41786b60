"""Calibrate a profile: export and time a designed set of specs on the target, fit, store.

Each design spec (`space.design_specs`: corners + seeded random picks of the family's grid) is
built with `build_static` (random weights: latency does not depend on their values), exported with
`export_onnx` at the profile's input, and timed with the profile's protocol through the profiling
runner (`runtime.profiling.profile_model`) here, or through the remote agent
(`remote.profile_remote`) with `host`. The fit (`fit.choose_fit`) is on the median latency; the
tail ratios (p90/p95/p99 over the median, median over the design) give the percentile factor.
"""

from __future__ import annotations

import datetime
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seekdeploy.errors import ConfigError, RemoteError
from seekdeploy.plan.calibration_file import (LOCAL_HOST, calibration_path, device_fingerprint,
                                              write_calibration)
from seekdeploy.plan.fit import FitResult, choose_fit
from seekdeploy.plan.predictor import (FIT_MODELS, CalibratedPredictor, RooflinePredictor, feature_vector,
                                       input_geometry, spec_layers)

# A device with more tail than this (other load, thermal throttling) says more about the moment
# than about the model; the factor is capped and the run warns.
MAX_TAIL_RATIO = 3.0
TAIL_PERCENTILES = ("90", "95", "99")


@dataclass(frozen=True)
class Measurement:
    """One design spec and its measured latency statistics (ms)."""

    spec: Any
    latency: dict[str, Any]  # LatencyStats.to_json() of the reported repeat

    @property
    def median_ms(self) -> float:
        """The typical latency the fit targets."""
        return float(self.latency["median_ms"])

    def to_json(self) -> dict[str, Any]:
        """Spec text plus the summary figures (no raw samples)."""
        keys = ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms", "iterations")
        return {"spec": self.spec.to_text(), **{key: self.latency.get(key) for key in keys}}


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


def default_opset(profile: Any) -> int:
    """The opset `seekdeploy export` would use for this profile (17 for TensorRT 8.x, else the default)."""
    from seekdeploy.export.onnx_export import DEFAULT_OPSET

    version = str(profile.runtime.tensorrt_version or "")
    runtime = str(getattr(profile.runtime.name, "value", profile.runtime.name))
    return 17 if runtime == "tensorrt" and version.startswith("8") else DEFAULT_OPSET


def measure_specs(profile: Any, specs: Sequence[Any], *, host: str | None = None, opset: int | None = None,
                  protocol: Any = None, workdir: Path | None = None, seed: int = 0,
                  on_measured: Callable[[int, Measurement], None] | None = None) -> tuple[list[Measurement], dict]:
    """Export and time every spec on the target; return the measurements and the environment.

    `protocol` overrides the profile's measurement protocol (an object with its four fields).
    """
    import torch

    from seekdeploy.export.onnx_export import export_onnx
    from seekdeploy.nn import build_static

    runtime = str(getattr(profile.runtime.name, "value", profile.runtime.name))
    if host is None and runtime != "onnxruntime":
        raise ConfigError(f"profile {profile.name} runs {runtime}, which cannot be timed here; calibrate on "
                          f"the device with --host user@device")
    geometry = input_geometry(profile)
    shape = (profile.input.batch, profile.input.channels, profile.input.height, profile.input.width)
    measurements, environment = [], {}
    with tempfile.TemporaryDirectory(prefix="seekdeploy-calibrate-", dir=workdir) as folder:
        for index, spec in enumerate(specs):
            torch.manual_seed(seed + index)
            model = build_static(spec, **geometry).eval()
            onnx_path = Path(folder) / f"design{index:03d}.onnx"
            export_onnx(model, onnx_path, input_shape=shape, opset=opset or default_opset(profile))
            result = _time_model(profile, onnx_path, host, protocol)
            environment = result.get("environment") or environment
            measurement = Measurement(spec, result["latency"])
            measurements.append(measurement)
            if on_measured is not None:
                on_measured(index, measurement)
            onnx_path.unlink(missing_ok=True)
    return measurements, environment


# Each spec is timed in three windows and the window with the median p50 is kept, so one window
# disturbed by other work on the device does not pull the fit (seen here: a median twice the
# minimum on a single window moved the held-out error from ~5 % to ~11 %).
CALIBRATION_REPEATS = 3


def _time_model(profile: Any, onnx_path: Path, host: str | None, protocol: Any) -> dict[str, Any]:
    from seekdeploy.runtime.timing import ProtocolSettings

    settings = ProtocolSettings.from_protocol(protocol or profile.measurement)
    if host is not None:
        import dataclasses

        from seekdeploy.remote.profile import profile_remote

        timed_profile = dataclasses.replace(profile, measurement=protocol) if protocol else profile
        outcome = profile_remote(onnx_path, timed_profile, [host], repeats=CALIBRATION_REPEATS)[host]
        if outcome.error is not None:
            raise outcome.error
        if outcome.result is None:
            raise RemoteError(f"{host} returned no latency result for {onnx_path.name}")
        return outcome.result
    from seekdeploy.runtime.profiling import ProfileRequest, profile_model

    shape = (profile.input.batch, profile.input.channels, profile.input.height, profile.input.width)
    request = ProfileRequest(model=onnx_path, runtime="onnxruntime", input_shape=shape, protocol=settings,
                             providers=tuple(profile.runtime.execution_providers),
                             threads=int(profile.runtime.threads),
                             precision=str(getattr(profile.runtime.precision, "value", "fp32")),
                             repeats=CALIBRATION_REPEATS)
    return profile_model(request)


def measured_tail_ratios(measurements: Sequence[Measurement]) -> tuple[dict[str, float], bool]:
    """Median over the design of pXX / median for p90, p95, p99 (capped); and whether a cap hit."""
    ratios, capped = {}, False
    for percentile in TAIL_PERCENTILES:
        ratio = statistics.median(float(m.latency[f"p{percentile}_ms"]) / m.median_ms for m in measurements)
        capped = capped or ratio > MAX_TAIL_RATIO
        ratios[percentile] = round(max(1.0, min(ratio, MAX_TAIL_RATIO)), 4)
    return ratios, capped


def fit_measurements(profile: Any, measurements: Sequence[Measurement], target: str = "median_ms") -> FitResult:
    """Choose and fit the latency model on `measurements`' `target` statistic (default: the median;
    "min_ms" gives the contention-free latency, which a busy shared machine still measures)."""
    roofline = RooflinePredictor(profile)
    geometry = input_geometry(profile)
    features = {model: [feature_vector(model, spec_layers(m.spec, geometry), roofline.batch, roofline)
                        for m in measurements] for model in FIT_MODELS}
    return choose_fit(features, [float(m.latency[target]) for m in measurements])


def calibrate_profile(profile: Any, family: str, *, specs: int = 24, host: str | None = None,
                      seed: int = 0, opset: int | None = None, protocol: Any = None,
                      design: Sequence[Any] | None = None, folder: str | Path = "profiles",
                      on_measured: Callable[[int, Measurement], None] | None = None) -> CalibrationResult:
    """Measure a design of `specs` specs of `family` on the target, fit, and store the calibration.

    `design` replaces the generated design (tests, benchmarks). The file is
    `<folder>/<profile>.latency.json`, written atomically; fits of other families stay when the
    device fingerprint is unchanged.
    """
    from seekdeploy.plan.space import design_specs

    chosen = list(design) if design is not None else design_specs(family, specs, seed=seed)
    measurements, environment = measure_specs(profile, chosen, host=host, opset=opset, protocol=protocol,
                                              seed=seed, on_measured=on_measured)
    fit = fit_measurements(profile, measurements)
    tail_ratios, capped = measured_tail_ratios(measurements)
    fingerprint = device_fingerprint(profile, environment, host or LOCAL_HOST)
    used_protocol = protocol or profile.measurement
    entry = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": fit.model, "coefficients": list(fit.coefficients), "tail_ratios": tail_ratios,
        "fit": {"train_mape_percent": fit.train_mape_percent, "heldout_mape_percent": fit.heldout_mape_percent,
                "heldout_mape_by_model": fit.heldout_mape_by_model, "target": "median_ms"},
        "protocol": {key: getattr(used_protocol, key) for key in
                     ("warmup_ms", "warmup_iterations", "duration_ms", "min_iterations")},
        "opset": opset or default_opset(profile), "seed": seed,
        "measurements": [m.to_json() for m in measurements],
    }
    path = write_calibration(calibration_path(profile, folder), fingerprint, family, entry)
    predictor = CalibratedPredictor(profile, fit.model, fit.coefficients, tail_ratios, source=str(path))
    return CalibrationResult(path, predictor, fit, tail_ratios, tuple(measurements), fingerprint, capped)
