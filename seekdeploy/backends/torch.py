"""The eager PyTorch reference backend: `--runtime torch` times the export's static module here.

Not a profile runtime (no device runs it) and not timed by the agent; the torch check of
`seekdeploy doctor` is the training framework's own, so this backend adds none.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy.backends._backend import Backend, Runtime
from seekdeploy.errors import CheckpointError, RuntimeBackendError, require
from seekdeploy.runtime.runners import Runner, TensorInfo

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from seekdeploy.runtime.targets import ModelTarget



class TorchRunner(Runner):
    """Eager PyTorch reference runner under `torch.inference_mode`."""

    name = "torch"

    def __init__(self, module: nn.Module, device: str = "cpu", input_names: Sequence[str] = ("input",)):
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
            args = [torch.from_numpy(_contiguous(feed[n])).to(self.device) for n in self.input_names]
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


def _contiguous(array: np.ndarray) -> np.ndarray:
    import numpy  # only while a model runs: listing the backends stays light

    return numpy.ascontiguousarray(array)


def load_static(path: str | Path) -> nn.Module:
    """Rebuild a static model from `static.pt` (weights_only) in eval mode; CheckpointError if bad."""
    import torch

    from seekdeploy.nn import build_static, spec_from_json  # torch-heavy when called

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no static model at {path}; create it with `seekdeploy slice RUN`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"static model {path} is corrupt or truncated ({exc}); slice the run again") from exc
    if not isinstance(payload, dict) or payload.get("format") != layout.STATIC_FORMAT:
        raise CheckpointError(f"{path} is not a seekdeploy static model; slice the run again")
    try:
        module = build_static(spec_from_json(payload["spec"]), **payload["kwargs"])
        module.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"static model {path} does not match this seekdeploy ({exc})") from exc
    return module.eval()


def load_static_module(target: ModelTarget, profile_name: str = "", precision: str = "") -> nn.Module:
    """The role's static torch module from the export's `static.pt` (loaded `weights_only`);
    `target` is a `seekdeploy.runtime.targets.ModelTarget`."""
    path = target.model_path.parent / layout.STATIC_MODEL
    if not path.is_file():
        raise RuntimeBackendError(f"the torch runtime times the export's static model, but {path} does "
                                  "not exist; run `seekdeploy export` (or `seekdeploy slice`) again")
    return load_static(path)


BACKEND = Backend(
    name="torch",
    summary="eager PyTorch on the export's static.pt (a reference, never a device's runtime)",
    runtime=Runtime(
        create_runner=lambda model, providers, threads, precision: TorchRunner(model),
        require_here=lambda: require("torch", purpose="the eager PyTorch reference runner"),
        load_local_model=load_static_module,
        install_fix="pip install -e '.[dev]' (installs the pinned torch)",
    ),
    in_profiles=False,
)
