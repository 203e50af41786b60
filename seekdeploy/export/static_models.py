"""Slice a trained run into ordinary static models, prove each equals its supernet, save/load them.

`slice_role` builds a role's static network with `to_static` (the role's own BN statistics) and
compares it with the supernet run at the role's spec on real validation images; a difference above
`SLICE_MAX_ABS` is an `ExportError` (the copy should be exact up to kernel-order rounding).
`static.pt` holds plain data only (spec JSON, construction sizes, a state_dict), so it loads with
`torch.load(..., weights_only=True)` and `load_static` (the torch backend's reader,
`seekdeploy.backends.torch`) rebuilds the module from it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_path
from seekdeploy.backends.torch import load_static  # noqa: F401 (the reader lives with its runtime)
from seekdeploy.errors import ExportError
from seekdeploy.export.parity import ParityFigures, compare_logits
from seekdeploy.roles import Role

if TYPE_CHECKING:
    import numpy as np
    import torch

    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.spec import SubnetSpec
    from seekdeploy.train.checkpoint import LoadedRun

SLICE_MAX_ABS = 1e-5
DEFAULT_PARITY_IMAGES = 512  # validation images per parity proof: enough for top-1 agreement to mean something
_TORCH_BATCH = 256


@dataclass(frozen=True)
class EvalData:
    """Normalized float32 images of the run's dataset for parity (validation) and accuracy (test)."""

    dataset_name: str
    val_images: np.ndarray  # (N, C, H, W) float32, normalized
    test_images: np.ndarray  # (M, C, H, W) float32, normalized
    test_labels: np.ndarray  # (M,) int64
    calibration_images: np.ndarray  # (L, C, H, W) float32 training images, normalized
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    preprocessing: dict[str, Any] = field(default_factory=dict)  # ImageDataset.preprocessing


@dataclass(frozen=True)
class SlicedModel:
    """One role's static model with its proof: logits of both on the same validation images."""

    role: Role
    spec: SubnetSpec
    bn_role: str
    module: torch.nn.Module  # eval mode
    supernet_logits: np.ndarray  # (N, K)
    static_logits: np.ndarray  # (N, K)
    parity: ParityFigures  # static vs supernet


def load_eval_data(run: LoadedRun, max_parity_images: int = DEFAULT_PARITY_IMAGES,
                   calibration_images: int = 256) -> EvalData:
    """Load the run's dataset (same kwargs as training) and normalize the splits export needs."""
    from seekdeploy.data import load_dataset, normalize

    dataset = load_dataset(run.dataset_name, **run.data_kwargs)
    if len(dataset.val) == 0 or len(dataset.test) == 0:
        raise ExportError(f"dataset {run.dataset_name} has an empty validation or test split; "
                          "parity and accuracy cannot be proven on it")

    def prepared(images: torch.Tensor) -> np.ndarray:
        return normalize(images, dataset.mean, dataset.std).numpy()  # (N, C, H, W) float32

    return EvalData(
        dataset_name=dataset.name,
        val_images=prepared(dataset.val.images[:max_parity_images]),
        test_images=prepared(dataset.test.images),
        test_labels=dataset.test.labels.numpy(),
        calibration_images=prepared(dataset.train.images[:calibration_images]),
        mean=tuple(float(m) for m in dataset.mean), std=tuple(float(s) for s in dataset.std),
        class_names=tuple(dataset.class_names), preprocessing=dataset.preprocessing,
    )


def torch_logits(model: torch.nn.Module, images: np.ndarray, **forward_kwargs: Any) -> np.ndarray:
    """(N, K) float32 logits of a torch model over (N, C, H, W) float32 images, in batches."""
    import numpy as np
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, images.shape[0], _TORCH_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + _TORCH_BATCH]))
            outputs.append(model(batch, **forward_kwargs).float().numpy())  # (b, K)
    return np.concatenate(outputs)


def slice_role(run: LoadedRun, role: Role | str, val_images: np.ndarray) -> SlicedModel:
    """The static model of `role` with its parity proof against the supernet at the role's spec."""
    from seekdeploy.nn import to_static

    role = Role(role)
    spec, bn_role = run.spec_for(role), run.bn_role_for(role)
    supernet = run.supernet.eval()
    static = to_static(supernet, spec, bn_role)
    reference = torch_logits(supernet, val_images, spec=spec, bn_role=bn_role)
    candidate = torch_logits(static, val_images)
    figures = compare_logits(reference, candidate)
    if not figures.max_abs <= SLICE_MAX_ABS:
        raise ExportError(
            f"the static {role.display_name} differs from the supernet at {spec} by up to "
            f"{figures.max_abs:.3g} (limit {SLICE_MAX_ABS:g}) on {figures.n} validation images; "
            "slicing is broken for this family: report it with the run's checkpoint"
        )
    return SlicedModel(role=role, spec=spec, bn_role=bn_role, module=static,
                       supernet_logits=reference, static_logits=candidate, parity=figures)


def save_static(sliced: SlicedModel, path: str | Path, *, run_name: str, supernet: Supernet) -> Path:
    """Write `static.pt` (plain data: spec, sizes, state_dict, parity) atomically; return its path."""
    import torch

    payload = {
        "format": layout.STATIC_FORMAT, "format_version": 1, "run": run_name, "role": sliced.role.value,
        "bn_role": sliced.bn_role, "spec": sliced.spec.to_json(),
        "kwargs": {"num_classes": int(supernet.num_classes), "in_channels": int(supernet.in_channels),
                   "image_size": int(supernet.image_size)},
        "state_dict": {name: tensor.detach().cpu().clone()
                       for name, tensor in sliced.module.state_dict().items()},
        "parity": sliced.parity.to_json(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
