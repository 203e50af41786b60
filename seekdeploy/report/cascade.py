"""The base -> motivated cascade: run the base, hand the image on when its confidence is low.

Pure numpy. For a threshold t an image is *deferred* to the motivated model when the base's top-1
softmax confidence is below t. Per image the latency is the base's, plus the motivated model's when
deferred, so the expected latency is `lat_base + P(conf < t) * lat_motivated` and the accuracy is
the mean over images of (motivated correct if deferred else base correct). t = 0 never defers
(the base alone); any t > 1 always defers (confidences are at most 1).

The report chooses the threshold on the validation split and reports what it gives on the test
split (`choose_on_validation`), so the cascade's accuracy is measured on images that did not pick it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seekdeploy.roles import Role

if TYPE_CHECKING:
    from seekdeploy.report.predictions import Predictions

# 0.00, 0.01, ..., 1.00 and one threshold above 1 (every image deferred: the motivated path).
DEFAULT_THRESHOLDS: tuple[float, ...] = (*(round(i / 100, 2) for i in range(101)), 1.01)


@dataclass(frozen=True)
class CascadeSweep:
    """The cascade's figures at every threshold, plus each model alone on the same images."""

    thresholds: np.ndarray  # (T,)
    deferred_fraction: np.ndarray  # (T,) P(conf < t)
    expected_latency_ms: np.ndarray  # (T,) lat_base + P(conf < t) * lat_motivated
    tail_latency_ms: np.ndarray  # (T,) per-image latency at `latency_percentile`
    accuracy: np.ndarray  # (T,) top-1 of the cascade
    base_accuracy: float
    motivated_accuracy: float
    base_latency_ms: float
    motivated_latency_ms: float
    latency_percentile: float
    n_images: int

    def points(self) -> list[dict[str, float]]:
        """One plain dict per threshold, for JSON and tables."""
        return [
            {"threshold": float(t), "deferred_fraction": float(d), "expected_latency_ms": float(e),
             "tail_latency_ms": float(q), "accuracy": float(a)}
            for t, d, e, q, a in zip(self.thresholds, self.deferred_fraction,
                                     self.expected_latency_ms, self.tail_latency_ms, self.accuracy)
        ]  # fmt: skip

    def best_within(self, budget_ms: float) -> dict[str, float] | None:
        """The threshold whose expected latency meets `budget_ms` with the best accuracy (ties:
        the lower latency), or None when no threshold meets it."""
        fits = np.flatnonzero(self.expected_latency_ms <= budget_ms)
        if fits.size == 0:
            return None
        # lexsort sorts by the last key first: accuracy descending, then latency ascending.
        order = np.lexsort((self.expected_latency_ms[fits], -self.accuracy[fits]))
        return self.points()[int(fits[order[0]])]


def cascade_sweep(
    base_probs: np.ndarray,
    motivated_probs: np.ndarray,
    labels: np.ndarray,
    base_latency_ms: float,
    motivated_latency_ms: float,
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    *,
    latency_percentile: float = 95.0,
) -> CascadeSweep:
    """Expected latency and accuracy of the base -> motivated cascade at every threshold.

    `base_probs` and `motivated_probs` are (N, K) softmax probabilities of the same N test images,
    `labels` their (N,) true classes; the latencies are per image (mean or a percentile, the
    caller's choice). `tail_latency_ms` is the per-image latency at `latency_percentile` of the
    two-valued mixture (base alone, or base + motivated), for comparison with percentile budgets.
    """
    base_probs = np.asarray(base_probs, dtype=np.float64)  # (N, K)
    motivated_probs = np.asarray(motivated_probs, dtype=np.float64)  # (N, K)
    labels = np.asarray(labels).reshape(-1)  # (N,)
    _check_inputs(base_probs, motivated_probs, labels, base_latency_ms, motivated_latency_ms)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)  # (T,)
    confidence = base_probs.max(axis=1)  # (N,)
    base_correct = base_probs.argmax(axis=1) == labels  # (N,)
    motivated_correct = motivated_probs.argmax(axis=1) == labels  # (N,)
    deferred = confidence[None, :] < t[:, None]  # (T, N)
    fraction = deferred.mean(axis=1)  # (T,)
    accuracy = np.where(deferred, motivated_correct[None, :], base_correct[None, :]).mean(axis=1)
    expected = base_latency_ms + fraction * motivated_latency_ms  # (T,)
    # The q-th percentile of {base w.p. 1-f, base+motivated w.p. f} is base+motivated once f > 1-q.
    tail = np.where(fraction > 1.0 - latency_percentile / 100.0,
                    base_latency_ms + motivated_latency_ms, base_latency_ms)
    return CascadeSweep(
        thresholds=t, deferred_fraction=fraction, expected_latency_ms=expected,
        tail_latency_ms=tail.astype(np.float64), accuracy=accuracy,
        base_accuracy=float(base_correct.mean()), motivated_accuracy=float(motivated_correct.mean()),
        base_latency_ms=float(base_latency_ms), motivated_latency_ms=float(motivated_latency_ms),
        latency_percentile=float(latency_percentile), n_images=int(labels.size),
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably in float64."""
    logits = np.asarray(logits, dtype=np.float64)  # (N, K)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _check_inputs(base: np.ndarray, motivated: np.ndarray, labels: np.ndarray,
                  base_ms: float, motivated_ms: float) -> None:
    # Programming errors (shapes come from our own predictions), so ValueError, not a user error.
    if base.ndim != 2 or base.shape != motivated.shape:
        raise ValueError(f"probabilities must both be (N, K); got {base.shape} and {motivated.shape}")
    if labels.shape != (base.shape[0],):
        raise ValueError(f"labels must be ({base.shape[0]},), got {labels.shape}")
    if base.shape[0] == 0:
        raise ValueError("the cascade needs at least one image")
    if not (np.isfinite(base_ms) and np.isfinite(motivated_ms)) or base_ms < 0 or motivated_ms < 0:
        raise ValueError(f"latencies must be finite and >= 0, got {base_ms} and {motivated_ms}")


def describe_choice(point: dict[str, Any] | None, budget_ms: float, statistic: str) -> str:
    """One sentence naming the chosen threshold (or why there is none)."""
    if point is None:
        return (f"no threshold keeps the cascade's expected ({statistic}) latency within "
                f"{budget_ms:.3g} ms: even the base alone is slower")
    return (f"threshold {point['threshold']:.2f}: {point['deferred_fraction']:.1%} of images go to "
            f"the motivated model, expected {statistic} latency {point['expected_latency_ms']:.3g} ms "
            f"≤ {budget_ms:.3g} ms, accuracy {point['accuracy']:.2%}")


def choose_on_validation(validation: CascadeSweep, test: CascadeSweep,
                         budget_ms: float) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(the point chosen on `validation` by `best_within(budget_ms)`, the `test` split's figures at
    that same threshold); (None, None) when no threshold meets the budget on validation.

    Choosing on the split that reports the accuracy would flatter the cascade (the threshold is
    fitted to those very images), so the choice and the measurement use different images.
    """
    if not np.array_equal(validation.thresholds, test.thresholds):
        raise ValueError("the validation and test sweeps must use the same thresholds")
    picked = validation.best_within(budget_ms)
    if picked is None:
        return None, None
    index = int(np.flatnonzero(test.thresholds == picked["threshold"])[0])
    return picked, test.points()[index]


def describe_split_choice(chosen_on: dict[str, Any] | None, measured: dict[str, Any] | None, budget_ms: float,
                          statistic: str, sizes: tuple[int, int]) -> str:
    """One sentence: the threshold, what it gave on the validation split that chose it, and what it
    gives on the test split that measures it (`sizes` = (validation images, test images))."""
    if chosen_on is None or measured is None:
        return (f"no threshold keeps the cascade's expected ({statistic}) latency within {budget_ms:.3g} ms on "
                "the validation split: even the base alone is slower")
    over = "" if measured["expected_latency_ms"] <= budget_ms else f", over the {budget_ms:.3g} ms budget"
    return (f"threshold {chosen_on['threshold']:.2f}, chosen on the validation split ({sizes[0]} images: "
            f"{chosen_on['deferred_fraction']:.1%} to the motivated model, expected {statistic} latency "
            f"{chosen_on['expected_latency_ms']:.3g} ms ≤ {budget_ms:.3g} ms, top-1 {chosen_on['accuracy']:.2%}); "
            f"measured on the test split ({sizes[1]} images): {measured['deferred_fraction']:.1%} to the "
            f"motivated model, expected {statistic} latency {measured['expected_latency_ms']:.3g} ms{over}, "
            f"top-1 {measured['accuracy']:.2%}")


def cascade_section(predictions: Predictions, latency_ms: dict[str, float], budget: dict[str, Any] | None,
                    statistic: str, notes: list[str]) -> dict[str, Any]:
    """The report's cascade section: the sweep on the test split (`points`), the threshold chosen on
    the validation split within the motivated latency budget, and that threshold's test figures
    (`chosen`). Without validation predictions the test split does both, and a note says so."""
    percentile = budget["latency_percentile"] if budget else 95.0

    def sweep(base: np.ndarray, motivated: np.ndarray, labels: np.ndarray) -> CascadeSweep:
        return cascade_sweep(softmax(base), softmax(motivated), labels, latency_ms[Role.BASE],
                             latency_ms[Role.MOTIVATED], latency_percentile=percentile)

    test = sweep(predictions.base_logits, predictions.motivated_logits, predictions.labels)
    validation = None if predictions.val_labels is None else \
        sweep(predictions.val_base_logits, predictions.val_motivated_logits, predictions.val_labels)
    budget_ms = budget["latency_ms"] if budget else None
    chosen_on = chosen = None
    if budget_ms is None:
        summary = "no motivated latency budget declared: no threshold chosen"
    elif validation is None:
        notes.append("the run has no validation split: the cascade threshold was chosen on the test split "
                     "that also measures it, which flatters the cascade")
        chosen = chosen_on = test.best_within(budget_ms)
        summary = describe_choice(chosen, budget_ms, statistic) + " (chosen and measured on the test split)"
    else:
        chosen_on, chosen = choose_on_validation(validation, test, budget_ms)
        summary = describe_split_choice(chosen_on, chosen, budget_ms, statistic,
                                        (validation.n_images, test.n_images))
    return {"latency_statistic": statistic, "n_images": test.n_images,
            "n_validation_images": validation.n_images if validation else 0,
            "threshold_split": "validation" if validation else "test", "measured_split": "test",
            "base_latency_ms": latency_ms[Role.BASE], "motivated_latency_ms": latency_ms[Role.MOTIVATED],
            "points": test.points(), "budget_ms": budget_ms, "chosen": chosen, "chosen_on_validation": chosen_on,
            "summary": summary, "predictions_source": predictions.source}
