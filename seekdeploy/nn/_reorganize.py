"""Channel reorganization by importance, as once-for-all does: permute coupled channels together.

A `ChannelGroup` lists every (tensor name, dim) that indexes the same channel space (the writers'
output dims, BatchNorm entries, the readers' input dims) and the readers whose L1 norm along that
dim is the channel's importance. Permuting a whole group by the same order leaves the network's
function unchanged; sorting by descending importance puts the most important channels first, so
every prefix sub-network (the base) holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ChannelGroup:
    """Tensors sharing one channel space (`members`) and the readers that rank its channels."""

    members: tuple[tuple[str, int], ...]
    readers: tuple[tuple[str, int], ...]


def bn_members(prefix: str, roles: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """The per-channel tensors of a DynamicBatchNorm2d named `prefix` (all roles' statistics)."""
    names = [f"{prefix}.weight", f"{prefix}.bias"]
    for role in roles:
        names += [f"{prefix}.running_mean_{role}", f"{prefix}.running_var_{role}"]
    return tuple((name, 0) for name in names)


def channel_importance(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """L1 norm of `tensor` over every dim except `dim` -> (channels,)."""
    other = [d for d in range(tensor.dim()) if d != dim]
    return tensor.abs().sum(dim=other) if other else tensor.abs()


def permute_channel_groups(module: nn.Module, groups: list[ChannelGroup]) -> None:
    """Sort each group's channels by descending importance, in place (no autograd)."""
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    with torch.no_grad():
        for group in groups:
            importance = sum(channel_importance(tensors[name], dim) for name, dim in group.readers)
            order = torch.argsort(importance, descending=True, stable=True)
            for name, dim in group.members:
                tensor = tensors[name]
                tensor.copy_(tensor.index_select(dim, order.to(tensor.device)))
