"""The onnxruntime backend: its declaration (`BACKEND`), in-process runner and doctor check.

The session settings (graph optimizations, threads, the optimizers switched off for fp16) come
from `agent_onnxruntime.session_arguments`, in the standalone module the agent times models with on
a device, so a model loads the same way here, on a device and in the export's parity proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy.backends import agent_onnxruntime
from seekdeploy.backends._backend import Backend, DeviceAgent, DoctorCheck, Runtime, import_for_doctor
from seekdeploy.errors import RuntimeBackendError, did_you_mean, require
from seekdeploy.runtime.runners import Runner, TensorInfo

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np


class OnnxRuntimeRunner(Runner):
    """onnxruntime session with every graph optimization on and the profile's intra-op threads."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        precision: str | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.providers = tuple(providers)
        self.threads = int(threads)  # 0 = onnxruntime's default (one per physical core)
        self.precision = precision
        self._session: Any = None
        self._errors: tuple[type[BaseException], ...] = ()

    def _activate(self) -> None:
        ort = require("onnxruntime", purpose="running ONNX models")
        if not self.path.is_file():
            raise RuntimeBackendError(f"ONNX model {self.path} does not exist; export it first")
        available = ort.get_available_providers()
        for provider in self.providers:
            if provider not in available:
                raise RuntimeBackendError(
                    f"execution provider {provider!r} is not available in this onnxruntime "
                    f"build{did_you_mean(provider, available)}; available: {', '.join(available)}"
                )
        self._errors = _ort_error_types(ort)
        try:
            self._session = ort.InferenceSession(
                str(self.path), providers=list(self.providers),
                **agent_onnxruntime.session_arguments(ort, str(self.path), self.threads, self.precision),
            )
        except self._errors as exc:
            raise RuntimeBackendError(f"onnxruntime cannot load {self.path}: {exc}") from exc

    def _deactivate(self) -> None:
        self._session = None

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._session.run(None, feed))
        except self._errors as exc:
            raise RuntimeBackendError(f"onnxruntime cannot run {self.path}: {exc}") from exc

    def input_infos(self) -> list[TensorInfo]:
        """Inputs as onnxruntime reports them; symbolic axes become None."""
        infos = []
        for node in self._session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in node.shape)
            infos.append(TensorInfo(node.name, shape, _ort_type_to_numpy(node.type)))
        return infos

    @property
    def session_providers(self) -> list[str]:
        """Providers the active session really uses (onnxruntime may drop unusable ones)."""
        return list(self._session.get_providers())


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _ort_error_types(ort: ModuleType) -> tuple[type[BaseException], ...]:
    # onnxruntime's errors (InvalidProtobuf, InvalidArgument, ...) derive from Exception directly,
    # and the set varies between versions, so collect the ones this build has.
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile",
             "NotImplemented", "RuntimeException", "ModelLoadCanceled")  # fmt: skip
    found = [getattr(state, name) for name in names if isinstance(getattr(state, name, None), type)]
    return (RuntimeError, ValueError, *found)


def _ort_type_to_numpy(ort_type: str) -> str:
    return _ORT_TYPES.get(ort_type, "float32")


def check_onnxruntime() -> list[DoctorCheck]:
    """Whether onnxruntime imports, and its execution providers."""
    ort, problem = import_for_doctor("onnxruntime")
    if ort is None:
        return [DoctorCheck("onnxruntime", False, problem, "pip install onnxruntime")]
    providers = ", ".join(ort.get_available_providers())
    return [DoctorCheck("onnxruntime", True, f"{ort.__version__} (providers: {providers})")]


BACKEND = Backend(
    name="onnxruntime",
    summary="ONNX Runtime with the profile's execution providers (CPU by default)",
    runtime=Runtime(
        create_runner=lambda model, providers, threads, precision: OnnxRuntimeRunner(
            model, providers or ("CPUExecutionProvider",), threads, precision),
        require_here=lambda: require("onnxruntime", purpose="running ONNX models"),
        check_here=check_onnxruntime,
        install_fix="pip install onnxruntime numpy",
        distributions=("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
        runs_precision_copies=True,
        calibrates_here=True,
    ),
    agent=DeviceAgent(
        module="agent_onnxruntime.py",
        device_modules=("numpy", "onnxruntime"),
        install_hint="python3 -m pip install onnxruntime (onnxruntime-gpu, or NVIDIA's Jetson wheel)",
        times_here=True,
    ),
)
