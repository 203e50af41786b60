"""A whole training run: choose the specs, create or resume the session, train, evaluate on the
test split, and write the summary into `manifest.json` and the final checkpoint."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from seekdeploy import layout
from seekdeploy._io import TMP_PREFIX, atomic_write_text
from seekdeploy.errors import CheckpointError, ConfigError, SpecError
from seekdeploy.roles import ROLE_NAMES, ROLES, Role
from seekdeploy.train import checkpoint as ckpt
from seekdeploy.train import distributed
from seekdeploy.train._signals import stop_on_signals
from seekdeploy.train.config import TrainConfig
from seekdeploy.train.loop import evaluate, run_training, save
from seekdeploy.train.records import ProgressDisplay, library_versions, write_manifest
from seekdeploy.train.session import TRAINING_FLOPS_PER_FORWARD, TrainSession

if TYPE_CHECKING:
    from rich.console import Console

    from seekdeploy.nn.spec import FamilyConfig, SubnetSpec
    from seekdeploy.profiles.schema import HardwareProfile


@dataclass(frozen=True)
class TrainSummary:
    """The headline figures of a finished run."""

    run_dir: Path
    test_top1: dict[str, float]
    motivated_fraction: float
    train_flops: float
    standalone_motivated_flops: float
    seconds: float
    cost_flops: dict[str, float] = field(default_factory=dict)  # by part (session.COST_PARTS)
    num_classes: int = 0
    condition: str = ""

    @property
    def trained_roles(self) -> list[str]:
        """The roles that took at least one training step."""
        parts = self.cost_flops
        trained = {Role.BASE: bool(parts.get("base_steps") or parts.get("joint_base_passes")),
                   Role.MOTIVATED: bool(parts.get("motivated_steps"))}
        return [role for role in ROLE_NAMES if trained[role]]

    def verdict(self) -> tuple[bool, str]:
        """(learned, the closing line): PASSED when every trained role learned something (test
        top-1 above 1.5x chance); otherwise a WARNING naming the role that did not (training
        itself finished, so this is not an error)."""
        chance = 1.0 / self.num_classes if self.num_classes else 0.0
        trained = self.trained_roles
        scores = ", ".join(f"{role} {self.test_top1[role]:.1%}" for role in trained)
        failed = [role for role in trained if self.test_top1[role] <= 1.5 * chance]
        if not trained:
            return False, "WARNING: no training step ran"
        if failed:
            return False, (f"WARNING: trained, but the {' and '.join(failed)} model scored "
                           f"{', '.join(f'{self.test_top1[r]:.1%}' for r in failed)} test top-1, "
                           f"no better than chance ({chance:.1%}); train longer (--epochs) or "
                           "lower --lr")
        what = "the pair" if len(trained) == 2 else (
            f"the {trained[0]} model only (condition {self.condition})")
        return True, f"PASSED: trained {what}: test top-1 {scores} (chance {chance:.1%})"

    @property
    def cost_ratio(self) -> float:
        """Training FLOPs of this run (every pass: both roles' steps, the base's extra pass on
        joint batches, BN recalibration) / those of training the motivated model alone."""
        return self.train_flops / self.standalone_motivated_flops


def choose_specs(profile: HardwareProfile, arch: str, base: str | None,
                 motivated: str | None) -> tuple[FamilyConfig, SubnetSpec, SubnetSpec]:
    """(family config, base spec, motivated spec) for a run. Specs given as text win; with neither
    given, the planner picks the pair that fits the profile's budgets (`seekdeploy.plan`), or the
    family's default pair when the profile declares no budgets."""
    from seekdeploy import nn as sd_nn

    if base is None and motivated is None and getattr(profile, "budgets", None):
        from seekdeploy.plan.planner import plan_pair

        planned = plan_pair(profile, arch)
        base, motivated = planned.base.candidate.spec.to_text(), planned.motivated.candidate.spec.to_text()

    family_config, default_base, default_motivated = sd_nn.default_pair(arch)
    base_spec = sd_nn.parse_spec(arch, base) if base else default_base
    motivated_spec = sd_nn.parse_spec(arch, motivated) if motivated else default_motivated
    if motivated:
        # The supernet IS the motivated model: size the family config to the given spec.
        fields = family_config.to_json()
        fields.update({key: value for key, value in motivated_spec.to_json().items()
                       if key in fields})
        family_config = type(family_config).from_fields(fields)
    if not motivated_spec.contains(base_spec):
        raise SpecError(f"the base {base_spec} is not nested in the motivated {motivated_spec}: "
                        "every base depth/width must be <= the motivated one's (pass --base and "
                        "--motivated that nest)")
    if not family_config.max_spec().contains(motivated_spec):
        raise SpecError(f"the motivated {motivated_spec} does not fit the {arch} supernet "
                        f"{family_config.max_spec()}; use a smaller --motivated")
    return family_config, base_spec, motivated_spec


def start_run(config: TrainConfig, run_dir: Path, *, profile: HardwareProfile) -> TrainSession:
    """A new run folder with its resolved config.yaml and a fresh session."""
    from seekdeploy.train.session import new_session

    if (run_dir / layout.CHECKPOINT).exists() or (run_dir / layout.CONFIG).exists():
        raise ConfigError(f"run folder {run_dir} already holds a run; continue it with "
                          f"--resume {run_dir}, or choose another --out")
    distributed.barrier()  # every rank has checked before rank 0 writes the folder
    channels, height, width = profile.input.channels, profile.input.height, profile.input.width
    if height != width:
        raise ConfigError(f"profile {profile.name} declares a {height}x{width} input; training "
                          "supports square inputs only. Use a profile with height == width")
    family_config, base_spec, motivated_spec = choose_specs(
        profile, config.arch, config.base_spec, config.motivated_spec)
    config = TrainConfig.from_dict(config.to_dict() | {"base_spec": base_spec.to_text(),
                                                       "motivated_spec": motivated_spec.to_text()})
    session = new_session(config, run_dir, in_channels=channels, image_size=height,
                          base_spec=base_spec, motivated_spec=motivated_spec,
                          family_config=family_config)
    # A step-0 checkpoint BEFORE config.yaml: a run killed in its first epoch can then always be
    # resumed (config.yaml without a checkpoint would refuse both a restart and --resume).
    save(session)
    from seekdeploy.plan.planner import predict_roles

    prediction = predict_roles(profile, config.arch, {Role.BASE: base_spec, Role.MOTIVATED: motivated_spec})
    resolved = {"profile": profile.name, **config.to_dict(), **({"latency_prediction": prediction}
                                                                 if prediction else {})}
    if distributed.is_main():
        atomic_write_text(run_dir / layout.CONFIG, yaml.safe_dump(resolved, sort_keys=False))
    return session


def resume_run(run_dir: Path, device: str | None = None) -> TrainSession:
    """The session of an interrupted run, restored from its checkpoint (on its saved device
    unless `device` overrides it)."""
    from seekdeploy.train.session import resume_session

    if not run_dir.is_dir():
        raise CheckpointError(f"cannot resume: run folder {run_dir} does not exist")
    # Temp files of writes a crash interrupted: never read, only wasting disk (one per crash).
    for stray in run_dir.glob(f"{TMP_PREFIX}*") if distributed.is_main() else ():
        stray.unlink(missing_ok=True)
    return resume_session(run_dir, device)


def _resolved_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.yaml as written by start_run ({} when there is none)."""
    path = run_dir / layout.CONFIG
    resolved = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return resolved if isinstance(resolved, dict) else {}


def saved_device(run_dir: Path) -> str:
    """The --device a run was started with (from its config.yaml; `auto` when unreadable)."""
    try:
        device = _resolved_config(run_dir).get("device")
    except (OSError, yaml.YAMLError):
        return "auto"
    return device if device in ("auto", "cpu", "cuda") else "auto"


def _summarize(session: TrainSession, test_top1: dict[str, float]) -> TrainSummary:
    progress = session.progress
    samples = progress.step * session.config.batch_size
    standalone = TRAINING_FLOPS_PER_FORWARD * session.forward_flops[Role.MOTIVATED] * samples
    return TrainSummary(run_dir=session.run_dir, test_top1=test_top1,
                        motivated_fraction=progress.motivated_batches / max(1, progress.step),
                        train_flops=progress.train_flops, standalone_motivated_flops=standalone,
                        seconds=progress.seconds, cost_flops=dict(progress.cost_flops),
                        num_classes=int(session.supernet.num_classes),
                        condition=session.config.condition)


def finish_run(session: TrainSession, profile_name: str | None) -> TrainSummary:
    """Test both roles, then write the final checkpoint and manifest.json."""
    test_top1 = {role.value: evaluate(session, session.dataset.test, role)[0] for role in ROLES}
    summary = _summarize(session, test_top1)
    session.progress.finished = True
    costs = {"train_flops": summary.train_flops,
             "standalone_motivated_train_flops": summary.standalone_motivated_flops,
             "cost_ratio": summary.cost_ratio, "cost_flops_by_part": summary.cost_flops,
             "forward_flops_per_sample": {r.value: session.forward_flops[r] for r in ROLES}}
    final = {"test_top1": test_top1, "motivated_fraction": summary.motivated_fraction,
             "motivated_batches": session.progress.motivated_batches,
             "steps": session.progress.step, "costs": costs, "seconds": summary.seconds}
    save(session, final)
    if not distributed.is_main():
        return summary
    model_args = session.model_args()
    write_manifest(session.run_dir, {
        "kind": layout.RUN_KIND, "run": session.run_dir.name, "profile": profile_name,
        "family": model_args["family"], "model": model_args,
        "specs": {role.value: session.specs[role].to_text() for role in ROLES},
        "config": session.config.to_dict(), "dataset": session.dataset.to_json(),
        layout.FINAL: final, "device": str(session.device), "versions": library_versions(),
        "world_size": distributed.world_size(),
        **_latency_prediction(session.run_dir)})
    return summary


def _latency_prediction(run_dir: Path) -> dict:
    # Recorded in config.yaml by start_run (the profile object is gone on resume).
    prediction = _resolved_config(run_dir).get("latency_prediction")
    return dict(prediction) if isinstance(prediction, dict) else {}


def train_pair(config: TrainConfig | None, run_dir: Path, *, profile: HardwareProfile | None = None,
               resume: bool = False, console: Console | None = None, device: str | None = None) -> TrainSummary:
    """Train (or resume) a base/motivated pair in `run_dir` and return its summary.

    Raises TrainingInterrupted (after saving) on SIGINT/SIGTERM and TrainingDiverged on a
    NaN/inf loss (the last epoch's checkpoint is kept).
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    if not distributed.is_main():
        console = Console(file=io.StringIO())  # progress and epoch lines: rank 0 only
    from seekdeploy.train.estimate import announce_training

    # A signal from here on (the step-0 checkpoint exists early) is handled by the training
    # loop's first check: it saves and stops with exit code 130, like a signal mid-epoch.
    with stop_on_signals():
        if resume:
            session = resume_run(run_dir, device)
            profile_name = _resolved_config(run_dir).get("profile")
        else:
            session = start_run(config, run_dir, profile=profile)
            profile_name = profile.name
        total = session.steps_per_epoch * session.config.epochs
        estimate = announce_training(console, session, None if resume else profile)  # plan + time, up front
        with ProgressDisplay(console, total, session.progress.step, estimate=estimate) as display:
            if resume:
                display.log(f"resuming {run_dir} at epoch {session.progress.epoch + 1}, "
                            f"step {session.progress.step}")
            run_training(session, display)
    return finish_run(session, profile_name)
