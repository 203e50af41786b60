"""Validation- and test-split predictions of both exported ONNX models, cached as `predictions.npz`.

The cascade must be computed from what ships, so both `model.onnx` files run with onnxruntime
(CPU) on the run's own validation and test splits, normalized exactly as in training: the cascade
threshold is chosen on the validation split and measured on the test split. The logits are cached
in the export folder together with the sha256 of each model and the dataset's identity; a cache
whose models or data differ (or that lacks the validation split) is recomputed, never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy import layout
from seekdeploy._io import atomic_path, sha256_file
from seekdeploy.errors import RuntimeBackendError
from seekdeploy.roles import ROLE_NAMES, Role

_CHUNK = 256  # images per onnxruntime call: bounded memory, few calls
_SPLITS_MARK = "splits=val+test"  # caches written before validation logits existed lack it


@dataclass(frozen=True)
class Predictions:
    """Logits of both roles on the same test images (and validation images), and the true labels."""

    base_logits: np.ndarray  # (N, K)
    motivated_logits: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    source: str  # "cache" or "computed"
    val_base_logits: np.ndarray | None = None  # (V, K); None when the run has no validation split
    val_motivated_logits: np.ndarray | None = None  # (V, K)
    val_labels: np.ndarray | None = None  # (V,)

    def top1(self, role: Role) -> float:
        """Top-1 accuracy of `role` on these images."""
        logits = Role(role).pick(self.base_logits, self.motivated_logits)
        return float((logits.argmax(axis=1) == self.labels).mean())


def load_or_compute_predictions(export_dir: Path, model_paths: dict[str, Path],
                                run_manifest: dict[str, Any]) -> Predictions:
    """Predictions of both exported models on the run's validation and test splits (cached in
    `export_dir`)."""
    identity = _identity(model_paths, run_manifest)
    cache = export_dir / layout.PREDICTIONS
    cached = _read_cache(cache, identity)
    if cached is not None:
        return cached
    splits = _splits(run_manifest)  # {"val"|"test": ((N, C, H, W) float32, (N,))}
    arrays = {}
    for split, (images, labels) in splits.items():
        prefix = "val_" if split == "val" else ""
        for role in ROLE_NAMES:
            arrays[f"{prefix}{role}_logits"] = run_onnx(model_paths[role], images) if len(images) else \
                np.zeros((0, 0), dtype=np.float32)
        arrays[f"{prefix}labels"] = labels
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        # A file handle, not a name: np.savez would append ".npz" to the temp name.
        np.savez_compressed(handle, **arrays, identity=np.asarray(identity))
    return _from_arrays(arrays, "computed")


def _from_arrays(arrays: Mapping[str, np.ndarray], source: str) -> Predictions:
    has_val = len(arrays["val_labels"]) > 0
    return Predictions(arrays["base_logits"], arrays["motivated_logits"], arrays["labels"], source,
                       *((arrays["val_base_logits"], arrays["val_motivated_logits"], arrays["val_labels"])
                         if has_val else (None, None, None)))


def run_onnx(model_path: Path, images: np.ndarray) -> np.ndarray:
    """(N, K) float32 logits of one ONNX classifier on (N, C, H, W) float32 images (CPU)."""
    import onnxruntime as ort

    from seekdeploy.backends.agent_onnxruntime import session_arguments

    try:  # loaded as the onnxruntime backend loads it, so the scores are the deployed model's
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"],
                                       **session_arguments(ort, str(model_path)))
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
        raise RuntimeBackendError(f"onnxruntime cannot load {model_path}: {exc}; re-run "
                                  "`seekdeploy export`") from exc
    entry = session.get_inputs()[0]
    batch_dim = entry.shape[0]
    # A static batch axis (e.g. exported with a fixed batch of 1) is fed that many images at a time.
    chunk = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else _CHUNK
    outputs = []
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk]
        if len(part) < chunk and isinstance(batch_dim, int):
            pad = np.zeros((chunk - len(part), *part.shape[1:]), dtype=part.dtype)
            outputs.append(session.run(None, {entry.name: np.concatenate([part, pad])})[0][:len(part)])
        else:
            outputs.append(session.run(None, {entry.name: part})[0])
    return np.concatenate(outputs).astype(np.float32)  # (N, K)


def _splits(run_manifest: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from seekdeploy.data import load_dataset, normalize

    dataset_info = run_manifest.get("dataset") or {}
    config = run_manifest.get("config") or {}
    shape = dataset_info.get("input") or {}
    dataset = load_dataset(
        dataset_info.get("name", config.get("data", "digits")),
        channels=int(shape["channels"]), height=int(shape["height"]), width=int(shape["width"]),
        seed=int(config.get("seed", 0)), data_dir=config.get("data_dir"),
        val_fraction=float(config.get("val_fraction", 0.1)),
        skip_bad_files=bool(config.get("skip_bad_files", False)),
    )
    out = {}
    for name, split in (("val", dataset.val), ("test", dataset.test)):
        images = normalize(split.images, dataset.mean, dataset.std).numpy()  # (N, C, H, W) float32
        out[name] = (images.astype(np.float32), split.labels.numpy().astype(np.int64))
    return out


def _identity(model_paths: dict[str, Path], run_manifest: dict[str, Any]) -> list[str]:
    dataset = run_manifest.get("dataset") or {}
    config = run_manifest.get("config") or {}
    return [sha256_file(model_paths[Role.BASE]), sha256_file(model_paths[Role.MOTIVATED]),
            str(dataset.get("name")), str(dataset.get("input")), str(config.get("seed")),
            str(config.get("val_fraction")), str((dataset.get("sizes") or {}).get("test")), _SPLITS_MARK]


def _read_cache(path: Path, identity: list[str]) -> Predictions | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if [str(x) for x in data["identity"]] != identity:
                return None
            return _from_arrays({key: data[key] for key in data.files}, "cache")
    except (OSError, ValueError, KeyError):
        return None  # a torn or foreign cache is recomputed
