"""The cascade arithmetic on hand-made predictions whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seekdeploy.report.cascade import (cascade_section, cascade_sweep, choose_on_validation, describe_choice,
                                       softmax)
from seekdeploy.report.predictions import Predictions

# 4 images, 2 classes. Base confidences 0.9, 0.6, 0.55, 0.8; base right on images 0 and 2,
# motivated right on images 0, 1 and 3.
BASE = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]])
MOTIVATED = np.array([[0.7, 0.3], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
LABELS = np.array([0, 0, 0, 0])
LAT_BASE, LAT_MOTIVATED = 1.0, 4.0


def _sweep(thresholds, percentile=95.0):
    return cascade_sweep(BASE, MOTIVATED, LABELS, LAT_BASE, LAT_MOTIVATED, thresholds,
                         latency_percentile=percentile)


def test_threshold_zero_is_the_base_alone() -> None:
    sweep = _sweep([0.0])
    assert sweep.deferred_fraction[0] == 0.0
    assert sweep.accuracy[0] == pytest.approx(0.5) == sweep.base_accuracy
    assert sweep.expected_latency_ms[0] == pytest.approx(LAT_BASE)
    assert sweep.tail_latency_ms[0] == pytest.approx(LAT_BASE)


def test_threshold_above_one_is_always_the_motivated_model() -> None:
    sweep = _sweep([1.01])
    assert sweep.deferred_fraction[0] == 1.0
    assert sweep.accuracy[0] == pytest.approx(0.75) == sweep.motivated_accuracy
    # Every image pays for both models: the base ran first.
    assert sweep.expected_latency_ms[0] == pytest.approx(LAT_BASE + LAT_MOTIVATED)


def test_middle_thresholds_by_hand() -> None:
    sweep = _sweep([0.7, 0.85])
    # t=0.7 defers images 1 and 2 (conf 0.6, 0.55): right = base0, mot1 -> 2 of 4; 1 + 0.5*4 = 3 ms.
    # t=0.85 defers 1, 2, 3: right = base0, mot1, mot3 -> 3 of 4; 1 + 0.75*4 = 4 ms.
    np.testing.assert_allclose(sweep.deferred_fraction, [0.5, 0.75])
    np.testing.assert_allclose(sweep.accuracy, [0.5, 0.75])
    np.testing.assert_allclose(sweep.expected_latency_ms, [3.0, 4.0])


def test_tail_latency_follows_the_percentile() -> None:
    # 1 of 4 deferred (t=0.58): p50 is still the base alone, p95 pays for both models.
    assert _sweep([0.58], percentile=50.0).tail_latency_ms[0] == pytest.approx(LAT_BASE)
    assert _sweep([0.58], percentile=95.0).tail_latency_ms[0] == pytest.approx(LAT_BASE + LAT_MOTIVATED)


def test_best_within_budget_picks_accuracy_then_latency() -> None:
    sweep = _sweep([0.0, 0.7, 0.85, 1.01])
    assert sweep.best_within(4.0)["threshold"] == 0.85  # 75% at 4 ms beats 50% at 1 or 3 ms
    assert sweep.best_within(3.5)["threshold"] == 0.0  # 50% both; the faster one wins
    assert sweep.best_within(0.5) is None
    assert "no threshold" in describe_choice(None, 0.5, "mean")
    assert "threshold 0.85" in describe_choice(sweep.best_within(4.0), 4.0, "mean")


def test_points_are_plain_json() -> None:
    points = _sweep([0.0, 1.01]).points()
    assert [p["threshold"] for p in points] == [0.0, 1.01]
    assert all(type(value) is float for p in points for value in p.values())


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        cascade_sweep(BASE, MOTIVATED, LABELS[:3], 1.0, 2.0, [0.5])
    with pytest.raises(ValueError, match="both be"):
        cascade_sweep(BASE, MOTIVATED[:, :1], LABELS, 1.0, 2.0, [0.5])
    with pytest.raises(ValueError, match="latencies"):
        cascade_sweep(BASE, MOTIVATED, LABELS, float("nan"), 2.0, [0.5])


def test_softmax_rows_sum_to_one_and_keep_the_argmax() -> None:
    logits = np.array([[1000.0, 0.0, -5.0], [0.1, 0.2, 0.3]])
    probs = softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert list(probs.argmax(axis=1)) == [0, 2]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_sweep_invariants(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base, motivated = softmax(rng.normal(size=(n, k))), softmax(rng.normal(size=(n, k)))
    labels = rng.integers(0, k, size=n)
    sweep = cascade_sweep(base, motivated, labels, 2.0, 5.0, np.linspace(0, 1.01, 30))
    assert sweep.accuracy[0] == pytest.approx(sweep.base_accuracy)
    assert sweep.accuracy[-1] == pytest.approx(sweep.motivated_accuracy)
    assert np.all(np.diff(sweep.expected_latency_ms) >= 0)  # higher threshold, more deferred
    assert np.all((sweep.expected_latency_ms >= 2.0) & (sweep.expected_latency_ms <= 7.0))


# A validation split on which deferring pays off (the motivated model fixes the unsure images),
# and a test split where it does not: the threshold must come from the first, the figures from the
# second.
VAL_BASE = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.95, 0.05]])
VAL_MOTIVATED = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
VAL_LABELS = np.array([0, 1, 1, 0])  # base right on 0 and 3 only; motivated right on all


def test_threshold_is_chosen_on_validation_and_measured_on_test() -> None:
    thresholds = [0.0, 0.7, 1.01]
    validation = cascade_sweep(VAL_BASE, VAL_MOTIVATED, VAL_LABELS, LAT_BASE, LAT_MOTIVATED, thresholds)
    test = _sweep(thresholds)
    chosen_on, measured = choose_on_validation(validation, test, budget_ms=3.5)
    # On validation t=0.7 defers images 1 and 2 (conf 0.55, 0.6): 4/4 right at 1 + 0.5*4 = 3 ms.
    assert chosen_on["threshold"] == 0.7 and chosen_on["accuracy"] == 1.0
    # The same threshold on the test split: 2 of 4 right (see test_middle_thresholds_by_hand).
    assert measured["threshold"] == 0.7 and measured["accuracy"] == pytest.approx(0.5)
    assert test.best_within(3.5)["threshold"] == 0.0  # what choosing on the test split would have said
    assert choose_on_validation(validation, test, budget_ms=0.5) == (None, None)


def test_cascade_section_says_which_split_chose_and_which_measured() -> None:
    logits = np.log  # probabilities -> logits whose softmax gives them back
    with_val = Predictions(logits(BASE), logits(MOTIVATED), LABELS, "computed",
                           logits(VAL_BASE), logits(VAL_MOTIVATED), VAL_LABELS)
    budget = {"latency_ms": 3.5, "latency_percentile": 95.0}
    notes: list[str] = []
    section = cascade_section(with_val, {"base": LAT_BASE, "motivated": LAT_MOTIVATED}, budget, "mean", notes)
    assert (section["threshold_split"], section["measured_split"]) == ("validation", "test")
    assert section["n_validation_images"] == 4 and section["n_images"] == 4 and notes == []
    assert section["chosen_on_validation"]["accuracy"] == 1.0
    assert section["chosen"]["accuracy"] == pytest.approx(0.5)  # the test split's figure
    assert "chosen on the validation split (4 images" in section["summary"]
    assert "measured on the test split (4 images)" in section["summary"]
    test_only = Predictions(logits(BASE), logits(MOTIVATED), LABELS, "computed")
    fallback = cascade_section(test_only, {"base": LAT_BASE, "motivated": LAT_MOTIVATED}, budget, "mean", notes)
    assert fallback["threshold_split"] == "test" and "flatters" in notes[0]
