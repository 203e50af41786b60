"""ResNet models (torch): the elastic supernet, the plain static network, and channel reorganization.

The family itself (spec, layers, default pair, grid: `FAMILY`) is declared in `resnet.py`, which
names this module as its `models`; `build_supernet`, `build_static` and `reorganize` are the
names it calls.

The static network mirrors the supernet's module names (`stem_conv`, `stem_bn`,
`stages.<i>.<j>.conv1`, …, `classifier`), so `to_static` copies each tensor's prefix by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seekdeploy.errors import SpecError
from seekdeploy.nn._reorganize import ChannelGroup, bn_members, permute_channel_groups
from seekdeploy.nn.base import DEFAULT_BN_ROLES, Supernet
from seekdeploy.nn.families.resnet import FAMILY_NAME, ResNetConfig, ResNetSpec, block_stride
from seekdeploy.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d, DynamicLinear


class DynamicBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (1x1 projection when the block strides)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, roles: tuple[str, ...]) -> None:
        super().__init__()
        self.conv1 = DynamicConv2d(in_channels, out_channels, 3, stride)
        self.bn1 = DynamicBatchNorm2d(out_channels, roles)
        self.conv2 = DynamicConv2d(out_channels, out_channels, 3)
        self.bn2 = DynamicBatchNorm2d(out_channels, roles)
        self.shortcut_conv = DynamicConv2d(in_channels, out_channels, 1, stride) if stride != 1 else None
        self.shortcut_bn = DynamicBatchNorm2d(out_channels, roles) if stride != 1 else None

    def forward(self, x: torch.Tensor, width: int, role: str) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, width, H/stride, W/stride)."""
        out = F.relu(self.bn1(self.conv1(x, width, role), role), inplace=True)
        out = self.bn2(self.conv2(out, width, role), role)
        shortcut = (x if self.shortcut_conv is None
                    else self.shortcut_bn(self.shortcut_conv(x, width, role), role))
        return F.relu(out + shortcut, inplace=True)


def _split_conv(conv: DynamicConv2d, base: torch.Tensor, whole: torch.Tensor, base_out: int,
                out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the base's rows from the base's channels, rows `base_out:out` from every channel)."""
    weight = conv.weight
    top = F.conv2d(base, weight[:base_out, :base.shape[1]], None, conv.stride, conv.padding)
    rest = F.conv2d(whole, weight[base_out:out, :whole.shape[1]], None, conv.stride, conv.padding)
    return top, rest


def _split_bn(bn: DynamicBatchNorm2d, base: torch.Tensor, rest: torch.Tensor,
              role: str) -> tuple[torch.Tensor, torch.Tensor]:
    return bn(base, role), bn(rest, role, start=base.shape[1])


class ResNetSupernet(Supernet):
    """Elastic CIFAR ResNet: runs any `ResNetSpec` contained in the config's max spec."""

    def __init__(self, config: ResNetConfig, *, num_classes: int, in_channels: int, image_size: int,
                 bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> None:
        super().__init__(FAMILY_NAME, config, num_classes=num_classes, in_channels=in_channels,
                         image_size=image_size, bn_roles=bn_roles)
        roles = self.bn_roles
        self.stem_conv = DynamicConv2d(in_channels, config.width[0], 3)
        self.stem_bn = DynamicBatchNorm2d(config.width[0], roles)
        stages, channels = [], config.width[0]
        for stage, (depth, width) in enumerate(zip(config.depth, config.width)):
            blocks = []
            for block in range(depth):
                blocks.append(DynamicBasicBlock(channels, width, block_stride(stage, block), roles))
                channels = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.classifier = DynamicLinear(channels, num_classes)

    def branch_end_parameters(self, spec: ResNetSpec) -> list[str]:
        """The second BN scale (and its private copies) of every block beyond `spec`'s depth:
        zero, such a block adds nothing to its identity shortcut (its input is post-ReLU, so the
        block's ReLU keeps it)."""
        return self.stage_parameters_beyond(spec.depth, "bn2", "weight")

    def side_branch_ends(self, spec: ResNetSpec) -> list[tuple[str, int]]:
        """The second conv and BN of every block beyond `spec`'s depth, on `spec`'s channels of
        that stage: held at zero, such a block leaves those channels as its shortcut gave them."""
        if any(width >= whole for width, whole in zip(spec.width, self.max_spec.width)):
            raise SpecError(f"additive nesting needs the motivated model wider than the base at every "
                            f"stage (base widths {spec.width}, motivated {self.max_spec.width}): a "
                            "block of the motivated model alone writes only channels the base lacks")
        ends = []
        for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
            for block in range(depth, len(self.stages[stage])):
                prefix = f"stages.{stage}.{block}"
                ends += [(f"{prefix}.conv2.weight", width), (f"{prefix}.bn2.weight", width),
                         (f"{prefix}.bn2.bias", width)]
        return ends

    def forward_nested(self, x: torch.Tensor, base: ResNetSpec, spec: ResNetSpec | None = None,
                       bn_role: str | None = None, *,
                       shield: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(base logits, `spec`'s logits) of the additive pair in one pass (see `Supernet`). Each
        convolution computes the base's rows from the base's channels (the base's own forward)
        and the other rows from every channel; the held zeros are never multiplied."""
        spec, base, role = self.check_spec(spec), self.check_spec(base), self.check_role(bn_role)
        if self.additive_base != base:
            raise SpecError(f"forward_nested needs the supernet nested additively on {base} "
                            f"(make_additive); it is nested on {self.additive_base}")
        if not spec.contains(base):
            raise SpecError(f"the base {base} is not nested in {spec}")
        cut = torch.Tensor.detach if shield else (lambda t: t)
        b, s = _split_conv(self.stem_conv, x, x, base.width[0], spec.width[0])
        b, s = _split_bn(self.stem_bn, b, s, role)
        b, s = F.relu(b), F.relu(s)
        for stage, blocks in enumerate(self.stages):
            wb, wm = base.width[stage], spec.width[stage]
            for index in range(spec.depth[stage]):
                block = blocks[index]
                whole = torch.cat((cut(b), s), 1)
                if index >= base.depth[stage]:  # a block of the larger model alone: the other rows
                    middle = F.relu(block.bn1(block.conv1(whole, wm), role))
                    weight = block.conv2.weight
                    out = F.conv2d(middle, weight[wb:wm, :wm], None, block.conv2.stride, block.conv2.padding)
                    s = F.relu(block.bn2(out, role, start=wb) + s)
                    continue
                b1, s1 = _split_bn(block.bn1, *_split_conv(block.conv1, b, whole, wb, wm), role)
                b1, s1 = F.relu(b1), F.relu(s1)
                b2, s2 = _split_bn(block.bn2, *_split_conv(block.conv2, b1, torch.cat((cut(b1), s1), 1), wb, wm), role)
                if block.shortcut_conv is None:
                    short_b, short_s = b, s
                else:
                    short_b, short_s = _split_bn(block.shortcut_bn, *_split_conv(block.shortcut_conv, b, whole, wb, wm), role)
                b, s = F.relu(b2 + short_b), F.relu(s2 + short_s)
        pooled_b = F.adaptive_avg_pool2d(b, 1).flatten(1)  # (B, wb)
        pooled_s = F.adaptive_avg_pool2d(s, 1).flatten(1)  # (B, wm - wb)
        base_logits = self.classifier(pooled_b, role=role)
        weight, wb = self.classifier.weight, pooled_b.shape[1]
        side = F.linear(pooled_s, weight[:, wb:wb + pooled_s.shape[1]])
        return base_logits, cut(base_logits) + side

    def forward_spec(self, x: torch.Tensor, spec: ResNetSpec, bn_role: str) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes) through the first `depth[i]` blocks of each stage."""
        x = F.relu(self.stem_bn(self.stem_conv(x, spec.width[0], bn_role), bn_role), inplace=True)
        for stage, depth, width in zip(self.stages, spec.depth, spec.width):
            for index in range(depth):
                x = stage[index](x, width, bn_role)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, C)
        return self.classifier(x, role=bn_role)


class StaticBasicBlock(nn.Module):
    """The stock-layer basic block (same names as `DynamicBasicBlock`)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        projection = stride != 1
        self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False) if projection else None
        self.shortcut_bn = nn.BatchNorm2d(out_channels) if projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(x))
        return self.relu(out + shortcut)


class StaticResNet(nn.Module):
    """A plain CIFAR ResNet of one spec, as one would write it by hand."""

    def __init__(self, spec: ResNetSpec, *, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem_conv = nn.Conv2d(in_channels, spec.width[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(spec.width[0])
        self.relu = nn.ReLU(inplace=True)
        stages, channels = [], spec.width[0]
        for stage, (depth, width) in enumerate(zip(spec.depth, spec.width)):
            blocks = []
            for block in range(depth):
                blocks.append(StaticBasicBlock(channels, width, block_stride(stage, block)))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes)."""
        x = self.relu(self.stem_bn(self.stem_conv(x)))
        for stage in self.stages:
            x = stage(x)
        return self.classifier(torch.flatten(self.pool(x), 1))


def build_supernet(config: ResNetConfig, *, num_classes: int, in_channels: int, image_size: int,
                          bn_roles: tuple[str, ...] = DEFAULT_BN_ROLES) -> ResNetSupernet:
    """The elastic ResNet supernet of `config`."""
    return ResNetSupernet(config, num_classes=num_classes, in_channels=in_channels,
                          image_size=image_size, bn_roles=bn_roles)


def build_static(spec: ResNetSpec, *, num_classes: int, in_channels: int,
                        image_size: int | None = None) -> StaticResNet:
    """A freshly initialized static ResNet of `spec` (image size does not change its layers)."""
    return StaticResNet(spec, num_classes=num_classes, in_channels=in_channels)


def resnet_channel_groups(supernet: ResNetSupernet) -> list[ChannelGroup]:
    """Coupled channel spaces: each block's middle channels, and each stage's residual stream."""
    roles, groups = supernet.bn_roles, []
    stages = supernet.stages
    for i, stage in enumerate(stages):
        for j in range(len(stage)):
            p = f"stages.{i}.{j}"
            members = ((f"{p}.conv1.weight", 0), *bn_members(f"{p}.bn1", roles), (f"{p}.conv2.weight", 1))
            groups.append(ChannelGroup(members, ((f"{p}.conv2.weight", 1),)))
    for i, stage in enumerate(stages):
        writers = [("stem_conv.weight", 0), *bn_members("stem_bn", roles)] if i == 0 else []
        readers = [(f"stages.{i}.{j}.conv1.weight", 1) for j in range(1 if i else 0, len(stage))]
        for j in range(len(stage)):
            p = f"stages.{i}.{j}"
            writers += [(f"{p}.conv2.weight", 0), *bn_members(f"{p}.bn2", roles)]
            if stage[j].shortcut_conv is not None:
                writers += [(f"{p}.shortcut_conv.weight", 0), *bn_members(f"{p}.shortcut_bn", roles)]
        if i + 1 < len(stages):
            readers += [(f"stages.{i + 1}.0.conv1.weight", 1), (f"stages.{i + 1}.0.shortcut_conv.weight", 1)]
        else:
            readers.append(("classifier.weight", 1))
        groups.append(ChannelGroup((*writers, *readers), tuple(readers)))
    return groups


def reorganize(supernet: ResNetSupernet) -> None:
    """Sort every coupled channel space by importance, in place; the max-spec function is unchanged."""
    permute_channel_groups(supernet, resnet_channel_groups(supernet))
