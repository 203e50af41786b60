"""Build the cascade's ONNX graph: base -> confidence gate -> motivated model inside an `If`.

    input ─► base nodes ─► base_logits ─► Softmax ─► confidence (top-1, or top-1 − top-2 margin)
                                            unsure = confidence < threshold      (threshold: a graph
                                            If any(unsure):                       input whose default
                                              then: idx = NonZero(unsure)         initializer is the
                                                    motivated nodes on input[idx] chosen value)
                                                    logits = ScatterND(base_logits, idx, motivated)
                                              else: logits = base_logits
    outputs: logits (B, K), answered_by (B,) int64 (0 base, 1 motivated), confidence (B,)

ONNX Runtime (and OpenVINO, and TensorRT's IIfConditional) run only the taken branch, so a batch
the base is sure of costs the base alone; in a mixed batch only the unsure samples go through the
motivated model (gather, run, scatter back).

Weights stored once, found generically: every base initializer that equals the leading block
(`M[:b0, :b1, ...]`) of a motivated initializer is not stored; the graph computes it with a
`Slice` of the motivated tensor, which runtimes fold into a constant when the session is created.
Tensors that differ between the roles (per-role BatchNorm statistics and affine parameters, a
per-role classifier bias) stay as the base's own initializers. The two graphs must come from an
exporter that does not fold BatchNorm into the convolutions (`export_unfolded_onnx`): folding
multiplies each role's weights by its own statistics, and no prefix would be left to share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seekdeploy import layout
from seekdeploy.errors import ExportError
from seekdeploy.roles import Role

if TYPE_CHECKING:
    import numpy as np
    import onnx

INPUT, LOGITS, ANSWERED_BY, CONFIDENCE, THRESHOLD = "input", "logits", "answered_by", "confidence", "threshold"
BASE_PREFIX, MOTIVATED_PREFIX = "base/", "motivated/"
CASCADE_FORMAT_VERSION = "1"
MIN_SHARED_ELEMENTS = 16  # smaller tensors are not worth a Slice node
# metadata_props keys of cascade.onnx (what `load_cascade_checked` verifies)
META_KIND, META_VERSION = "seekdeploy.kind", "seekdeploy.cascade_version"
META_THRESHOLD, META_CONFIDENCE = "seekdeploy.threshold", "seekdeploy.confidence"


@dataclass(frozen=True)
class SharingReport:
    """Which base initializers the cascade computes from the motivated model's, and the bytes saved."""

    shared: dict[str, str]  # base initializer -> motivated initializer it is a prefix of
    private: list[str]  # base initializers stored as they are
    bytes_saved: int

    def to_json(self) -> dict[str, object]:
        """Plain dict for the manifest."""
        return {"shared_count": len(self.shared), "private_count": len(self.private),
                "bytes_saved": self.bytes_saved, "shared": self.shared, "private": self.private}


def export_unfolded_onnx(module: object, input_shape: tuple[int, int, int, int], opset: int) -> onnx.ModelProto:
    """Export a static model with a dynamic batch and BatchNorm kept as its own node (constant
    folding without the Conv+BN fusion), so its conv weights are the raw, shareable tensors."""
    import onnxscript.optimizer
    import torch

    module.eval()
    example = torch.zeros((max(2, input_shape[0]), *input_shape[1:]), dtype=torch.float32)  # (B, C, H, W)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT],
                output_names=[LOGITS], dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                external_data=False, optimize=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        raise ExportError(f"torch.onnx (dynamo) could not export the model for the cascade: {exc}") from exc
    proto = program.model_proto
    onnxscript.optimizer.fold_constants(proto)
    onnxscript.optimizer.remove_unused_nodes(proto)
    for node in proto.graph.node:  # the exporter's per-node stack traces would outweigh small models
        node.doc_string = ""
        del node.metadata_props[:]
    del proto.graph.value_info[:]
    if proto.functions:
        raise ExportError("the exported model keeps ONNX local functions, which the cascade cannot inline; "
                          "export the cascade with opset 18 or newer")
    return proto


def find_shared(base: onnx.GraphProto, motivated: onnx.GraphProto) -> dict[str, str]:
    """base initializer name -> motivated initializer whose leading block equals it exactly (same name
    tried first, then every motivated tensor of the same dtype and rank that is at least as large)."""
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in motivated.initializer}
    shared = {}
    for tensor in base.initializer:
        value = numpy_helper.to_array(tensor)
        if value.size < MIN_SHARED_ELEMENTS or value.dtype.kind != "f":
            continue
        ordered = sorted(arrays, key=lambda name: name != tensor.name)
        for name in ordered:
            if _is_prefix(value, arrays[name]):
                shared[tensor.name] = name
                break
    return shared


def _is_prefix(small: np.ndarray, large: np.ndarray) -> bool:
    import numpy as np

    if small.dtype != large.dtype or small.ndim != large.ndim:
        return False
    if any(s > big for s, big in zip(small.shape, large.shape)):
        return False
    block = large[tuple(slice(0, s) for s in small.shape)]
    return bool(np.array_equal(small, block))


def _renamed_nodes(graph: onnx.GraphProto, prefix: str, keep: dict[str, str]) -> list[onnx.NodeProto]:
    # Copies of the graph's nodes with every value renamed `prefix + name`, except those in `keep`
    # (old name -> new name: the graph input, shared weights). Empty names (absent optional inputs) stay.
    import onnx

    def rename(name: str) -> str:
        return name if not name else keep.get(name, prefix + name)

    nodes = []
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(f"node {node.name!r} ({node.op_type}) holds a subgraph; the cascade builder "
                              "only inlines flat graphs")
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or node.op_type)
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    return nodes


def _renamed_initializers(graph: onnx.GraphProto, prefix: str, skip: set[str]) -> list[onnx.TensorProto]:
    import onnx

    out = []
    for tensor in graph.initializer:
        if tensor.name in skip:
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = prefix + tensor.name
        out.append(copy)
    return out


def _slice_nodes(base: onnx.GraphProto, shared: dict[str, str]) -> tuple[list, list]:
    # One Slice per shared base tensor, reading the motivated tensor's leading block.
    import numpy as np
    from onnx import helper, numpy_helper

    shapes = {t.name: list(t.dims) for t in base.initializer}
    nodes, constants = [], []
    for base_name, motivated_name in shared.items():
        dims = shapes[base_name]
        ends = numpy_helper.from_array(np.asarray(dims, dtype=np.int64), f"cascade/ends/{base_name}")
        starts = numpy_helper.from_array(np.zeros(len(dims), dtype=np.int64), f"cascade/starts/{base_name}")
        constants += [starts, ends]
        nodes.append(helper.make_node("Slice", [MOTIVATED_PREFIX + motivated_name, starts.name, ends.name],
                                      [BASE_PREFIX + base_name], name=f"cascade/share/{base_name}"))
    return nodes, constants


def _gate_nodes(confidence: str) -> list[onnx.NodeProto]:
    # base_logits (B, K) -> confidence (B,), answered_by (B,) int64, escalate () bool
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Softmax", ["base_logits"], ["cascade/probs"], axis=1)]  # (B, K)
    if confidence == "softmax":
        nodes.append(helper.make_node("ReduceMax", ["cascade/probs", "cascade/axis1"], [CONFIDENCE], keepdims=0))
    else:  # margin: top-1 minus top-2 probability
        nodes += [helper.make_node("TopK", ["cascade/probs", "cascade/two"], ["cascade/top2", "cascade/top2_idx"],
                                   axis=1),  # (B, 2)
                  helper.make_node("Split", ["cascade/top2"], ["cascade/first", "cascade/second"], axis=1,
                                   num_outputs=2),
                  helper.make_node("Sub", ["cascade/first", "cascade/second"], ["cascade/margin"]),  # (B, 1)
                  helper.make_node("Squeeze", ["cascade/margin", "cascade/axis1"], [CONFIDENCE])]
    nodes += [helper.make_node("Less", [CONFIDENCE, THRESHOLD], ["cascade/unsure"]),  # (B,) bool
              helper.make_node("Cast", ["cascade/unsure"], [ANSWERED_BY], to=TensorProto.INT64),
              # any(unsure) as min(confidence) < threshold: a 0-D bool straight away
              helper.make_node("ReduceMin", [CONFIDENCE], ["cascade/least_confident"], keepdims=0),  # ()
              helper.make_node("Less", ["cascade/least_confident", THRESHOLD], ["cascade/escalate"])]
    return nodes


def _then_branch(motivated: onnx.GraphProto, num_classes: int) -> onnx.GraphProto:
    # Gather the unsure samples, run the motivated model on them, scatter its logits back.
    from onnx import TensorProto, helper

    keep = {motivated.input[0].name: "cascade/unsure_input"}
    nodes = [helper.make_node("NonZero", ["cascade/unsure"], ["cascade/idx_row"]),  # (1, n)
             helper.make_node("Transpose", ["cascade/idx_row"], ["cascade/idx_col"], perm=[1, 0]),  # (n, 1)
             helper.make_node("Squeeze", ["cascade/idx_row", "cascade/axis0"], ["cascade/idx"]),  # (n,)
             helper.make_node("Gather", [INPUT, "cascade/idx"], ["cascade/unsure_input"], axis=0)]
    nodes += _renamed_nodes(motivated, MOTIVATED_PREFIX, keep)
    motivated_logits = MOTIVATED_PREFIX + motivated.output[0].name
    nodes.append(helper.make_node("ScatterND", ["base_logits", "cascade/idx_col", motivated_logits],
                                  ["cascade/merged"]))
    out = helper.make_tensor_value_info("cascade/merged", TensorProto.FLOAT, ["batch", num_classes])
    return helper.make_graph(nodes, "motivated_answers", [], [out])


def _else_branch(num_classes: int) -> onnx.GraphProto:
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["base_logits"], ["cascade/base_only"])
    out = helper.make_tensor_value_info("cascade/base_only", TensorProto.FLOAT, ["batch", num_classes])
    return helper.make_graph([node], "base_answers", [], [out])


def build_cascade_proto(base: onnx.ModelProto, motivated: onnx.ModelProto, *, threshold: float,
                        confidence: str, metadata: dict[str, str]) -> tuple[onnx.ModelProto, SharingReport]:
    """The cascade model (see module docstring) from two unfolded single-input, single-output
    classifiers; `metadata` is added to the file's metadata_props beside the kind and threshold."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    if confidence not in ("softmax", "margin"):
        raise ExportError(f"unknown cascade confidence {confidence!r}; use softmax or margin")
    for what, proto in ((Role.BASE, base), (Role.MOTIVATED, motivated)):
        if len(proto.graph.input) != 1 or len(proto.graph.output) != 1:
            raise ExportError(f"the {what} graph must have one input and one output to join a cascade")
    in_type = base.graph.input[0].type.tensor_type
    num_classes = base.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    shared = find_shared(base.graph, motivated.graph)
    slices, slice_constants = _slice_nodes(base.graph, shared)
    keep = {base.graph.input[0].name: INPUT, base.graph.output[0].name: "base_logits"}
    keep |= {name: BASE_PREFIX + name for name in shared}
    constants = [numpy_helper.from_array(np.asarray([1], dtype=np.int64), "cascade/axis1"),
                 numpy_helper.from_array(np.asarray([0], dtype=np.int64), "cascade/axis0")]
    if confidence == "margin":
        constants.append(numpy_helper.from_array(np.asarray([2], dtype=np.int64), "cascade/two"))
    default = numpy_helper.from_array(np.asarray(threshold, dtype=np.float32), THRESHOLD)
    branch = helper.make_node("If", ["cascade/escalate"], [LOGITS], name="cascade/escalate_if",
                              then_branch=_then_branch(motivated.graph, num_classes),
                              else_branch=_else_branch(num_classes))
    nodes = [*slices, *_renamed_nodes(base.graph, BASE_PREFIX, keep), *_gate_nodes(confidence), branch]
    initializers = [*_renamed_initializers(motivated.graph, MOTIVATED_PREFIX, set()),
                    *_renamed_initializers(base.graph, BASE_PREFIX, set(shared)),
                    *slice_constants, *constants, default]
    dims = [d.dim_param or d.dim_value for d in in_type.shape.dim]
    graph = helper.make_graph(
        nodes, "seekdeploy_cascade",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *dims[1:]]),
         helper.make_tensor_value_info(THRESHOLD, TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", num_classes]),
         helper.make_tensor_value_info(ANSWERED_BY, TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info(CONFIDENCE, TensorProto.FLOAT, ["batch"])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=list(base.opset_import), producer_name="seekdeploy")
    model.ir_version = max(base.ir_version, motivated.ir_version)
    helper.set_model_props(model, {META_KIND: layout.CASCADE_KIND, META_VERSION: CASCADE_FORMAT_VERSION,
                                   META_THRESHOLD: repr(float(threshold)), META_CONFIDENCE: confidence,
                                   **metadata})
    saved = sum(numpy_helper.to_array(t).nbytes for t in base.graph.initializer if t.name in shared)
    private = [t.name for t in base.graph.initializer if t.name not in shared]
    return model, SharingReport(shared=shared, private=private, bytes_saved=saved)
