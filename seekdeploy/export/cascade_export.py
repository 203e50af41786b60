"""`seekdeploy export RUN --cascade`: the pair as one deployable model in `exports/<run>/cascade/`.

Reads the current role exports (base/ and motivated/ model.onnx, which must be cut from the run's
checkpoint), chooses the threshold on the whole validation split for the user's target
(`cascade_threshold`), builds cascade.onnx from unfolded graphs of the two static models
(`cascade_graph`), and proves it against the two-file cascade on the whole test split in
onnxruntime (stored threshold and both overrides, in mixed batches). Then every runtime backend
whose export step has an `export_cascade` adds its section, under its name (OpenVINO runs the
file, TensorRT writes its build script). The folder is built in a hidden staging folder and
renamed into place only when every proof holds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import TMP_PREFIX, atomic_write_bytes, atomic_write_json, read_json_object, sha256_file
from seekdeploy.errors import ExportError
from seekdeploy.export.cascade_threshold import CascadeTarget, choose_threshold
from seekdeploy.roles import Role

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.export.cascade_proof import StagedCascade
    from seekdeploy.train.checkpoint import LoadedRun

SIZE_TARGET_RATIO = 1.1  # cascade.onnx over the motivated model.onnx


@dataclass(frozen=True)
class CascadeResult:
    """What `export_cascade` wrote and the figures the user must see."""

    folder: Path
    manifest: dict[str, Any]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Splits:
    """The run's whole validation and test splits, normalized as the exported models expect."""

    val_images: np.ndarray  # (Nv, C, H, W) float32
    val_labels: np.ndarray  # (Nv,) int64
    test_images: np.ndarray  # (Nt, C, H, W) float32
    test_labels: np.ndarray  # (Nt,) int64


def _load_splits(run: LoadedRun) -> _Splits:
    from seekdeploy.data import load_dataset, normalize

    dataset = load_dataset(run.dataset_name, **run.data_kwargs)
    if len(dataset.val) == 0 or len(dataset.test) == 0:
        raise ExportError(f"dataset {run.dataset_name} has an empty validation or test split; the cascade's "
                          "threshold is chosen on the one and proven on the other")

    def prepared(images: Any) -> np.ndarray:
        return normalize(images, dataset.mean, dataset.std).numpy()  # (N, C, H, W) float32

    return _Splits(prepared(dataset.val.images), dataset.val.labels.numpy(),
                   prepared(dataset.test.images), dataset.test.labels.numpy())


@dataclass(frozen=True)
class _RoleLogits:
    val: np.ndarray  # (Nv, K) of the role's model.onnx
    test: np.ndarray  # (Nt, K)


def _role_exports(export_dir: Path, run: LoadedRun) -> dict[Role, Path]:
    # Each role's model.onnx, refused unless its manifest says it was cut from this checkpoint.
    checkpoint = sha256_file(layout.RunLayout(Path(run.run_dir)).checkpoint)
    paths = {}
    for role in Role:
        folder = layout.ExportLayout(export_dir).role(role.value)
        manifest = read_json_object(folder.manifest)
        if not folder.onnx().is_file() or manifest.get(layout.CHECKPOINT_SHA256) != checkpoint:
            raise ExportError(f"{folder} holds no current export of this run's checkpoint; run "
                              f"`seekdeploy export {run.run_dir}` (both roles) before building the cascade")
        paths[role] = folder.onnx()
    return paths


def _path_latencies(paths: dict[Role, Path], target: CascadeTarget) -> dict[str, float] | None:
    from seekdeploy.export.cascade_threshold import TargetKind
    from seekdeploy.measure.cascade_timing import median_latency_ms

    if target.kind is not TargetKind.LATENCY:
        return None
    return {role.value: median_latency_ms(path) for role, path in paths.items()}


def _threshold_choice(val_labels: np.ndarray, logits: dict[Role, _RoleLogits], target: CascadeTarget,
                      confidence: str, latencies: dict[str, float] | None) -> dict[str, Any]:
    import numpy as np

    from seekdeploy.export.cascade_proof import gate_confidence

    conf = gate_confidence(logits[Role.BASE].val, confidence)
    base_ok = logits[Role.BASE].val.argmax(axis=1) == val_labels
    motivated_ok = logits[Role.MOTIVATED].val.argmax(axis=1) == val_labels
    choice = choose_threshold(target, conf, base_ok, motivated_ok, latencies)
    choice["threshold"] = float(np.float32(choice["threshold"]))  # what the file stores and compares in
    return choice


def _build(run: LoadedRun, data: _Splits, threshold: float, confidence: str, opset: int,
           metadata: dict[str, str]) -> tuple[Any, Any]:
    from seekdeploy.export.cascade_graph import build_cascade_proto, export_unfolded_onnx
    from seekdeploy.export.onnx_export import check_onnx_proto
    from seekdeploy.export.static_models import slice_role

    shape = (1, *data.val_images.shape[1:])
    graphs = {role: export_unfolded_onnx(slice_role(run, role, data.val_images[:64]).module, shape, opset)
              for role in Role}
    proto, sharing = build_cascade_proto(graphs[Role.BASE], graphs[Role.MOTIVATED], threshold=threshold,
                                         confidence=confidence, metadata=metadata)
    check_onnx_proto(proto, what="the cascade model")
    return proto, sharing


def export_cascade(run_dir: str | Path, export_dir: str | Path, *, target: CascadeTarget,
                   confidence: str = "softmax", opset: int = 18) -> CascadeResult:
    """Build, prove and publish `export_dir/cascade/` (see module docstring)."""
    from seekdeploy.export.parity import run_onnx
    from seekdeploy.train.checkpoint import load_run

    run, export_dir = load_run(run_dir), Path(export_dir)
    paths = _role_exports(export_dir, run)
    data = _load_splits(run)
    logits = {role: _RoleLogits(run_onnx(path, data.val_images), run_onnx(path, data.test_images))
              for role, path in paths.items()}
    choice = _threshold_choice(data.val_labels, logits, target, confidence, _path_latencies(paths, target))
    metadata = {"seekdeploy.run": Path(run.run_dir).name,
                layout.CHECKPOINT_SHA256: sha256_file(layout.RunLayout(Path(run.run_dir)).checkpoint),
                **{f"seekdeploy.{role.value}_onnx_sha256": sha256_file(path) for role, path in paths.items()}}
    proto, sharing = _build(run, data, choice["threshold"], confidence, opset, metadata)
    final = layout.ExportLayout(export_dir).cascade.folder
    stage = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}cascade-", dir=export_dir))
    try:
        staged = layout.CascadeLayout(stage / layout.CASCADE_DIR)
        staged.folder.mkdir()
        atomic_write_bytes(staged.onnx, proto.SerializeToString())
        manifest, notices = _prove_and_describe(staged, paths, logits, data, choice, sharing, metadata, confidence)
        atomic_write_json(staged.manifest, manifest)
        if final.exists():
            os.replace(final, stage / "old-cascade")
        os.replace(staged.folder, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return CascadeResult(final, manifest, notices)


def _prove_and_describe(staged: layout.CascadeLayout, paths: dict[Role, Path], logits: dict[Role, _RoleLogits],
                        data: _Splits, choice: dict[str, Any], sharing: Any, metadata: dict[str, str],
                        confidence: str) -> tuple[dict[str, Any], list[str]]:
    from seekdeploy.export.cascade_check import open_cascade
    from seekdeploy.export.cascade_proof import StagedCascade, prove_cascade
    from seekdeploy.export.manifest import describe_files, library_versions
    from seekdeploy.export.parity import accuracy

    session = open_cascade(staged.onnx)
    base, motivated = logits[Role.BASE], logits[Role.MOTIVATED]
    proof = prove_cascade(session, data.test_images, base.test, motivated.test, data.test_labels)
    sections, notices = _backend_sections(StagedCascade(staged, data.test_images, base.test, motivated.test,
                                                        session.threshold, confidence))
    size = {"cascade_bytes": staged.onnx.stat().st_size, "motivated_bytes": paths[Role.MOTIVATED].stat().st_size,
            "base_bytes": paths[Role.BASE].stat().st_size}
    size["ratio_to_motivated"] = size["cascade_bytes"] / size["motivated_bytes"]
    size["target_ratio"] = SIZE_TARGET_RATIO
    if size["ratio_to_motivated"] > SIZE_TARGET_RATIO:
        notices.append(f"cascade.onnx is {size['ratio_to_motivated']:.2f}x the motivated model's file "
                       f"(target {SIZE_TARGET_RATIO}x): sharing saved {sharing.bytes_saved / 1024:.0f} KiB of the "
                       f"base's weights, and the rest of the base (its graph, its own BatchNorm tensors) is "
                       f"{(size['cascade_bytes'] - size['motivated_bytes']) / 1024:.0f} KiB more")
    manifest = {
        "kind": layout.CASCADE_KIND, "schema_version": 1, "run": metadata["seekdeploy.run"],
        layout.CHECKPOINT_SHA256: metadata[layout.CHECKPOINT_SHA256],
        "roles_onnx_sha256": {role.value: sha256_file(path) for role, path in paths.items()},
        "confidence": confidence, "threshold": session.threshold, "threshold_choice": choice,
        "inputs": {"input": "(batch, C, H, W) float32, normalized as the role manifests' input block",
                   "threshold": "optional () float32; omitted: the stored threshold (onnxruntime overrides it; "
                                "OpenVINO and TensorRT read it as a constant)"},
        "outputs": {"logits": "(batch, K) float32", "answered_by": "(batch,) int64: 0 base, 1 motivated",
                    "confidence": "(batch,) float32: the base's top-1 softmax" + (
                        " minus its top-2" if confidence == "margin" else "")},
        "test": {"split": "test", "n": int(len(data.test_labels)), "top1": proof["top1"],
                 "escalation_rate": proof["escalation_rate"],
                 "base_top1": accuracy(base.test, data.test_labels),
                 "motivated_top1": accuracy(motivated.test, data.test_labels)},
        "parity": proof, **sections, "size": size,
        "weight_sharing": sharing.to_json(), "files": describe_files(staged.folder),
        "versions": library_versions(),
    }
    return manifest, notices


def _backend_sections(staged: StagedCascade) -> tuple[dict[str, dict[str, Any]], list[str]]:
    # Each backend's cascade section (stored under its name) from its export step's
    # `export_cascade`, and their notices; a step without one has nothing to add.
    from seekdeploy.backends import export_backends

    sections, notices = {}, []
    for backend in export_backends():
        export_step = getattr(backend.export_step.load(), "export_cascade", None)
        if export_step is not None:
            sections[backend.name], step_notices = export_step(backend, staged)
            notices += step_notices
    return sections, notices


def backend_summary_lines(manifest: dict[str, Any]) -> list[str]:
    """What each backend's export step says of its section of the cascade's manifest (the lines
    `seekdeploy export --cascade` prints and the report quotes)."""
    from seekdeploy.backends import export_backends

    lines = []
    for backend in export_backends():
        section = manifest.get(backend.name)
        if section:
            lines += backend.export_step.load().cascade_summary_lines(section)
    return lines

