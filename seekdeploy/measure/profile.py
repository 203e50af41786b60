"""Profile an export here or on devices over SSH and judge each role against the profile's budgets.

The library layer under `seekdeploy profile` and the pipeline's profile stage. Locally, an ONNX
model is measured by the standalone agent in a fresh child process (so peak memory is the model's,
not this process's torch); the torch and TensorRT runtimes run in this process. With hosts, every
role folder goes through `seekdeploy.measure.remote.profile_remote`, all hosts in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import safe_name
from seekdeploy.backends import Backend, get_backend
from seekdeploy.errors import ConfigError, SeekdeployError
from seekdeploy.remote.ssh import DEVICE_PYTHON
from seekdeploy.roles import Role

if TYPE_CHECKING:
    from rich.console import Console
    from torch import nn

    from seekdeploy.measure.remote import RemoteOutcome
    from seekdeploy.profiles.schema import HardwareProfile
    from seekdeploy.remote.ssh import SshOptions
    from seekdeploy.runtime.targets import ModelTarget
    from seekdeploy.runtime.verdict import RoleVerdict

DEFAULT_SWEEP_BATCHES = (1, 2, 4, 8, 16)
DEFAULT_WINDOWS = 5  # timed windows per role: the quietest of five is robust to a busy spell
LOCAL_HOST = "local"


@dataclass(frozen=True)
class ProfileSettings:
    """How to measure: overrides of the profile's runtime settings (None = the profile's)."""

    role: Role | None = None
    runtime: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    batch: int | None = None
    sweep: bool = False
    repeats: int = DEFAULT_WINDOWS  # timed windows per role, interleaved across the roles
    run_dir: Path | None = None  # unused: --runtime torch times the export's static.pt
    out: Path | None = None  # where profile.json goes (local only)


@dataclass(frozen=True)
class RemoteSettings:
    """The SSH side of `--host`: options, the device's python and trtexec."""

    options: SshOptions | None = None
    python: str = DEVICE_PYTHON
    trtexec: str | None = None


@dataclass(frozen=True)
class ProfileOutcome:
    """One device's answer for an export: its results, verdicts and profile.json, or its error."""

    host: str
    results: tuple[dict[str, Any], ...] = ()
    verdicts: tuple[RoleVerdict, ...] = ()  # one per result
    document: dict[str, Any] | None = None
    path: Path | None = None
    error: SeekdeployError | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """True when the device answered and every role met its budgets."""
        return self.error is None and all(verdict.passed for verdict in self.verdicts)


def default_out(export: Path, host: str | None = None) -> Path:
    """profile.json in the export folder (`<model>.profile.json` beside one .onnx file); with
    `host` (one of several devices) `profile.<host>.json` / `<model>.profile.<host>.json`."""
    suffix = f".{safe_name(host.replace(':', '_'), 'host label')}" if host else ""
    if export.is_file():
        return export.with_name(f"{export.stem}.profile{suffix}.json")
    return export / f"profile{suffix}.json"


def device_results(export_dir: Path) -> list[tuple[str, Path]]:
    """The per-device results that `default_out(export_dir, host)` wrote there, oldest first, as
    (label, path); the label is the host as the file name spells it (a port's ':' as '_')."""
    found = sorted(export_dir.glob(layout.DEVICE_PROFILE_DOCUMENTS), key=lambda path: path.stat().st_mtime)
    return [(layout.device_label(path), path) for path in found]


def profile_local(export: Path, profile: HardwareProfile, settings: ProfileSettings,
                  log: Callable[[str], None] | None = None) -> ProfileOutcome:
    """Measure every role of `export` on this machine; write profile.json and return the outcome.

    Each role is timed in `settings.repeats` windows interleaved across the roles
    (`runtime.windows.profile_interleaved`); the quietest window is reported and judged. `log`
    receives one progress line per model (and any note about its input shape).
    """
    from seekdeploy.runtime.targets import find_targets, for_precision
    from seekdeploy.runtime.windows import profile_interleaved

    log = log or (lambda line: None)
    runtime = settings.runtime or profile.runtime.name.value
    planned, notes = {}, []
    for target in for_precision(find_targets(export, settings.role), runtime, profile.runtime.precision.value):
        chw, note = _input_chw(target, profile)
        if note:
            notes.append(note)
            log(f"note: {note}")
        log(f"profiling {target.role} ({target.model_path}) with {runtime}, input "
            f"{[settings.batch or profile.input.batch, *chw]}…")
        model = _local_model(runtime, target, profile)
        planned[target.role] = (target, chw, model)
    if len(planned) > 1 or settings.repeats > 1:
        log(f"timing {settings.repeats} window(s) per role, interleaved across {', '.join(planned)}…")

    def time_window(role: str, round_index: int) -> dict[str, Any]:
        target, chw, model = planned[role]
        last = round_index == settings.repeats - 1  # the batch sweep runs once, in the last round
        return _measure_target(target, profile, replace(settings, repeats=1, sweep=settings.sweep and last),
                               chw, model)

    measured = profile_interleaved(list(planned), settings.repeats, time_window,
                                   {role: judged_percentile(profile, role) for role in planned})
    results = [measured[role] for role in planned]
    verdicts = [judge_result(role, measured[role], profile, planned[role][0].accuracy) for role in planned]
    return _finish(export, profile, LOCAL_HOST, results, verdicts, settings.out or default_out(export), notes)


def profile_on_hosts(export: Path, profile: HardwareProfile, hosts: Sequence[str], settings: ProfileSettings,
                     remote: RemoteSettings,
                     on_done: Callable[[RemoteOutcome], None] | None = None) -> list[ProfileOutcome]:
    """Measure every role of `export` on each host (in parallel); one outcome per host, in order.

    The device uses the profile's runtime, threads and input; overriding them is refused here. A
    host's failure is kept in its outcome. One host writes profile.json; several write
    `profile.<host>.json` each, beside the export.
    """
    from seekdeploy.remote.target import SshTarget

    _refuse_local_overrides(settings)
    # Every host string is checked before any ssh starts; outcomes come back keyed by label.
    labels = list(dict.fromkeys(SshTarget.parse(host).label for host in hosts))
    if not labels:
        raise ConfigError("no --host given: name at least one device as user@host[:port]")
    if settings.out is not None and len(labels) > 1:
        raise ConfigError("--out names one file, but several --host were given; drop --out: each "
                          "device's results go to profile.<host>.json beside the export")
    measured, errors = _remote_windows(export, profile, labels, settings, remote, on_done)
    finished = []
    for label in labels:
        if label in errors:
            finished.append(ProfileOutcome(label, error=errors[label]))
            continue
        verdicts = [judge_result(t.role, result, profile, t.accuracy) for t, result in measured[label]]
        results = [result for _, result in measured[label]]
        out = _remote_out(export, label, settings.out, several=len(labels) > 1)
        finished.append(_finish(export, profile, label, results, verdicts, out, []))
    return finished


def _remote_windows(export: Path, profile: HardwareProfile, labels: list[str], settings: ProfileSettings,
                    remote: RemoteSettings, on_done: Callable[[RemoteOutcome], None] | None,
                    ) -> tuple[dict[str, list], dict[str, SeekdeployError]]:
    """Every role on every host in `settings.repeats` windows: interleaved across the roles in
    rounds of one agent run per role, except for TensorRT, whose agent builds the engine on each
    run, so each role's windows are timed in one run. Returns label -> [(target, merged result)]
    and label -> the first error (a failed host is left out of later rounds)."""
    from seekdeploy.measure.remote import profile_remote
    from seekdeploy.runtime.targets import find_targets, for_precision
    from seekdeploy.runtime.timing import round_order
    from seekdeploy.runtime.windows import merge_windows

    found = for_precision(find_targets(export, settings.role), profile.runtime.name.value,
                          profile.runtime.precision.value)  # the file the device is sent, for its accuracy
    targets = {target.role: target for target in found}
    agent = get_backend(profile.runtime.name).agent
    per_run = settings.repeats if agent is not None and agent.windows_in_one_run else 1
    rounds = -(-settings.repeats // per_run)
    chunks: dict[str, dict[str, list]] = {label: {role: [] for role in targets} for label in labels}
    errors: dict[str, SeekdeployError] = {}
    for round_index in range(rounds):
        for role in round_order(list(targets), round_index):
            alive = [label for label in labels if label not in errors]
            if not alive:
                break
            # The role folder, so an fp16 onnxruntime profile gets model.fp16.onnx where exported.
            outcomes = profile_remote(targets[role].model_path.parent, profile, alive, role=role,
                                      options=remote.options, python=remote.python, repeats=per_run,
                                      sweep=settings.sweep and round_index == rounds - 1,
                                      trtexec=remote.trtexec, on_done=on_done)  # fmt: skip
            for label, outcome in outcomes.items():
                if outcome.ok:
                    chunks[label][role].append(outcome.result)
                else:
                    errors.setdefault(label, outcome.error)
    measured = {label: [(targets[role], merge_windows(chunks[label][role], list(targets),
                                                      judged_percentile(profile, role))) for role in targets]
                for label in labels if label not in errors}  # fmt: skip
    return measured, errors


def _remote_out(export: Path, label: str, out: Path | None, several: bool) -> Path:
    if not several:
        return out or default_out(export)  # profile.json; its "host" field names the device
    return default_out(export, label)


def _refuse_local_overrides(settings: ProfileSettings) -> None:
    given = [flag for flag, value in (("--runtime", settings.runtime), ("--providers", settings.providers),
                                      ("--threads", settings.threads), ("--batch", settings.batch),
                                      ("--run", settings.run_dir)) if value is not None]  # fmt: skip
    if given:
        raise ConfigError(f"{', '.join(given)} cannot be combined with --host: a device measures with "
                          "its profile's runtime, threads and input; edit the profile instead")


def _finish(export: Path, profile: HardwareProfile, host: str, results: list, verdicts: list, out: Path,
            notes: list[str]) -> ProfileOutcome:
    from seekdeploy.runtime.results import build_profile_document, write_profile_document

    document = build_profile_document(profile_name=profile.name, export=str(export), results=results,
                                      verdicts=verdicts, host=host)  # fmt: skip
    write_profile_document(out, document)
    return ProfileOutcome(host, tuple(results), tuple(verdicts), document, out, notes=tuple(notes))


def judged_percentile(profile: HardwareProfile, role: Role) -> float | None:
    """The percentile `role`'s latency budget is judged at (None: no budget for it)."""
    return float(profile.budget(role).latency_percentile) if role in profile.budgets else None


def judge_result(role: Role, result: dict[str, Any], profile: HardwareProfile,
                 accuracy: float | None) -> RoleVerdict:
    """The `RoleVerdict` of one model result against `profile`'s budget for `role` (none declared: no checks)."""
    from seekdeploy.runtime.verdict import RoleVerdict, evaluate_role

    if role not in profile.budgets:
        return RoleVerdict(role=role, checks=())
    return evaluate_role(role, result, profile.budget(role), accuracy)


def _measure_target(target: ModelTarget, profile: HardwareProfile, settings: ProfileSettings,
                    chw: tuple[int, int, int], model: Path | nn.Module | None = None) -> dict[str, Any]:
    from seekdeploy.runtime.timing import ProtocolSettings

    runtime = settings.runtime or profile.runtime.name.value
    batch = settings.batch or profile.input.batch
    sweep = tuple(profile.input.batch_sweep or DEFAULT_SWEEP_BATCHES) if settings.sweep else ()
    threads = profile.runtime.threads if settings.threads is None else settings.threads
    providers = settings.providers or tuple(profile.runtime.execution_providers)
    protocol = ProtocolSettings.from_protocol(profile.measurement)
    precision = profile.runtime.precision.value
    if _times_here_through_agent(get_backend(runtime)):  # a child process: honest peak memory
        from seekdeploy.remote.local_agent import measure_in_child

        return measure_in_child(target.model_path, input_shape=(batch, *chw), protocol=protocol,
                                providers=providers, threads=threads, role=target.role,
                                precision=precision, repeats=settings.repeats, sweep_batches=sweep,
                                runtime=runtime)  # fmt: skip
    from seekdeploy.measure.local import ProfileRequest, profile_model

    request = ProfileRequest(model=model, runtime=runtime, input_shape=(batch, *chw), protocol=protocol,
                             role=target.role, providers=providers, threads=threads,
                             repeats=settings.repeats, sweep_batches=sweep, precision=precision)  # fmt: skip
    return profile_model(request)


def _times_here_through_agent(backend: Backend) -> bool:
    return backend.agent is not None and backend.agent.times_here


def _local_model(runtime: str, target: ModelTarget, profile: HardwareProfile) -> Path | nn.Module | None:
    # What the backend's runner loads here (an engine, a static module); None: the agent times the ONNX file.
    backend = get_backend(runtime)
    if _times_here_through_agent(backend) or backend.runtime.load_local_model is None:
        return None
    return backend.runtime.load_local_model(target, profile.name, profile.runtime.precision.value)


def _input_chw(target: ModelTarget, profile: HardwareProfile) -> tuple[tuple[int, int, int], str | None]:
    declared = (profile.input.channels, profile.input.height, profile.input.width)
    from_manifest = target.input_chw
    if from_manifest is None or from_manifest == declared:
        return declared, None
    # The model can only take its own input; the profile's is what the device would be fed.
    return from_manifest, (f"{target.role} manifest input (C,H,W)={from_manifest} differs from "
                           f"profile {profile.name}'s {declared}; using the model's")


def print_outcomes(console: Console, export: Path, profile: HardwareProfile,
                   outcomes: list[ProfileOutcome]) -> bool:
    """The table and verdicts of every device (errors in red); True when every device passed."""
    from seekdeploy.runtime.display import print_report

    passed = True
    for outcome in outcomes:
        if outcome.error is not None:
            console.print(f"{outcome.host}: {outcome.error}", style="red", markup=False, highlight=False)
            passed = False
            continue
        where = "" if outcome.host == "local" else f" on {outcome.host}"
        title = f"{export}{where} · {profile.name} (written to {outcome.path})"
        passed = print_report(console, outcome.results, outcome.verdicts, title) and passed
        _print_predictions(console, export, profile, outcome.results)
    return passed


def _print_predictions(console: Console, export: Path, profile: HardwareProfile,
                       results: Sequence[dict[str, Any]]) -> None:
    # The latency the planner predicted at training time (if recorded) beside the measurement.
    from seekdeploy.plan.report import prediction_lines

    for line in prediction_lines(export, results, profile):
        console.print(line, highlight=False)
