"""Derived ONNX files: an offline-optimized copy (kept only when it helps) and an fp16 copy.

Optimization uses onnxruntime's BASIC level on purpose: constant folding, redundant-node removal
and Conv/BN/Add fusions that stay standard ONNX. The EXTENDED level fuses into onnxruntime's own
`com.microsoft` ops, which TensorRT and other runtimes cannot read. Rule: the optimized copy is
kept only when it has strictly fewer nodes than the original, uses only standard operators and
matches it within the fp32 parity tolerance; otherwise it is deleted and the original is used.
(Latency is not part of the rule: on a shared CPU a timing difference that small is noise.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seekdeploy._io import atomic_path
from seekdeploy.errors import ExportError
from seekdeploy.profiles.schema import Precision

_STANDARD_DOMAINS = {"", "ai.onnx"}
_PROBE_BATCH = 4
_PROBE_SEED = 0


@dataclass(frozen=True)
class OptimizeResult:
    """Outcome of `optimize_onnx`: whether the optimized copy was kept, and why."""

    kept: bool
    path: Path | None  # the optimized file when kept, else None (it was removed)
    nodes_before: int
    nodes_after: int
    reason: str


def optimize_onnx(path: str | Path, out_path: str | Path) -> OptimizeResult:
    """Write an onnxruntime BASIC-optimized copy of `path` to `out_path`; keep it only if it helps.

    See the module docstring for the rule. When the copy is not kept, `out_path` does not exist
    afterwards and the result says why.
    """
    import onnx
    import onnxruntime as ort

    from seekdeploy.export.onnx_export import load_onnx_checked

    original = load_onnx_checked(path)
    out_path = Path(out_path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with atomic_path(out_path) as tmp:
        options.optimized_model_filepath = str(tmp)
        try:
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ExportError(f"onnxruntime could not optimize {path}: {exc}") from exc
    optimized = onnx.load(str(out_path))
    before, after = len(original.graph.node), len(optimized.graph.node)
    reason = _rejection_reason(optimized, before, after, Path(path), out_path)
    if reason:
        out_path.unlink(missing_ok=True)
        return OptimizeResult(False, None, before, after, reason)
    return OptimizeResult(True, out_path, before, after, f"{before} -> {after} nodes, parity holds")


def _rejection_reason(optimized, before: int, after: int, original: Path, candidate: Path) -> str:
    foreign = sorted({n.domain for n in optimized.graph.node} - _STANDARD_DOMAINS)
    if foreign:
        return f"uses non-standard operator domains {foreign}"
    if after >= before:
        return f"no fewer nodes ({before} -> {after})"
    from seekdeploy.export.parity import check_parity, compare_logits, run_onnx

    probe = _probe_images(original)
    figures = compare_logits(run_onnx(original, probe), run_onnx(candidate, probe))
    try:
        check_parity(figures, Precision.FP32, f"optimized copy {candidate}")
    except ExportError as exc:
        return str(exc)
    return ""


def _probe_images(path: Path):
    # Deterministic normal inputs shaped like the model's input, for a self-consistency check.
    import numpy as np
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.dim_value > 0 else _PROBE_BATCH for d in dims]
    return np.random.default_rng(_PROBE_SEED).standard_normal(shape).astype(np.float32)


def convert_fp16(path: str | Path, out_path: str | Path) -> Path:
    """Write an fp16 copy of `path` (fp16 weights and compute, fp32 input and output) to `out_path`.

    Uses onnxruntime's bundled converter (`onnxruntime.transformers.float16`) with
    `keep_io_types=True`, so callers feed and read float32 exactly as for the fp32 model. The
    result is checked before it is written atomically; check its parity with `check_parity`.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    from seekdeploy.export.onnx_export import check_onnx_proto, load_onnx_checked

    model = load_onnx_checked(path)
    try:
        half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as exc:  # the converter raises plain Exceptions for unsupported graphs
        raise ExportError(f"could not convert {path} to fp16: {exc}") from exc
    # The converter appends its Cast nodes at the end of the node list; the ONNX spec (and the
    # checker, and TensorRT's parser) want topological order.
    OnnxModel(half).topological_sort()
    check_onnx_proto(half, what=f"the fp16 copy of {path}")
    with atomic_path(out_path) as tmp:
        onnx.save(half, str(tmp))
    return Path(out_path)
