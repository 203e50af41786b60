"""Latency predictors per hardware profile: the roofline fallback and the calibrated fit.

Both predict the *typical* (median) latency of one inference at the profile's input batch, in
milliseconds; a budget is set at a percentile (p95 by default), so `predict_percentile_ms`
multiplies the typical latency by a tail factor. The roofline predictor uses the documented
default `default_tail_factor(p)` (1.0 at the median, rising linearly to 1.25 at p95); a
calibration measures the factor on the target and records it, per design point where it has them:
the tail is a larger share of a fast model's latency (a few tens of microseconds of scheduling
noise weigh more on 0.15 ms than on 5 ms), so the factor is interpolated at the predicted latency.

Roofline: every layer takes max(FLOPs / peak, bytes moved / bandwidth) plus a fixed per-layer
overhead (kernel launch / operator dispatch), summed over the family's layer list (`seekdeploy.nn.list_layers`).
Peak GFLOP/s is the profile's figure at its precision; declared peaks are rarely reached by tiny
layers, so this is an optimistic bound on compute plus a guessed overhead: a fallback only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seekdeploy.backends import get_backend
from seekdeploy.errors import ProfileError
from seekdeploy.nn.layers import Layer, LayerKind
from seekdeploy.nn.registry import list_layers

if TYPE_CHECKING:
    from seekdeploy.nn.spec import SubnetSpec
    from seekdeploy.profiles.schema import HardwareProfile

DEFAULT_TAIL_AT_P95 = 1.25
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def default_tail_factor(percentile: float) -> float:
    """p-th percentile / median latency assumed without a calibration: 1 at p50, 1.25 at p95.

    Linear in the percentile between p50 and p95 and flat above (a p99 budget would need a
    measured tail; calibrate the profile for that).
    """
    if percentile <= 50.0:
        return 1.0
    return 1.0 + (DEFAULT_TAIL_AT_P95 - 1.0) * min(1.0, (percentile - 50.0) / 45.0)


def profile_precision(profile: HardwareProfile) -> str:
    """The profile's precision as a plain string ("fp32", "fp16", "int8")."""
    return profile.runtime.precision.value


def bytes_per_element(profile: HardwareProfile) -> int:
    """Bytes of one weight/activation element at the profile's precision."""
    return BYTES_PER_ELEMENT[profile_precision(profile)]


def input_geometry(profile: HardwareProfile) -> dict[str, int]:
    """Keyword arguments of `list_layers`/`estimate_cost` for the profile's input (10 classes)."""
    return {"in_channels": profile.input.channels, "image_size": profile.input.height, "num_classes": 10}


@functools.lru_cache(maxsize=65536)
def _cached_layers(spec: SubnetSpec, in_channels: int, image_size: int, num_classes: int) -> tuple[Layer, ...]:
    return tuple(list_layers(spec, in_channels=in_channels, image_size=image_size, num_classes=num_classes))


def spec_layers(spec: SubnetSpec, geometry: dict[str, int]) -> tuple[Layer, ...]:
    """The (cached) layer list of `spec` for `geometry` (see `input_geometry`)."""
    return _cached_layers(spec, geometry["in_channels"], geometry["image_size"], geometry["num_classes"])


class LatencyPredictor:
    """Common interface: typical latency of a spec, and the latency at a budget percentile.

    `plan_headroom` is the share of each latency budget the planner leaves free for what the
    prediction misses (`_pair_rules.over_budget`)."""

    kind = "abstract"
    plan_headroom = 0.0

    def __init__(self, profile: HardwareProfile, num_classes: int = 10) -> None:
        self.profile = profile
        self.geometry = {**input_geometry(profile), "num_classes": num_classes}
        self.batch = int(profile.input.batch)

    def predict_latency_ms(self, spec: SubnetSpec) -> float:
        """Typical (median) latency in ms of one inference of `spec` at the profile's batch."""
        raise NotImplementedError

    def tail_factor(self, percentile: float, typical_ms: Any = None) -> Any:
        """Latency at `percentile` divided by the typical latency (`typical_ms`, a number or an
        array, is the typical latency the factor is for; the default factor ignores it)."""
        return default_tail_factor(percentile)

    def predict_percentile_ms(self, spec: SubnetSpec, percentile: float) -> float:
        """Predicted latency at a budget percentile (typical latency x tail factor)."""
        typical = self.predict_latency_ms(spec)
        return typical * float(self.tail_factor(percentile, typical))

    def describe(self) -> dict[str, Any]:
        """What the predictor is, for manifests and the plan's JSON."""
        return {"kind": self.kind}


class RooflinePredictor(LatencyPredictor):
    """Roofline over the layer list from the profile's declared peak and bandwidth (the fallback)."""

    kind = "roofline"

    def __init__(self, profile: HardwareProfile, num_classes: int = 10) -> None:
        super().__init__(profile, num_classes)
        precision = profile_precision(profile)
        peaks = profile.hardware.peak_gflops  # Precision keys look up as their values
        peak = peaks.get(precision, peaks.get("fp32"))
        if not peak or peak <= 0 or profile.hardware.memory_bandwidth_gbs <= 0:
            raise ProfileError(f"profile {profile.name} declares no usable peak GFLOP/s for {precision} "
                               "or memory bandwidth; add hardware.peak_gflops and memory_bandwidth_gbs")
        self.peak_flops_per_ms = peak * 1e6  # GFLOP/s -> FLOP/ms
        self.bytes_per_ms = profile.hardware.memory_bandwidth_gbs * 1e6  # GB/s -> B/ms
        self.bytes_per_element = bytes_per_element(profile)
        self.layer_overhead_ms = get_backend(profile.runtime.name).runtime.layer_overhead_ms  # the roofline's per-layer cost

    def layer_times_ms(self, layers: Sequence[Layer]) -> tuple[float, float]:
        """(compute-bound ms, memory-bound ms) summed over `layers`, each layer at its own bound."""
        compute = memory = 0.0
        for layer in layers:
            flops_ms = 2.0 * layer.macs * self.batch / self.peak_flops_per_ms
            bytes_ms = layer.moved_bytes(self.batch, self.bytes_per_element) / self.bytes_per_ms
            if flops_ms >= bytes_ms:
                compute += flops_ms
            else:
                memory += bytes_ms
        return compute, memory

    def predict_latency_ms(self, spec: SubnetSpec) -> float:
        """Sum over layers of max(FLOPs / peak, bytes / bandwidth) + per-layer overhead, in ms."""
        layers = spec_layers(spec, self.geometry)
        compute, memory = self.layer_times_ms(layers)
        return compute + memory + self.layer_overhead_ms * len(layers)

    def describe(self) -> dict[str, Any]:
        """Kind plus the figures it uses."""
        return {"kind": self.kind, "peak_gflops": self.peak_flops_per_ms / 1e6,
                "memory_bandwidth_gbs": self.bytes_per_ms / 1e6,
                "layer_overhead_ms": self.layer_overhead_ms, "tail_at_p95": DEFAULT_TAIL_AT_P95}


def feature_vector(model: str, layers: Sequence[Layer], batch: int, roofline: RooflinePredictor) -> list[float]:
    """The regression features of one spec for the fit `model` (see `FIT_MODELS`).

    MACs are in millions and bytes in MB so the non-negative least squares is well conditioned.
    """
    if model == "roofline-scaled":
        compute, memory = roofline.layer_times_ms(layers)
        return [compute, memory, float(len(layers)), 1.0]
    if model.startswith(PADDED_MACS_PREFIX):
        return padded_features(layers, batch, int(model[len(PADDED_MACS_PREFIX):]))
    per_kind: list[float] = []
    for kind in LayerKind:
        chosen = [layer for layer in layers if layer.kind is kind]
        macs = sum(layer.macs for layer in chosen) * batch / 1e6
        moved = sum(layer.moved_bytes(batch, roofline.bytes_per_element) for layer in chosen) / 1e6
        per_kind += [macs, moved, float(len(chosen))] if model == "layer-features" else [macs]
    if model == "kind-macs":
        moved = sum(layer.moved_bytes(batch, roofline.bytes_per_element) for layer in layers) / 1e6
        per_kind += [moved, float(len(layers))]
    return per_kind + [1.0]


def padded_features(layers: Sequence[Layer], batch: int, block: int) -> list[float]:
    """Channel-blocked features: per layer type, MACs with channels padded to `block` (millions)
    and the layer count; then the output elements of layers with MACs and the elements of the
    elementwise layers (millions), and a constant.

    A CPU kernel's time is its padded MACs plus a per-layer dispatch cost plus a cost per output
    element (layout conversion, bias/ReLU epilogue); which block fits the CPU (8 lanes for AVX2,
    16 for AVX-512, 4 for NEON) is left to the cross-validation among the `padded-macs-*` fits.
    """
    features: list[float] = []
    for kind in LayerKind:
        chosen = [layer for layer in layers if layer.kind is kind]
        if kind is LayerKind.ELEMENTWISE:
            features += [sum(layer.in_elements + layer.out_elements for layer in chosen) * batch / 1e6,
                         float(len(chosen))]
        else:
            features += [sum(layer.padded_macs(block) for layer in chosen) * batch / 1e6, float(len(chosen))]
    computed = [layer for layer in layers if layer.macs > 0]
    return features + [sum(layer.out_elements for layer in computed) * batch / 1e6, 1.0]


# The candidate fits: per layer type MACs, bytes and a per-layer constant; per type MACs plus total
# bytes and a per-layer constant; the roofline's own compute/memory times rescaled; per layer type
# channel-padded MACs and counts at 4, 8 and 16 channel blocks (NEON, AVX2, AVX-512 fp32 lanes).
PADDED_MACS_PREFIX = "padded-macs-"
PADDED_BLOCKS = (4, 8, 16)
FIT_MODELS = ("layer-features", "kind-macs", "roofline-scaled",
              *(f"{PADDED_MACS_PREFIX}{block}" for block in PADDED_BLOCKS))


# A calibrated plan is sized to this share under each latency budget: on a quiet 2-core VM the
# README pair's p95 measured 2 % under and 5 % over its prediction, and a p95 moves a few percent
# between two profiles of one model, so a plan at 95 % of the budget failed by 0.4 %. (The
# roofline, 3-8x pessimistic on CPUs, keeps none.)
CALIBRATED_PLAN_HEADROOM = 0.10


class CalibratedPredictor(LatencyPredictor):
    """A fit on latencies measured on the target: latency = features(spec) . coefficients."""

    kind = "calibrated"
    plan_headroom = CALIBRATED_PLAN_HEADROOM

    def __init__(self, profile: HardwareProfile, model: str, coefficients: Sequence[float],
                 tail_ratios: dict[str, float] | None = None, num_classes: int = 10,
                 source: str | None = None, tail_curve: dict[str, Sequence[Sequence[float]]] | None = None) -> None:
        super().__init__(profile, num_classes)
        if model not in FIT_MODELS:
            raise ProfileError(f"calibration model {model!r} is unknown; recalibrate with `seekdeploy calibrate`")
        self.model = model
        self.coefficients = [float(c) for c in coefficients]
        self.tail_ratios = {str(k): float(v) for k, v in (tail_ratios or {}).items()}
        # percentile -> [(typical ms, ratio)] sorted by latency (see calibration.measured_tail_curve)
        self.tail_curve = {str(k): sorted((float(m), float(r)) for m, r in points)
                           for k, points in (tail_curve or {}).items() if points}
        self.source = source
        self._roofline = RooflinePredictor(profile, num_classes)

    def features(self, spec: SubnetSpec) -> list[float]:
        """The fit's feature vector for `spec`."""
        return feature_vector(self.model, spec_layers(spec, self.geometry), self.batch, self._roofline)

    def predict_latency_ms(self, spec: SubnetSpec) -> float:
        """Fitted typical latency in ms (never below 1 us)."""
        features = self.features(spec)
        if len(features) != len(self.coefficients):
            raise ProfileError(f"calibration {self.source} has {len(self.coefficients)} coefficients but "
                               f"model {self.model!r} needs {len(features)}; recalibrate")
        return max(1e-3, sum(f * c for f, c in zip(features, self.coefficients)))

    def tail_factor(self, percentile: float, typical_ms: Any = None) -> Any:
        """The measured tail ratio at this percentile: interpolated (in log latency, flat beyond
        the ends) between the design points' ratios at `typical_ms` when the calibration has them,
        else the design's median ratio, else the default."""
        key = f"{percentile:g}"
        curve = self.tail_curve.get(key)
        if curve and typical_ms is not None:
            import numpy as np

            latencies, ratios = zip(*curve)
            factor = np.interp(np.log(np.maximum(typical_ms, 1e-6)), np.log(latencies), ratios)
            return float(factor) if np.ndim(factor) == 0 else factor
        return self.tail_ratios.get(key, default_tail_factor(percentile))

    def describe(self) -> dict[str, Any]:
        """Kind, fit model, coefficients, source file and tail ratios."""
        return {"kind": self.kind, "model": self.model, "coefficients": self.coefficients, "source": self.source,
                "tail_ratios": self.tail_ratios, "tail_curve": self.tail_curve}
