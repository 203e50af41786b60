"""Elastic layers: run at any active width by using prefix slices of the full weights.

Prefix weights map: an active layer with k_out output and k_in input channels uses
`weight[:k_out, :k_in]` (and `bias[:k_out]`); a depthwise convolution with k channels uses
`weight[:k]`; a BatchNorm over k channels uses the first k entries of its affine parameters and of
the active role's running statistics. The input width is read from the input tensor, the output
width is passed by the caller. At full width the full tensor is used directly (no slice op), so
the motivated model pays no slicing cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DynamicConv2d(nn.Module):
    """Square same-padded convolution whose in/out channels are prefixes of the full weight.

    `depthwise=True` makes a depthwise convolution (groups = channels); its active channel count
    is the input's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = False, depthwise: bool = False) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.stride = stride
        self.padding = kernel_size // 2
        in_per_group = 1 if depthwise else in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_per_group, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.private_roles: tuple[str, ...] = ()
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def make_weight_private(self, roles: tuple[str, ...]) -> None:
        """Give each of `roles` an offset to the weight (`weight_delta_<role>`) and, where the
        convolution has one, to the bias (`bias_delta_<role>`), starting at zero: a forward
        with one of those roles adds them, any other role reads the shared tensors alone."""
        for role in roles:
            self.register_parameter(f"weight_delta_{role}", nn.Parameter(torch.zeros_like(self.weight)))
            if self.bias is not None:
                self.register_parameter(f"bias_delta_{role}", nn.Parameter(torch.zeros_like(self.bias)))
        self.private_roles = tuple(roles)

    def forward(self, x: torch.Tensor, out_channels: int | None = None,
                role: str | None = None) -> torch.Tensor:
        """(B, k_in, H, W) -> (B, out_channels, H', W'); out_channels None = full (or k_in if
        depthwise); `role` adds that role's private weight offset where it has one."""
        weight, bias = self.weight, self.bias
        if role is not None and role in self.private_roles:
            weight = weight + self._parameters[f"weight_delta_{role}"]
            if bias is not None:
                bias = bias + self._parameters[f"bias_delta_{role}"]
        in_channels = x.shape[1]
        if self.depthwise:
            if in_channels != weight.shape[0]:
                weight = weight[:in_channels]
                bias = None if bias is None else bias[:in_channels]
            return F.conv2d(x, weight, bias, self.stride, self.padding, 1, in_channels)
        out = weight.shape[0] if out_channels is None else out_channels
        if out != weight.shape[0] or in_channels != weight.shape[1]:
            weight = weight[:out, :in_channels]
            bias = None if bias is None else bias[:out]
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class DynamicLinear(nn.Module):
    """Linear layer whose in/out features are prefixes of the full weight."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.private_roles: tuple[str, ...] = ()
        # Same initialization as nn.Linear, so a supernet starts like a stock network.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def make_bias_private(self, roles: tuple[str, ...]) -> None:
        """Give each of `roles` an offset to the bias (`bias_delta_<role>`, starting at zero): a
        forward with one of those roles adds it, any other role reads `bias` alone."""
        if self.bias is None:
            raise ValueError("a layer without bias has no bias to make private")
        for role in roles:
            self.register_parameter(f"bias_delta_{role}", nn.Parameter(torch.zeros_like(self.bias)))
        self.private_roles = tuple(roles)

    def make_weight_private(self, roles: tuple[str, ...]) -> None:
        """Give each of `roles` an offset to the weight as well (`weight_delta_<role>`, starting
        at zero); the roles must already have private bias offsets."""
        missing = [role for role in roles if role not in self.private_roles]
        if missing:
            raise ValueError(f"roles {missing} have no private bias; make_bias_private first")
        for role in roles:
            self.register_parameter(f"weight_delta_{role}", nn.Parameter(torch.zeros_like(self.weight)))

    def forward(self, x: torch.Tensor, out_features: int | None = None,
                role: str | None = None) -> torch.Tensor:
        """(…, k_in) -> (…, out_features); out_features None = full; `role` picks a private bias
        (and a private weight offset where the role has one)."""
        weight, bias = self.weight, self.bias
        if role is not None and role in self.private_roles:
            bias = bias + self._parameters[f"bias_delta_{role}"]
            weight_delta = self._parameters.get(f"weight_delta_{role}")
            if weight_delta is not None:
                weight = weight + weight_delta
        out = weight.shape[0] if out_features is None else out_features
        in_features = x.shape[-1]
        if out != weight.shape[0] or in_features != weight.shape[1]:
            weight = weight[:out, :in_features]
            bias = None if bias is None else bias[:out]
        return F.linear(x, weight, bias)


class DynamicLayerNorm(nn.Module):
    """LayerNorm over the last dimension whose active width is a prefix of the full one."""

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(…, k) -> (…, k), normalized with the first k affine entries."""
        k = x.shape[-1]
        weight, bias = self.weight, self.bias
        if k != weight.shape[0]:
            weight, bias = weight[:k], bias[:k]
        return F.layer_norm(x, (k,), weight, bias, self.eps)


class DynamicBatchNorm2d(nn.Module):
    """BatchNorm2d with prefix-sliced affine parameters and one set of running statistics per role.

    Buffers are `running_mean_<role>`, `running_var_<role>`, `num_batches_tracked_<role>`. In
    train mode only the first k entries of the active role's statistics change (they are updated
    in place through a prefix view), and only that role's `num_batches_tracked` counts; other
    roles' statistics and the entries beyond k stay bit-for-bit unchanged. Momentum semantics are
    those of `nn.BatchNorm2d` (None = cumulative average).
    """

    def __init__(self, num_features: int, roles: tuple[str, ...], eps: float = 1e-5,
                 momentum: float | None = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.roles = tuple(roles)
        self.private_roles: tuple[str, ...] = ()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._stat_names: dict[str, tuple[str, str, str]] = {}
        for role in self.roles:
            names = (f"running_mean_{role}", f"running_var_{role}", f"num_batches_tracked_{role}")
            self.register_buffer(names[0], torch.zeros(num_features))
            self.register_buffer(names[1], torch.ones(num_features))
            self.register_buffer(names[2], torch.tensor(0, dtype=torch.long))
            self._stat_names[role] = names

    def make_affine_private(self, roles: tuple[str, ...]) -> None:
        """Give each of `roles` offsets to the scale and shift (`weight_delta_<role>`,
        `bias_delta_<role>`, starting at zero) that its forwards add; other roles read `weight`
        and `bias` alone. An offset, not a copy: the role follows the shared parameters as they
        train and keeps only its own correction."""
        for role in roles:
            if role not in self.roles:
                raise ValueError(f"role {role!r} has no statistics here ({self.roles})")
            for leaf in ("weight", "bias"):
                self.register_parameter(f"{leaf}_delta_{role}",
                                        nn.Parameter(torch.zeros(self.num_features)))
        self.private_roles = tuple(roles)

    def forward(self, x: torch.Tensor, role: str, start: int = 0) -> torch.Tensor:
        """(B, k, H, W) -> (B, k, H, W) with `role`'s statistics (updated in train mode) and its
        affine parameters (its own where they were made private), on channels `start` to
        `start + k` (a nested forward normalises the channels beyond a prefix on their own)."""
        mean_name, var_name, count_name = self._stat_names[role]
        buffers = self._buffers
        mean, var = buffers[mean_name], buffers[var_name]
        weight, bias = self.weight, self.bias
        if role in self.private_roles:
            weight = weight + self._parameters[f"weight_delta_{role}"]
            bias = bias + self._parameters[f"bias_delta_{role}"]
        k = x.shape[1]
        if start or k != self.num_features:
            end = start + k
            mean, var, weight, bias = mean[start:end], var[start:end], weight[start:end], bias[start:end]
        momentum = 0.0
        if self.training:
            count = buffers[count_name]
            count.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(count)
        return F.batch_norm(x, mean, var, weight, bias, self.training, momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, roles={self.roles}, eps={self.eps}, momentum={self.momentum}"

