"""Inference runners with one life cycle, so every backend is timed the same way.

A runner is a context manager: `activate()` loads the model (all one-time cost lives there),
`infer(feed)` runs one batch and returns the outputs as numpy arrays, `sync()` waits for queued
device work, `deactivate()` frees everything. onnxruntime and torch are imported inside
`activate()`, so importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy.errors import RuntimeBackendError, did_you_mean, require


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic axis) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


class Runner:
    """Base life cycle: `with runner:` activates on entry and deactivates on exit."""

    name = "runner"

    def __init__(self) -> None:
        self._active = False

    @property
    def is_active(self) -> bool:
        """Whether `activate()` has run and `deactivate()` has not."""
        return self._active

    def activate(self) -> None:
        """Load the model; idempotent."""
        if not self._active:
            self._activate()
            self._active = True

    def deactivate(self) -> None:
        """Free the model; idempotent."""
        if self._active:
            self._deactivate()
            self._active = False

    def infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference on `feed` (input name -> array) and return the outputs."""
        if not self._active:
            raise RuntimeBackendError(f"{self.name} runner used before activate(); use `with runner:`")
        return self._infer(feed)

    def sync(self) -> None:
        """Wait until queued device work is done (a no-op for synchronous CPU runtimes)."""

    def input_infos(self) -> list[TensorInfo]:
        """The model inputs (only valid while active)."""
        raise NotImplementedError

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


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
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3  # errors only: warnings would interleave with the table
        self._errors = _ort_error_types(ort)
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(self.providers),
                disabled_optimizers=disabled_optimizers(self.path, self.precision),
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


def disabled_optimizers(path: str | Path, precision: str | None = None) -> list[str]:
    """onnxruntime graph optimizers to switch off for this model: MatmulTransposeFusion for fp16.

    onnxruntime 1.32's MatmulTransposeFusion segfaults the whole process while loading some fp16
    attention graphs; the fusion changes speed, never results (`export.parity` and the remote
    agent do the same). A model is fp16 when `precision` says so or its name is `*.fp16.onnx`.
    """
    from seekdeploy.export.parity import ORT_DISABLED_OPTIMIZERS  # light: no numpy or onnx

    fp16 = precision == "fp16" or Path(path).name.endswith(".fp16.onnx")
    return list(ORT_DISABLED_OPTIMIZERS) if fp16 else []


class TorchRunner(Runner):
    """Eager PyTorch reference runner under `torch.inference_mode`."""

    name = "torch"

    def __init__(self, module: Any, device: str = "cpu", input_names: Sequence[str] = ("input",)):
        super().__init__()
        self.module = module
        self.device = device
        self.input_names = tuple(input_names)
        self._torch: Any = None

    def _activate(self) -> None:
        torch = require("torch", purpose="the eager PyTorch reference runner")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeBackendError(f"device {self.device!r} asked for but CUDA is not available")
        self._torch = torch
        self.module = self.module.to(self.device).eval()

    def _deactivate(self) -> None:
        self._torch = None

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        missing = [name for name in self.input_names if name not in feed]
        if missing:
            raise RuntimeBackendError(f"feed lacks input(s) {missing}; it has {sorted(feed)}")
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self.input_names]
            outputs = self.module(*args)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [out.detach().cpu().numpy() for out in outputs]

    def sync(self) -> None:
        """Synchronize the CUDA device so queued kernels are inside the timed sample."""
        if self._torch is not None and self.device.startswith("cuda"):
            self._torch.cuda.synchronize(self.device)

    def input_infos(self) -> list[TensorInfo]:
        """Inputs by name; an eager module declares no shapes, so every axis is None."""
        return [TensorInfo(name, (None, None, None, None), "float32") for name in self.input_names]


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


def _ort_error_types(ort: Any) -> tuple[type[BaseException], ...]:
    # onnxruntime's errors (InvalidProtobuf, InvalidArgument, ...) derive from Exception directly,
    # and the set varies between versions, so collect the ones this build has.
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile",
             "NotImplemented", "RuntimeException", "ModelLoadCanceled")  # fmt: skip
    found = [getattr(state, name) for name in names if isinstance(getattr(state, name, None), type)]
    return (RuntimeError, ValueError, *found)


def _ort_type_to_numpy(ort_type: str) -> str:
    return _ORT_TYPES.get(ort_type, "float32")


def create_runner(runtime: str, model: Any, providers: Sequence[str] = (), threads: int = 0,
                  precision: str | None = None) -> Runner:
    """Build the runner for `runtime` ("onnxruntime", "torch", "tensorrt" or "openvino") and its model."""
    if runtime == "onnxruntime":
        return OnnxRuntimeRunner(model, providers or ("CPUExecutionProvider",), threads, precision)
    if runtime == "torch":
        return TorchRunner(model)
    if runtime == "tensorrt":
        from seekdeploy.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(model)
    if runtime == "openvino":
        from seekdeploy.runtime.openvino_runner import OpenVinoRunner

        return OpenVinoRunner(model, threads)
    known = ("onnxruntime", "torch", "tensorrt", "openvino")
    raise RuntimeBackendError(f"unknown runtime {runtime!r}{did_you_mean(runtime, known)}; use one of {known}")
