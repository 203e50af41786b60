"""What a runtime backend declares: the `Backend` record every backend module exports as `BACKEND`
(made of a `Runtime`, a `DeviceAgent` and an `ExportStep`, one record per responsibility), and the
`DoctorCheck` line its environment check returns.

Light on purpose (standard library only): the registry imports every backend module to list the
names, and `seekdeploy --help` lists them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seekdeploy.runtime.runners import Runner
    from seekdeploy.runtime.targets import ModelTarget


@dataclass(frozen=True)
class DoctorCheck:
    """One line of the doctor's report: what, whether it is usable, the details and the fix."""

    name: str
    usable: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Runtime:
    """How the runtime runs models on this machine and how `seekdeploy doctor` checks it.

    `create_runner(model, providers, threads, precision)` builds its in-process runner (the heavy
    import happens in the runner's `activate()`); `check_here()` is its doctor lines.
    """

    create_runner: Callable[[Any, Sequence[str], int, str | None], Runner]
    check_here: Callable[[], list[DoctorCheck]] | None = None
    require_here: Callable[[], Any] | None = None  # imports the runtime or raises MissingDependencyError
    # (model target, profile name, precision) -> what its runner loads here; None: the ONNX file
    load_local_model: Callable[[ModelTarget, str, str], Any] | None = None
    install_fix: str = ""  # how to get it here (the seekdeploy extra)
    distributions: tuple[str, ...] = ()  # pip distributions carrying its version, first installed wins; () = its name
    runs_precision_copies: bool = False  # runs the export's model.fp16.onnx / model.int8.onnx
    calibrates_here: bool = False  # `seekdeploy calibrate` without --host can time it on this machine
    # The planner's roofline: fixed cost per layer (onnxruntime's per-operator dispatch on a CPU is
    # ~5-20 us, a TensorRT kernel launch on a Jetson ~5 us; documented defaults, not measured).
    layer_overhead_ms: float = 0.01


@dataclass(frozen=True)
class DeviceAgent:
    """How the standalone agent times the runtime: on a device over SSH, or here in a child process.

    `module` is its device-side file in `seekdeploy/backends/` (standard library + numpy + the
    runtime only), shipped with `support` (a shared backend module or files of
    `seekdeploy/runtime/`). `device_modules` must import on a device, `probe_modules` are probed
    too, and `check_probe(probe, trtexec)` names a missing one that has no alternative.
    """

    module: str
    support: tuple[str, ...] = ()
    device_modules: tuple[str, ...] = ("numpy",)
    probe_modules: tuple[str, ...] = ()
    check_probe: Callable[[dict[str, Any], str | None], str | None] | None = None
    install_hint: str = ""  # how to install the runtime on a device
    times_here: bool = False  # timed here by the agent in a child process (honest memory)
    windows_in_one_run: bool = False  # each run rebuilds the model (an engine): time every window in one
    returns_artifacts: bool = False  # lists files (engines) to copy back in layout.AGENT_ARTIFACTS


@dataclass(frozen=True)
class ExportStep:
    """The backend's own export step. It is stage code (`seekdeploy.export`), so it is named, not
    imported: `module` defines `export_role(backend, plan, sliced, role_dir, proofs) -> (manifest
    section or None, notices)` (the section is stored under the backend's name in each role's
    manifest.json), `summary_lines(section) -> list[str]` (what `seekdeploy export` prints of it)
    and optionally `opset_ceiling(profile) -> (opset, reader) | None` and, for `export --cascade`,
    `export_cascade(backend, staged) -> (section, notices)` with `cascade_summary_lines(section)`.
    `load()` imports it when an export runs."""

    module: str
    format: str | None = None  # the `export --format` value that asks for its own artifact (engines)
    precisions: tuple[str, ...] = ()  # the precisions that artifact can be built in

    def load(self) -> ModuleType:
        """The step's module, imported now."""
        return importlib.import_module(self.module)


@dataclass(frozen=True)
class Backend:
    """One inference runtime, declared once: everything else looks it up by `name`. Its module
    fills the three parts: how it runs here (`runtime`), how the device agent times it (`agent`,
    None when the agent cannot) and its own export step (`export_step`, None when it runs the
    ONNX files as they are). `in_profiles`: a profile's `runtime:` may name it."""

    name: str
    summary: str
    runtime: Runtime
    agent: DeviceAgent | None = None
    export_step: ExportStep | None = None
    in_profiles: bool = True
    export_formats: tuple[str, ...] = ("onnx",)  # what `seekdeploy run` exports for a profile of it
    onnx_opset_ceiling: Callable[[str], int | None] | None = None  # declared runtime version -> newest opset
    int8_needs_calibration_cache: bool = False  # INT8 is built on the device from the export's cache

    def version_distributions(self) -> tuple[str, ...]:
        """The pip distributions whose installed version is this runtime's (first installed wins)."""
        return self.runtime.distributions or (self.name,)


def import_for_doctor(module: str) -> tuple[ModuleType | None, str]:
    """`(module, "")`, or `(None, why)` when it is missing or its import fails in any way."""
    # A broken native backend can raise anything from its import (OSError for a missing .so,
    # RuntimeError for a CUDA mismatch); doctor's job is to report that, not to crash on it.
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        return None, f"not installed ({exc})"
    except Exception as exc:  # noqa: BLE001 - see the comment above
        return None, f"installed but fails to import: {type(exc).__name__}: {exc}"
