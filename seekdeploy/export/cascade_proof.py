"""The cascade's proof: it decides and answers exactly as the two-file cascade does.

The two-file cascade is what a user would wire by hand from the separate exports: run the base's
model.onnx, take the top-1 softmax (or the top-1 − top-2 margin) of its logits, and where that is
below the threshold use the motivated model.onnx's logits instead. The single-file cascade must
make the same decision on every image (exactly) and return the same logits within the fp32 parity
tolerance; run in mixed batches, this also proves the gather/scatter of the unsure samples. The
threshold override is proven at both ends (0: the base answers everything; above 1: the motivated
model answers everything) and in the middle (about half escalate, so most batches are mixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seekdeploy.errors import ExportError
from seekdeploy.export.cascade_threshold import ALWAYS_ESCALATE

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.export.cascade_check import CascadeOutputs, CascadeSession
    from seekdeploy.layout import CascadeLayout

CONFIDENCE_MAX_ABS = 1e-5
PROOF_BATCH = 64  # mixed batches: sure and unsure samples together


@dataclass(frozen=True)
class StagedCascade:
    """What each backend's cascade step is handed (`ExportStep`'s `export_cascade`): the staged
    cascade.onnx, already proven in onnxruntime, and the two-file cascade's inputs on the test split."""

    folder: CascadeLayout
    images: np.ndarray  # (N, C, H, W) float32, normalized test images
    base_logits: np.ndarray  # (N, K) of base/model.onnx
    motivated_logits: np.ndarray  # (N, K) of motivated/model.onnx
    threshold: float  # the stored one
    confidence: str


def gate_confidence(base_logits: np.ndarray, confidence: str) -> np.ndarray:
    """(N,) float32 confidence of (N, K) base logits: top-1 softmax, or top-1 minus top-2 (margin)."""
    import numpy as np

    logits = np.asarray(base_logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)  # (N, K)
    if confidence == "softmax":
        return probs.max(axis=1)
    top2 = np.sort(probs, axis=1)[:, -2:]  # (N, 2) ascending
    return top2[:, 1] - top2[:, 0]


def two_file_cascade(base_logits: np.ndarray, motivated_logits: np.ndarray, threshold: float,
                     confidence: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits (N, K), answered_by (N,), confidence (N,)) of the hand-wired cascade."""
    import numpy as np

    conf = gate_confidence(base_logits, confidence)
    unsure = conf < np.float32(threshold)
    logits = np.where(unsure[:, None], motivated_logits, base_logits).astype(np.float32)
    return logits, unsure.astype(np.int64), conf


def compare_cascade(outputs: CascadeOutputs, base_logits: np.ndarray, motivated_logits: np.ndarray,
                    threshold: float, confidence: str, what: str) -> dict[str, Any]:
    """Figures of `outputs` against the two-file cascade at `threshold`; ExportError when a decision
    differs or the logits or confidences drift beyond the fp32 tolerance."""
    import numpy as np

    from seekdeploy.export.parity import TOLERANCES, compare_logits
    from seekdeploy.profiles.schema import Precision

    logits, answered_by, conf = two_file_cascade(base_logits, motivated_logits, threshold, confidence)
    differing = int(np.sum(outputs.answered_by != answered_by))
    # The logits are held to the fp32 export parity bound.
    parity = compare_logits(logits, outputs.logits)
    logit_diff, logit_limit = parity.max_abs, TOLERANCES[Precision.FP32].limit(parity)
    conf_diff = float(np.abs(outputs.confidence.astype(np.float64) - conf).max())
    figures = {"n": int(len(answered_by)), "decisions_differing": differing,
               "escalated": int(answered_by.sum()), "logits_max_abs": logit_diff,
               "confidence_max_abs": conf_diff,
               "closest_confidence_to_threshold": float(np.abs(conf.astype(np.float64) - threshold).min())}
    if differing or not logit_diff <= logit_limit or not conf_diff <= CONFIDENCE_MAX_ABS:
        raise ExportError(
            f"{what}: the cascade differs from the two-file cascade (threshold {threshold:g}): {differing} of "
            f"{len(answered_by)} decisions differ, logits max |diff| {logit_diff:.3g} (limit {logit_limit:.3g}), "
            f"confidence max |diff| {conf_diff:.3g}; the cascade file is wrong: report it with the run")
    return figures


def _mixed_threshold(confidence: np.ndarray) -> float:
    # Halfway between the two middle distinct confidences: about half the images escalate, and no
    # confidence sits on the threshold (where float rounding could tip a decision).
    import numpy as np

    values = np.unique(confidence.astype(np.float64))
    if values.size < 2:
        return float(values[0]) if values.size else 0.5
    middle = values.size // 2
    return float(np.float32((values[middle - 1] + values[middle]) / 2))


def prove_cascade(session: CascadeSession, images: np.ndarray, base_logits: np.ndarray,
                  motivated_logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The stored threshold over every image in batches of 64, plus three overrides (none, about
    half and all images escalate: mixed batches prove the gather/scatter), each against the two-file
    cascade; with the cascade's top-1 and escalation rate at the stored threshold."""
    import numpy as np

    outputs = session.run(images, batch_size=PROOF_BATCH)
    stored = compare_cascade(outputs, base_logits, motivated_logits, session.threshold, session.confidence,
                             "stored threshold")
    overrides = {}
    for threshold in (0.0, _mixed_threshold(outputs.confidence), ALWAYS_ESCALATE):
        override = session.run(images, threshold=threshold, batch_size=PROOF_BATCH)
        overrides[str(threshold)] = compare_cascade(override, base_logits, motivated_logits, threshold,
                                                    session.confidence, f"threshold override {threshold:g}")
    return {"reference": "two-file cascade from base/model.onnx and motivated/model.onnx (onnxruntime)",
            "batch_size": PROOF_BATCH, "stored_threshold": stored, "overrides": overrides,
            "top1": float(np.mean(outputs.logits.argmax(axis=1) == labels)),
            "escalation_rate": float(np.mean(outputs.answered_by))}
