"""OpenVINO's part of the export proof (profiles with `runtime: openvino`).

Every exported ONNX file OpenVINO would run (fp32, fp16, INT8 QDQ; not the ORT-optimized copy,
which may hold ONNX Runtime's own operators) is run by OpenVINO and by ONNX Runtime on the same
real validation images; the two must agree within the file's precision tolerance
(`export.parity`), and OpenVINO's own test top-1 is recorded. Where OpenVINO is not installed the
proof is skipped with a notice (the export is still usable on a device that has it).

This module is the OpenVINO backend's export step (`Backend.export_step`): the exporter calls
`export_role` for every export, and it proves the files when the profile runs this backend;
`seekdeploy export --cascade` calls `export_cascade`, which runs cascade.onnx in OpenVINO (when
installed) against the two-file cascade.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy.profiles.schema import Precision

if TYPE_CHECKING:
    from seekdeploy.backends import Backend
    from seekdeploy.export.cascade_proof import StagedCascade
    from seekdeploy.export.export_plan import ExportPlan
    from seekdeploy.export.static_models import SlicedModel

PROVEN_FILES = {layout.ONNX_FP32: Precision.FP32, layout.ONNX_FP16: Precision.FP16, layout.ONNX_INT8: Precision.INT8}


def export_role(backend: Backend, plan: ExportPlan, sliced: SlicedModel, role_dir: Path,
                proofs: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The role's manifest section and notices: the proof of every file proven so far (`proofs`)
    when the profile runs OpenVINO, else nothing."""
    if plan.runtime_name != backend.name:
        return None, []
    return prove_openvino(plan, sliced, role_dir, list(proofs))


def summary_lines(section: dict[str, Any]) -> list[str]:
    """What `seekdeploy export` prints of a role's OpenVINO section: each file's parity with ONNX Runtime."""
    from seekdeploy.export.parity import parity_line

    return [parity_line(f"{name} OpenVINO vs ORT", proof["vs_onnxruntime"]) + f"  test top-1 {proof['test_top1']:.2%}"
            for name, proof in (section.get("files") or {}).items()]


def prove_openvino(plan: ExportPlan, sliced: SlicedModel, role_dir: Path,
                   names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """OpenVINO vs ONNX Runtime for each of `names` in `role_dir`; (manifest block, notices).
    `ExportError` when a file's OpenVINO logits exceed its tolerance."""
    if importlib.util.find_spec("openvino") is None:
        notice = (f"OpenVINO is not installed here, so the {sliced.role.value} model's OpenVINO parity "
                  "was not proven; pip install 'seekdeploy[openvino]' and export again to prove it")
        return {"checked": False, "reason": "openvino not installed"}, [notice]
    from seekdeploy.export.parity import accuracy, check_parity, compare_logits, run_onnx
    from seekdeploy.backends.agent_openvino import DEVICE, version_of
    from seekdeploy.backends.openvino import import_openvino, openvino_logits

    files = {}
    for name in names:
        precision = PROVEN_FILES.get(name)
        if precision is None:
            continue
        path = role_dir / name
        figures = compare_logits(run_onnx(path, plan.data.val_images), openvino_logits(path, plan.data.val_images))
        check_parity(figures, precision, f"{sliced.role.value} {name} in OpenVINO (vs ONNX Runtime)",
                     tolerances=plan.options.tolerances)
        test_top1 = accuracy(openvino_logits(path, plan.data.test_images), plan.data.test_labels)
        files[name] = {"precision": precision.value, "vs_onnxruntime": figures.to_json(),
                       "test_top1": test_top1}
    return {"checked": True, "openvino": version_of(import_openvino()), "device": DEVICE,
            "split": "validation", "files": files}, []


def export_cascade(backend: Backend, staged: StagedCascade) -> tuple[dict[str, Any], list[str]]:
    """The cascade manifest's OpenVINO section and notices: cascade.onnx run by OpenVINO (CPU) over
    the test images against the two-file cascade. OpenVINO reads the initializer-backed threshold
    input as a constant, so it runs at the stored threshold."""
    from seekdeploy.backends.openvino import NOT_INSTALLED_REASON, openvino_installed

    if not openvino_installed():
        return ({"run": False, "reason": NOT_INSTALLED_REASON},
                [f"the cascade was not run in OpenVINO: {NOT_INSTALLED_REASON}"])
    import numpy as np

    from seekdeploy.backends.agent_openvino import DEVICE, version_of
    from seekdeploy.backends.openvino import compile_for_cpu, import_openvino
    from seekdeploy.export.cascade_check import CascadeOutputs
    from seekdeploy.export.cascade_graph import INPUT
    from seekdeploy.export.cascade_proof import PROOF_BATCH, compare_cascade

    openvino = import_openvino()
    # compile_for_cpu asks for f32 inference: on a CPU with bf16 units (AMX) OpenVINO's default
    # would run the cascade in bf16 and the comparison would measure that, not the file.
    compiled, _ = compile_for_cpu(staged.folder.onnx)
    parts = []
    for start in range(0, staged.images.shape[0], PROOF_BATCH):
        result = compiled({INPUT: np.ascontiguousarray(staged.images[start:start + PROOF_BATCH])})
        parts.append([result[compiled.output(i)] for i in range(3)])
    outputs = CascadeOutputs(logits=np.concatenate([p[0] for p in parts]),
                             answered_by=np.concatenate([p[1] for p in parts]).astype(np.int64),
                             confidence=np.concatenate([p[2] for p in parts]))
    figures = compare_cascade(outputs, staged.base_logits, staged.motivated_logits, staged.threshold,
                              staged.confidence, "OpenVINO")
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return {"run": True, "openvino": version_of(openvino), "device": DEVICE, "threshold": "stored",
            "inference_precision": precision, **figures}, []


def cascade_summary_lines(section: dict[str, Any]) -> list[str]:
    """What `seekdeploy export --cascade` (and the report) says of the cascade's OpenVINO section."""
    if not section["run"]:
        return [f"  OpenVINO: not run ({section['reason']})"]
    return [f"  OpenVINO {section['openvino']}: {section['decisions_differing']} decisions differ, "
            f"logits max |diff| {section['logits_max_abs']:.3g}"]
