"""MBConv models (torch): the elastic supernet, the plain static network, and channel reorganization.

The family itself (spec, layers, default pair, grid: `FAMILY`) is declared in `mbconv.py`, which
names this module as its `models`.

Module names are shared by both (`stem_conv`, `stages.<i>.<j>.expand_conv`, `…dw_conv`,
`…se_reduce`, `…se_expand`, `…project_conv`, `head_conv`, `classifier`) so `to_static` copies
each tensor's prefix by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seekdeploy.nn._reorganize import ChannelGroup, bn_members, permute_channel_groups
from seekdeploy.nn.base import DEFAULT_BN_ROLES, Supernet
from seekdeploy.nn.families.mbconv import FAMILY_NAME, MBConvConfig, MBConvSpec, block_stride, se_channels
from seekdeploy.nn.spec import Activation
from seekdeploy.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d, DynamicLinear

__all__ = ["MBConvSupernet", "StaticMBConv", "build_static", "build_supernet", "reorganize"]

_ACT_FUNCTIONS = {Activation.RELU: F.relu, Activation.SILU: F.silu}
_ACT_MODULES = {Activation.RELU: nn.ReLU, Activation.SILU: nn.SiLU}


class DynamicMBConvBlock(nn.Module):
    """Inverted residual block with elastic input, expansion, SE and output widths."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int,
                 se: float, act: Activation, roles: tuple[str, ...]) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.stride, self.se_ratio, self.act = stride, se, _ACT_FUNCTIONS[act]
        self.max_residual = stride == 1 and in_channels == out_channels  # residual at full width
        self.expand_conv = DynamicConv2d(in_channels, hidden, 1) if expand != 1 else None
        self.expand_bn = DynamicBatchNorm2d(hidden, roles) if expand != 1 else None
        self.dw_conv = DynamicConv2d(hidden, hidden, kernel, stride, depthwise=True)
        self.dw_bn = DynamicBatchNorm2d(hidden, roles)
        reduced = se_channels(in_channels, se)
        self.se_reduce = DynamicConv2d(hidden, reduced, 1, bias=True) if se > 0 else None
        self.se_expand = DynamicConv2d(reduced, hidden, 1, bias=True) if se > 0 else None
        self.project_conv = DynamicConv2d(hidden, out_channels, 1)
        self.project_bn = DynamicBatchNorm2d(out_channels, roles)

    def forward(self, x: torch.Tensor, width: int, expand: int, role: str) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, width, H/stride, W/stride)."""
        in_channels = x.shape[1]
        hidden = x
        if self.expand_conv is not None:
            hidden = self.act(self.expand_bn(self.expand_conv(x, in_channels * expand, role), role))
        hidden = self.act(self.dw_bn(self.dw_conv(hidden, role=role), role))  # (B, C_in*expand, H', W')
        if self.se_reduce is not None:
            squeezed = F.adaptive_avg_pool2d(hidden, 1)  # (B, hidden, 1, 1)
            squeezed = self.act(self.se_reduce(squeezed, se_channels(in_channels, self.se_ratio), role))
            hidden = hidden * torch.sigmoid(self.se_expand(squeezed, hidden.shape[1], role))
        out = self.project_bn(self.project_conv(hidden, width, role), role)
        return out + x if self.stride == 1 and in_channels == width else out


class MBConvSupernet(Supernet):
    """Elastic MBConv network: runs any `MBConvSpec` contained in the config's max spec."""

    def __init__(self, config: MBConvConfig, *, num_classes: int, in_channels: int, image_size: int,
                 bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__(FAMILY_NAME, config, num_classes=num_classes, in_channels=in_channels,
                         image_size=image_size, bn_roles=bn_roles)
        spec, roles = self.max_spec, self.bn_roles
        self.act = _ACT_FUNCTIONS[spec.act]
        self.stem_conv = DynamicConv2d(in_channels, spec.stem, 3)
        self.stem_bn = DynamicBatchNorm2d(spec.stem, roles)
        stages, channels = [], spec.stem
        for i, (depth, width, expand) in enumerate(zip(spec.depth, spec.width, spec.expand)):
            blocks = []
            for j in range(depth):
                blocks.append(DynamicMBConvBlock(channels, width, expand, spec.kernel[i],
                                                 block_stride(spec, i, j), spec.se, spec.act, roles))
                channels = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head_conv = DynamicConv2d(channels, spec.head, 1)
        self.head_bn = DynamicBatchNorm2d(spec.head, roles)
        self.classifier = DynamicLinear(spec.head, num_classes)

    def branch_end_parameters(self, spec: MBConvSpec) -> list[str]:
        """The projection BN scale (and its private copies) of every block beyond `spec`'s depth:
        zero, such a block (always a stride-1 residual one) returns its input."""
        return self.stage_parameters_beyond(spec.depth, "project_bn", "weight")

    def forward_spec(self, x: torch.Tensor, spec: MBConvSpec, bn_role: str) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes) through the first `depth[i]` blocks of each stage."""
        x = self.act(self.stem_bn(self.stem_conv(x, spec.stem, bn_role), bn_role))
        for stage, depth, width, expand in zip(self.stages, spec.depth, spec.width, spec.expand):
            for index in range(depth):
                x = stage[index](x, width, expand, bn_role)
        x = self.act(self.head_bn(self.head_conv(x, spec.head, bn_role), bn_role))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, head)
        return self.classifier(x, role=bn_role)


class StaticMBConvBlock(nn.Module):
    """The stock-layer inverted residual block (same names as `DynamicMBConvBlock`)."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int,
                 se: float, act: Activation) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.residual = stride == 1 and in_channels == out_channels
        self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False) if expand != 1 else None
        self.expand_bn = nn.BatchNorm2d(hidden) if expand != 1 else None
        self.dw_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.act = _ACT_MODULES[act]()
        reduced = se_channels(in_channels, se)
        self.se_pool = nn.AdaptiveAvgPool2d(1) if se > 0 else None
        self.se_reduce = nn.Conv2d(hidden, reduced, 1) if se > 0 else None
        self.se_expand = nn.Conv2d(reduced, hidden, 1) if se > 0 else None
        self.se_gate = nn.Sigmoid() if se > 0 else None
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x
        if self.expand_conv is not None:
            hidden = self.act(self.expand_bn(self.expand_conv(x)))
        hidden = self.act(self.dw_bn(self.dw_conv(hidden)))
        if self.se_reduce is not None:
            squeezed = self.act(self.se_reduce(self.se_pool(hidden)))
            hidden = hidden * self.se_gate(self.se_expand(squeezed))
        out = self.project_bn(self.project_conv(hidden))
        return out + x if self.residual else out


class StaticMBConv(nn.Module):
    """A plain MBConv network of one spec, as one would write it by hand."""

    def __init__(self, spec: MBConvSpec, *, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem_conv = nn.Conv2d(in_channels, spec.stem, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(spec.stem)
        self.act = _ACT_MODULES[spec.act]()
        stages, channels = [], spec.stem
        for i, (depth, width, expand) in enumerate(zip(spec.depth, spec.width, spec.expand)):
            blocks = []
            for j in range(depth):
                blocks.append(StaticMBConvBlock(channels, width, expand, spec.kernel[i],
                                                block_stride(spec, i, j), spec.se, spec.act))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head_conv = nn.Conv2d(channels, spec.head, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(spec.head)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(spec.head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes)."""
        x = self.act(self.stem_bn(self.stem_conv(x)))
        for stage in self.stages:
            x = stage(x)
        x = self.act(self.head_bn(self.head_conv(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def build_supernet(config: MBConvConfig, *, num_classes: int, in_channels: int, image_size: int,
                          bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> MBConvSupernet:
    """The elastic MBConv supernet of `config`."""
    return MBConvSupernet(config, num_classes=num_classes, in_channels=in_channels,
                          image_size=image_size, bn_roles=bn_roles)


def build_static(spec: MBConvSpec, *, num_classes: int, in_channels: int,
                        image_size: int | None = None) -> StaticMBConv:
    """A freshly initialized static MBConv network of `spec`."""
    return StaticMBConv(spec, num_classes=num_classes, in_channels=in_channels)


def _hidden_members(p: str, block: DynamicMBConvBlock, roles: tuple[str, ...]) -> list[tuple[str, int]]:
    # Tensors indexed by the block's expanded (hidden) channels, except the expansion conv itself.
    members = [(f"{p}.dw_conv.weight", 0), *bn_members(f"{p}.dw_bn", roles), (f"{p}.project_conv.weight", 1)]
    if block.se_reduce is not None:
        members += [(f"{p}.se_reduce.weight", 1), (f"{p}.se_expand.weight", 0), (f"{p}.se_expand.bias", 0)]
    return members


def mbconv_channel_groups(supernet: MBConvSupernet) -> list[ChannelGroup]:
    """Coupled channel spaces: hidden and SE channels per block, and residual streams."""
    roles, groups = supernet.bn_roles, []
    stream: dict[str, list[tuple[str, int]]] = {"members": [("stem_conv.weight", 0), *bn_members("stem_bn", roles)],
                                                "readers": []}
    for i, stage in enumerate(supernet.stages):
        for j, block in enumerate(stage):
            p = f"stages.{i}.{j}"
            if block.expand_conv is not None:
                hidden = [(f"{p}.expand_conv.weight", 0), *bn_members(f"{p}.expand_bn", roles),
                          *_hidden_members(p, block, roles)]
                groups.append(ChannelGroup(tuple(hidden), ((f"{p}.project_conv.weight", 1),)))
                stream["members"].append((f"{p}.expand_conv.weight", 1))
                stream["readers"].append((f"{p}.expand_conv.weight", 1))
            else:  # the hidden channels are the input stream itself
                stream["members"] += _hidden_members(p, block, roles)
                stream["readers"].append((f"{p}.project_conv.weight", 1))
            if block.se_reduce is not None:
                members = ((f"{p}.se_reduce.weight", 0), (f"{p}.se_reduce.bias", 0), (f"{p}.se_expand.weight", 1))
                groups.append(ChannelGroup(members, ((f"{p}.se_expand.weight", 1),)))
            writers = [(f"{p}.project_conv.weight", 0), *bn_members(f"{p}.project_bn", roles)]
            if block.max_residual:
                stream["members"] += writers  # residual: same channel space
            else:
                groups.append(ChannelGroup(tuple(stream["members"]), tuple(stream["readers"])))
                stream = {"members": writers, "readers": []}
    stream["members"].append(("head_conv.weight", 1))
    stream["readers"].append(("head_conv.weight", 1))
    groups.append(ChannelGroup(tuple(stream["members"]), tuple(stream["readers"])))
    head = (("head_conv.weight", 0), *bn_members("head_bn", roles), ("classifier.weight", 1))
    groups.append(ChannelGroup(head, (("classifier.weight", 1),)))
    return groups


def reorganize(supernet: MBConvSupernet) -> None:
    """Sort every coupled channel space by importance, in place; the max-spec function is unchanged."""
    permute_channel_groups(supernet, mbconv_channel_groups(supernet))
