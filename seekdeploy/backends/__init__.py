"""Runtime backends, one module each: `seekdeploy/backends/<name>.py` exports `BACKEND`.

Adding a runtime means adding that module (plus, if the remote agent can time it, its
device-side `agent_<name>.py`); profiles, `profile`, `calibrate`, `doctor`, the agent's file list
and the device probe all loop over `list_backends()`. Modules whose names start with `_` or
`agent_` are not backends (shared code and device-side files). Listing the backends imports no
runtime: each backend imports its runtime inside its runner's `activate()`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seekdeploy.backends._backend import Backend, DeviceAgent, DoctorCheck, ExportStep, Runtime
from seekdeploy.errors import RuntimeBackendError, did_you_mean

if TYPE_CHECKING:
    from torch import nn

    from seekdeploy.profiles.schema import RuntimeName
    from seekdeploy.runtime.runners import Runner

__all__ = ["REFERENCE_RUNTIME", "Backend", "DeviceAgent", "DoctorCheck", "ExportStep", "Runtime",
           "agent_module_path", "backend_names", "create_runner", "device_agent", "export_backends",
           "get_backend", "list_backends", "profile_runtime_names", "version_distributions"]

# The runtime every exported ONNX file is proven and scored in on this machine (the export's parity
# chain), and the agent's default: the one runtime name the stages may rely on.
REFERENCE_RUNTIME = "onnxruntime"


@functools.cache
def _registry() -> dict[str, Backend]:
    found: dict[str, Backend] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith(("_", "agent_")):
            continue
        backend = importlib.import_module(f"{__name__}.{module.name}").BACKEND
        if backend.name != module.name:
            raise RuntimeError(f"seekdeploy/backends/{module.name}.py declares backend {backend.name!r}")
        found[backend.name] = backend
    return found


def list_backends() -> list[Backend]:
    """Every backend, by name."""
    return list(_registry().values())


def backend_names() -> tuple[str, ...]:
    """The names `--runtime` accepts."""
    return tuple(_registry())


def profile_runtime_names() -> tuple[str, ...]:
    """The names a profile's `runtime:` may declare (every backend but the eager torch reference)."""
    return tuple(backend.name for backend in list_backends() if backend.in_profiles)


def export_backends() -> list[Backend]:
    """The backends with an export step of their own, by name (the exporter runs each of them)."""
    return [backend for backend in list_backends() if backend.export_step is not None]


def version_distributions() -> dict[str, tuple[str, ...]]:
    """Runtime name -> the pip distributions carrying its version (`collect_environment(...,
    distributions=...)` records every backend's version from them)."""
    return {backend.name: backend.version_distributions() for backend in list_backends()}


def get_backend(name: RuntimeName | str) -> Backend:
    """The backend called `name` (a string or a `RuntimeName`, a `str` enum that looks up as its
    value); `RuntimeBackendError` for another."""
    backend = _registry().get(name)
    if backend is None:
        known = backend_names()
        raise RuntimeBackendError(f"unknown runtime {name!r}{did_you_mean(name, known)}; use one of {known}")
    return backend


def create_runner(runtime: RuntimeName | str, model: str | Path | nn.Module, providers: Sequence[str] = (),
                  threads: int = 0, precision: str | None = None) -> Runner:
    """The `Runner` of backend `runtime` for `model` (a file path; an `nn.Module` for torch)."""
    return get_backend(runtime).runtime.create_runner(model, tuple(providers), int(threads), precision)


def device_agent(name: RuntimeName | str) -> DeviceAgent:
    """The `DeviceAgent` of backend `name`; `RuntimeBackendError` when the agent cannot time it."""
    backend = get_backend(name)
    if backend.agent is None:
        raise RuntimeBackendError(f"the {backend.name} runtime cannot be timed by the agent; measure it here")
    return backend.agent


def agent_module_path(backend: Backend) -> Path:
    """The local file of `backend.agent.module` (the device-side module, beside its backend module)."""
    agent = device_agent(backend.name)
    for folder in __path__:
        if (Path(folder) / agent.module).is_file():
            return Path(folder) / agent.module
    raise RuntimeBackendError(f"the {backend.name} runtime cannot be timed by the agent; measure it here")
