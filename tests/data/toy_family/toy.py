"""A whole model family in one module (issue 18's claim, exercised by tests/test_nn_new_family.py).

`toy`: flatten the image, `depth[0]` fully connected hidden layers of `width` units (ReLU), a
linear classifier. Nothing else in seekdeploy names it: the registry, the CLI's --arch choices,
the cost, the planner's layers and grid all come from this file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seekdeploy.nn.base import DEFAULT_BN_ROLES, Supernet
from seekdeploy.nn.dynamic import DynamicLinear
from seekdeploy.nn.family import Family
from seekdeploy.nn.grid import SpecGrid
from seekdeploy.nn.layers import Layer, LayerRecorder
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec, require_positive


@dataclass(frozen=True)
class ToySpec(SubnetSpec):
    family = "toy"
    depth: tuple[int, ...]
    width: int

    def validate(self) -> None:
        require_positive("ToySpec", "depth", self.depth)
        require_positive("ToySpec", "width", self.width)

    def contains(self, other: SubnetSpec) -> bool:
        return isinstance(other, ToySpec) and other.depth <= self.depth and other.width <= self.width


@dataclass(frozen=True)
class ToyConfig(FamilyConfig):
    family = "toy"
    depth: tuple[int, ...] = (3,)
    width: int = 64

    def max_spec(self) -> ToySpec:
        return ToySpec(self.depth, self.width)


def describe_layers(spec: ToySpec, *, in_channels: int, image_size: int, num_classes: int) -> list[Layer]:
    record = LayerRecorder()
    features = in_channels * image_size * image_size
    for _ in range(spec.depth[0]):
        record.linear(features, spec.width)
        features = spec.width
    record.linear(features, num_classes)
    return record.layers


class ToySupernet(Supernet):
    def __init__(self, config: ToyConfig, *, num_classes: int, in_channels: int, image_size: int,
                 bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__("toy", config, num_classes=num_classes, in_channels=in_channels,
                         image_size=image_size, bn_roles=bn_roles)
        features, hidden = in_channels * image_size * image_size, []
        for _ in range(config.depth[0]):
            hidden.append(DynamicLinear(features, config.width))
            features = config.width
        self.hidden = nn.ModuleList(hidden)
        self.classifier = DynamicLinear(features, num_classes)

    def forward_spec(self, x: torch.Tensor, spec: ToySpec, bn_role: str) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden[: spec.depth[0]]:
            x = F.relu(layer(x, spec.width))
        return self.classifier(x)


class StaticToy(nn.Module):
    def __init__(self, spec: ToySpec, *, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        features, hidden = in_channels * image_size * image_size, []
        for _ in range(spec.depth[0]):
            hidden.append(nn.Linear(features, spec.width))
            features = spec.width
        self.hidden = nn.ModuleList(hidden)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.classifier(x)


def default_pair() -> tuple[ToyConfig, ToySpec, ToySpec]:
    config = ToyConfig()
    return config, ToySpec((1,), 32), config.max_spec()


def search_grid() -> SpecGrid:
    default = default_pair()[0].max_spec()
    widths = (16, 32, 64, 128)
    shapes = tuple(dataclasses.replace(default, depth=(1,), width=w) for w in widths)
    return SpecGrid("toy", (("width", widths),), shapes, (1, 2, 3, 4), 1)


build_supernet, build_static = ToySupernet, StaticToy  # the names `models` provides

FAMILY = Family(
    name="toy", description="fully connected layers (a test family)", spec_type=ToySpec,
    config_type=ToyConfig, describe_layers=describe_layers, default_pair=default_pair,
    models=__name__, search_grid=search_grid,
)
