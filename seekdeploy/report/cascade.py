"""The base -> motivated cascade: run the base, hand the image on when its confidence is low.

Pure numpy. For a threshold t an image is *deferred* to the motivated model when the base's top-1
softmax confidence is below t. Per image the latency is the base's, plus the motivated model's when
deferred, so the expected latency is `lat_base + P(conf < t) * lat_motivated` and the accuracy is
the mean over images of (motivated correct if deferred else base correct). t = 0 never defers
(the base alone); any t > 1 always defers (confidences are at most 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
