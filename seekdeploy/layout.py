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
        <role>/                      RoleLayout: static.pt, model*.onnx, manifest.json (kind EXPORT_KIND),
                                     TensorRT: engines, build_engine.sh, calibration_images.npy
        cascade/                     CascadeLayout: the pair as one model
            cascade.onnx             base -> confidence gate -> motivated (ONNX If), shared weights stored once
            manifest.json            kind CASCADE_KIND: threshold, parity vs the two-file cascade, accuracy
            profile.json             latency over the test split's images, per path (`profile`)
            build_cascade_engine.sh  the TensorRT build of cascade.onnx, run on the device
    profiles/<profile>.latency.json             the target's measured speed (`plan` calibration)
    profiles/<profile>.prediction-checks.json   predicted vs measured latency of past runs

Standard library only: the CLI, the pipeline and every stage import it without cost. The device
agents (`remote/agent.py`, `backends/agent_*.py` and the TensorRT core they ship with) run without
seekdeploy installed, so they keep their own copy of the few names they need.
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
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = (REPORT_JSON, REPORT_MD, REPORT_HTML)
TRAIN_FILES = (CONFIG, CHECKPOINT, METRICS, MOTIVATION, MANIFEST)  # what training writes

# --- the export folder ------------------------------------------------------------------------
PAIR = "pair.json"
PROFILE_DOCUMENT = "profile.json"
DEVICE_PROFILE_DOCUMENTS = "profile.*.json"  # profile.<device>.json: one per host measured (--host)
PREDICTIONS = "predictions.npz"

# --- a role folder ----------------------------------------------------------------------------
STATIC_MODEL = "static.pt"
ONNX_FP32 = "model.onnx"
ONNX_OPTIMIZED = "model.opt.onnx"  # ONNX Runtime's offline-optimized copy of model.onnx (fp32)
ONNX_FP16 = "model.fp16.onnx"
ONNX_INT8 = "model.int8.onnx"  # QDQ, for CPU runtimes
ONNX_BY_PRECISION = {"fp32": ONNX_FP32, "fp16": ONNX_FP16, "int8": ONNX_INT8}
# TensorRT, built on the device: model.<profile>.trt<version>.<precision>.engine with a .json
# sidecar (named in full by backends/_tensorrt_core.engine_filename, which devices run without
# seekdeploy), or the script that builds it and the INT8 calibration images it reads.
ENGINE_SUFFIX = ".engine"
ENGINE_SIDECAR_SUFFIX = ".engine.json"
ENGINE_SCRIPT = "build_engine.sh"
CALIBRATION_IMAGES = "calibration_images.npy"
AGENT_ARTIFACTS = "artifacts.json"  # the TensorRT agent's list of files (engines) to copy back

# --- the cascade folder (exports/<run>/cascade/) -----------------------------------------------
CASCADE_DIR = "cascade"
CASCADE_ONNX = "cascade.onnx"
CASCADE_ENGINE_SCRIPT = "build_cascade_engine.sh"

# --- the user's profiles folder (relative to the working folder) and the files beside them ------
PROFILES_DIR = "profiles"
CALIBRATION_SUFFIX = ".latency.json"
PREDICTION_CHECKS_SUFFIX = ".prediction-checks.json"

# --- what each document says it is ("kind" of a JSON document, "format" of a torch file) -------
# Two spellings, both on disk already (a reader compares with these): the run's, export's and
# torch files' with dashes, the later JSON documents' with dots.
RUN_KIND = "seekdeploy-train-run"  # manifest["kind"] of a finished training run
EXPORT_KIND = "seekdeploy-export"  # manifest["kind"] of an export role folder
CASCADE_KIND = "seekdeploy-cascade"  # manifest["kind"] of the cascade folder and cascade.onnx's metadata
CHECKPOINT_FORMAT = "seekdeploy-train-checkpoint"  # checkpoint.pt's "format"
STATIC_FORMAT = "seekdeploy-static-model"  # static.pt's "format"
PROFILE_DOCUMENT_KIND = "seekdeploy.profile"  # profile.json
REPORT_KIND = "seekdeploy.report"  # report.json
PIPELINE_KIND = "seekdeploy.pipeline"  # pipeline.json
PLAN_KIND = "seekdeploy.plan"  # `seekdeploy plan --json`
CALIBRATION_KIND = "seekdeploy.latency_calibration"  # profiles/<profile>.latency.json
CHECKS_KIND = "seekdeploy.prediction_checks"  # profiles/<profile>.prediction-checks.json

# --- manifest keys that one stage writes and another reads -----------------------------------
CHECKPOINT_SHA256 = "checkpoint_sha256"  # export manifest: the checkpoint the role was cut from
FINAL = "final"  # run manifest: the final metrics block (present once training finished)


def engine_glob(profile_name: str, precision: str) -> str:
    """The engines of `profile_name` at `precision` beside model.onnx, whatever their TensorRT version."""
    return f"{Path(ONNX_FP32).stem}.{profile_name}.trt*.{precision}{ENGINE_SUFFIX}"


def cascade_engine(precision: str) -> str:
    """`cascade.<precision>.engine`: the cascade's engine, built on the device by its script."""
    return f"{Path(CASCADE_ONNX).stem}.{precision}{ENGINE_SUFFIX}"


def device_label(path: Path) -> str:
    """The device of a `profile.<device>.json` (the host as the file name spells it)."""
    return path.name[len(Path(PROFILE_DOCUMENT).stem) + 1:-len(Path(PROFILE_DOCUMENT).suffix)]


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
        return self.folder / {"json": REPORT_JSON, "md": REPORT_MD, "html": REPORT_HTML}[suffix]


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
        return self.folder / DEVICE_PROFILE_DOCUMENTS.replace("*", device)


def default_run_name(profile: str, arch: str, data: str) -> str:
    """`<profile>-<arch>-<data>`, the run folder `train` and `run` use without a name; an
    `imagefolder:PATH` contributes `imagefolder-<folder name>`, not its path."""
    from pathlib import Path

    source, sep, folder = data.partition(":")
    label = f"{source}-{Path(folder).expanduser().resolve().name or 'data'}" if sep else data
    return f"{profile}-{arch}-{label}"
