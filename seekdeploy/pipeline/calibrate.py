"""The pipeline's calibrate stage: measure the target once, before the plan, where that is cheap.

The uncalibrated roofline predicts several times the latency a CPU measures (0.82 / 2.97 ms
predicted for a pair measured at 0.10 / 0.30 ms), so a plan from it uses a fraction of the
budgets. When the target is this machine (its runtime backend `calibrates_here`) or reachable with
`--host`, and no calibration of this family matches the device (`calibration_file.load_calibrated`),
`run` times a quick design first (`QUICK_SPECS` specs the default shape rule allows, then
`QUICK_FOCUS` more where that first fit puts the budgets, `QUICK_ROUNDS` rounds of a short
protocol) and writes `profiles/<profile>.latency.json`; training then plans with it. A valid
calibration is reused; a stale or foreign one is ignored with a warning and replaced. `--no-calibrate` skips the
stage (the roofline plans), and a run already trained needs no plan.
"""

from __future__ import annotations

import dataclasses
import warnings

from seekdeploy.backends import get_backend
from seekdeploy.errors import SeekdeployError
from seekdeploy.pipeline.context import PipelineContext
from seekdeploy.roles import Role

QUICK_SPECS = 10
QUICK_FOCUS = 4
QUICK_ROUNDS = 2
QUICK_DURATION_MS = 300.0  # per timed window (the profile's own protocol when shorter)
QUICK_WARMUP_MS = 100.0


def quick_protocol(context: PipelineContext) -> object:
    """The profile's measurement protocol with windows of at most QUICK_DURATION_MS."""
    protocol = context.profile.measurement
    return dataclasses.replace(protocol, duration_ms=min(protocol.duration_ms, QUICK_DURATION_MS),
                               warmup_ms=min(protocol.warmup_ms, QUICK_WARMUP_MS))


def _trained(context: PipelineContext) -> bool:
    from seekdeploy.layout import CHECKPOINT
    from seekdeploy.pipeline.stages import train_finished

    return train_finished(context.run_dir) or (context.run_dir / CHECKPOINT).is_file()


def is_current_calibrate(context: PipelineContext) -> str | None:
    """Skip reason for calibrating: --no-calibrate, a run already planned (trained or resumed), a
    target that cannot be timed from here, or a calibration on file that matches this device."""
    from seekdeploy.plan.calibration_file import CalibrationWarning, calibration_path, load_calibrated

    profile, config = context.profile, context.config
    if not config.calibrate:
        return "--no-calibrate: the plan uses the calibration on file, else the roofline"
    if _trained(context):
        return f"{context.run_dir} is already planned and trained"
    if not config.hosts and not get_backend(profile.runtime.name).runtime.calibrates_here:
        return (f"{profile.runtime.name} cannot be timed on this machine: the roofline plans; pass --host "
                f"user@device or run `seekdeploy calibrate --profile {profile.name} --host …`")
    if config.hosts:
        return _remote_calibration_reason(context)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        found = load_calibrated(profile, config.arch)
    for warning in caught:
        context.say(f"[calibrate] warning: {warning.message}")
    if found is not None:
        return f"{calibration_path(profile)} matches this machine ({config.arch} fit {found.model})"
    return None


def _remote_calibration_reason(context: PipelineContext) -> str | None:
    # A calibration measured over SSH is checked against the profile only (the device cannot be
    # probed offline); it must come from the first --host.
    from seekdeploy.plan.calibration_file import calibration_path, read_calibration
    from seekdeploy.remote.target import SshTarget

    path = calibration_path(context.profile)
    document = read_calibration(path) or {}
    host = SshTarget.parse(context.config.hosts[0]).label
    if (document.get("fingerprint") or {}).get("host") == host and context.config.arch in (document.get("families") or {}):
        return f"{path} was measured on {host}"
    return None


def execute_calibrate(context: PipelineContext) -> str:
    """Time a quick design on the target and write the profile's calibration; a failure is reported
    and the roofline plans (the pipeline goes on)."""
    from seekdeploy.plan.calibration import calibrate_profile
    from seekdeploy.plan.defaults import DEFAULT_SHAPE_RULE

    host = context.config.hosts[0] if context.config.hosts else None
    context.say(f"[calibrate] timing {QUICK_SPECS} {context.config.arch} specs and {QUICK_FOCUS} more near the budgets "
                f"on {host or 'this machine'} "
                f"(minutes on 2 cores, more when the machine is busy; --no-calibrate skips this)")
    try:
        result = calibrate_profile(context.profile, context.config.arch, specs=QUICK_SPECS, host=host,
                                   protocol=quick_protocol(context), rounds=QUICK_ROUNDS, shape=DEFAULT_SHAPE_RULE,
                                   focus=QUICK_FOCUS)
    except SeekdeployError as exc:
        context.say(f"[calibrate] failed, the roofline plans instead: {exc}")
        return f"failed ({type(exc).__name__}); planning with the roofline"
    fit = result.fit
    if result.fit_suspect:
        context.say(f"[calibrate] warning: the fit predicts unseen specs {fit.heldout_mape_percent:.0f}% off "
                    "(a busy machine?); `seekdeploy calibrate` on an idle machine replaces it")
    return (f"{result.path}: {fit.model}, held-out error {fit.heldout_mape_percent:.1f}% over "
            f"{len(result.measurements)} specs, p95 tail x{result.tail_ratios.get('95', 1.0):.2f}")


def record_prediction_checks(context: PipelineContext) -> str | None:
    """After the profile stage: store each role's predicted and measured latency at its budget
    percentile (`plan.track_record`), so `plan` can say how far off its predictor was; returns a
    line saying so, or None when the run recorded no prediction or nothing was measured."""
    from seekdeploy._io import read_json_object
    from seekdeploy.layout import RunLayout
    from seekdeploy.plan.report import recorded_latency_ms
    from seekdeploy.plan.track_record import error_percent, record_check

    manifest = read_json_object(RunLayout(context.run_dir).manifest)
    predictor = manifest.get("latency_predictor")
    outcome = next((o for o in context.outcome or () if o.error is None), None)
    if not isinstance(predictor, dict) or outcome is None:
        return None
    roles = {}
    for result in outcome.results:
        role = Role(result.get("role") or Role.BASE)
        predicted = recorded_latency_ms(manifest.get("predicted_latency_ms"), role)
        percentile = (manifest.get("latency_percentile") or {}).get(role)
        measured = (result.get("latency") or {}).get(f"p{float(percentile):g}_ms") if percentile else None
        if not predicted or not isinstance(measured, (int, float)) or measured <= 0:
            continue
        roles[role] = {"predicted_ms": float(predicted), "measured_ms": float(measured), "percentile": float(percentile)}
        typical = recorded_latency_ms(manifest.get("predicted_typical_ms"), role)
        median = (result.get("latency") or {}).get("median_ms")
        if typical and isinstance(median, (int, float)) and median > 0:
            roles[role].update(predicted_median_ms=float(typical), measured_median_ms=float(median))
    if not roles:
        return None
    record_check(context.profile, context.config.arch, predictor, context.run_dir.name, roles)

    def median_text(figures: dict[str, float]) -> str:
        if "predicted_median_ms" not in figures:
            return ""
        error = error_percent({"predicted_ms": figures["predicted_median_ms"], "measured_ms": figures["measured_median_ms"]})
        return f"; median {figures['predicted_median_ms']:.3f} / {figures['measured_median_ms']:.3f} ms ({error:+.0f}%)"

    return "predicted vs measured: " + ", ".join(
        f"{role} p{figures['percentile']:g} {figures['predicted_ms']:.3f} / {figures['measured_ms']:.3f} ms "
        f"({error_percent(figures):+.0f}%){median_text(figures)}" for role, figures in roles.items())
