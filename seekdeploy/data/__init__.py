"""Datasets: built-in sources loaded once into uint8 tensors at the profile's input size.

`load_dataset("digits", channels=1, height=32, width=32)` needs no download; Fashion-MNIST,
CIFAR-10/100 and `imagefolder:PATH` read local files (see `registry.load_dataset`). Importing this
package does not import torch.
"""

from seekdeploy.data.dataset import (
    AugmentPolicy,
    ImageDataset,
    ImageSplit,
    apply_augment,
    normalize,
)
from seekdeploy.data.registry import (
    DatasetName,
    dataset_status,
    list_datasets,
    load_dataset,
    parse_dataset_name,
)

__all__ = [
    "AugmentPolicy",
    "DatasetName",
    "ImageDataset",
    "ImageSplit",
    "apply_augment",
    "dataset_status",
    "list_datasets",
    "load_dataset",
    "normalize",
    "parse_dataset_name",
]
