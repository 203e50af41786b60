"""The stages of `seekdeploy run`: for each, "is it current?" (from artifacts) and "do it".

Every `is_current_*` returns the reason a stage can be skipped, or None when it must run; every
`execute_*` calls the library function of the matching command and returns a one-line detail.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import read_json_object, sha256_file
from seekdeploy.backends import get_backend
from seekdeploy.errors import ConfigError
from seekdeploy.layout import CHECKPOINT, ExportLayout, RunLayout
from seekdeploy.pipeline.context import PipelineContext, Stage
from seekdeploy.roles import ROLES, Role

if TYPE_CHECKING:
    from seekdeploy.export.options import ExportOptions
    from seekdeploy.measure.profile import ProfileOutcome

TRAIN_LEFTOVERS = (layout.CONFIG, layout.METRICS, layout.MOTIVATION)  # before the first checkpoint


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else float("-inf")


# --- train -------------------------------------------------------------------------------------

def train_finished(run_dir: Path) -> bool:
    """True when the run's manifest.json (written after the final checkpoint) is there and current."""
    run = RunLayout(run_dir)
    manifest = read_json_object(run.manifest)
    return (manifest.get("kind") == layout.RUN_KIND
            and layout.FINAL in manifest and _mtime(run.manifest) >= _mtime(run.checkpoint))


def check_run_matches(context: PipelineContext) -> None:
    """Refuse to reuse a run folder trained with other options (arch, data, epochs, condition)."""
    import yaml

    path = RunLayout(context.run_dir).config
    if not path.is_file() or not (context.run_dir / CHECKPOINT).is_file():
        return
    recorded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    wanted = context.config.train_request() | {"profile": context.profile.name}
    differ = {key: (recorded.get(key), value) for key, value in wanted.items() if recorded.get(key) != value}
    if differ:
        detail = ", ".join(f"{key} {old!r} (asked {new!r})" for key, (old, new) in differ.items())
        raise ConfigError(f"{context.run_dir} holds a run with other settings: {detail}; pass --force to "
                          "train it again from scratch, or --name NAME for a separate run")


def is_current_train(context: PipelineContext) -> str | None:
    """Skip reason for training: the run is finished (manifest.json after the final checkpoint)."""
    check_run_matches(context)
    if train_finished(context.run_dir):
        return f"{context.run_dir} is trained ({layout.MANIFEST} written after the final checkpoint)"
    return None


def execute_train(context: PipelineContext) -> str:
    """Train the pair, or resume an interrupted run from its checkpoint (`train --resume`)."""
    from seekdeploy.train.conditions import parse_condition
    from seekdeploy.train.config import TrainConfig
    from seekdeploy.train.run import train_pair

    run_dir, config = context.run_dir, context.config
    if (run_dir / CHECKPOINT).is_file():
        context.say(f"[train] resuming the interrupted run in {run_dir}")
        summary = train_pair(None, run_dir, resume=True, console=context.console)
    else:
        # Stopped before its first checkpoint: nothing to resume, so start the run again.
        for name in TRAIN_LEFTOVERS:
            (run_dir / name).unlink(missing_ok=True)
        parse_condition(config.condition)
        train_config = TrainConfig(arch=config.arch, data=config.data, data_dir=config.data_dir,
                                   workers=config.workers, skip_bad_files=config.skip_bad_files,
                                   epochs=config.training_epochs, condition=config.condition)
        summary = train_pair(train_config, run_dir, profile=context.profile, console=context.console)
    top1 = summary.test_top1
    return (f"test top-1 base {top1[Role.BASE]:.1%}, motivated {top1[Role.MOTIVATED]:.1%}; "
            f"{summary.motivated_fraction:.0%} of batches motivated; {summary.cost_ratio:.2f}x the "
            f"training cost of the motivated model alone")


# --- slice and export ----------------------------------------------------------------------------

def _checkpoint_sha256(context: PipelineContext) -> str:
    return sha256_file(context.run_dir / CHECKPOINT)


def manifest_checkpoint_sha256(manifest: dict[str, Any]) -> str | None:
    """The training checkpoint's sha256 an export manifest records (None when it records none)."""
    recorded = manifest.get(layout.CHECKPOINT_SHA256)  # written by export.role_export
    return recorded if isinstance(recorded, str) else None


def _exported_checkpoint(context: PipelineContext, role: str, manifest: dict[str, Any]) -> str | None:
    # The manifest's own record wins; else what this pipeline recorded when it wrote that manifest.
    recorded = manifest_checkpoint_sha256(manifest)
    if recorded is not None:
        return recorded
    entry = context.state.stage(Stage.EXPORT)
    manifest_sha = sha256_file(ExportLayout(context.export_dir).role(role).manifest)
    if entry.get("manifest_sha256", {}).get(role) == manifest_sha:
        return entry.get("checkpoint_sha256")
    return None


def export_current(context: PipelineContext) -> str | None:
    """Why the export is current (both manifests name this checkpoint, their files are there)."""
    if not (context.run_dir / CHECKPOINT).is_file():
        return None
    wanted = _checkpoint_sha256(context)
    for role in ROLES:
        folder = context.export_dir / role
        manifest = read_json_object(folder / layout.MANIFEST)
        if not manifest or _exported_checkpoint(context, role, manifest) != wanted:
            return None
        if not all((folder / name).is_file() for name in manifest.get("files", {})):
            return None
    if not ExportLayout(context.export_dir).pair.is_file():
        return None
    return f"{context.export_dir} was exported from this checkpoint (sha256 {wanted[:12]}…)"


def is_current_slice(context: PipelineContext) -> str | None:
    """Skip reason for slicing: a current export (it re-proves the slices) or newer static.pt files."""
    if export_current(context):
        return "the current export holds the proven static models"
    checkpoint_time = _mtime(context.run_dir / CHECKPOINT)
    statics = [ExportLayout(context.export_dir).role(role).static_model for role in ROLES]
    if all(_mtime(path) > checkpoint_time for path in statics):
        return "static.pt of both roles is newer than the checkpoint"
    return None


def execute_slice(context: PipelineContext) -> str:
    """`seekdeploy slice`: static models of both roles, each proven equal to the supernet."""
    from seekdeploy.export.export_run import slice_run

    sliced = slice_run(context.run_dir, ROLES, context.config.exports_dir)
    return ", ".join(f"{item.role.value} max |Δ| {item.parity.max_abs:.1e}" for item, _ in sliced)


def export_options(context: PipelineContext) -> ExportOptions:
    """Export options for the profile: ONNX (+ fp16 copy), plus what its runtime backend builds
    from it (TensorRT: the engine)."""
    from seekdeploy.export.options import parse_export_options

    precision = context.profile.runtime.precision.value
    formats = ",".join(get_backend(context.profile.runtime.name).export_formats)
    return parse_export_options(formats=formats, precision=precision, profile=context.config.profile,
                                out_dir=context.config.exports_dir)


def is_current_export(context: PipelineContext) -> str | None:
    """Skip reason for export: both manifests record this checkpoint's sha256 and their files exist."""
    return export_current(context)


def execute_export(context: PipelineContext) -> str:
    """`seekdeploy export`: ONNX (and engines/scripts), parity proofs, manifests and pair.json."""
    from seekdeploy.export.export_run import export_run

    checkpoint_sha = _checkpoint_sha256(context)
    result = export_run(context.run_dir, export_options(context))
    # Recorded so a rerun can tell this export belongs to this checkpoint (see export_current).
    context.state.stage(Stage.EXPORT).update(checkpoint_sha256=checkpoint_sha, manifest_sha256={
        role: sha256_file(ExportLayout(context.export_dir).role(role).manifest) for role in ROLES})
    for notice in result.notices:
        context.say(f"[export] note: {notice}")
    accuracy = [f"{entry.role.value} top-1 {entry.manifest.get('accuracy', {}).get('test_top1', float('nan')):.1%}"
                for entry in result.roles]  # fmt: skip
    return f"{result.export_dir} ({', '.join(accuracy)} through onnxruntime)"


def remove_previous(context: PipelineContext) -> None:
    """--force: delete the run folder's training files and the export folder, keeping pipeline.json."""
    for name in layout.TRAIN_FILES:
        (context.run_dir / name).unlink(missing_ok=True)
    if context.export_dir.is_dir():
        shutil.rmtree(context.export_dir)


# --- profile and report --------------------------------------------------------------------------

def profile_files(context: PipelineContext) -> dict[str, Path]:
    """Device label -> the profile.json the profile stage writes for it."""
    from seekdeploy.measure.profile import LOCAL_HOST, default_out
    from seekdeploy.remote.target import SshTarget

    if not context.config.hosts:
        return {LOCAL_HOST: default_out(context.export_dir)}
    labels = list(dict.fromkeys(SshTarget.parse(host).label for host in context.config.hosts))
    if len(labels) == 1:
        return {labels[0]: default_out(context.export_dir)}
    return {label: default_out(context.export_dir, label) for label in labels}


def stored_outcomes(context: PipelineContext) -> list[ProfileOutcome] | None:
    """The profile outcomes already on disk when they are current for this export, else None.

    Current: one document per device, for this profile and device, covering both roles, written
    after both export manifests. Verdicts are re-judged against today's budgets.
    """
    from seekdeploy.errors import SeekdeployError
    from seekdeploy.measure.profile import ProfileOutcome, judge_result
    from seekdeploy.runtime.results import load_profile_document
    from seekdeploy.runtime.targets import find_targets

    exported_at = max(_mtime(ExportLayout(context.export_dir).role(role).manifest) for role in ROLES)
    outcomes = []
    for host, path in profile_files(context).items():
        if _mtime(path) <= exported_at:
            return None
        try:
            document = load_profile_document(path)
        except SeekdeployError:
            return None
        results = document.get("results", [])
        if (document.get("profile"), document.get("host")) != (context.profile.name, host) or \
                sorted(r.get("role") for r in results) != sorted(ROLES):
            return None
        accuracy = {t.role: t.accuracy for t in find_targets(context.export_dir)}
        verdicts = [judge_result(r["role"], r, context.profile, accuracy.get(r["role"])) for r in results]
        outcomes.append(ProfileOutcome(host, tuple(results), tuple(verdicts), document, path))
    return outcomes


def is_current_profile(context: PipelineContext) -> str | None:
    """Skip reason for profiling: current profile.json file(s) (see `stored_outcomes`)."""
    outcomes = stored_outcomes(context)
    if outcomes is None:
        return None
    context.outcome = outcomes
    files = ", ".join(str(outcome.path) for outcome in outcomes)
    return f"{files} is newer than the export, for {context.profile.name} on {', '.join(o.host for o in outcomes)}"


def execute_profile(context: PipelineContext) -> str:
    """`seekdeploy profile`: measure both roles here (child process) or on every --host."""
    from seekdeploy.measure.profile import ProfileSettings, RemoteSettings, profile_local, profile_on_hosts

    settings = ProfileSettings()
    if context.config.hosts:
        remote = context.config.remote or RemoteSettings()
        outcomes = profile_on_hosts(context.export_dir, context.profile, context.config.hosts, settings, remote)
    else:
        outcomes = [profile_local(context.export_dir, context.profile, settings, log=context.say)]
    context.outcome = outcomes
    if context.table_console is not None:
        from seekdeploy.measure.profile import print_outcomes

        print_outcomes(context.table_console, context.export_dir, context.profile, outcomes)
    return "; ".join(f"{o.host}: {'error' if o.error else 'PASS' if o.passed else 'FAIL'}"
                     + (f" ({o.path})" if o.path else "") for o in outcomes)


def is_current_report(context: PipelineContext) -> str | None:
    """Skip reason for the report: report.html newer than every profile.json and the run manifest."""
    run = RunLayout(context.run_dir)
    report = run.report("html")
    cascade = ExportLayout(context.export_dir).cascade  # the deployed cascade's timing is in the report too
    inputs = [*profile_files(context).values(), run.manifest, cascade.manifest, cascade.profile_document]
    if all(_mtime(report) > _mtime(path) for path in inputs):
        return f"{report} is newer than its inputs"
    return None


def execute_report(context: PipelineContext) -> str:
    """`seekdeploy report`: report.json, report.md and report.html in the run folder."""
    from seekdeploy.report import accuracy_sentence, build_report, write_built_report

    report = build_report(context.run_dir, context.export_dir, context.profile)
    html = write_built_report(report, Path(context.run_dir))
    sentence = accuracy_sentence(report.document["pair"])
    return f"{html} (and report.json, report.md beside it)" + (f"; motivated {sentence}" if sentence else "")
