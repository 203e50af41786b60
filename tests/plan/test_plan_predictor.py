"""Latency predictors: layer lists agree with the analytic cost, the roofline is monotone, fits recover."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seekdeploy.nn import estimate_cost
from seekdeploy.plan.fit import choose_fit, fit_nnls
from seekdeploy.nn import list_layers
from seekdeploy.plan.predictor import (CalibratedPredictor, RooflinePredictor, default_tail_factor,
                                       input_geometry)
from seekdeploy.plan.space import design_specs, spec_grid
from seekdeploy.profiles.loader import load_profile
from seekdeploy.profiles.schema import HardwareFigures, Precision

PROFILE = load_profile("x86-cpu")
GEOMETRY = input_geometry(PROFILE)


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
def test_layer_list_sums_to_the_analytic_cost_and_the_static_model(family: str) -> None:
    import torch

    from seekdeploy.nn import build_static

    for spec in design_specs(family, 12, seed=1):
        layers = list_layers(spec, **GEOMETRY)
        cost = estimate_cost(spec, **GEOMETRY)
        assert sum(layer.macs for layer in layers) == cost.macs, spec
        assert sum(layer.params for layer in layers) == cost.params, spec
        with torch.device("meta"):  # shapes only: no memory, no initialization
            static = build_static(spec, **GEOMETRY)
        assert cost.params == sum(p.numel() for p in static.parameters()), spec


def _compute_bound(profile, peak_gflops: float = 10.0):
    # Unlimited bandwidth: the roofline is pure FLOPs / peak (plus the per-layer overhead).
    figures = HardwareFigures(peak_gflops={Precision.FP32: peak_gflops}, memory_bandwidth_gbs=1e12)
    return dataclasses.replace(profile, hardware=figures)


def test_roofline_is_flops_over_peak_when_compute_bound() -> None:
    predictor = RooflinePredictor(_compute_bound(PROFILE))
    predictor.layer_overhead_ms = 0.0
    for spec in design_specs("resnet", 8, seed=2):
        flops = estimate_cost(spec, **GEOMETRY).flops
        assert predictor.predict_latency_ms(spec) == pytest.approx(flops / 10e9 * 1e3, rel=1e-9)


@pytest.mark.parametrize("family", ["resnet", "mbconv", "vit"])
def test_roofline_is_monotone_in_flops_along_nesting(family: str) -> None:
    predictor = RooflinePredictor(PROFILE)
    grid = spec_grid(family)
    rng = np.random.default_rng(0)
    smalls = [grid.spec_at(int(i)) for i in rng.choice(len(grid) // 8, size=40, replace=False)]
    checked = 0
    for index in rng.choice(len(grid), size=60, replace=False):
        big = grid.spec_at(int(index))
        for small in smalls:
            if big != small and big.contains(small):
                assert estimate_cost(small, **GEOMETRY).flops <= estimate_cost(big, **GEOMETRY).flops
                assert predictor.predict_latency_ms(small) < predictor.predict_latency_ms(big)
                checked += 1
    assert checked > 20


def test_more_bandwidth_and_peak_never_slow_a_model_down() -> None:
    grid = spec_grid("resnet")
    spec = grid.spec_at(len(grid) - 1)
    slow = RooflinePredictor(PROFILE).predict_latency_ms(spec)
    fast = RooflinePredictor(_compute_bound(PROFILE, peak_gflops=80.0)).predict_latency_ms(spec)
    assert fast < slow


def test_default_tail_factor_is_one_at_the_median_and_documented_at_p95() -> None:
    assert default_tail_factor(50) == 1.0
    assert default_tail_factor(95) == pytest.approx(1.25)
    assert 1.0 < default_tail_factor(90) < default_tail_factor(95)


def test_nnls_recovers_known_nonnegative_coefficients() -> None:
    rng = np.random.default_rng(0)
    features = rng.uniform(0.1, 5.0, size=(30, 4))
    features[:, -1] = 1.0
    truth = np.array([0.3, 0.0, 1.2, 0.05])
    coefficients = fit_nnls(features, features @ truth)
    np.testing.assert_allclose(coefficients, truth, atol=1e-6)


def test_choose_fit_prefers_the_model_that_predicts_held_out_specs() -> None:
    rng = np.random.default_rng(1)
    good = rng.uniform(0.1, 5.0, size=(20, 3))
    latency = good @ np.array([0.5, 0.2, 0.1]) + 0.05
    noise = rng.uniform(0.1, 5.0, size=(20, 3))  # unrelated features
    fit = choose_fit({"good": np.c_[good, np.ones(20)].tolist(), "noise": np.c_[noise, np.ones(20)].tolist()},
                     latency.tolist())
    assert fit.model == "good"
    assert fit.heldout_mape_percent < 1e-3 < fit.heldout_mape_by_model["noise"]


def test_calibrated_predictor_applies_its_coefficients_and_measured_tail() -> None:
    predictor = CalibratedPredictor(PROFILE, "roofline-scaled", [2.0, 3.0, 0.01, 0.1], {"95": 1.5})
    roofline = RooflinePredictor(PROFILE)
    spec = spec_grid("resnet").spec_at(5)
    from seekdeploy.plan.predictor import spec_layers

    compute, memory = roofline.layer_times_ms(spec_layers(spec, GEOMETRY))
    layers = len(spec_layers(spec, GEOMETRY))
    expected = 2.0 * compute + 3.0 * memory + 0.01 * layers + 0.1
    assert predictor.predict_latency_ms(spec) == pytest.approx(expected)
    assert predictor.predict_percentile_ms(spec, 95) == pytest.approx(1.5 * expected)
    assert predictor.tail_factor(90) == default_tail_factor(90)  # not measured: the default


def test_padded_macs_round_channels_up_to_the_block() -> None:
    from seekdeploy.nn.layers import Layer, LayerKind

    conv = Layer(LayerKind.CONV, macs=40 * 24 * 9 * 64, params=0, in_elements=0, out_elements=0,
                 in_channels=24, out_channels=40)
    assert conv.padded_macs(16) == pytest.approx(48 * 32 * 9 * 64)  # 24 -> 32 in, 40 -> 48 out
    assert conv.padded_macs(8) == conv.macs  # already multiples of 8
    depthwise = Layer(LayerKind.DEPTHWISE, macs=40 * 9 * 64, params=0, in_elements=0, out_elements=0,
                      in_channels=40, out_channels=40, groups=40)
    assert depthwise.padded_macs(16) == pytest.approx(48 * 9 * 64)
    assert Layer(LayerKind.MATMUL, 100, 0, 0, 0).padded_macs(16) == 100  # no channels: unchanged


def test_padded_fit_recovers_a_channel_blocked_latency_and_wins_cross_validation() -> None:
    """Synthetic target: 16-lane padded conv MACs at 0.01 ms/M + 2 us per layer + 0.02 ms; the
    16-block candidate reproduces it exactly and the cross-validation prefers it."""
    from seekdeploy.plan.predictor import FIT_MODELS, feature_vector, spec_layers

    roofline = RooflinePredictor(PROFILE)
    specs = design_specs("resnet", 24, seed=4)
    layers = [spec_layers(spec, GEOMETRY) for spec in specs]
    latency = [0.01 * sum(layer.padded_macs(16) for layer in ls) / 1e6 + 0.002 * len(ls) + 0.02 for ls in layers]
    features = {model: [feature_vector(model, ls, 1, roofline) for ls in layers] for model in FIT_MODELS}
    fit = choose_fit(features, latency)
    assert fit.model == "padded-macs-16"
    assert fit.heldout_mape_percent < 1e-3 < min(v for k, v in fit.heldout_mape_by_model.items() if k != fit.model)
    predictor = CalibratedPredictor(PROFILE, fit.model, fit.coefficients)
    for spec, expected in zip(specs, latency):
        assert predictor.predict_latency_ms(spec) == pytest.approx(expected, rel=1e-6)
