"""The OpenVINO backend: its declaration (`BACKEND`), the in-process runner (same life cycle as
every other runner), its doctor check, and the logits helper the export's parity proof uses.

All compile through `compile_for_cpu` and so through `seekdeploy.backends.agent_openvino.compile_onnx`,
the standalone code the agent runs on a device, so a model runs the same way everywhere. `openvino`
is imported only when a model is compiled, through `require(..., extra="openvino")`, so a missing
package is one clear line naming `pip install 'seekdeploy[openvino]'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy.backends import agent_openvino
from seekdeploy.backends._backend import Backend, DeviceAgent, DoctorCheck, ExportStep, Runtime, import_for_doctor
from seekdeploy.errors import RuntimeBackendError, require
from seekdeploy.runtime.runners import Runner, TensorInfo

if TYPE_CHECKING:
    import numpy as np

_PURPOSE = "the OpenVINO runtime (a profile with `runtime: openvino`)"
_BATCH = 64
NOT_INSTALLED_REASON = "OpenVINO is not installed here (pip install 'seekdeploy[openvino]')"
# The section of cascade/profile.json that holds the cascade timed by OpenVINO.
CASCADE_TIMING_KEY = "openvino"


def import_openvino() -> Any:
    """The `openvino` module, or `MissingDependencyError` saying to install seekdeploy[openvino]."""
    return require("openvino", extra="openvino", purpose=_PURPOSE)


def openvino_installed() -> bool:
    """Whether `openvino` can be imported here, found without importing it (the steps that run OpenVINO
    only where it is installed ask this, and record `NOT_INSTALLED_REASON` where it is not)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def compile_for_cpu(path: str | Path, threads: int = 0,
                    input_shape: tuple[int, ...] | None = None) -> tuple[Any, Any]:
    """(CompiledModel, InferRequest) of an ONNX file compiled by OpenVINO for the CPU through
    `agent_openvino.compile_onnx` (`threads` 0 = every core; `input_shape` fixes a static input);
    `RuntimeBackendError` when the file is missing or OpenVINO cannot read or compile it."""
    openvino = import_openvino()
    if not Path(path).is_file():
        raise RuntimeBackendError(f"ONNX model {path} does not exist; export it first")
    try:
        compiled = agent_openvino.compile_onnx(str(path), threads, openvino, input_shape)
    except agent_openvino.OpenVinoAgentError as exc:
        raise RuntimeBackendError(str(exc)) from exc
    return compiled, compiled.create_infer_request()


class OpenVinoRunner(Runner):
    """An ONNX model compiled by OpenVINO for the CPU (latency hint, f32 inference precision)."""

    name = "openvino"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        self.threads = int(threads)  # 0 = OpenVINO's default (every core)
        self._compiled: Any = None
        self._request: Any = None

    def _activate(self) -> None:
        self._compiled, self._request = compile_for_cpu(self.path, self.threads)

    def _deactivate(self) -> None:
        self._request = None
        self._compiled = None

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return agent_openvino.run_request(self._request, self._compiled, feed)
        except agent_openvino.OpenVinoAgentError as exc:
            raise RuntimeBackendError(f"{self.path}: {exc}") from exc

    def input_infos(self) -> list[TensorInfo]:
        """Inputs as OpenVINO reads them from the ONNX file; dynamic axes become None."""
        infos = []
        for port in self._compiled.inputs:
            shape = tuple(None if dim.is_dynamic else dim.get_length() for dim in port.get_partial_shape())
            infos.append(TensorInfo(port.get_any_name(), shape, "float32"))
        return infos


def openvino_logits(path: str | Path, images: np.ndarray, threads: int = 0) -> np.ndarray:
    """(N, K) float32 logits of an ONNX classifier run by OpenVINO over (N, C, H, W) float32 images."""
    import numpy as np

    images = np.ascontiguousarray(images, dtype=np.float32)
    with OpenVinoRunner(path, threads) as runner:
        name = runner.input_infos()[0].name
        fixed = runner.input_infos()[0].shape[0]
        step = fixed or _BATCH
        outputs = []
        for start in range(0, images.shape[0], step):
            chunk = images[start:start + step]  # (b, C, H, W)
            real = chunk.shape[0]
            if fixed and real < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - real, *chunk.shape[1:]), np.float32)])
            outputs.append(runner.infer({name: chunk})[0][:real])  # (b, K)
    return np.concatenate(outputs).astype(np.float32)


def check_openvino() -> list[DoctorCheck]:
    """Whether OpenVINO imports and sees a CPU device."""
    ov, problem = import_for_doctor("openvino")
    if ov is None:
        return [DoctorCheck("openvino", False, problem, "pip install 'seekdeploy[openvino]' (only needed "
                            "for profiles with `runtime: openvino`, e.g. x86-cpu-openvino)")]
    try:
        devices = ", ".join(ov.Core().available_devices)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must be one failed line, not a crash
        return [DoctorCheck("openvino", False, f"imports but cannot list devices: {exc}",
                            "reinstall it: pip install --force-reinstall 'seekdeploy[openvino]'")]
    version = agent_openvino.version_of(ov)
    return [DoctorCheck("openvino", "CPU" in devices, f"{version} (devices: {devices or 'none'})",
                        "" if "CPU" in devices else "OpenVINO sees no CPU device; reinstall it")]


BACKEND = Backend(
    name="openvino",
    summary="Intel's CPU runtime; reads the exported ONNX (pip install 'seekdeploy[openvino]')",
    runtime=Runtime(
        create_runner=lambda model, providers, threads, precision: OpenVinoRunner(model, threads),
        require_here=import_openvino,
        check_here=check_openvino,
        install_fix="pip install 'seekdeploy[openvino]'",
        runs_precision_copies=True,
    ),
    agent=DeviceAgent(
        module="agent_openvino.py",
        device_modules=("numpy", "openvino"),
        install_hint="python3 -m pip install openvino",
        times_here=True,
    ),
    # OpenVINO vs ONNX Runtime on the exported files
    export_step=ExportStep(module="seekdeploy.export.openvino_parity"),
)
