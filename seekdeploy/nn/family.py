"""The family object: everything one model family declares, in one place (no torch at import).

A family module in `seekdeploy.nn.families` defines a module-level `FAMILY = Family(...)`; the
registry finds it by name. From the family's one layer description (`describe_layers`) follow its analytic
cost (`estimate_cost`) and the planner's latency features; from its default pair and
`search_grid` follow the planner's search space.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seekdeploy.nn.layers import Cost, Layer, cost_from_layers
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec

if TYPE_CHECKING:
    from torch import nn

    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.grid import SpecGrid


@dataclass(frozen=True)
class Family:
    """A registered model family: its types, its one layer description, and where its models are.

    `describe_layers(spec, *, in_channels, image_size, num_classes) -> list[Layer]` (the static
    network's layers in forward order: see `seekdeploy.nn.layers`);
    `default_pair() -> (config, base_spec, motivated_spec)`; `search_grid() -> SpecGrid` (the
    planner's grid around the default supernet; None = the planner needs explicit candidates).
    `models` names the module (torch) that defines `build_supernet(config, *, num_classes,
    in_channels, image_size, bn_roles) -> Supernet`, `build_static(spec, *, num_classes,
    in_channels, image_size) -> nn.Module` (stock layers whose state names mirror the supernet's)
    and optionally `reorganize(supernet)` (channels by importance, in place); it is imported when a
    model is first built, so declaring, costing and planning a family never loads torch.
    """

    name: str
    description: str
    spec_type: type[SubnetSpec]
    config_type: type[FamilyConfig]
    describe_layers: Callable[..., list[Layer]]
    default_pair: Callable[[], tuple[FamilyConfig, SubnetSpec, SubnetSpec]]
    models: str
    search_grid: Callable[[], SpecGrid] | None = None
    # (base, spec, *, in_channels, image_size, num_classes) -> MACs the larger model of an additive
    # pair computes beyond the base's forward; None = the family has no additive nesting.
    reused_forward_macs: Callable[..., int] | None = None
    # Whether the supernet's forward hands its role to every convolution, so private
    # convolution offsets (`--private-convs`) take effect.
    private_convs: bool = False
    # Whether `Supernet.clone_into` keeps the function exact (`--clone-growth`): true where every
    # extra channel is a convolution or linear output row whose copy computes what its source does.
    clones_channels: bool = True

    def estimate_cost(self, spec: SubnetSpec, *, in_channels: int, image_size: int, num_classes: int) -> Cost:
        """Analytic params, MACs, FLOPs and activation memory of `spec`'s static network at batch 1."""
        return cost_from_layers(self.describe_layers(spec, in_channels=in_channels, image_size=image_size,
                                                     num_classes=num_classes))

    def build_supernet(self, config: FamilyConfig, **kwargs: Any) -> Supernet:
        """The elastic supernet of `config` (keyword arguments as `models.build_supernet`)."""
        return importlib.import_module(self.models).build_supernet(config, **kwargs)

    def build_static(self, spec: SubnetSpec, **kwargs: Any) -> nn.Module:
        """A freshly initialized static network of `spec` (keyword arguments as `models.build_static`)."""
        return importlib.import_module(self.models).build_static(spec, **kwargs)

    @property
    def reorganize(self) -> Callable[[Supernet], None] | None:
        """The family's channel reorganization, or None when it has none."""
        return getattr(importlib.import_module(self.models), "reorganize", None)
