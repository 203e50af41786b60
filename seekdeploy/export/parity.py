"""Parity figures between a reference model's logits and an exported model's, and the limits.

An export that drifts beyond its precision's tolerance is an error (`ExportError`), never a
warning: a model that does not compute what was trained must not ship.

Tolerances, chosen by measurement (tests/export/test_export_parity.py; torch 2.14, onnxruntime 1.32, 64
random images, tiny conv, attention and 64/128-channel conv models with logit std 0.2-0.3): fp32
ONNX vs torch differed by at most 1.5e-7, so 1e-4 leaves a wide margin for deeper models while
still catching any real graph error. Rounding grows with the logits' magnitude (a 2-epoch digits
pair had motivated logits up to 676 on real validation images and differed by 1.8e-4 there, a
relative 3e-7), so each bound applies per unit of the reference logits' largest magnitude
(at least 1). fp16 (fp32 I/O) differed by at most 1.8e-4, a relative error
near 1e-3; trained classifiers have logits of scale ~10, i.e. ~1e-2 absolute, so the limit is
5e-2, and a deliberately perturbed weight exceeds it by far. INT8 is only produced by TensorRT,
which cannot run here: its limit (top-1 agreement >= 0.97, no max_abs bound because int8 logits
shift by design) is declared, not measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy.backends.agent_onnxruntime import session_arguments  # proven as the backend loads it
from seekdeploy.errors import ExportError
from seekdeploy.profiles.schema import Precision

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ParityFigures:
    """How far candidate logits are from the reference: over all elements and in top-1 class."""

    max_abs: float
    p99_abs: float
    top1_agreement: float  # fraction of samples whose arg-max class is the same
    n: int  # number of samples compared
    # The reference logits' largest magnitude: float rounding grows with it, so a tolerance's
    # max_abs applies per unit of it (`ParityTolerance.limit`).
    reference_max_abs: float = 1.0

    def to_json(self) -> dict[str, float | int]:
        """Plain dict for manifests."""
        return {"max_abs": self.max_abs, "p99_abs": self.p99_abs,
                "top1_agreement": self.top1_agreement, "n": self.n,
                "reference_max_abs": self.reference_max_abs}


@dataclass(frozen=True)
class ParityTolerance:
    """The most a precision may drift: max |difference| (None = unbounded) and min agreement."""

    max_abs: float | None
    min_top1_agreement: float

    def limit(self, figures: ParityFigures) -> float | None:
        """The bound on max |diff| for these figures: max_abs per unit of the reference logits'
        largest magnitude, never below max_abs itself (None = unbounded)."""
        return None if self.max_abs is None else self.max_abs * max(1.0, figures.reference_max_abs)


TOLERANCES: dict[Precision, ParityTolerance] = {
    Precision.FP32: ParityTolerance(max_abs=1e-4, min_top1_agreement=0.999),
    Precision.FP16: ParityTolerance(max_abs=5e-2, min_top1_agreement=0.99),
    Precision.INT8: ParityTolerance(max_abs=None, min_top1_agreement=0.97),
}


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> ParityFigures:
    """Compare two (N, K) logit arrays: max and 99th-percentile absolute difference, top-1 agreement."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise ExportError(
            f"cannot compare logits of shapes {ref.shape} and {cand.shape}: both must be the same "
            "non-empty (samples, classes) array; the exported model's output does not match"
        )
    diff = np.abs(ref - cand)  # (N, K)
    if not np.all(np.isfinite(cand)):
        max_abs = p99_abs = math.inf  # NaN/inf logits (e.g. fp16 overflow) always fail
    else:
        max_abs, p99_abs = float(diff.max()), float(np.percentile(diff, 99))
    agreement = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    return ParityFigures(max_abs=max_abs, p99_abs=p99_abs, top1_agreement=agreement, n=int(ref.shape[0]),
                         reference_max_abs=float(np.abs(ref).max()))


def check_parity(figures: ParityFigures, precision: Precision | str, what: str,
                 tolerances: Mapping[Precision, ParityTolerance] | None = None) -> ParityFigures:
    """Raise `ExportError` when `figures` exceed the tolerance of `precision` (from `tolerances`,
    default `TOLERANCES`); return them otherwise."""
    tolerance = (TOLERANCES if tolerances is None else tolerances)[Precision(precision)]
    problems = []
    limit = tolerance.limit(figures)
    if limit is not None and not figures.max_abs <= limit:
        scale = (f" ({tolerance.max_abs:g} per unit of the largest reference logit, {figures.reference_max_abs:.3g})"
                 if limit != tolerance.max_abs else "")
        problems.append(f"max |diff| {figures.max_abs:.3g} > {limit:.3g}{scale}")
    if not figures.top1_agreement >= tolerance.min_top1_agreement:
        problems.append(
            f"top-1 agreement {figures.top1_agreement:.4f} < {tolerance.min_top1_agreement:g}"
        )
    if problems:
        raise ExportError(
            f"{what} fails its {Precision(precision).value} parity check over {figures.n} samples: "
            f"{'; '.join(problems)}. The exported model does not compute what was trained; "
            "re-export it, or use a higher precision"
        )
    return figures


def run_onnx(path: str | Path, images_float32: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run an ONNX classifier on CPU onnxruntime over (N, C, H, W) float32 images; return (N, K) logits.

    The file is validated with `load_onnx_checked` first, then loaded with the onnxruntime
    backend's own session arguments (`session_arguments`), so the proof runs the graph the
    deployed runtime runs. A model with a fixed batch size is fed exactly that many images per run
    (the last batch is zero-padded, its padding dropped).
    """
    import numpy as np
    import onnxruntime as ort

    from seekdeploy.export.onnx_export import load_onnx_checked

    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    images = np.ascontiguousarray(images_float32, dtype=np.float32)  # (N, C, H, W)
    proto = load_onnx_checked(path)
    try:
        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"],
            **session_arguments(ort, str(path)),
        )
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ExportError(f"onnxruntime cannot load {path}: {exc}") from exc
    input_meta = session.get_inputs()[0]
    fixed = input_meta.shape[0] if isinstance(input_meta.shape[0], int) else None
    step = fixed or batch_size
    outputs = []
    for start in range(0, images.shape[0], step):
        chunk = images[start:start + step]
        real = chunk.shape[0]
        if fixed and real < fixed:
            pad = np.zeros((fixed - real, *chunk.shape[1:]), dtype=np.float32)
            chunk = np.concatenate([chunk, pad])
        outputs.append(session.run(None, {input_meta.name: chunk})[0][:real])  # (b, K)
    return np.concatenate(outputs).astype(np.float32)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1] of (N, K) logits against (N,) integer labels."""
    import numpy as np

    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or labels.shape[0] == 0:
        raise ExportError(f"accuracy needs (N, K) logits and (N,) labels, got {logits.shape} and {labels.shape}")
    return float(np.mean(logits.argmax(axis=1) == labels))


def parity_line(label: str, figures: dict[str, Any]) -> str:
    """One printed line of a proof's figures (`ParityFigures.to_json()`): max and p99 |diff|, top-1 agreement."""
    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    return (f"  {label:<26} max |diff| {show(figures['max_abs']):>9}  p99 {show(figures['p99_abs']):>9}  "
            f"top-1 agree {figures['top1_agreement']:.2%}  (n={figures['n']})")
