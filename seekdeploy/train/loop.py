"""The alternating training loop: one role per batch, decided by the motivation condition.

Per step: the condition decides the role BEFORE the batch; the supernet runs at that role's spec
and BN role; the sliced optimizer updates only that role's region; the condition then sees the
base's loss (base steps only). Per epoch: evaluate both roles on validation, write metrics and a
checkpoint. A SIGINT/SIGTERM finishes the current step, saves, and stops (resume continues
mid-epoch bit-for-bit: the data order of an epoch comes from seed + epoch).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from seekdeploy import layout
from seekdeploy.errors import TrainingDiverged
from seekdeploy.roles import ROLES, Role
from seekdeploy.train import checkpoint as ckpt
from seekdeploy.train import distributed
from seekdeploy.train._bn import recalibrate_bn
from seekdeploy.train.config import MAX_FRESH_GAP, MotivatedStep
from seekdeploy.train._signals import StopFlag, TrainingInterrupted, stop_on_signals
from seekdeploy.train.records import ProgressDisplay
from seekdeploy.train.session import (TRAINING_FLOPS_PER_FORWARD, TrainSession, motivated_clock_lr,
                                      trains_pair)


def _autocast(session: TrainSession):
    if session.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(session.device.type, dtype=session.amp_dtype)


def _normalized(session: TrainSession, images_uint8: torch.Tensor, augment: bool) -> torch.Tensor:
    from seekdeploy.data import apply_augment, normalize

    if augment:
        images_uint8 = apply_augment(images_uint8, session.dataset.augment, session.augment_generator)
    return normalize(images_uint8, session.dataset.mean, session.dataset.std)  # (B, C, H, W)


def epoch_order(session: TrainSession, epoch: int) -> torch.Tensor:
    """The training-sample order of `epoch`: a permutation seeded by (seed, epoch) only."""
    session.order_generator.manual_seed(session.config.seed * 100_003 + epoch)
    return torch.randperm(len(session.dataset.train), generator=session.order_generator)


def _base_objective(session: TrainSession, base_ce: torch.Tensor, base_logits: torch.Tensor,
                    motivated_logits: torch.Tensor) -> torch.Tensor:
    """The base's loss on a joint batch: cross-entropy, optionally blended with in-place
    distillation from the motivated model's detached predictions (slimmable/BigNAS style)."""
    weight = session.config.distill_weight
    if weight <= 0:
        return base_ce
    temperature = session.config.distill_temperature
    teacher = F.softmax(motivated_logits.detach().float() / temperature, dim=1)  # (B, K)
    student = F.log_softmax(base_logits.float() / temperature, dim=1)  # (B, K)
    # T^2 keeps the soft-target gradients on the scale of the hard-target ones (Hinton et al.).
    distill = F.kl_div(student, teacher, reduction="batchmean") * temperature ** 2
    return (1.0 - weight) * base_ce + weight * distill


def trains_base_too(session: TrainSession, role: Role) -> bool:
    """Whether a batch of `role` also trains the base (a motivated batch under --motivated-step
    joint or shielded)."""
    return role is Role.MOTIVATED and session.config.motivated_step is not MotivatedStep.ALONE


def _backward(session: TrainSession, role: Role, losses: dict[Role, torch.Tensor],
              base_objective: torch.Tensor | None) -> None:
    """Gradients of one step. Joint: one backward over the sum. Shielded: the motivated loss's
    gradient is cleared on the base's slice before the base's own loss adds its gradient there."""
    session.optimizer.zero_grad(set_to_none=True)
    if base_objective is None:
        session.scaler.scale(losses[role]).backward()
        return
    if session.config.motivated_step is MotivatedStep.JOINT:
        session.scaler.scale(losses[role] + base_objective).backward()
        return
    session.scaler.scale(losses[role]).backward()
    for param, region in session.regions[Role.BASE].items():
        if region is not None and param.grad is not None:
            param.grad[region] = 0.0
    session.scaler.scale(base_objective).backward()


def reuses_base_forward(session: TrainSession, role: Role) -> bool:
    """Whether a batch of `role` runs as one nested forward: a shielded motivated batch of an
    additive pair computes the base's forward once and only what the base lacks on top of it."""
    return (role is Role.MOTIVATED and session.reused_flops > 0
            and session.config.motivated_step is MotivatedStep.SHIELDED)


def _forward(session: TrainSession, inputs: torch.Tensor, role: Role) -> torch.Tensor:
    with _autocast(session):
        return session.supernet(inputs, spec=session.specs[role],
                                bn_role=session.bn_role(role))  # (B, K)


def train_step(session: TrainSession, images: torch.Tensor, labels: torch.Tensor,
               role: Role) -> dict[Role, float]:
    """One optimizer step of `role` on a uint8 batch; returns the batch loss of every role that
    trained on it (`role`, plus the base on a joint batch); raises on NaN/inf.

    A joint batch runs both roles on the same images and takes one backward over the sum of the
    two losses, then one sliced step over the motivated region (which contains the base's): the
    shared slice moves by both losses, the motivated-only weights by the motivated loss alone.
    """
    inputs = _normalized(session, images, augment=True)  # (B, C, H, W) float32, global batch
    # Under torchrun: this rank's share (B / world); augmenting the whole batch first keeps the
    # augment generator in lockstep on every rank (and equal to a single-process run).
    inputs, labels = distributed.shard_batch(inputs, labels)
    smoothing = session.config.label_smoothing
    base_logits = None
    if reuses_base_forward(session, role):
        with _autocast(session):
            base_logits, logits = session.supernet.forward_nested(
                inputs, session.specs[Role.BASE], session.specs[role], session.bn_role(role), shield=True)
    else:
        logits = _forward(session, inputs, role)
    losses = {role: F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)}
    base_objective = None
    if trains_base_too(session, role):
        if base_logits is None:
            base_logits = _forward(session, inputs, Role.BASE)
        losses[Role.BASE] = F.cross_entropy(base_logits.float(), labels, label_smoothing=smoothing)
        base_objective = _base_objective(session, losses[Role.BASE], base_logits, logits)
    values = {r: distributed.average_loss(loss, role is Role.MOTIVATED)  # all ranks: same value
              for r, loss in losses.items()}
    for trained, value in values.items():
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the {trained.value} loss became {value} at step {session.progress.step}; "
                "the last checkpoint is kept. Lower --lr, or use --optimizer adamw")
    _backward(session, role, losses, base_objective)
    distributed.average_gradients(session.regions[role])
    session.scaler.step(session.optimizer, regions=session.regions[role],
                        lr_maps=_lr_maps(session, role))
    session.scaler.update()
    session.supernet.enforce_additive()
    session.schedule.step()
    return values


def grow_by_copying(session: TrainSession) -> None:
    """Under --clone-growth, before the first motivated step: the motivated model's extra
    channels become copies of the base's channels as trained so far (`Supernet.clone_into`).
    Every rank does the same; a run resumed before its first motivated step does it then."""
    if not (session.config.clone_growth and trains_pair(session.config)):
        return
    session.supernet.clone_into(session.specs[Role.BASE], session.specs[Role.MOTIVATED],
                                from_role=session.bn_role(Role.BASE),
                                to_role=session.bn_role(Role.MOTIVATED))


def _lr_maps(session: TrainSession, role: Role) -> dict[torch.Tensor, tuple[torch.Tensor, float]] | None:
    """Under --motivated-clock, a motivated step's learning rates: the run's on the base's slice
    (updated exactly as without the clock), the motivated clock's on the weights only the
    motivated model uses."""
    if role is not Role.MOTIVATED or not session.base_masks:
        return None
    own_lr = motivated_clock_lr(session)
    return {param: (mask, own_lr) for param, mask in session.base_masks.items()}


@torch.no_grad()
def evaluate(session: TrainSession, split: Any, role: Role) -> tuple[float, float]:
    """(top-1 accuracy, mean loss) of `role` on a split, in eval mode. Under torchrun each rank
    evaluates its share of the split and one all-reduce sums the counts: no rank waits idle."""
    supernet = session.supernet
    supernet.eval()
    share = distributed.shard_range(len(split))
    correct, loss_sum = 0, 0.0
    for start in range(share.start, share.stop, session.config.eval_batch_size):
        stop = min(start + session.config.eval_batch_size, share.stop)
        images = split.images[start:stop].to(session.device)
        labels = split.labels[start:stop].to(session.device)
        with _autocast(session):
            logits = supernet(_normalized(session, images, augment=False),
                              spec=session.specs[role], bn_role=session.bn_role(role))  # (B, K)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
    supernet.train()
    session.evaluated_samples[role.value] = len(share)  # this rank's share (debug state)
    correct, loss_sum, count = distributed.sum_across_ranks([correct, loss_sum, len(share)])
    return correct / max(1, count), loss_sum / max(1, count)


def stale_roles(session: TrainSession) -> list[Role]:
    """Roles whose running BN statistics lag their weights: a role that trained this epoch but
    skipped more than MAX_FRESH_GAP batches in a row (while the other role changed the shared
    weights). Evenly spread schedules and joint steps keep both roles fresh; bursty conditions
    (the paper's streak: ~25 base batches between motivated ones) do not. An untrained role is
    left alone."""
    progress = session.progress
    return [role for role in ROLES if progress.batches[role.value] > 0
            and progress.max_gap[role.value] > MAX_FRESH_GAP]


def _recalibrate(session: TrainSession, role: Role) -> None:
    batches = session.config.bn_recalibrate_batches
    if batches <= 0:
        return
    # Its own generator (seed + epoch) so recalibration never shifts the training RNG streams.
    generator = torch.Generator().manual_seed(session.config.seed * 7_919 + session.progress.epoch)
    train = session.dataset.train
    order = torch.randperm(len(train), generator=generator)
    chunks = [order[i * session.config.batch_size:(i + 1) * session.config.batch_size]
              for i in range(min(batches, session.steps_per_epoch))]
    inputs = (_normalized(session, train.images[idx].to(session.device), augment=False)
              for idx in chunks)
    with _autocast(session):
        recalibrate_bn(session.supernet, inputs, session.specs[role], session.bn_role(role))
    images = sum(len(idx) for idx in chunks)
    session.progress.add_cost("bn_recalibration", session.forward_flops[role] * images)


def _end_epoch(session: TrainSession, display: ProgressDisplay, epoch_seconds: float) -> None:
    progress = session.progress
    parts = []
    # Every rank recalibrates (the same batches, from the same weights: the same statistics) and
    # evaluates its share of the validation split; rank 0 alone writes the records.
    # Recalibration is paid once, after the last epoch (before the test and the export); the
    # epochs before validate with the running statistics (monitoring only).
    last_epoch = progress.epoch + 1 >= session.config.epochs
    stale = stale_roles(session) if last_epoch else []
    # What recalibration buys, measured on every run: validation with the running statistics.
    before = {role: evaluate(session, session.dataset.val, role)[0] for role in stale
              if session.config.bn_recalibrate_batches > 0}
    for role in stale:
        _recalibrate(session, role)
    if stale:
        distributed.broadcast_buffers(session.supernet)  # bit-equal even if kernels are not
    for role in ROLES:
        top1, val_loss = evaluate(session, session.dataset.val, role)
        batches = progress.batches[role.value]
        session.records.add_epoch({
            "epoch": progress.epoch, "role": role.value,
            "train_loss": progress.loss_sum[role.value] / batches if batches else None,
            "val_top1": top1, "val_loss": val_loss, "batches": batches,
            "bn_recalibrated": role in stale,
            **({"val_top1_before_recalibration": before[role]} if role in before else {}),
            "motivated_batches": progress.motivated_batches,
            "motivated_fraction": progress.motivated_batches / max(1, progress.step),
            "train_flops": progress.train_flops, "cost_flops": dict(progress.cost_flops),
            "seconds": round(epoch_seconds, 3)})
        if role is Role.MOTIVATED and progress.motivated_batches == 0:  # its figure means nothing
            parts.append(f"{role.value} not trained" + (" yet" if trains_pair(session.config) else ""))
        else:
            parts.append(f"{role.value} val top-1 {top1:.2%}")
    display.log(f"epoch {progress.epoch + 1}/{session.config.epochs}: " + ", ".join(parts) +
                f", motivated {progress.motivated_batches / max(1, progress.step):.1%} "
                f"({epoch_seconds:.1f} s)")
    progress.epoch += 1
    progress.batch_in_epoch = 0
    progress.reset_epoch()


def save(session: TrainSession, final: dict[str, Any] | None = None) -> None:
    """Write the JSONL records, then the checkpoint (both atomic); rank 0 only under torchrun."""
    distributed.write_debug_state(session)  # only with SEEKDEPLOY_DIST_DEBUG_DIR set
    if not distributed.is_main():
        return
    session.records.flush()
    ckpt.save_checkpoint(session.run_dir / layout.CHECKPOINT, session.checkpoint_payload(final))


def _count_step(session: TrainSession, role: Role, images: int,
                losses: dict[Role, float]) -> None:
    """Add one step's training FLOPs (by part) and losses to the run's progress."""
    progress = session.progress
    for trained, loss in losses.items():
        part = (f"{trained.value}_steps" if trained is role else "joint_base_passes")
        flops = session.forward_flops[trained]
        if trained is role and reuses_base_forward(session, role):
            flops = session.reused_flops  # the base's forward is counted once, as its own pass
        progress.add_cost(part, TRAINING_FLOPS_PER_FORWARD * flops * images)
        progress.loss_sum[trained.value] += loss
        progress.batches[trained.value] += 1
    progress.count_batch([trained.value for trained in losses])


def _run_epoch(session: TrainSession, flag: StopFlag, display: ProgressDisplay) -> None:
    progress, config = session.progress, session.config
    train = session.dataset.train
    order = epoch_order(session, progress.epoch)
    started = time.perf_counter()
    for batch in range(progress.batch_in_epoch, session.steps_per_epoch):
        index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
        images, labels = train.images[index].to(session.device), train.labels[index].to(session.device)
        decision = session.condition.decide(progress.step)
        if decision.role is Role.MOTIVATED and progress.motivated_batches == 0:
            grow_by_copying(session)
        losses = train_step(session, images, labels, decision.role)
        if Role.BASE in losses:
            session.condition.observe_base_loss(losses[Role.BASE])
        if decision.role is Role.MOTIVATED:
            progress.motivated_batches += 1
        _count_step(session, decision.role, len(index), losses)
        session.records.add_step({"step": progress.step, "epoch": progress.epoch,
                                  "role": decision.role.value, "reason": decision.reason,
                                  "loss": losses[decision.role],
                                  "base_loss": losses.get(Role.BASE)})
        progress.step += 1
        progress.batch_in_epoch = batch + 1
        display.update_step(progress.epoch, decision.role.value, losses[decision.role],
                            progress.motivated_batches / progress.step)
        if distributed.any_rank(flag.requested):  # every rank stops at the same step
            progress.seconds += time.perf_counter() - started
            save(session)
            raise TrainingInterrupted(
                f"stopped by {flag.signal_name or 'a signal to another rank'} after step "
                f"{progress.step}; checkpoint saved. "
                f"Continue with: seekdeploy train --resume {session.run_dir}")
    elapsed = time.perf_counter() - started
    progress.seconds += elapsed
    distributed.broadcast_buffers(session.supernet)  # every rank now holds rank 0's model
    _end_epoch(session, display, elapsed)


def run_training(session: TrainSession, display: ProgressDisplay) -> None:
    """Train the remaining epochs, checkpointing after each; stop cleanly on SIGINT/SIGTERM."""
    distributed.broadcast_buffers(session.supernet, include_parameters=True)  # as DDP does
    with stop_on_signals() as flag:
        while session.progress.epoch < session.config.epochs:
            _run_epoch(session, flag, display)
            save(session)
