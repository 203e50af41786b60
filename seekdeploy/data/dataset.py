"""The in-memory dataset every part trains and evaluates on, plus normalization and augmentation.

Images are stored once, already converted to the profile's channels and size, as uint8 tensors
(N, C, H, W); models always see `normalize(...)` output (float32). Augmentation is described by an
`AugmentPolicy` and applied to uint8 batches by `apply_augment`, so the stored data never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported inside functions so `import seekdeploy.data` stays light
    import torch


@dataclass(frozen=True)
class AugmentPolicy:
    """Training-time augmentation: random horizontal flip and random crop after zero padding.

    `crop_padding` is in pixels of the stored (resized) images; 0 disables cropping.
    """

    hflip: bool = False
    crop_padding: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for manifests."""
        return {"hflip": self.hflip, "crop_padding": self.crop_padding}


@dataclass(frozen=True)
class ImageSplit:
    """One split: `images` uint8 (N, C, H, W) and `labels` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        # Programming errors, not user input: a split is only ever built by this package.
        if self.images.ndim != 4 or str(self.images.dtype) != "torch.uint8":
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.ndim != 1 or str(self.labels.dtype) != "torch.int64":
            raise ValueError(f"labels must be int64 (N,), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class ImageDataset:
    """A loaded dataset: three splits, class names, train-split statistics and augmentation.

    `mean`/`std` are per channel on the [0, 1] scale, computed on the train split;
    `preprocessing` says how a source image became a stored one (see `data._preprocessing`);
    `skipped_files` names the source files left out as unusable (image folders, on request).
    """

    name: str
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: AugmentPolicy
    preprocessing: dict[str, Any] = field(default_factory=dict)
    skipped_files: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of classes (length of `class_names`)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the stored images."""
        _, channels, height, width = self.train.images.shape
        return int(channels), int(height), int(width)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON description (no pixels) for run and export manifests."""
        channels, height, width = self.input_shape
        return {
            "name": self.name,
            "input": {"channels": channels, "height": height, "width": width},
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "augment": self.augment.to_json(),
            "preprocessing": self.preprocessing,
            **({"skipped_files": list(self.skipped_files)} if self.skipped_files else {}),
        }


def normalize(images_uint8: torch.Tensor, mean: Sequence[float],
              std: Sequence[float]) -> torch.Tensor:
    """Map uint8 images (..., C, H, W) to float32 `(x / 255 - mean) / std`, per channel.

    Works on any device the input lives on; `mean`/`std` are on the [0, 1] scale.
    """
    import torch

    channels = images_uint8.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    shape = (channels, 1, 1)  # broadcast over (..., C, H, W)
    mean_t = torch.tensor(list(mean), dtype=torch.float32, device=images_uint8.device).view(shape)
    std_t = torch.tensor(list(std), dtype=torch.float32, device=images_uint8.device).view(shape)
    return (images_uint8.to(torch.float32) / 255.0 - mean_t) / std_t


def apply_augment(images_uint8: torch.Tensor, policy: AugmentPolicy,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a randomly flipped / padded-and-cropped copy of a uint8 batch (N, C, H, W).

    Each sample gets its own flip and crop offset, drawn from `generator` (on the batch's device)
    so a seeded run is reproducible; the whole batch is done with one gather, no Python loop.
    """
    import torch

    out = images_uint8
    batch, _, height, width = out.shape
    device = out.device
    pad = policy.crop_padding
    if pad > 0:
        padded = torch.nn.functional.pad(out, (pad, pad, pad, pad))  # (N, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]  # (N,1,H,1)
        cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]  # (N,1,1,W)
        sample = torch.arange(batch, device=device)[:, None, None, None]  # (N,1,1,1)
        channel = torch.arange(out.shape[1], device=device)[None, :, None, None]  # (1,C,1,1)
        out = padded[sample, channel, rows, cols]  # (N, C, H, W)
    if policy.hflip:
        flip = torch.rand((batch,), generator=generator, device=device) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out
