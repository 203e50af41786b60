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
from seekdeploy.nn.registry import families_with, get_family
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec
from seekdeploy.roles import ROLE_NAMES, SHARED_STATISTICS

BN_STAT_NAMES = ("running_mean", "running_var", "num_batches_tracked")
SHARED_ROLE = SHARED_STATISTICS
DEFAULT_BN_ROLES = ROLE_NAMES


def _copy_sources(base: int, whole: int) -> torch.Tensor:
    """Source channel of each extra channel base..whole-1: (i - base) mod base."""
    return (torch.arange(base, whole) - base) % base


def _copy_rows(param: torch.Tensor, inner: tuple[slice, ...], outer: tuple[slice, ...], *,
               zero_extra_inputs: bool) -> None:
    """Rows inner.stop..outer.stop of `param` become copies of its base rows (on the base's
    input columns; every other input column zero with `zero_extra_inputs`)."""
    b, m = inner[0].stop, outer[0].stop
    if m <= b:
        return
    sources = _copy_sources(b, m).to(param.device)
    if not zero_extra_inputs:
        param[b:m] = param[sources]
        return
    columns = inner[1].stop
    copied = param[sources, :columns].clone()
    param[b:m] = 0.0
    param[b:m, :columns] = copied


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
            raise SpecError(f"bn_roles must be distinct identifiers such as {ROLE_NAMES} or "
                            f"{(SHARED_ROLE,)}, got {bn_roles!r}")
        self.family = family
        self.config = config
        self.max_spec = config.max_spec()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.bn_roles = bn_roles
        self.private_roles: tuple[str, ...] = ()
        # Whether the private roles also own an offset to the classifier's weight.
        self.private_head = False
        # Whether the private roles also own an offset to every convolution's weight.
        self.private_convs = False
        self._private_modules: set[str] = set()
        self._checked_specs: set[SubnetSpec] = {self.max_spec}
        self._slice_maps: dict[tuple[SubnetSpec, str], dict[str, tuple[slice, ...] | None]] = {}
        # Additive nesting (`make_additive`): the nested spec and the entries held at zero.
        self.additive_base: SubnetSpec | None = None
        self._additive_masks: dict[str, torch.Tensor] = {}

    # The attribute holding the final Linear layer (its bias can be made private per role).
    classifier_name = "classifier"

    def construction_kwargs(self) -> dict[str, Any]:
        """Everything `create_supernet` needs to rebuild this supernet (for checkpoints)."""
        kwargs = {"family": self.family, "config": self.config.to_json(),
                  "num_classes": self.num_classes, "in_channels": self.in_channels,
                  "image_size": self.image_size, "bn_roles": list(self.bn_roles)}
        if self.private_roles:
            kwargs["private_roles"] = list(self.private_roles)
        if self.private_head:
            kwargs["private_head"] = True
        if self.private_convs:
            kwargs["private_convs"] = True
        return kwargs

    @property
    def supports_private_convs(self) -> bool:
        """Whether the family's forward hands its role to every convolution, so private
        convolution offsets (`make_role_private(convs=True)`) take effect (`Family.private_convs`)."""
        return get_family(self.family).private_convs

    def make_role_private(self, roles: tuple[str, ...], head: bool = False,
                          convs: bool = False) -> None:
        """Give each of `roles` offsets to every BatchNorm scale and shift and to the classifier
        bias (zero at first), with `head` to the classifier's weight too, and with `convs` to
        every convolution's weight. With shielded steps the motivated role can then retune the
        base's channels and logits for itself while the base's own parameters stay the base's.
        Needs private BN statistics (a role must be one of `bn_roles`)."""
        from seekdeploy.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d

        roles = tuple(roles)
        unknown = [role for role in roles if role not in self.bn_roles]
        if unknown:
            raise SpecError(f"cannot make {unknown} private: this supernet keeps BN roles "
                            f"{self.bn_roles} (private parameters need --bn private)")
        if head and not roles:
            raise SpecError("a private classifier head needs a private role (private_roles)")
        if convs and not roles:
            raise SpecError("private convolution offsets need a private role (private_roles)")
        if convs and not self.supports_private_convs:
            raise SpecError(f"private convolution offsets are not available for the {self.family!r} "
                            "family (its forward does not hand the role to every convolution); "
                            "train without --private-convs")
        if not roles or self.private_roles:
            return
        for name, module in self.named_modules():
            if isinstance(module, DynamicBatchNorm2d):
                module.make_affine_private(roles)
                self._private_modules.add(name)
            elif convs and isinstance(module, DynamicConv2d):
                module.make_weight_private(roles)
                self._private_modules.add(name)
        classifier = getattr(self, self.classifier_name)
        classifier.make_bias_private(roles)
        if head:
            classifier.make_weight_private(roles)
        self._private_modules.add(self.classifier_name)
        self.private_roles = roles
        self.private_head = head
        self.private_convs = convs
        self._slice_maps.clear()

    def branch_end_parameters(self, spec: SubnetSpec) -> list[str]:
        """Parameters that, set to zero, turn every block beyond `spec`'s depth into the identity
        (the last normalization scale or output projection of each such residual branch).
        Families override this; the default (no blocks to silence) suits a fixed-depth family."""
        return []

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
        role = str(bn_role)  # a Role reads as its value
        if role not in self.bn_roles:
            raise SpecError(f"unknown BN role {role!r}{did_you_mean(role, self.bn_roles)}; "
                            f"this supernet keeps statistics for {', '.join(self.bn_roles)}")
        return role

    def stage_parameters_beyond(self, depths: tuple[int, ...], module: str,
                                leaf: str) -> list[str]:
        """Names `stages.<i>.<j>.<module>.<leaf>*` of the blocks j >= depths[i] (a leaf's
        private copies `<leaf>_<role>` included)."""
        names = []
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if (len(parts) == 5 and parts[0] == "stages" and int(parts[2]) >= depths[int(parts[1])]
                    and parts[3] == module and parts[4].split("_")[0] == leaf):
                names.append(name)
        return names

    def _weights_into(self, spec: SubnetSpec) -> list[tuple[str, torch.Tensor, tuple[slice, slice]]]:
        """(name, parameter, index) of every weight matrix `spec` uses, the index selecting its
        entries from channels `spec` does not use into channels it uses (used rows, unused input
        columns)."""
        regions = self.slice_map(spec, bn_role=self.bn_roles[0])
        return [(name, param, (regions[name][0], slice(regions[name][1].stop, None)))
                for name, param in self.named_parameters()
                if regions.get(name) is not None and param.dim() >= 2]

    @torch.no_grad()
    def grow_from(self, spec: SubnetSpec) -> None:
        """Make the whole supernet compute what the sub-network `spec` computes, on the channels
        `spec` uses: zero every weight from channels `spec` does not use into channels it uses
        (every conv and linear, the classifier included) and the end of every residual branch
        beyond `spec`'s depth. Training then starts the larger model from the smaller one's
        function and can only add to it. Exact for convolutional families; a ViT whose embedding
        is wider than `spec`'s normalises over the extra features, so there it is close, not
        equal."""
        spec = self.check_spec(spec)
        for _, param, into in self._weights_into(spec):
            param[into] = 0.0
        parameters = dict(self.named_parameters())
        for name in self.branch_end_parameters(spec):
            parameters[name].zero_()

    @property
    def clones_channels(self) -> bool:
        """Whether `clone_into` keeps the function exact (`Family.clones_channels`)."""
        return get_family(self.family).clones_channels

    @torch.no_grad()
    def clone_into(self, base: SubnetSpec, spec: SubnetSpec | None = None, *,
                   from_role: str | None = None, to_role: str | None = None) -> None:
        """Start `spec`'s channels beyond `base`'s as copies of `base`'s trained channels, with
        `spec` still computing exactly `base`'s function.

        In every layer `base` uses, output channel i >= b (b: the base's channels there) takes
        the incoming weights of base channel (i - b) mod b from the base's inputs and zero from
        the extra inputs, and the BN scale, shift and (for `to_role`) running statistics of that
        channel; so it carries the same activation. Everything that reads an extra channel from
        a layer the base uses is zero (`grow_from`, applied here), as are the ends of the blocks
        `base` lacks: the copies feed nothing until training moves those zeros. The classifier's
        rows are classes and are left as they are; `to_role`'s statistics of the base's channels
        become `from_role`'s."""
        if not self.clones_channels:
            raise SpecError(f"growth by copying channels is not available for the {self.family!r} "
                            "family (it keeps the function exact in convolutional families: "
                            f"{', '.join(families_with('clones_channels'))}); train without "
                            "--clone-growth")
        spec, base = self.check_spec(spec), self.check_spec(base)
        from_role, to_role = self.check_role(from_role), self.check_role(to_role)
        if not spec.contains(base):
            raise SpecError(f"the base {base} is not nested in {spec}")
        self.grow_from(base)
        inner, outer = self.slice_map(base, bn_role=from_role), self.slice_map(spec, bn_role=to_role)
        for name, param in self.named_parameters():
            if "_delta_" in name or name.startswith(f"{self.classifier_name}."):
                continue
            if inner.get(name) is not None and outer.get(name) is not None:
                _copy_rows(param, inner[name], outer[name], zero_extra_inputs=param.dim() >= 2)
        buffers = dict(self.named_buffers())
        for name, source in buffers.items():
            module, _, leaf = name.rpartition(".")
            if leaf not in (f"running_mean_{from_role}", f"running_var_{from_role}"):
                continue
            target = f"{module}.{leaf.rpartition('_')[0]}_{to_role}"
            if inner.get(name) is None or outer.get(target) is None:
                continue
            b, m = inner[name][0].stop, outer[target][0].stop
            buffers[target][:b] = source[:b]
            buffers[target][b:m] = source[_copy_sources(b, m)]

    def side_branch_ends(self, spec: SubnetSpec) -> list[tuple[str, int]]:
        """(parameter, channels): under additive nesting of `spec`, the first `channels` output
        rows of each named parameter are held at zero, so every block beyond `spec`'s depth writes
        only the channels `spec` does not use. A family that supports additive nesting overrides
        this."""
        raise SpecError(f"additive nesting is not available for the {self.family!r} family "
                        "(it is built for resnet); train without --additive")

    def additive_zero_masks(self, spec: SubnetSpec) -> dict[str, torch.Tensor]:
        """Per parameter, the entries additive nesting of `spec` holds at zero (True): every weight
        from channels `spec` does not use into channels it uses (convolutions; the classifier
        reads every channel, its rows are classes) and the `side_branch_ends`."""
        spec = self.check_spec(spec)
        parameters = dict(self.named_parameters())
        masks: dict[str, torch.Tensor] = {}
        for name, param, into in self._weights_into(spec):
            if name.startswith(f"{self.classifier_name}."):
                continue
            mask = masks[name] = torch.zeros_like(param, dtype=torch.bool)
            mask[into] = True
        for name, channels in self.side_branch_ends(spec):
            mask = masks.setdefault(name, torch.zeros_like(parameters[name], dtype=torch.bool))
            mask[:channels] = True
        return {name: mask for name, mask in masks.items() if mask.any()}

    def make_additive(self, spec: SubnetSpec) -> None:
        """Nest `spec` additively: its activations become a prefix of the whole supernet's, so
        the larger model can reuse its forward (`forward_nested`). Needs one set of BN statistics
        and no private offsets: the channels `spec` uses must be normalised the same way in both
        models. Zeroes the held entries now; `enforce_additive` keeps them at zero after a step."""
        spec = self.check_spec(spec)
        if len(self.bn_roles) != 1 or self.private_roles:
            raise SpecError("additive nesting needs one set of BN statistics and no private "
                            "scale/shift (--bn shared --shared-affine): the base's channels must be "
                            "normalised the same way inside the motivated model")
        self._additive_masks = self.additive_zero_masks(spec)
        self.additive_base = spec
        self.enforce_additive()

    @torch.no_grad()
    def enforce_additive(self) -> None:
        """Set the entries additive nesting holds at zero back to zero (after an optimizer step)."""
        if not self._additive_masks:
            return
        parameters = dict(self.named_parameters())
        for name, mask in self._additive_masks.items():
            if mask.device != parameters[name].device:
                mask = self._additive_masks[name] = mask.to(parameters[name].device)
            parameters[name].masked_fill_(mask, 0.0)

    def forward_nested(self, x: torch.Tensor, base: SubnetSpec, spec: SubnetSpec | None = None,
                       bn_role: str | None = None, *,
                       shield: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(base logits, `spec`'s logits) of an additive pair in one pass: the base's forward,
        then only the channels and blocks the base does not have, reading the base's activations
        (detached with `shield`, so the larger model's loss trains only its own weights)."""
        raise SpecError(f"the {self.family!r} family has no nested forward; additive nesting is built for resnet")

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
        if self._has_offset(module, leaf, bn_role):
            return f"{module}.{leaf}_delta_{bn_role}"
        return static_name

    def _has_offset(self, module: str, leaf: str, bn_role: str) -> bool:
        # BN scale/shift and the classifier's bias (its weight too with a private head) of a
        # private role, and convolution weights (and biases) where they were made private.
        return (bn_role in self.private_roles and module in self._private_modules
                and (leaf == "bias" or leaf == "weight"
                     and (module != self.classifier_name or self.private_head)))

    def static_sources(self, static_name: str, bn_role: str) -> list[str]:
        """The supernet tensors whose prefixes add up to the static tensor `static_name`: one,
        or for a private role's offset parameter the shared tensor and the role's offset."""
        source = self.static_source_name(static_name, bn_role)
        return [static_name, source] if source != static_name and "_delta_" in source else [source]

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
            used = {source: tuple(slice(0, n) for n in shape)
                    for name, shape in self.static_shapes(spec).items()
                    for source in self.static_sources(name, role)}
            names = [n for n, _ in self.named_parameters()] + [n for n, _ in self.named_buffers()]
            unknown = sorted(set(used) - set(names))
            if unknown:
                raise RuntimeError(f"static model of {spec} has tensors the supernet lacks: {unknown[:5]}")
            self._slice_maps[key] = {name: used.get(name) for name in names}
        return dict(self._slice_maps[key])
