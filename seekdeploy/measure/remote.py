"""Profile an exported model on one or more devices over SSH, in parallel, host by host.

For each host: probe the device's Python and modules (before uploading anything), make a private
temp folder with `mktemp -d`, copy the agent, the runtime modules and the model, run the agent under
the profile's protocol, fetch the results JSON (and, for TensorRT, the engine built there into the
export folder), and remove the temp folder in a `finally`. A failing host becomes an outcome with
its error; it never hides the other hosts' results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import safe_name
from seekdeploy.backends import device_agent, get_backend
from seekdeploy.errors import RemoteError, SeekdeployError
from seekdeploy.roles import ROLES, Role
from seekdeploy.remote import diagnose
from seekdeploy.remote.agent_files import (
    MINIMUM_PYTHON, PROBE_SOURCE, AgentRequest, agent_argv, agent_files,
)  # fmt: skip
from seekdeploy.remote.ssh import (
    DEVICE_PYTHON, SshOptions, SshSession, mktemp_command, quote_command, with_remote_timeout,
)  # fmt: skip
from seekdeploy.remote.target import SshTarget

if TYPE_CHECKING:
    from seekdeploy.profiles.schema import HardwareProfile

log = logging.getLogger(__name__)
_UPLOAD_SLACK_S = 60.0


@dataclass(frozen=True)
class RemoteOutcome:
    """One host's answer: the results JSON, or the error that stopped it."""

    host: str
    result: dict[str, Any] | None = None
    error: SeekdeployError | None = None
    fetched_files: tuple[Path, ...] = field(default=())  # engines copied into the export folder

    @property
    def ok(self) -> bool:
        """True when the host produced a result."""
        return self.error is None


@dataclass(frozen=True)
class RemotePlan:
    """Everything a host run needs besides the connection."""

    model_path: Path
    request: AgentRequest
    python: str = DEVICE_PYTHON
    calibration_cache: Path | None = None
    output_dir: Path | None = None  # where fetched engines go (the export folder)


def profile_remote(
    export_dir_or_onnx: str | Path,
    profile: HardwareProfile | str | Path,
    hosts: Sequence[str],
    *,
    role: Role | None = None,
    options: SshOptions | None = None,
    python: str = DEVICE_PYTHON,
    repeats: int = 1,
    sweep: bool = False,
    trtexec: str | None = None,
    max_parallel: int = 8,
    on_done: Callable[[RemoteOutcome], None] | None = None,
) -> dict[str, RemoteOutcome]:
    """Measure the export on every host in parallel; return host string -> `RemoteOutcome`.

    `profile` is a `HardwareProfile` or a profile name/path. Every host string is validated first,
    so a malformed one raises `RemoteError` before any ssh starts. Each host's failure (unreachable,
    refused key, unknown host key, no python3/onnxruntime, timeout, agent error) is kept in its
    outcome; `on_done` is called as each host finishes (e.g. to print progress). `python` and
    `trtexec` name the device's interpreter and trtexec binary when they are not the defaults.
    """
    targets = {host: SshTarget.parse(host) for host in dict.fromkeys(hosts)}
    if not targets:
        raise RemoteError("no --host given: name at least one device as user@host[:port]")
    hardware = _resolve_profile(profile)
    model_path, role = _resolve_model(Path(export_dir_or_onnx), hardware, role)
    plans = {host: build_plan(model_path, hardware, role, target, python, repeats, sweep, trtexec)
             for host, target in targets.items()}  # fmt: skip
    options = options or SshOptions()

    def run_host(host: str) -> RemoteOutcome:
        outcome = profile_host(SshSession(targets[host], options), plans[host])
        if on_done is not None:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets)))) as pool:
        outcomes = list(pool.map(run_host, targets))
    return {outcome.host: outcome for outcome in outcomes}


def build_plan(model_path: Path, hardware: HardwareProfile, role: Role | None, target: SshTarget,
               python: str = DEVICE_PYTHON, repeats: int = 1, sweep: bool = False,
               trtexec: str | None = None) -> RemotePlan:
    """The agent request for `model_path` under `hardware`'s runtime, input and protocol."""
    runtime, shape, protocol = hardware.runtime, hardware.input, hardware.measurement
    precision = runtime.precision.value
    # TensorRT builds INT8 on the device from the export's cache; a CPU runtime's INT8 is a QDQ file.
    from_cache = precision == "int8" and get_backend(runtime.name).int8_needs_calibration_cache
    cache = _find_calibration_cache(model_path) if from_cache else None
    request = AgentRequest(
        model_name=safe_name(model_path.name, "model file name"), runtime=get_backend(runtime.name).name,
        providers=tuple(runtime.execution_providers), threads=int(runtime.threads),
        input_chw=(shape.channels, shape.height, shape.width), batch=int(shape.batch),
        warmup_ms=protocol.warmup_ms, warmup_iterations=protocol.warmup_iterations,
        duration_ms=protocol.duration_ms, min_iterations=protocol.min_iterations,
        precision=precision, role=role, host_label=target.label, repeats=max(1, int(repeats)),
        sweep_batches=tuple(shape.batch_sweep) if sweep else (), profile_name=hardware.name,
        workspace_mib=int(getattr(runtime, "workspace_mib", 1024)),
        calibration_cache_name=cache.name if cache else None, trtexec=trtexec,
    )  # fmt: skip
    return RemotePlan(model_path, request, python, cache, model_path.parent)


def profile_host(session: SshSession, plan: RemotePlan) -> RemoteOutcome:
    """Run the whole remote measurement on one host; errors are returned, not raised."""
    host = plan.request.host_label
    try:
        probe, folder = probe_device(session, plan.python, plan.request.runtime)
        with session.temp_dir(folder):
            check_probe(probe, session.target.label, python=plan.python, runtime=plan.request.runtime,
                        trtexec=plan.request.trtexec)
            result = run_agent(session, plan, folder)
            fetched = fetch_engines(session, plan, folder)
        return RemoteOutcome(host, result=result, fetched_files=fetched)
    except SeekdeployError as exc:
        log.info("host %s failed: %s", host, exc)
        return RemoteOutcome(host, error=exc)


def check_device(host: str, runtime: str, *, python: str = DEVICE_PYTHON, options: SshOptions | None = None) -> None:
    """Raise the `RemoteError` that profiling `host` would meet on the way in (unreachable, refused
    key, unknown host key, no Python, no runtime module); one round trip, nothing left behind."""
    session = SshSession(SshTarget.parse(host), options or SshOptions())
    probe, folder = probe_device(session, python, runtime)
    with session.temp_dir(folder):
        check_probe(probe, session.target.label, python=python, runtime=runtime)


def probe_device(session: SshSession, python: str, runtime: str) -> tuple[dict[str, Any], str]:
    """Probe the device's Python and modules and make the temp folder, in one round trip.

    Returns the probe's answer and the new folder; the caller owns (and removes) the folder.
    """
    label = session.target.label
    agent = device_agent(runtime)
    modules = agent.device_modules + agent.probe_modules
    probe_argv = [python, "-c", PROBE_SOURCE, *modules]
    command = f"{quote_command(probe_argv)} && {quote_command(mktemp_command())}"
    result = session.run(command=command, timeout_s=120, what="the Python probe")
    if result.returncode == diagnose.COMMAND_NOT_FOUND_EXIT:
        raise diagnose.missing_python_error(python, label)
    lines = result.text.strip().splitlines()
    try:
        probe = json.loads(lines[0])
    except (ValueError, IndexError) as exc:
        raise diagnose.MissingPythonError(
            f"{python} on {label} could not run the probe (exit {result.returncode}): "
            f"{result.stderr.strip()[-300:] or 'no message'}; pass --python with a Python 3 interpreter"
        ) from exc
    if result.returncode != 0:
        raise RemoteError(f"mktemp -d failed on {label}: {result.stderr.strip() or 'no message'}")
    return probe, session.checked_temp_dir(lines[1:])


def check_probe(probe: dict[str, Any], label: str, *, python: str, runtime: str, trtexec: str | None = None) -> None:
    """Raise the matching error when the device's `python` cannot run the agent for `runtime`
    (`trtexec`: the device's trtexec binary when it is not on PATH)."""
    if tuple(probe["python"]) < MINIMUM_PYTHON:
        version = ".".join(str(v) for v in probe["python"])
        wanted = ".".join(str(v) for v in MINIMUM_PYTHON)
        raise diagnose.MissingPythonError(
            f"{python} on {label} is Python {version}; the agent needs {wanted} or newer: "
            "install a newer python3 there and pass it with --python"
        )
    agent = device_agent(runtime)
    for module in agent.device_modules:
        if probe["modules"].get(module) is None:
            raise diagnose.missing_module_error(module, python, label)
    missing = agent.check_probe(probe, trtexec) if agent.check_probe else None
    if missing is not None:
        raise diagnose.missing_module_error(missing, python, label)


def run_agent(session: SshSession, plan: RemotePlan, folder: str) -> dict[str, Any]:
    """Upload the agent and model into `folder` and run it in the same connection; return its JSON."""
    from seekdeploy.runtime.result_schema import validate_model_result

    request, label = plan.request, session.target.label
    files = agent_files(request.runtime)
    files[request.model_name] = plan.model_path
    if plan.calibration_cache is not None:
        files[plan.calibration_cache.name] = plan.calibration_cache
    limit_s = session.options.command_timeout_s
    command = with_remote_timeout(agent_argv(plan.python, folder, request), limit_s)
    # The local limit adds time for the upload, so the device's own `timeout` fires first.
    done = session.upload(files, folder, then=command, timeout_s=limit_s + _UPLOAD_SLACK_S,
                          what="the latency agent")  # fmt: skip
    _raise_for_agent_exit(done.returncode, done.stderr, plan.python, label, limit_s)
    try:
        result = json.loads(done.text.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise diagnose.AgentFailedError(f"the agent on {label} printed no results JSON: {exc}") from exc
    problems = validate_model_result(result)
    if problems:
        raise diagnose.AgentFailedError(
            f"the agent on {label} wrote results of another schema ({'; '.join(problems[:3])}); "
            "the device may run an older agent"
        )
    return result


def _raise_for_agent_exit(code: int, stderr: str, python: str, label: str, limit_s: float) -> None:
    if code == 0:
        return
    if code in (124, 137):  # coreutils timeout: TERM (124) or KILL after the grace period (137)
        raise diagnose.timeout_error("the latency agent", label, limit_s)
    if code == diagnose.COMMAND_NOT_FOUND_EXIT:
        raise diagnose.missing_python_error(python, label)
    module = diagnose.find_missing_module(stderr)
    if module is not None:
        raise diagnose.missing_module_error(module, python, label)
    tagged = [line.split("error ", 1)[1] for line in stderr.splitlines()
              if line.startswith("seekdeploy-agent: error ")]  # fmt: skip
    detail = tagged[-1] if tagged else "\n".join(stderr.strip().splitlines()[-10:]) or "no message"
    raise diagnose.AgentFailedError(f"the latency agent failed on {label} (exit {code}): {detail}")


def fetch_engines(session: SshSession, plan: RemotePlan, folder: str) -> tuple[Path, ...]:
    """Copy the engine and its sidecar built on the device into the export folder (TensorRT)."""
    if not device_agent(plan.request.runtime).returns_artifacts or plan.output_dir is None:
        return ()
    listing = session.run(["cat", "--", f"{folder}/{layout.AGENT_ARTIFACTS}"], timeout_s=60, what="reading artifacts")
    try:
        names = [safe_name(str(n), "engine file name") for n in json.loads(listing.text)["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise diagnose.AgentFailedError(f"the agent on {session.target.label} listed no engine: {exc}") from exc
    fetched = []
    for name in names:
        fetched.append(session.download(f"{folder}/{name}", plan.output_dir / name))
    return tuple(fetched)


def _resolve_profile(profile: HardwareProfile | str | Path) -> HardwareProfile:
    if isinstance(profile, (str, Path)):
        from seekdeploy.profiles.loader import load_profile

        return load_profile(str(profile))
    return profile


def _resolve_model(path: Path, hardware: HardwareProfile, role: Role | None) -> tuple[Path, Role | None]:
    """The ONNX file to ship (model.fp16.onnx or model.int8.onnx for such a CPU profile, when exported)."""
    if path.is_file():
        return path, role or _role_from_folder(path.parent)
    if not path.is_dir():
        raise RemoteError(f"{path} is neither an export folder nor an ONNX file; run `seekdeploy export` first")
    candidates = [layout.ONNX_FP32]
    precision = hardware.runtime.precision.value
    if get_backend(hardware.runtime.name).runtime.runs_precision_copies and precision in ("fp16", "int8"):
        candidates.insert(0, layout.ONNX_BY_PRECISION[precision])  # the export's fp16 / INT8 QDQ copy
    for name in candidates:
        if (path / name).is_file():
            return path / name, role or _role_from_folder(path)
    raise RemoteError(f"{path} holds no model.onnx; run `seekdeploy export` for this role first")


def _role_from_folder(folder: Path) -> Role | None:
    return Role(folder.name) if folder.name in ROLES else None


def _find_calibration_cache(model_path: Path) -> Path:
    """The export's INT8 cache for exactly this ONNX file: `<stem>.<sha256[:12]>.calib` beside it."""
    from seekdeploy.export.tensorrt.calibrator import calibration_cache_path

    cache = calibration_cache_path(model_path)
    if not cache.is_file():
        raise RemoteError(
            f"the profile asks for int8 but {model_path.parent} has no calibration cache for "
            f"{model_path.name} ({cache.name}; a cache of another file would mis-quantize): "
            "export with `seekdeploy export --precision int8` first"
        )
    return cache

