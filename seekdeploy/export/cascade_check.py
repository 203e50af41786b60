"""Open and run a cascade.onnx only after proving it is one: whole, valid, seekdeploy's cascade
format, and (given its manifest) the very file the manifest describes.

`open_cascade` refuses a missing, truncated or corrupt file (via `load_onnx_checked`), a model that
is not a cascade (no `seekdeploy.kind` metadata, wrong inputs or outputs), one of an unknown format
version, and one whose sha256 differs from its manifest's record (a file from another export or
run): each with a message that says to export again. `CascadeSession.run` feeds images in batches
and, when asked, overrides the threshold stored in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import read_json_object, sha256_file
from seekdeploy.errors import ExportError
from seekdeploy.export.cascade_graph import (ANSWERED_BY, CASCADE_FORMAT_VERSION, CONFIDENCE, INPUT, LOGITS,
                                             META_CONFIDENCE, META_KIND, META_THRESHOLD, META_VERSION, THRESHOLD)

if TYPE_CHECKING:
    import numpy as np
    import onnx

_FIX = "export it again with `seekdeploy export RUN --cascade`"


@dataclass(frozen=True)
class CascadeOutputs:
    """What the cascade returned for N images."""

    logits: np.ndarray  # (N, K) float32
    answered_by: np.ndarray  # (N,) int64: 0 the base, 1 the motivated model
    confidence: np.ndarray  # (N,) float32: the base's top-1 softmax (or margin)


def check_cascade_proto(proto: onnx.ModelProto, path: Path) -> dict[str, str]:
    """The cascade metadata of a loaded model; ExportError when it is not a seekdeploy cascade."""
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    if meta.get(META_KIND) != layout.CASCADE_KIND:
        raise ExportError(f"{path} is not a seekdeploy cascade (its metadata has no {META_KIND}="
                          f"{layout.CASCADE_KIND}); {_FIX}")
    if meta.get(META_VERSION) != CASCADE_FORMAT_VERSION:
        raise ExportError(f"{path} is cascade format {meta.get(META_VERSION)!r}, this seekdeploy reads "
                          f"{CASCADE_FORMAT_VERSION!r}; {_FIX}")
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [INPUT, THRESHOLD] or outputs != [LOGITS, ANSWERED_BY, CONFIDENCE]:
        raise ExportError(f"{path} has inputs {inputs} and outputs {outputs}, not the cascade's "
                          f"[{INPUT}, {THRESHOLD}] -> [{LOGITS}, {ANSWERED_BY}, {CONFIDENCE}]; {_FIX}")
    try:
        float(meta[META_THRESHOLD])
    except (KeyError, ValueError):
        raise ExportError(f"{path} records no valid threshold in its metadata; {_FIX}") from None
    return meta


def open_cascade(path: str | Path, manifest: dict[str, Any] | None = None, threads: int = 1) -> CascadeSession:
    """Load and check a cascade (see module docstring) into an onnxruntime CPU session."""
    import onnxruntime as ort

    from seekdeploy.export.onnx_export import load_onnx_checked

    path = Path(path)
    proto = load_onnx_checked(path)
    meta = check_cascade_proto(proto, path)
    if manifest is not None:
        recorded = (manifest.get("files", {}).get(path.name) or {}).get("sha256")
        if recorded != sha256_file(path):
            raise ExportError(f"{path} does not match its manifest (sha256 {sha256_file(path)[:12]}…, the "
                              f"manifest records {str(recorded)[:12]}…): the file was replaced or belongs to "
                              f"another export; {_FIX}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the overridable threshold is an initializer listed as an input, on purpose
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ExportError(f"onnxruntime cannot load {path}: {exc}; {_FIX}") from exc
    return CascadeSession(session, float(meta[META_THRESHOLD]), meta[META_CONFIDENCE], meta)


def read_cascade_manifest(folder: Path) -> dict[str, Any]:
    """The cascade folder's manifest; ExportError when it is missing or of another kind."""
    manifest = read_json_object(Path(folder) / layout.MANIFEST)
    if manifest.get("kind") != layout.CASCADE_KIND:
        raise ExportError(f"{folder} holds no cascade manifest ({layout.MANIFEST} of kind {layout.CASCADE_KIND}); {_FIX}")
    return manifest


@dataclass
class CascadeSession:
    """A checked cascade in onnxruntime: `run` over images, with the stored or an overriding threshold."""

    session: Any
    threshold: float
    confidence: str
    metadata: dict[str, str]

    def run(self, images: np.ndarray, threshold: float | None = None, batch_size: int = 64) -> CascadeOutputs:
        """Run (N, C, H, W) float32 images in batches of `batch_size`; `threshold` None keeps the file's."""
        import numpy as np

        feed_threshold = {} if threshold is None else {THRESHOLD: np.asarray(threshold, dtype=np.float32)}
        images = np.ascontiguousarray(images, dtype=np.float32)
        parts = [self.session.run(None, {INPUT: images[start:start + batch_size], **feed_threshold})
                 for start in range(0, images.shape[0], batch_size)]
        return CascadeOutputs(logits=np.concatenate([p[0] for p in parts]),
                              answered_by=np.concatenate([p[1] for p in parts]),
                              confidence=np.concatenate([p[2] for p in parts]))
