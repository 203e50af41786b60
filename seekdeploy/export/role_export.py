"""Export one role into a (staging) folder: static.pt, model.onnx and its derived copies, each with
its parity proof and test accuracy through the reference runtime (onnxruntime), the INT8 QDQ copy for
CPU targets (with its accuracy-drop proof), then every runtime backend's own export step (OpenVINO's
parity proof, TensorRT's lint and engine: `Backend.export_step`), and manifest.json, where each step's
result is the section named after its backend.

Parity chain, on the same real validation images: supernet at the role's spec -> static model
(proven by `slice_role`) -> every ONNX file. Each file is compared with both the static model and
the supernet; exceeding its precision's tolerance (`ExportOptions.tolerances`) is an ExportError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json, read_json_object, sha256_file
from seekdeploy.backends import REFERENCE_RUNTIME, export_backends
from seekdeploy.export.manifest import build_manifest, input_spec, output_spec
from seekdeploy.export.static_models import SLICE_MAX_ABS, SlicedModel, save_static
from seekdeploy.profiles.schema import Precision

if TYPE_CHECKING:
    from seekdeploy.export.export_plan import ExportPlan


def prove_file(path: Path, precision: Precision, sliced: SlicedModel, plan: ExportPlan) -> dict[str, Any]:
    """Parity of one ONNX file against the static model and the supernet, checked against the
    precision's tolerance, plus its own test-split top-1 (all in onnxruntime)."""
    from seekdeploy.export.parity import accuracy, check_parity, compare_logits, run_onnx

    logits = run_onnx(path, plan.data.val_images)  # (N, K)
    vs_static = compare_logits(sliced.static_logits, logits)
    vs_supernet = compare_logits(sliced.supernet_logits, logits)
    tolerances = plan.options.tolerances
    what = f"{sliced.role.value} {path.name}"
    check_parity(vs_static, precision, f"{what} (vs the static model)", tolerances=tolerances)
    check_parity(vs_supernet, precision, f"{what} (vs the supernet)", tolerances=tolerances)
    test_logits = run_onnx(path, plan.data.test_images)
    tolerance = tolerances[precision]
    return {
        "precision": precision.value, "vs_static": vs_static.to_json(),
        "vs_supernet": vs_supernet.to_json(),
        "tolerance": {"max_abs": tolerance.max_abs, "min_top1_agreement": tolerance.min_top1_agreement},
        "test_top1": accuracy(test_logits, plan.data.test_labels), "test_n": int(len(plan.data.test_labels)),
    }


def _header(plan: ExportPlan, sliced: SlicedModel) -> dict[str, Any]:
    from seekdeploy.nn import estimate_cost

    supernet = plan.run.supernet
    cost = estimate_cost(sliced.spec, in_channels=supernet.in_channels,
                         image_size=supernet.image_size, num_classes=supernet.num_classes)
    return {
        "run": plan.run_name, "run_dir": str(Path(plan.run.run_dir).resolve()),
        # Provenance: which training state these files were cut from (the pipeline uses it to
        # tell a current export from a stale one).
        layout.CHECKPOINT_SHA256: sha256_file(layout.RunLayout(Path(plan.run.run_dir)).checkpoint),
        "role": sliced.role.value, "family": supernet.family, "spec": sliced.spec.to_json(),
        "spec_text": sliced.spec.to_text(), "bn_role": sliced.bn_role, "params": cost.params,
        "flops": cost.flops, "cost": {**cost.to_json(), "weight_bytes": cost.weight_bytes("fp32")},
        "dataset": plan.data.dataset_name,
    }


def _predicted_latency_ms(plan: ExportPlan, role: str) -> float | None:
    # The planner records predictions in the run's manifest (see seekdeploy.plan.report).
    from seekdeploy.plan.report import recorded_latency_ms

    manifest = read_json_object(layout.RunLayout(Path(plan.run.run_dir)).manifest)
    return recorded_latency_ms(manifest.get("predicted_latency_ms"), role)


def _onnx_files(plan: ExportPlan, sliced: SlicedModel, role_dir: Path) -> tuple[Any, dict, dict]:
    from seekdeploy.export.onnx_export import export_onnx
    from seekdeploy.export.onnx_passes import convert_fp16, optimize_onnx

    info = export_onnx(sliced.module, role_dir / layout.ONNX_FP32, input_shape=plan.input_shape,
                       opset=plan.opset, dynamic_batch=not plan.options.static_batch)
    proofs = {layout.ONNX_FP32: prove_file(info.path, Precision.FP32, sliced, plan)}
    optimized = optimize_onnx(info.path, role_dir / layout.ONNX_OPTIMIZED)
    if optimized.kept and optimized.path is not None:
        proofs[optimized.path.name] = prove_file(optimized.path, Precision.FP32, sliced, plan)
    if Precision.FP16 in plan.options.onnx_precisions():
        half = convert_fp16(info.path, role_dir / layout.ONNX_FP16)
        proofs[half.name] = prove_file(half, Precision.FP16, sliced, plan)
    optimization = {"kept": optimized.kept, "nodes_before": optimized.nodes_before,
                    "nodes_after": optimized.nodes_after, "reason": optimized.reason}
    return info, proofs, optimization


def _int8_file(plan: ExportPlan, sliced: SlicedModel, role_dir: Path,
               proofs: dict[str, Any]) -> dict[str, Any] | None:
    # The QDQ INT8 copy for CPU runtimes, proven by agreement and by its test top-1 drop.
    from seekdeploy.export.quantize import allowed_drop_pp, check_accuracy_drop, quantize_int8

    if Precision.INT8 not in plan.options.onnx_precisions():
        return None
    settings = plan.options.int8
    quantized = quantize_int8(role_dir / layout.ONNX_FP32, role_dir / layout.ONNX_INT8, plan.data.calibration_images,
                              settings.calibration_method)
    proof = prove_file(quantized.path, Precision.INT8, sliced, plan)
    allowed, source = allowed_drop_pp(settings, plan.profile)
    drop = check_accuracy_drop(fp32_top1=proofs[layout.ONNX_FP32]["test_top1"], int8_top1=proof["test_top1"],
                               allowed_pp=allowed, source=source, what=f"{sliced.role.value} {layout.ONNX_INT8}")
    proofs[layout.ONNX_INT8] = {**proof, "accuracy_drop": drop}
    return quantized.recipe


def _backend_steps(plan: ExportPlan, sliced: SlicedModel, role_dir: Path,
                   proofs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    # Every backend's own export step, in name order; each decides from the plan whether it has
    # anything to do (its format was asked for, or the profile runs it) and returns its manifest
    # section (None when not) and its notices.
    sections: dict[str, Any] = {}
    notices: list[str] = []
    for backend in export_backends():
        section, step_notices = backend.export_step.load().export_role(backend, plan, sliced, role_dir, proofs)
        sections[backend.name] = section
        notices += step_notices
    return sections, notices


def export_role(plan: ExportPlan, sliced: SlicedModel, role_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Write one role's folder (see module docstring); return its manifest and any notices."""
    role_dir.mkdir(parents=True, exist_ok=True)
    save_static(sliced, role_dir / layout.STATIC_MODEL, run_name=plan.run_name, supernet=plan.run.supernet)
    info, proofs, optimization = _onnx_files(plan, sliced, role_dir)
    int8 = _int8_file(plan, sliced, role_dir, proofs)
    sections, notices = _backend_steps(plan, sliced, role_dir, proofs)
    primary = proofs[layout.ONNX_FP32]
    training = (plan.run.metrics.get("test_top1") or {}).get(sliced.role.value)
    manifest = build_manifest(
        header=_header(plan, sliced), role_dir=role_dir,
        input_block=input_spec(shape=plan.input_shape, dynamic_batch=info.dynamic_batch,
                               mean=plan.data.mean, std=plan.data.std,
                               class_names=plan.data.class_names, name=info.input_name,
                               preprocessing=plan.data.preprocessing),
        output_block=output_spec(batch=plan.input_shape[0], num_classes=len(plan.data.class_names),
                                 name=info.output_name),
        export_info={"opset": info.opset, "exporter": info.exporter.value,
                     "node_count": info.node_count, "op_counts": info.op_counts},
        accuracy={"test_top1": primary["test_top1"], "n": primary["test_n"], "split": "test",
                  "file": layout.ONNX_FP32, "runtime": f"{REFERENCE_RUNTIME} (CPUExecutionProvider)",
                  "training_test_top1": training},
        parity={"split": "validation", "n": sliced.parity.n,
                "static_vs_supernet": {**sliced.parity.to_json(), "max_abs_limit": SLICE_MAX_ABS},
                "files": proofs},
        extras={"optimization": optimization, "int8": int8, **sections, "profile": plan.profile_name,
                "predicted_latency_ms": _predicted_latency_ms(plan, sliced.role.value)},
    )
    atomic_write_json(role_dir / layout.MANIFEST, manifest)
    return manifest, notices
