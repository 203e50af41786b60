"""The elastic supernet every family's model derives from, and the weights map it shares.

The **weights map** is the prefix map. A sub-network described by a `SubnetSpec` uses, in every
layer of the supernet, the first k output channels and the first k' input channels of the full
weight (the first h heads, the first d features), the first n blocks of every stage, and the
first k entries of every BatchNorm's affine parameters and running statistics. Base and motivated
model therefore share one parameter storage; nothing is copied during training.

`Supernet.slice_map` and `to_static` are derived from the family's plain `build_static`
constructor: the static model mirrors the supernet's module names, so each static tensor is the
prefix of the supernet tensor with the same name (BatchNorm statistics `running_mean` come from
`running_mean_<role>`). Families with a different layout override `static_source_name`.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from seekdeploy.errors import SpecError, did_you_mean
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec

BN_STAT_NAMES = ("running_mean", "running_var", "num_batches_tracked")
SHARED_ROLE = "shared"
DEFAULT_BN_ROLES = ("base", "motivated")


class Supernet(nn.Module):
    """Base class of every family's weight-sharing supernet (the motivated model's storage).

    Subclasses build their modules in `__init__` (calling `super().__init__(...)` first) and
    implement `forward_spec(x, spec, bn_role)`. `forward(x, spec=None, bn_role=None)` validates
    the spec (cached) and the role, then calls it.
    """

    def __init__(self, family: str, config: FamilyConfig, *, num_classes: int, in_channels: int,
                 image_size: int, bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__()
        bn_roles = tuple(bn_roles)
        if not bn_roles or len(set(bn_roles)) != len(bn_roles) or not all(r.isidentifier() for r in bn_roles):
            raise SpecError(f"bn_roles must be distinct identifiers such as ('base', 'motivated') or "
                            f"('shared',), got {bn_roles!r}")
        self.family = family
        self.config = config
        self.max_spec = config.max_spec()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.bn_roles = bn_roles
        self._checked_specs: set[SubnetSpec] = {self.max_spec}
        self._slice_maps: dict[tuple[SubnetSpec, str], dict[str, tuple[slice, ...] | None]] = {}

    def construction_kwargs(self) -> dict[str, Any]:
        """Everything `create_supernet` needs to rebuild this supernet (for checkpoints)."""
        return {"family": self.family, "config": self.config.to_json(), "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size,
                "bn_roles": list(self.bn_roles)}

    def check_spec(self, spec: SubnetSpec | None) -> SubnetSpec:
        """Return the spec (None = max spec) or raise SpecError if this supernet cannot run it."""
        if spec is None:
            return self.max_spec
        if spec in self._checked_specs:
            return spec
        if getattr(spec, "family", None) != self.family:
            raise SpecError(f"spec {spec} is not a {self.family!r} spec")
        if not self.max_spec.contains(spec):
            raise SpecError(f"spec {spec} does not fit inside this supernet ({self.max_spec}); "
                            "use smaller depths/widths or a larger supernet config")
        self._checked_specs.add(spec)
        return spec

    def check_role(self, bn_role: str | None) -> str:
        """Return the BN statistics role to use; with one role (shared BN) every role maps to it."""
        if bn_role is None or len(self.bn_roles) == 1 and bn_role in (*DEFAULT_BN_ROLES, SHARED_ROLE):
            return self.bn_roles[0]
        role = str(getattr(bn_role, "value", bn_role))
        if role not in self.bn_roles:
            raise SpecError(f"unknown BN role {role!r}{did_you_mean(role, self.bn_roles)}; "
                            f"this supernet keeps statistics for {', '.join(self.bn_roles)}")
        return role

    def forward(self, x: torch.Tensor, spec: SubnetSpec | None = None,
                bn_role: str | None = None) -> torch.Tensor:
        """Logits of the sub-network `spec` (None = whole supernet) using `bn_role`'s BN statistics."""
        return self.forward_spec(x, self.check_spec(spec), self.check_role(bn_role))

    def forward_spec(self, x: torch.Tensor, spec: SubnetSpec, bn_role: str) -> torch.Tensor:
        """Family forward at a validated spec and role."""
        raise NotImplementedError

    def static_source_name(self, static_name: str, bn_role: str) -> str:
        """Name of the supernet tensor whose prefix is the static tensor `static_name`."""
        module, _, leaf = static_name.rpartition(".")
        if leaf in BN_STAT_NAMES:
            return f"{module}.{leaf}_{bn_role}" if module else f"{leaf}_{bn_role}"
        return static_name

    def static_shapes(self, spec: SubnetSpec) -> dict[str, torch.Size]:
        """Shapes of the static model's state (built on the meta device: no memory, no init cost)."""
        # The module that defines a supernet class is its family's `models` module and defines
        # `build_static` beside it; looking it up there keeps base free of the registry.
        build = getattr(importlib.import_module(type(self).__module__), "build_static", None)
        if build is None:
            raise RuntimeError(f"{type(self).__module__} defines {type(self).__name__} but no build_static; "
                               "a supernet class lives in its family's models module")
        with torch.device("meta"):
            static = build(spec, num_classes=self.num_classes, in_channels=self.in_channels,
                           image_size=self.image_size)
        return {name: tensor.shape for name, tensor in static.state_dict().items()}

    def slice_map(self, spec: SubnetSpec | None = None,
                  bn_role: str | None = None) -> dict[str, tuple[slice, ...] | None]:
        """For every parameter and buffer name, the prefix region `spec` uses (None = unused).

        BN statistics of roles other than `bn_role` (None = first role) are None. The map is
        cached per (spec, role); the tuples index the full tensor (`tensor[slices]`).
        """
        spec, role = self.check_spec(spec), self.check_role(bn_role)
        key = (spec, role)
        if key not in self._slice_maps:
            used = {self.static_source_name(name, role): tuple(slice(0, n) for n in shape)
                    for name, shape in self.static_shapes(spec).items()}
            names = [n for n, _ in self.named_parameters()] + [n for n, _ in self.named_buffers()]
            unknown = sorted(set(used) - set(names))
            if unknown:
                raise RuntimeError(f"static model of {spec} has tensors the supernet lacks: {unknown[:5]}")
            self._slice_maps[key] = {name: used.get(name) for name in names}
        return dict(self._slice_maps[key])
