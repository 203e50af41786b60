"""Find what a given TensorRT version's ONNX parser will refuse, before anyone is on the device.

The table is transcribed from onnx-tensorrt's `docs/operators.md` of each release branch (the
parser TensorRT ships): the maximum opset ("TensorRT 8.6 supports operators up to Opset 17";
"TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20") and the operators
marked `N`. Only operators an exported classifier could plausibly contain are listed; the rest
of each `N` list (sequence, string, window and quantized-integer ops) is folded into
`_NEVER_SUPPORTED`. TensorRT 8.x casts INT64 weights down to INT32 (a warning, and values beyond
+-2^31 are clamped), so INT64 initializers are flagged there.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from seekdeploy.errors import ExportError


class Severity(str, enum.Enum):
    """How bad a finding is: ERROR = the parser/builder will refuse; WARNING = it may degrade."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class LintFinding:
    """One problem of an ONNX model for a TensorRT version."""

    severity: Severity
    code: str  # e.g. "opset", "unsupported-op", "int64-weights"
    message: str
    node: str | None = None


# (first version the row applies to, max opset, ops the parser marks unsupported) — newest last.
_OPSET_TABLE: tuple[tuple[tuple[int, int], int, frozenset[str]], ...] = (
    ((8, 0), 13, frozenset({"Mod", "NonZero", "OneHot", "Reciprocal", "Xor", "LayerNormalization",
                            "GroupNormalization", "GridSample", "Trilu", "Einsum"})),
    ((8, 4), 17, frozenset({"LayerNormalization", "GroupNormalization"})),
    ((8, 6), 17, frozenset()),
    ((9, 0), 19, frozenset()),
    ((10, 0), 20, frozenset({"Col2Im", "AffineGrid", "CenterCropPad", "BitwiseAnd", "BitwiseNot",
                             "BitwiseOr", "BitwiseXor"})),
    ((10, 15), 24, frozenset()),
    ((11, 0), 25, frozenset()),
)
_NEVER_SUPPORTED = frozenset({
    "Unique", "DFT", "STFT", "Det", "Compress", "MaxUnpool", "MaxRoiPool", "Multinomial",
    "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear",
    "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SplitToSequence", "ConcatFromSequence", "StringNormalizer", "TfIdfVectorizer",
    "Optional", "OptionalGetElement", "OptionalHasElement", "Bernoulli", "BitShift",
    "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "Col2Im",
})
# Control flow and data-dependent output sizes: the parser accepts them (NonZero since 8.5) but
# they force run-time shapes through the engine, which a classifier should never need.
_DATA_DEPENDENT = frozenset({"NonZero", "Loop", "If", "Scan", "Unique", "TopK"})


_SHAPE_OPS = frozenset({
    "Reshape", "Concat", "Slice", "Squeeze", "Unsqueeze", "Expand", "Tile", "Range", "Shape",
    "ConstantOfShape", "Gather", "Cast", "Equal", "Where", "Pad", "Resize", "Split", "ReduceMean",
    "ReduceSum", "ReduceMax", "ReduceMin", "TopK", "CumSum", "OneHot",
})


def parse_trt_version(version: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string like '8.6', '8.6.2.3' or '10.3.0'."""
    numbers = re.findall(r"\d+", version)
    if len(numbers) < 2 or not re.match(r"^\d+(\.\d+)+$", version.strip()):
        raise ExportError(f"TensorRT version {version!r} is not a version like '8.6' or '10.3'")
    return int(numbers[0]), int(numbers[1])


def _row(version: tuple[int, int]) -> tuple[int, frozenset[str]]:
    rows = [r for r in _OPSET_TABLE if r[0] <= version]
    if not rows:
        raise ExportError(
            f"TensorRT {version[0]}.{version[1]} is older than seekdeploy supports (8.0 or newer)"
        )
    return rows[-1][1], rows[-1][2]


def max_opset_for_tensorrt(trt_version: str) -> int:
    """The newest ONNX opset the parser of `trt_version` reads (17 for 8.4-8.6, 20 for 10.0, ...)."""
    return _row(parse_trt_version(trt_version))[0]


def lint_for_tensorrt(onnx_path: str | Path, trt_version: str) -> list[LintFinding]:
    """List what TensorRT `trt_version` will refuse (ERROR) or handle poorly (WARNING) in a model.

    Checks: opset above the version's maximum; operators its parser marks unsupported;
    non-standard operator domains (onnxruntime's `com.microsoft` fusions); INT64 / DOUBLE
    initializers on TensorRT 8.x; operators with data-dependent output shapes.
    """
    from seekdeploy.export.onnx_export import load_onnx_checked, onnx_opset

    version = parse_trt_version(trt_version)
    max_opset, unsupported = _row(version)
    model = load_onnx_checked(onnx_path)
    findings: list[LintFinding] = []
    opset = onnx_opset(model)
    if opset > max_opset:
        findings.append(LintFinding(
            Severity.ERROR, "opset",
            f"opset {opset} is newer than TensorRT {trt_version} reads (<= {max_opset}); "
            f"export with --opset {max_opset}",
        ))
    findings.extend(_lint_nodes(model, trt_version, unsupported | _NEVER_SUPPORTED))
    if version[0] < 10:
        findings.extend(_lint_initializers(model, trt_version))
    return findings


def _lint_nodes(model, trt_version: str, unsupported: frozenset[str]) -> list[LintFinding]:
    findings = []
    for node in model.graph.node:
        name = node.name or node.op_type
        if node.domain not in ("", "ai.onnx"):
            findings.append(LintFinding(
                Severity.ERROR, "custom-domain",
                f"{node.domain}::{node.op_type} is not a standard ONNX operator (an onnxruntime "
                "fusion?); build the engine from model.onnx, not an ORT-optimized copy", name,
            ))
        elif node.op_type in unsupported:
            findings.append(LintFinding(
                Severity.ERROR, "unsupported-op",
                f"{node.op_type} is not supported by the ONNX parser of TensorRT {trt_version}", name,
            ))
        elif node.op_type in _DATA_DEPENDENT:
            findings.append(LintFinding(
                Severity.WARNING, "data-dependent-shape",
                f"{node.op_type} has data-dependent control flow or output size; TensorRT may "
                "refuse it or fall back to slow dynamic-shape kernels", name,
            ))
    return findings


def _lint_initializers(model, trt_version: str) -> list[LintFinding]:
    from onnx import TensorProto

    # INT64 tensors that only feed shape arithmetic (Reshape targets, Concat of dims, axes, ...)
    # are routine and cast losslessly; only those consumed by compute ops are real weights.
    data_inputs = {name for node in model.graph.node if node.op_type not in _SHAPE_OPS
                   for name in node.input}
    findings = []
    for tensor in model.graph.initializer:
        wide = tensor.data_type in (TensorProto.INT64, TensorProto.DOUBLE)
        if wide and (tensor.data_type == TensorProto.DOUBLE or tensor.name in data_inputs):
            kind = TensorProto.DataType.Name(tensor.data_type)
            findings.append(LintFinding(
                Severity.WARNING, "int64-weights",
                f"initializer {tensor.name!r} is {kind}; TensorRT {trt_version} casts it down "
                "(INT64 -> INT32, DOUBLE -> FLOAT), clamping out-of-range values", tensor.name,
            ))
    return findings
