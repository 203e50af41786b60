"""Which files the device needs, and the agent's command line, built on the host.

The agent runs beside copies of the runtime's standard-library-only modules (`timing.py`,
`environment.py`, `result_schema.py`) and the backend's device-side module and support files
(`DeviceAgent.module`, e.g. `seekdeploy/backends/agent_openvino.py`; `_cuda.py` for TensorRT),
so a remote measurement goes through exactly the code a local one does. `stage_agent`
puts those files in one flat folder, which is also how the tests run the agent under an
interpreter that has no seekdeploy and no torch.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seekdeploy.backends import REFERENCE_RUNTIME, agent_module_path, get_backend

_REMOTE_DIR = Path(__file__).resolve().parent
_RUNTIME_DIR = _REMOTE_DIR.parent / "runtime"
AGENT_SCRIPT = "agent.py"
MINIMUM_PYTHON = (3, 8)  # JetPack 5 ships Python 3.8; the agent files are checked against it


def agent_files(runtime: str) -> dict[str, Path]:
    """Remote file name -> local path of the agent and the runtime modules it imports."""
    files = {
        AGENT_SCRIPT: _REMOTE_DIR / AGENT_SCRIPT,
        "timing.py": _RUNTIME_DIR / "timing.py",
        "environment.py": _RUNTIME_DIR / "environment.py",
        "result_schema.py": _RUNTIME_DIR / "result_schema.py",
    }
    backend = get_backend(runtime)
    module = agent_module_path(backend)  # RuntimeBackendError for a runtime the agent cannot time
    files[module.name] = module
    for name in backend.agent.support:  # a shared backend module (the TensorRT core) or a runtime one
        beside = module.with_name(name)
        files[name] = beside if beside.is_file() else _RUNTIME_DIR / name
    return files


def stage_agent(folder: Path, runtime: str = REFERENCE_RUNTIME) -> Path:
    """Copy the agent and its modules into `folder` (flat) and return the agent script's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in agent_files(runtime).items():
        shutil.copyfile(source, folder / name)
    return folder / AGENT_SCRIPT


@dataclass(frozen=True)
class AgentRequest:
    """What one agent run measures: the model, runtime settings, input and protocol."""

    model_name: str  # file name inside the remote folder
    runtime: str
    providers: tuple[str, ...]
    threads: int
    input_chw: tuple[int, int, int]
    batch: int
    warmup_ms: float
    warmup_iterations: int
    duration_ms: float
    min_iterations: int
    precision: str | None = None
    role: str | None = None
    host_label: str = "local"
    repeats: int = 1
    sweep_batches: tuple[int, ...] = ()
    profile_name: str = "device"
    workspace_mib: int = 1024
    calibration_cache_name: str | None = None
    trtexec: str | None = None  # device path of trtexec when it is off PATH


def agent_argv(python: str, folder: str, request: AgentRequest) -> list[str]:
    """The agent's argument list (not yet quoted) for a run inside remote `folder`."""
    argv = [
        python, f"{folder}/{AGENT_SCRIPT}",
        "--model", f"{folder}/{request.model_name}",
        "--runtime", request.runtime,
        "--providers", ",".join(request.providers),
        "--threads", str(request.threads),
        "--batch", str(request.batch),
        "--input-shape", ",".join(str(d) for d in request.input_chw),
        "--warmup-ms", repr(float(request.warmup_ms)),
        "--warmup-iterations", str(request.warmup_iterations),
        "--duration-ms", repr(float(request.duration_ms)),
        "--min-iterations", str(request.min_iterations),
        "--repeats", str(request.repeats),
        "--host", request.host_label,
        "--profile-name", request.profile_name,
        "--workspace-mib", str(request.workspace_mib),
    ]  # fmt: skip
    # No --output: the JSON comes back on stdout in the same connection, saving a round trip.
    argv += _optional("--precision", request.precision)
    argv += _optional("--role", request.role)
    if request.sweep_batches:
        argv += ["--sweep-batches", ",".join(str(b) for b in request.sweep_batches)]
    argv += _optional("--trtexec", request.trtexec)
    if request.calibration_cache_name:
        argv += ["--calibration-cache", f"{folder}/{request.calibration_cache_name}"]
    return argv


def _optional(flag: str, value: str | None) -> Sequence[str]:
    return [flag, value] if value else []


PROBE_SOURCE = """\
import importlib, json, os, shutil, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    except Exception:  # a broken install may raise anything; report it as missing
        found[name] = None
trtexec = shutil.which("trtexec") or (
    "/usr/src/tensorrt/bin/trtexec" if os.access("/usr/src/tensorrt/bin/trtexec", os.X_OK) else None)
print(json.dumps({"python": list(sys.version_info[:3]), "modules": found, "trtexec": trtexec}))
"""
