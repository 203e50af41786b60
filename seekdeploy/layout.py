"""Artifact names and folder layout: every file seekdeploy writes and reads, named once.

    runs/<run>/                      RunLayout
        config.yaml                  the resolved training config
        checkpoint.pt                the pair (atomic; loaded with weights_only=True)
        metrics.jsonl                one line per epoch and role
        motivation.jsonl             which steps were motivated
        manifest.json                the run's manifest (kind RUN_KIND; written after the final checkpoint)
        pipeline.json                what `seekdeploy run` did, stage by stage
        report.json|md|html          `seekdeploy report`
    exports/<run>/                   ExportLayout
        pair.json                    proof that the base's weights are slices of the motivated model's
        profile.json                 latency per role on one device (profile.<device>.json per host)
        predictions.npz              cached test-split predictions of both roles (the report's)
        <role>/                      RoleLayout: static.pt, model*.onnx, engines, manifest.json (kind EXPORT_KIND)
        cascade/                     CascadeLayout: the pair as one model
            cascade.onnx             base -> confidence gate -> motivated (ONNX If), shared weights stored once
            manifest.json            kind CASCADE_KIND: threshold, parity vs the two-file cascade, accuracy
            profile.json             latency over the test split's images, per path (`profile`)
            build_cascade_engine.sh  the TensorRT build of cascade.onnx, run on the device

Standard library only: the CLI, the pipeline and every stage import it without cost. The remote
agent runs without seekdeploy installed, so it keeps its own copy of the few names it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# --- where runs and exports go by default (relative to the working folder) -------------------
RUNS_DIR = "runs"
EXPORTS_DIR = "exports"

# --- the run folder ---------------------------------------------------------------------------
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
MOTIVATION = "motivation.jsonl"
MANIFEST = "manifest.json"  # the run's manifest and each export role's
PIPELINE_STATE = "pipeline.json"
REPORT_FILES = ("report.json", "report.md", "report.html")
REPORT_JSON, REPORT_MD, REPORT_HTML = REPORT_FILES
TRAIN_FILES = (CONFIG, CHECKPOINT, METRICS, MOTIVATION, MANIFEST)  # what training writes

# --- the export folder ------------------------------------------------------------------------
PAIR = "pair.json"
PROFILE_DOCUMENT = "profile.json"
PREDICTIONS = "predictions.npz"

# --- a role folder ----------------------------------------------------------------------------
STATIC_MODEL = "static.pt"
ONNX_FP32 = "model.onnx"
ONNX_OPTIMIZED = "model.opt.onnx"  # ONNX Runtime's offline-optimized copy of model.onnx (fp32)
ONNX_FP16 = "model.fp16.onnx"
ONNX_INT8 = "model.int8.onnx"  # QDQ, for CPU runtimes
ONNX_BY_PRECISION = {"fp32": ONNX_FP32, "fp16": ONNX_FP16, "int8": ONNX_INT8}

# --- the cascade folder (exports/<run>/cascade/) -----------------------------------------------
CASCADE_DIR = "cascade"
CASCADE_ONNX = "cascade.onnx"
CASCADE_ENGINE_SCRIPT = "build_cascade_engine.sh"

# --- manifest keys that one stage writes and another reads -----------------------------------
RUN_KIND = "seekdeploy-train-run"  # manifest["kind"] of a finished training run
EXPORT_KIND = "seekdeploy-export"  # manifest["kind"] of an export role folder
CASCADE_KIND = "seekdeploy-cascade"  # manifest["kind"] of the cascade folder and cascade.onnx's metadata
CHECKPOINT_SHA256 = "checkpoint_sha256"  # export manifest: the checkpoint the role was cut from
FINAL = "final"  # run manifest: the final metrics block (present once training finished)


def export_dir_of(run_dir: Path) -> Path:
    """`exports/<run>` beside the `runs/` folder that holds `run_dir` (the export command's default)."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent.parent / EXPORTS_DIR / run_dir.name


def run_dir_of(export_dir: Path) -> Path:
    """`runs/<run>` beside the `exports/` folder that holds `export_dir` (the inverse of `export_dir_of`)."""
    export_dir = Path(export_dir)
    return export_dir.parent.parent / RUNS_DIR / export_dir.name


@dataclass(frozen=True)
class RunLayout:
    """The files of one training run folder (`runs/<run>/`)."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def config(self) -> Path:
        return self.folder / CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT

    @property
    def metrics(self) -> Path:
        return self.folder / METRICS

    @property
    def motivation(self) -> Path:
        return self.folder / MOTIVATION

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST

    @property
    def pipeline_state(self) -> Path:
        return self.folder / PIPELINE_STATE

    def report(self, suffix: str) -> Path:
        """`report.<suffix>` (json, md or html)."""
        return self.folder / f"report.{suffix}"


@dataclass(frozen=True)
class RoleLayout:
    """The files of one exported role (`exports/<run>/<role>/`)."""

    folder: Path

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST

    @property
    def static_model(self) -> Path:
        return self.folder / STATIC_MODEL

    def onnx(self, precision: str = "fp32") -> Path:
        """The ONNX file of `precision` (fp32, fp16 or int8)."""
        return self.folder / ONNX_BY_PRECISION[precision]


@dataclass(frozen=True)
class CascadeLayout:
    """The files of the pair deployed as one model (`exports/<run>/cascade/`)."""

    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / CASCADE_ONNX

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST

    @property
    def profile_document(self) -> Path:
        return self.folder / PROFILE_DOCUMENT

    @property
    def engine_script(self) -> Path:
        return self.folder / CASCADE_ENGINE_SCRIPT


@dataclass(frozen=True)
class ExportLayout:
    """The files of one run's export folder (`exports/<run>/`)."""

    folder: Path

    def role(self, role: str) -> RoleLayout:
        """The folder of `role` ("base" or "motivated")."""
        return RoleLayout(self.folder / role)

    @property
    def pair(self) -> Path:
        return self.folder / PAIR

    @property
    def cascade(self) -> CascadeLayout:
        return CascadeLayout(self.folder / CASCADE_DIR)

    @property
    def predictions(self) -> Path:
        return self.folder / PREDICTIONS

    def profile_document(self, device: str | None = None) -> Path:
        """profile.json, or profile.<device>.json (`device`: a file-safe label) when several devices
        were measured."""
        if device is None:
            return self.folder / PROFILE_DOCUMENT
        return self.folder / f"profile.{device}.json"
