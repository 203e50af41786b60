"""Sliced optimizers: a step updates only the region of each parameter that the active spec uses.

Plain torch optimizers break the base-step invariant (momentum decay and weight decay touch the
whole tensor; AdamW counts steps per tensor). Here every piece of state is per element (momentum
buffers, exp_avg, exp_avg_sq and a per-element step count for AdamW's bias correction) and a step
reads and writes only `param[region]`; a parameter whose region is None is not touched at all, so a
base step leaves every element outside the base slice bit-for-bit unchanged. A motivated step
passes the full motivated regions.

`step(regions=...)` takes a dict {parameter: region}; parameters missing from it are skipped.
`torch.amp.GradScaler.step(optimizer, regions=...)` forwards the keyword.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

Region = tuple[slice, ...]
# parameter -> (mask, lr): elements where the bool mask (the parameter's shape) is False take
# `lr` instead of the group's learning rate; the masked-in ones are updated exactly as without it.
LrMaps = dict[torch.Tensor, tuple[torch.Tensor, float]]


def _regions_for(group: dict[str, Any], regions: dict[torch.Tensor, Region | None] | None):
    # Yields (param, region) pairs to update; `regions=None` means every whole parameter.
    for param in group["params"]:
        if param.grad is None:
            continue
        if regions is None:
            yield param, tuple(slice(None) for _ in range(param.dim()))
            continue
        region = regions.get(param)
        if region is not None:
            yield param, region


class _StateFollowsParameters(torch.optim.Optimizer):
    """Loading puts every state tensor on its parameter's device, in its parameter's dtype
    (`step` counts stay float32). torch's own `load_state_dict` leaves a `step` entry where the
    checkpoint had it, and a checkpoint is read to the CPU: a per-element `step` of AdamW would
    then stay on the CPU while its parameter trains on a GPU."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for param, state in self.state.items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    dtype = torch.float32 if key == "step" else param.dtype
                    state[key] = value.to(device=param.device, dtype=dtype)


class SlicedSGD(_StateFollowsParameters):
    """SGD with momentum, Nesterov and (coupled, L2) weight decay on a region of each parameter."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "nesterov": nesterov}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None, regions: dict[torch.Tensor, Region | None] | None = None,
             lr_maps: LrMaps | None = None):
        """Update `param[region]` for each parameter with a gradient and a non-None region; a
        parameter in `lr_maps` uses its own learning rate outside its mask (see `LrMaps`)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            decay, nesterov = group["weight_decay"], group["nesterov"]
            for param, region in _regions_for(group, regions):
                weight = param[region]  # a view: in-place ops write into the parameter
                grad = param.grad[region].to(weight.dtype)
                if decay:
                    grad = grad.add(weight, alpha=decay)
                if momentum:
                    state = self.state[param]
                    if "momentum_buffer" not in state:
                        # Zeros per element: the first update then equals the gradient, as in torch.
                        state["momentum_buffer"] = torch.zeros_like(param)
                    buf = state["momentum_buffer"][region]
                    buf.mul_(momentum).add_(grad)
                    grad = grad.add(buf, alpha=momentum) if nesterov else buf
                if lr_maps and param in lr_maps:
                    keep, other_lr = lr_maps[param]
                    _masked_update(weight, keep[region], lr, other_lr,
                                   lambda rate: weight.add(grad, alpha=-rate))
                else:
                    weight.add_(grad, alpha=-lr)
        return loss


class SlicedAdamW(_StateFollowsParameters):
    """AdamW (decoupled weight decay) with per-element moments and per-element step counts."""

    def __init__(self, params: Iterable[Any], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _state_of(self, param: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros_like(param, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        return state

    @torch.no_grad()
    def step(self, closure=None, regions: dict[torch.Tensor, Region | None] | None = None,
             lr_maps: LrMaps | None = None):
        """Update `param[region]` for each parameter with a gradient and a non-None region; a
        parameter in `lr_maps` uses its own learning rate outside its mask (see `LrMaps`)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, decay = group["eps"], group["weight_decay"]
            for param, region in _regions_for(group, regions):
                state = self._state_of(param)
                weight = param[region]
                grad = param.grad[region].to(weight.dtype)
                step = state["step"][region]
                step.add_(1.0)
                keep, other_lr = lr_maps[param] if lr_maps and param in lr_maps else (None, lr)
                if decay and keep is None:
                    weight.mul_(1.0 - lr * decay)
                elif decay:
                    _masked_update(weight, keep[region], lr, other_lr,
                                   lambda rate: weight.mul(1.0 - rate * decay))
                exp_avg = state["exp_avg"][region]
                exp_avg_sq = state["exp_avg_sq"][region]
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                # Bias correction per element: elements first trained late get a fresh correction.
                correction1 = 1.0 - torch.pow(beta1, step)
                correction2 = 1.0 - torch.pow(beta2, step)
                denom = (exp_avg_sq / correction2).sqrt_().add_(eps)
                direction = exp_avg / correction1
                if keep is None:
                    weight.addcdiv_(direction, denom, value=-lr)
                else:
                    _masked_update(weight, keep[region], lr, other_lr,
                                   lambda rate: weight.addcdiv(direction, denom, value=-rate))
        return loss


def _masked_update(weight: torch.Tensor, keep: torch.Tensor, lr: float, other_lr: float,
                   update: Callable[[float], torch.Tensor]) -> None:
    """weight <- update(lr) where `keep` holds, update(other_lr) elsewhere: the kept elements get
    exactly the value the unmasked step computes."""
    weight.copy_(torch.where(keep, update(lr), update(other_lr)))


def cosine_warmup_lr(step: int, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                     min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to `min_lr` at
    `total_steps`; steps beyond it stay at `min_lr`."""
    total_steps, warmup_steps = max(1, total_steps), max(0, warmup_steps)
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class CosineWarmupSchedule:
    """Learning rate by step: linear warm-up from 0 to `peak_lr`, then cosine decay to `min_lr`."""

    def __init__(self, optimizer: torch.optim.Optimizer, peak_lr: float, total_steps: int,
                 warmup_steps: int = 0, min_lr: float = 0.0) -> None:
        self.optimizer = optimizer
        self.peak_lr, self.min_lr = peak_lr, min_lr
        self.total_steps, self.warmup_steps = max(1, total_steps), max(0, warmup_steps)
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        """The learning rate used by step `step` (0-based)."""
        return cosine_warmup_lr(step, self.peak_lr, self.total_steps, self.warmup_steps,
                                self.min_lr)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step_count)

    def step(self) -> None:
        """Advance one training step and set the optimizer's learning rate for the next one."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state for checkpoints."""
        return {"step_count": self.step_count, "peak_lr": self.peak_lr, "min_lr": self.min_lr,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned and re-apply the learning rate."""
        for key in ("step_count", "total_steps", "warmup_steps"):
            setattr(self, key, int(state[key]))
        self.peak_lr, self.min_lr = float(state["peak_lr"]), float(state["min_lr"])
        self._apply()


def create_optimizer(name: str, params: Iterable[Any], *, lr: float, weight_decay: float,
                     momentum: float = 0.9, nesterov: bool = True) -> torch.optim.Optimizer:
    """A sliced optimizer by name (`sgd` or `adamw`); weight decay only for weights of ndim >= 2
    (BN/LayerNorm scales and biases are not decayed, the usual practice)."""
    params = list(params)
    decayed = [p for p in params if p.dim() >= 2]
    plain = [p for p in params if p.dim() < 2]
    groups = [group for group in ({"params": decayed, "weight_decay": weight_decay},
                                  {"params": plain, "weight_decay": 0.0}) if group["params"]]
    if name == "sgd":
        return SlicedSGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return SlicedAdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")  # the CLI validates the choice first
