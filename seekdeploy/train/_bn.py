"""BatchNorm recalibration: re-estimate one role's running statistics on training batches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.spec import SubnetSpec

_COUNT_PREFIX = "num_batches_tracked"


def _bn_modules(supernet: torch.nn.Module) -> list[torch.nn.Module]:
    # Duck-typed: any module with a momentum and a batch counter (stock or per-role dynamic BN).
    return [module for module in supernet.modules()
            if hasattr(module, "momentum")
            and any(name.startswith(_COUNT_PREFIX) for name in module._buffers)]


@torch.no_grad()
def recalibrate_bn(supernet: Supernet, batches: Iterable[torch.Tensor], spec: SubnetSpec, bn_role: str) -> int:
    """Replace `bn_role`'s statistics (the region `spec` uses) with the exact average over
    `batches` of normalized inputs (B, C, H, W); returns the number of batches used.

    BN momentum is set to None (cumulative average: the first batch overwrites the old values)
    and the batch counters are restored afterwards, so training continues as before.
    """
    region = supernet.slice_map(spec, bn_role=bn_role)
    buffers = dict(supernet.named_buffers())
    counters = {name: buffers[name].clone() for name in buffers
                if name.rpartition(".")[2].startswith(_COUNT_PREFIX) and region.get(name) is not None}
    modules = _bn_modules(supernet)
    momenta = [module.momentum for module in modules]
    was_training = supernet.training
    for name in counters:
        buffers[name].zero_()
    for module in modules:
        module.momentum = None
    used = 0
    try:
        supernet.train()
        for inputs in batches:
            supernet(inputs, spec=spec, bn_role=bn_role)
            used += 1
    finally:
        for module, momentum in zip(modules, momenta):
            module.momentum = momentum
        for name, value in counters.items():
            buffers[name].copy_(value)
        supernet.train(was_training)
    return used
