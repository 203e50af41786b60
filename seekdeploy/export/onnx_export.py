"""Export a static `nn.Module` to ONNX and validate ONNX files before any runtime reads them.

Exporter choice (measured with torch 2.14, onnx 1.23): the dynamo exporter (`torch.export` +
onnxscript) gives the clean graph: Conv/BN fold to one Conv, `nn.MultiheadAttention` becomes
MatMul/Softmax/Reshape with no Shape/Slice/Mod bookkeeping (the TorchScript exporter emitted 58
Constant, 9 Shape, 5 Slice and a Mod node for the same tiny attention block). The dynamo exporter
cannot emit opset < 18, though, and TensorRT 8.x parses only opset <= 17, so for `opset <= 17` the
TorchScript exporter is used (it is the only one that can produce it); the choice is recorded in
`OnnxExportInfo.exporter`.
"""

from __future__ import annotations

import enum
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seekdeploy._io import atomic_write_bytes, sha256_file
from seekdeploy.errors import ExportError

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn

DEFAULT_OPSET = 18  # the lowest opset the dynamo exporter emits natively
DYNAMO_MIN_OPSET = 18
_TRACE_BATCH = 2  # trace a dynamic batch with 2: torch.export specializes sizes 0 and 1


class Exporter(str, enum.Enum):
    """Which torch.onnx exporter produced a file."""

    DYNAMO = "dynamo"
    TORCHSCRIPT = "torchscript"


@dataclass(frozen=True)
class OnnxExportInfo:
    """What `export_onnx` wrote: enough for a manifest to describe and re-check the file."""

    path: Path
    opset: int
    exporter: Exporter
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int, int]  # (B, C, H, W) of the example input
    dynamic_batch: bool
    node_count: int
    op_counts: dict[str, int]
    sha256: str
    size_bytes: int


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, int, int, int] = (1, 3, 32, 32),
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    input_name: str = "input",
    output_name: str = "logits",
) -> OnnxExportInfo:
    """Export `model` (put in eval mode) to a single self-contained ONNX file at `path`.

    The graph is checked with `onnx.checker.check_model(full_check=True)` (which includes strict
    shape inference) before it is written atomically; the batch axis is named `batch` and left
    dynamic unless `dynamic_batch=False`. Raises `ExportError` if the exporter or checker fails.
    """
    import torch

    if len(input_shape) != 4 or any(int(d) < 1 for d in input_shape):
        raise ExportError(f"input_shape must be (batch, channels, height, width) >= 1, got {input_shape}")
    if opset < 13:
        raise ExportError(f"opset {opset} is too old; use opset 13 or newer (default {DEFAULT_OPSET})")
    model.eval()
    trace_shape = tuple(int(d) for d in input_shape)
    if dynamic_batch:
        trace_shape = (max(trace_shape[0], _TRACE_BATCH), *trace_shape[1:])
    example = torch.zeros(trace_shape, dtype=torch.float32)  # (B, C, H, W)
    exporter = Exporter.DYNAMO if opset >= DYNAMO_MIN_OPSET else Exporter.TORCHSCRIPT
    if exporter is Exporter.DYNAMO:
        with torch.no_grad():
            proto = _export_dynamo(model, example, opset, dynamic_batch, input_name, output_name)
    else:
        # Not under no_grad: there nn.MultiheadAttention takes its fused fast path, which the
        # TorchScript exporter cannot translate.
        proto = _export_torchscript(model, example, opset, dynamic_batch, input_name, output_name)
    check_onnx_proto(proto, what="the exported model")
    final = atomic_write_bytes(path, proto.SerializeToString())
    return _describe(final, proto, exporter, tuple(int(d) for d in input_shape), dynamic_batch)


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, input_name: str,
                   output_name: str) -> onnx.ModelProto:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    try:
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, input_names=[input_name],
            output_names=[output_name], dynamic_shapes=dynamic_shapes, external_data=False,
            optimize=True, verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        raise ExportError(f"torch.onnx (dynamo) could not export the model: {exc}") from exc
    proto = program.model_proto
    for node in proto.graph.node:
        # The exporter's per-node provenance (the Python stack trace with this machine's file
        # paths, the FX node, the module hierarchy): half of a small model's file, and not the
        # deployment's business.
        del node.metadata_props[:]
    if dynamic:
        # Name the output batch axis too, so consumers see the contract `logits: (batch, K)`.
        proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, input_name: str,
                        output_name: str) -> onnx.ModelProto:
    import onnx
    import torch

    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic else None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # Chosen on purpose for opset <= 17 (see module docstring); its deprecation notice is noise.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[input_name], output_names=[output_name], dynamic_axes=axes,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        raise ExportError(f"torch.onnx (TorchScript, opset {opset}) could not export the model: {exc}") from exc
    return onnx.load_from_string(buffer.getvalue())


def check_onnx_proto(proto: onnx.ModelProto, what: str) -> None:
    """Run the full ONNX checker (with strict shape inference) on an in-memory model; `ExportError` if invalid."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{what} is not a valid ONNX model: {exc}") from exc


def _describe(path: Path, proto: onnx.ModelProto, exporter: Exporter,
              input_shape: tuple[int, int, int, int], dynamic: bool) -> OnnxExportInfo:
    op_counts: dict[str, int] = {}
    for node in proto.graph.node:
        op_counts[node.op_type] = op_counts.get(node.op_type, 0) + 1
    return OnnxExportInfo(
        path=Path(path), opset=onnx_opset(proto), exporter=exporter,
        input_name=proto.graph.input[0].name, output_name=proto.graph.output[0].name,
        input_shape=input_shape, dynamic_batch=dynamic, node_count=len(proto.graph.node),
        op_counts=op_counts, sha256=sha256_file(path), size_bytes=Path(path).stat().st_size,
    )


def onnx_opset(proto: onnx.ModelProto) -> int:
    """The default-domain (ai.onnx) opset a model was written for."""
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("the ONNX model declares no ai.onnx opset; re-export it with seekdeploy export")


def load_onnx_checked(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file only after proving it is whole, valid and self-contained.

    Refuses (with `ExportError`) a missing, empty, truncated or corrupt file, one that fails the
    full ONNX checker, and one whose external-data tensors point outside the model's own folder
    (an absolute path or `..` could make a runtime read arbitrary files). Returns the ModelProto
    with external data loaded.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX model {path} does not exist; run `seekdeploy export` first")
    if path.stat().st_size == 0:
        raise ExportError(f"ONNX model {path} is empty (an interrupted write?); export it again")
    try:
        header = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ExportError(f"ONNX model {path} is corrupt or truncated ({exc}); export it again") from exc
    _check_external_locations(header, path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"ONNX model {path} is corrupt or invalid ({exc}); export it again") from exc
    if len(header.graph.node) == 0 or not header.graph.output:
        raise ExportError(f"ONNX model {path} has an empty graph (truncated?); export it again")
    return onnx.load(str(path))


def _check_external_locations(proto: onnx.ModelProto, path: Path) -> None:
    folder = path.parent.resolve()
    for tensor in _iter_tensors(proto.graph):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ExportError(
                f"ONNX model {path}: tensor {tensor.name!r} keeps its data at {location!r}, outside "
                f"the model's folder {folder}; refusing to read it. Re-export the model so its "
                "weights live inside the file or beside it"
            )
        if not target.is_file():
            raise ExportError(
                f"ONNX model {path}: external data file {location!r} for tensor {tensor.name!r} is "
                "missing; copy it beside the model or export again"
            )


def _iter_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    # Initializers and tensor-valued attributes, including those of subgraphs (If/Loop bodies).
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _iter_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _iter_tensors(subgraph)
