"""Fit a latency model to measured latencies: non-negative least squares on relative error.

Each candidate model of `predictor.FIT_MODELS` turns a spec into a feature vector; the fit finds
non-negative coefficients (a layer can never take negative time) minimizing the sum of squared
*relative* errors, so small and large specs count alike. The candidate with the lowest k-fold
cross-validated mean absolute percentage error (each fold predicted by a fit that never saw it)
is chosen and refit on every measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seekdeploy.errors import ProfileError


@dataclass(frozen=True)
class FitResult:
    """The chosen model, its coefficients and how well each candidate predicted held-out specs."""

    model: str
    coefficients: tuple[float, ...]
    train_mape_percent: float  # the chosen model's error on the specs it was fitted to
    heldout_mape_percent: float  # its cross-validated error (each spec predicted unseen)
    heldout_mape_by_model: dict[str, float]


def fit_nnls(features: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimizing sum(((features @ c) - y) / y)^2."""
    from scipy.optimize import nnls

    weights = 1.0 / latency_ms  # (N,)
    design = features * weights[:, None]  # (N, F): each row divided by its target
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0  # an all-zero feature (e.g. no depthwise layer): coefficient stays 0
    solution, _ = nnls(design / scale, np.ones_like(latency_ms), maxiter=50 * design.shape[1])
    return solution / scale


def mape_percent(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Mean absolute percentage error."""
    return float(100.0 * np.mean(np.abs(predicted - measured) / measured))


def cross_validated_mape(features: np.ndarray, latency_ms: np.ndarray, folds: int, seed: int = 0) -> float:
    """k-fold MAPE: each spec is predicted by coefficients fitted without it."""
    order = np.random.default_rng(seed).permutation(len(latency_ms))
    predicted = np.empty_like(latency_ms)
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        coefficients = fit_nnls(features[train], latency_ms[train])
        predicted[fold] = features[fold] @ coefficients
    return mape_percent(np.maximum(predicted, 1e-3), latency_ms)


def choose_fit(features_by_model: dict[str, Sequence[Sequence[float]]], latency_ms: Sequence[float],
               folds: int = 5) -> FitResult:
    """Fit every candidate, pick the lowest cross-validated MAPE, refit it on all measurements."""
    target = np.asarray(latency_ms, dtype=np.float64)  # (N,)
    if len(target) < 4 or not np.all(target > 0):
        raise ProfileError(f"a calibration needs at least 4 positive latency measurements, got {len(target)}; "
                           "pass a larger --specs")
    folds = max(2, min(folds, len(target)))
    heldout = {}
    for model, rows in features_by_model.items():
        heldout[model] = cross_validated_mape(np.asarray(rows, dtype=np.float64), target, folds)
    best = min(heldout, key=heldout.__getitem__)
    features = np.asarray(features_by_model[best], dtype=np.float64)
    coefficients = fit_nnls(features, target)
    train = mape_percent(np.maximum(features @ coefficients, 1e-3), target)
    return FitResult(best, tuple(float(c) for c in coefficients), train, heldout[best], heldout)
