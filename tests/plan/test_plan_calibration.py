"""Calibration files: fingerprint checks (stale/foreign ignored with a warning) and a real round trip."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import write_tiny_profile

from seekdeploy.plan.calibration import (CALIBRATION_ROUNDS, RETIME_ALL_MAPE, Measurement, fit_measurements,
                                         retime_outliers)
from seekdeploy.plan.calibration_file import (CalibrationWarning, calibration_path, load_predictor,
                                              local_fingerprint, write_calibration)
from seekdeploy.plan.predictor import (FIT_MODELS, CalibratedPredictor, RooflinePredictor, input_geometry,
                                       spec_layers)
from seekdeploy.plan.space import design_specs
from seekdeploy.profiles.loader import load_profile
from seekdeploy.profiles.schema import MeasurementProtocol

PROFILE = load_profile("x86-cpu")
ENTRY = {"model": "roofline-scaled", "coefficients": [0.5, 0.5, 0.01, 0.02], "tail_ratios": {"95": 1.1}}


def _write(tmp_path: Path, **changes) -> Path:
    fingerprint = {**local_fingerprint(PROFILE), **changes}
    return write_calibration(calibration_path(PROFILE, tmp_path), fingerprint, "resnet", ENTRY)


def test_matching_calibration_is_used(tmp_path) -> None:
    path = _write(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        predictor = load_predictor(PROFILE, "resnet", path)
    assert isinstance(predictor, CalibratedPredictor)
    assert predictor.tail_factor(95) == 1.1


@pytest.mark.parametrize(("key", "value"), [("cpu_model", "Some Other CPU 9000"),
                                            ("runtime_version", "0.0.1"), ("cpu_cores", 128)])
def test_foreign_or_stale_calibration_is_ignored_with_a_warning(tmp_path, key, value) -> None:
    path = _write(tmp_path, **{key: value})
    with pytest.warns(CalibrationWarning, match=f"{key}: {value!r}"):
        predictor = load_predictor(PROFILE, "resnet", path)
    assert isinstance(predictor, RooflinePredictor)


def test_editing_the_profile_runtime_makes_the_calibration_stale(tmp_path) -> None:
    path = _write(tmp_path)
    edited = dataclasses.replace(PROFILE, runtime=dataclasses.replace(PROFILE.runtime, threads=1))
    with pytest.warns(CalibrationWarning, match="threads"):
        assert isinstance(load_predictor(edited, "resnet", path), RooflinePredictor)


def test_remote_calibration_is_not_compared_with_this_cpu(tmp_path) -> None:
    path = _write(tmp_path, host="pi@rpi5", cpu_model="Cortex-A76", machine="aarch64")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        assert isinstance(load_predictor(PROFILE, "resnet", path), CalibratedPredictor)


def test_missing_family_and_garbage_files_fall_back_with_a_warning(tmp_path) -> None:
    path = _write(tmp_path)
    with pytest.warns(CalibrationWarning, match="no fit for family 'vit'"):
        assert isinstance(load_predictor(PROFILE, "vit", path), RooflinePredictor)
    path.write_text("{not json")
    with pytest.warns(CalibrationWarning, match="cannot read"):
        assert isinstance(load_predictor(PROFILE, "resnet", path), RooflinePredictor)


def test_no_calibration_file_is_silent_roofline(tmp_cwd) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        assert isinstance(load_predictor(PROFILE, "resnet"), RooflinePredictor)


def test_calibration_round_trip_on_a_tiny_design(tmp_cwd) -> None:
    """Real exports timed by onnxruntime with a short protocol, fitted, stored, loaded back."""
    pytest.importorskip("onnxruntime")
    from seekdeploy.plan.calibration import calibrate_profile
    from seekdeploy.plan.defaults import ShapeRule

    protocol = MeasurementProtocol(warmup_ms=10, warmup_iterations=3, duration_ms=40, min_iterations=10)
    design = design_specs("resnet", 6, seed=3, profile=PROFILE)
    stages: list[tuple[str, int, int]] = []
    result = calibrate_profile(PROFILE, "resnet", design=design, opset=17, protocol=protocol,
                               on_progress=lambda *step: stages.append(step))
    # Every spec is exported before any is timed, then all are timed round after round.
    first_rounds = [step for step in stages if not step[0].startswith("re-")]
    assert first_rounds == [("export", i, 6) for i in range(1, 7)] + \
        [("time", i, 6 * CALIBRATION_ROUNDS) for i in range(1, 6 * CALIBRATION_ROUNDS + 1)]
    assert result.path.resolve() == tmp_cwd / "profiles" / "x86-cpu.latency.json"
    document = json.loads(result.path.read_text())
    entry = document["families"]["resnet"]
    assert entry["model"] == result.fit.model and len(entry["measurements"]) == 6
    assert document["fingerprint"]["cpu_model"] == local_fingerprint(PROFILE)["cpu_model"]
    assert set(entry["fit"]["heldout_mape_by_model"]) == set(FIT_MODELS)
    assert all(0 < m["median_ms"] <= m["reported"]["median_ms"] for m in entry["measurements"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        loaded = load_predictor(PROFILE, "resnet")
    assert isinstance(loaded, CalibratedPredictor)
    for spec in design:
        assert loaded.predict_latency_ms(spec) == pytest.approx(result.predictor.predict_latency_ms(spec))


def test_a_profile_design_stays_within_reach_of_its_budgets() -> None:
    from seekdeploy.plan.space import DESIGN_REACH, spec_grid

    roofline = RooflinePredictor(PROFILE)
    reach = DESIGN_REACH * max(budget.latency_ms for budget in PROFILE.budgets.values())
    design = design_specs("vit", 12, seed=0, profile=PROFILE)
    assert len(set(design)) == 12 and all(roofline.predict_latency_ms(spec) <= reach for spec in design)
    grid = spec_grid("vit")
    assert design[0] == grid.spec_at(0)  # the smallest corner
    assert grid.spec_at(len(grid) - 1) in design_specs("vit", 4)  # no profile: the whole grid's corners
    assert roofline.predict_latency_ms(grid.spec_at(len(grid) - 1)) > reach


def _window(median_ms: float, tail: float = 1.2) -> dict[str, float]:
    return {"min_ms": 0.9 * median_ms, "median_ms": median_ms, "mean_ms": median_ms, "p90_ms": tail * median_ms,
            "p95_ms": tail * median_ms, "p99_ms": tail * median_ms, "iterations": 100}


def test_measurement_fits_the_quietest_window_and_keeps_the_reported_one_for_tails() -> None:
    """The fit gets the lowest median; the tail comes from the window `profile` would report (the
    lowest p95 among windows within 10 % of that median), so predicted and measured tails agree."""
    from seekdeploy.runtime.windows import merge_windows

    spec = design_specs("resnet", 1, seed=0)[0]
    rounds = [{"latency": _window(2.0), "repeats": [_window(2.0), _window(3.0)]},
              {"latency": _window(1.0, tail=1.6), "repeats": [_window(1.0, tail=1.6), _window(1.08, tail=1.2)]},
              {"latency": _window(2.5), "repeats": [_window(2.5), _window(4.0)]}]
    measurement = Measurement.from_results(spec, rounds)
    assert measurement.median_ms == 1.0  # the least disturbed of all six windows
    assert measurement.reported["median_ms"] == 1.08 and measurement.reported["p95_ms"] == pytest.approx(1.296)
    windows = [window for r in rounds for window in r["repeats"]]
    as_profiled = merge_windows([{"latency": window} for window in windows], judged_percentile=95)
    assert windows[as_profiled["windows"]["reported"]] == measurement.reported
    # A result without per-window figures (an old agent) still counts as one window.
    assert Measurement.from_results(spec, [{"latency": _window(0.7)}]).median_ms == 0.7


def _synthetic_design(disturbed: int | set[int], factor: float) -> list[Measurement]:
    """Latencies that the roofline-scaled model fits exactly, with the `disturbed` points slowed by
    `factor`."""
    disturbed = {disturbed} if isinstance(disturbed, int) else disturbed
    roofline = RooflinePredictor(PROFILE)
    geometry = input_geometry(PROFILE)
    measurements = []
    for index, spec in enumerate(design_specs("resnet", 16, seed=5, profile=PROFILE)):
        compute, memory = roofline.layer_times_ms(spec_layers(spec, geometry))
        clean = 3.0 * compute + 2.0 * memory + 0.02 * len(spec_layers(spec, geometry)) + 0.05
        median = clean * (factor if index in disturbed else 1.0)
        measurements.append(Measurement(spec, _window(median), _window(median)))
    return measurements


def test_a_disturbed_design_point_is_timed_again_and_the_quieter_timing_refitted() -> None:
    measurements = _synthetic_design(disturbed=4, factor=1.8)
    clean = _synthetic_design(disturbed=4, factor=1.0)
    asked: list[list] = []

    def retime(specs):
        asked.append(list(specs))
        return [next(m for m in clean if m.spec == spec) for spec in specs]

    first = fit_measurements(PROFILE, measurements)
    updated, refit = retime_outliers(PROFILE, measurements, first, retime=retime)
    assert asked == [[measurements[4].spec]]  # only the point the fit missed by far
    assert updated[4].median_ms == pytest.approx(clean[4].median_ms) and updated[4].timings == 2
    assert all(m.timings == 1 for i, m in enumerate(updated) if i != 4)
    assert refit.train_mape_percent < 1.0 < first.train_mape_percent


def test_a_point_that_times_the_same_again_keeps_its_place_and_is_not_asked_twice() -> None:
    measurements = _synthetic_design(disturbed=2, factor=1.8)
    updated, _ = retime_outliers(PROFILE, measurements, fit_measurements(PROFILE, measurements),
                                 retime=lambda specs: [measurements[2]] * len(specs))
    assert updated[2].median_ms == measurements[2].median_ms and updated[2].timings == 2
    again, _ = retime_outliers(PROFILE, updated, fit_measurements(PROFILE, updated),
                               retime=lambda specs: pytest.fail(f"re-timed twice: {specs}"))
    assert again == updated


def test_a_design_timed_during_a_long_spell_of_load_is_timed_again_whole() -> None:
    slowed = {1, 3, 4, 7, 9, 12, 15}
    measurements = _synthetic_design(disturbed=slowed, factor=2.0)
    clean = _synthetic_design(disturbed=set(), factor=1.0)
    first = fit_measurements(PROFILE, measurements)
    assert first.heldout_mape_percent > RETIME_ALL_MAPE  # the premise: the fit is visibly poor
    asked: list[list] = []

    def retime(specs):
        asked.append(list(specs))
        return [next(m for m in clean if m.spec == spec) for spec in specs]

    updated, refit = retime_outliers(PROFILE, measurements, first, retime=retime)
    assert asked == [[m.spec for m in measurements]]  # every point, once
    assert all(m.timings == 2 for m in updated)
    assert [m.median_ms for m in updated] == pytest.approx([m.median_ms for m in clean])
    assert refit.heldout_mape_percent < 1.0


def test_a_design_the_fit_matches_is_not_timed_again() -> None:
    measurements = _synthetic_design(disturbed=0, factor=1.0)
    updated, _ = retime_outliers(PROFILE, measurements, fit_measurements(PROFILE, measurements),
                                 retime=lambda specs: pytest.fail(f"re-timed a clean design: {specs}"))
    assert updated == measurements


def test_calibrate_cli_times_every_spec_in_rounds_and_plan_then_uses_the_fit(run_cli, tmp_cwd) -> None:
    pytest.importorskip("onnxruntime")
    quick = (("warmup_ms: 200", "warmup_ms: 5"), ("warmup_iterations: 10", "warmup_iterations: 2"),
             ("duration_ms: 1000", "duration_ms: 20"), ("min_iterations: 100", "min_iterations: 5"))
    profile_path = write_tiny_profile(tmp_cwd, extra=quick)
    done = run_cli("calibrate", "--profile", str(profile_path), "--specs", "6", "--opset", "17")
    assert done.exit_code == 0, done.stderr
    assert "exporting: 6/6 done" in done.stdout
    assert f"timing: {6 * CALIBRATION_ROUNDS}/{6 * CALIBRATION_ROUNDS} done" in done.stdout
    assert "PASSED: calibrated" in done.stdout
    assert (tmp_cwd / "profiles" / "tiny-test.latency.json").is_file()
    planned = run_cli("plan", "--profile", str(profile_path), "--arch", "resnet", "--json")
    assert planned.exit_code == 0, planned.stderr
    assert json.loads(planned.stdout)["predictor"]["kind"] == "calibrated"
    # A calibration named on the command line must exist: no silent fall back to the roofline.
    missing = run_cli("plan", "--profile", str(profile_path), "--calibration", "nowhere.latency.json")
    assert missing.exit_code == 2 and "nowhere.latency.json' does not exist" in missing.stderr


def test_calibrating_on_an_unreachable_device_fails_before_any_export(tmp_cwd) -> None:
    from seekdeploy.errors import RemoteError
    from seekdeploy.plan.calibration import calibrate_profile
    from sshd import free_port

    stages: list[tuple[str, int, int]] = []
    with pytest.raises(RemoteError, match="refused"):
        calibrate_profile(PROFILE, "resnet", specs=6, host=f"nobody@127.0.0.1:{free_port()}",
                          on_progress=lambda *step: stages.append(step))
    assert stages == []
    assert not (tmp_cwd / "profiles").exists()


def test_the_tail_factor_follows_the_latency_of_the_spec() -> None:
    """Fixed noise weighs more on a fast model: the factor is the design's, interpolated in log
    latency at the predicted typical latency, flat past the ends; without a latency, the median."""
    from seekdeploy.plan.calibration import measured_tail_curve

    specs = design_specs("resnet", 5, seed=1)
    medians, ratios = [0.1, 0.2, 1.0, 4.0, 8.0], [1.5, 1.4, 1.2, 1.1, 1.1]
    measurements = [Measurement(spec, _window(m), _window(m, tail=r)) for spec, m, r in zip(specs, medians, ratios)]
    curve = measured_tail_curve(measurements)
    # Each point's ratio is the median of it and its neighbours (1.5, 1.4 -> 1.45 at the first end).
    assert [point[1] for point in curve["95"]] == pytest.approx([1.45, 1.4, 1.2, 1.1, 1.1])
    predictor = CalibratedPredictor(PROFILE, "roofline-scaled", [1, 1, 0, 0], {"95": 1.2}, tail_curve=curve)
    assert predictor.tail_factor(95, 0.2) == pytest.approx(1.4)
    assert predictor.tail_factor(95, (0.2 * 1.0) ** 0.5) == pytest.approx(1.3)  # halfway in log latency
    assert predictor.tail_factor(95, 0.01) == pytest.approx(1.45) and predictor.tail_factor(95, 50.0) == 1.1
    assert list(predictor.tail_factor(95, np.array([0.2, 4.0]))) == pytest.approx([1.4, 1.1])
    assert predictor.tail_factor(95) == 1.2  # no latency given: the design's median
    # One disturbed window (ratio 3.0 at 1 ms) does not make a dent.
    disturbed = [Measurement(s, _window(m), _window(m, tail=3.0 if m == 1.0 else 1.2))
                 for s, m in zip(specs, medians)]
    assert max(point[1] for point in measured_tail_curve(disturbed)["95"]) == pytest.approx(1.2)


def test_focus_specs_land_where_the_first_fit_puts_each_budget() -> None:
    """Each pick is the spec the default shape rule allows predicted nearest its target (0.8x, then
    1.0x of each role's budget), never one excluded or picked already."""
    from seekdeploy.plan.proportions import DEFAULT_SHAPE_RULE, grid_mask
    from seekdeploy.plan.space import FOCUS_FRACTIONS, focus_specs, spec_grid

    predictor = RooflinePredictor(PROFILE)
    budgets = list(PROFILE.budgets.values())
    grid = spec_grid("resnet")
    allowed = [grid.spec_at(int(i)) for i in np.flatnonzero(grid_mask(grid, "resnet", DEFAULT_SHAPE_RULE))]
    chosen = focus_specs("resnet", PROFILE, predictor, 4, shape=DEFAULT_SHAPE_RULE)
    assert len(set(chosen)) == 4 and set(chosen) <= set(allowed)
    targets = [(fraction * budget.latency_ms, budget) for fraction in FOCUS_FRACTIONS for budget in budgets]
    for index, (spec, (target, budget)) in enumerate(zip(chosen, targets)):
        def miss(candidate, budget=budget, target=target):
            return abs(np.log(predictor.predict_percentile_ms(candidate, budget.latency_percentile) / target))
        rest = [candidate for candidate in allowed if candidate not in chosen[:index]]
        assert miss(spec) == pytest.approx(min(miss(candidate) for candidate in rest))
    again = focus_specs("resnet", PROFILE, predictor, 2, exclude=frozenset(chosen[:2]), shape=DEFAULT_SHAPE_RULE)
    assert len(again) == 2 and not set(again) & set(chosen[:2])
    assert focus_specs("resnet", PROFILE, predictor, 0) == []


def test_a_focused_calibration_times_the_specs_near_the_budgets_after_the_first_fit(tmp_cwd) -> None:
    """Real exports timed by onnxruntime: the design, then the focus specs, fitted together."""
    pytest.importorskip("onnxruntime")
    from seekdeploy.plan.calibration import calibrate_profile
    from seekdeploy.plan.defaults import ShapeRule

    protocol = MeasurementProtocol(warmup_ms=10, warmup_iterations=3, duration_ms=40, min_iterations=10)
    stages: list[str] = []
    result = calibrate_profile(PROFILE, "resnet", specs=6, opset=17, protocol=protocol, rounds=1, focus=2,
                               shape=ShapeRule.GRADED, on_progress=lambda stage, done, total: stages.append(stage))
    entry = json.loads(result.path.read_text())["families"]["resnet"]
    assert len(entry["focus"]) == 2 and len(result.measurements) == 8
    assert [m.spec.to_text() for m in result.measurements[-2:]] == entry["focus"]
    assert stages.index("focus-export") > max(i for i, stage in enumerate(stages) if stage == "time")
    assert sorted(entry["tail_curve"]) == ["90", "95", "99"] and len(entry["tail_curve"]["95"]) == 8
    loaded = load_predictor(PROFILE, "resnet")
    assert loaded.tail_curve["95"] == [tuple(point) for point in entry["tail_curve"]["95"]]
