"""Data-parallel training of the pair under `torchrun`: one process per GPU (or CPU process).

`torchrun --nproc-per-node N -m seekdeploy train …` sets RANK / WORLD_SIZE / LOCAL_RANK (and
MASTER_ADDR / MASTER_PORT); `distributed_training()` then joins the process group (nccl on GPUs,
gloo on CPU) with a timeout, and the training loop calls the helpers below, which do nothing in
a single process.

Semantics (equal to one process training the same global batch, up to BatchNorm batch statistics
and float summation order):
- `--batch-size` is the GLOBAL batch: every rank takes the same step-`i` batch of the same
  shuffled epoch order (seed + epoch), augments all of it with a generator that is in lockstep on
  every rank, and keeps its contiguous share of batch_size / world_size samples.
- One role per step for all ranks: the condition sees the base loss averaged across ranks, so
  every rank decides the same role; the role is re-checked in the same all-reduce and a mismatch
  stops the run instead of deadlocking.
- Gradients are averaged over the region the role's sliced optimizer reads (one flat bucket per
  step), right after backward. DistributedDataParallel does the same average over whole
  parameters; the elements outside the region are never read by the sliced step, so skipping them
  changes nothing, and there is no "unused parameter" bookkeeping to hang on when the used set
  changes from one step to the next.
- BatchNorm statistics are per rank during an epoch (as in DDP without SyncBatchNorm); at the end
  of each epoch rank 0 recalibrates and evaluates, and its buffers are broadcast, so every rank
  holds the same model before the checkpoint. Parameters and optimizer state are identical on all
  ranks by construction (same initialization, same averaged gradients).
- Only rank 0 writes files and shows progress. A rank that dies or stops answering makes every
  collective fail within `--dist-timeout` seconds: the run stops with `DistributedError`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seekdeploy._io import atomic_write_json
from seekdeploy.errors import ConfigError, SeekdeployError
from seekdeploy.train.config import DEFAULT_DIST_TIMEOUT_S

if TYPE_CHECKING:
    from seekdeploy.train.session import TrainSession

DEBUG_DIR_ENV = "SEEKDEPLOY_DIST_DEBUG_DIR"  # tests: each rank writes rank<R>.json there


class DistributedError(SeekdeployError):
    """The ranks of a distributed run lost each other (a rank died, hung or the network failed)."""

    # Tearing down a group whose peer died can abort in gloo's threads ("terminate called without
    # an active exception") after the message, turning exit code 1 into SIGABRT.
    exit_immediately = True


@dataclass(frozen=True)
class LaunchEnv:
    """What the launcher (torchrun) told this process."""

    rank: int
    world_size: int
    local_rank: int


def launch_env(environ: dict[str, str] | None = None) -> LaunchEnv | None:
    """The RANK / WORLD_SIZE / LOCAL_RANK of this process, or None when not launched by torchrun."""
    environ = os.environ if environ is None else environ
    if "RANK" not in environ and "WORLD_SIZE" not in environ:
        return None
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        text = environ.get(name, "0")
        if not text.isdigit():
            raise ConfigError(f"environment variable {name}={text!r} is not a non-negative "
                              "integer; launch with torchrun, which sets it")
        values[name] = int(text)
    env = LaunchEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if env.world_size < 1 or env.rank >= env.world_size:
        raise ConfigError(f"RANK={env.rank} / WORLD_SIZE={env.world_size} are inconsistent; "
                          "launch with torchrun, which sets both")
    return env


def _active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return torch.distributed.get_rank() if _active() else 0


def world_size() -> int:
    """The number of training processes (1 in a single process)."""
    return torch.distributed.get_world_size() if _active() else 1


def is_main() -> bool:
    """True on the process that writes files and shows progress (rank 0)."""
    return rank() == 0


def _choose_backend(device: str, env: LaunchEnv) -> str:
    if device == "cpu" or not torch.cuda.is_available():
        return "gloo"
    if env.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK {env.local_rank} has no GPU: this node has "
                          f"{torch.cuda.device_count()}; use --nproc-per-node <= that number")
    torch.cuda.set_device(env.local_rank)  # "cuda" now means this rank's GPU everywhere
    return "nccl"


@contextlib.contextmanager
def distributed_training(device: str = "auto",
                         timeout_s: float = DEFAULT_DIST_TIMEOUT_S) -> Iterator[LaunchEnv | None]:
    """Join the process group when launched by torchrun with more than one process (nccl for
    GPUs, gloo for `device="cpu"` or without CUDA), and leave it afterwards; yields the launch
    environment (None in a plain single process). Joining waits at most `timeout_s` for the other
    ranks, and every later collective fails after `timeout_s` instead of hanging."""
    env = launch_env()
    if env is None or env.world_size == 1 or _active():
        yield env
        return
    backend = _choose_backend(device, env)
    try:
        torch.distributed.init_process_group(
            backend, timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:  # DistNetworkError/DistStoreError are RuntimeErrors
        raise DistributedError(
            f"rank {env.rank} could not join the {env.world_size}-process group within "
            f"{timeout_s:g} s ({exc}); check that every node runs the same torchrun command with "
            "the same --rdzv-endpoint / --master-addr and that the port is reachable") from exc
    _write_debug({"pid": os.getpid(), "backend": backend})
    try:
        yield env
        # Leave together: a rank that tears its group down while a peer is still finishing
        # (rank 0 writes the files) can abort in gloo's threads ("terminate called without an
        # active exception") and fail a run that trained correctly.
        _collective("final barrier", torch.distributed.barrier)
    finally:
        torch.distributed.destroy_process_group()


def _collective(what: str, operation: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    try:
        operation(*args, **kwargs)
    except RuntimeError as exc:  # DistBackendError and gloo/nccl failures are RuntimeErrors
        raise DistributedError(
            f"rank {rank()} of {world_size()}: the {what} with the other ranks failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); another "
            "rank died or stopped answering within --dist-timeout. The last checkpoint is kept: "
            "continue with the same torchrun command and `seekdeploy train --resume RUN`") from exc


def _collective_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo CPU ones.
    return torch.device("cuda") if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def per_rank_batch_size(batch_size: int) -> int:
    """The share of the global `batch_size` one rank trains on; ConfigError when it does not
    divide evenly."""
    size = world_size()
    if batch_size % size:
        raise ConfigError(f"--batch-size {batch_size} is the global batch and must be divisible by "
                          f"the {size} processes; use e.g. --batch-size {batch_size // size * size or size}")
    return batch_size // size


def shard_batch(inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous share of a global batch (inputs (B, …), labels (B,))."""
    if not _active():
        return inputs, labels
    share = per_rank_batch_size(len(labels))
    start = rank() * share
    return inputs[start:start + share], labels[start:start + share]  # (B / world, …)


def average_loss(loss: torch.Tensor, motivated: bool) -> float:
    """The batch loss averaged across ranks (what the condition sees); also checks that every
    rank trained the same role this step (a mismatch is a bug in a condition: stop, don't hang)."""
    if not _active():
        return float(loss.detach())
    size = world_size()
    packed = torch.stack([loss.detach().float(), torch.tensor(float(motivated), device=loss.device)])
    _collective("loss all-reduce", torch.distributed.all_reduce, packed)
    loss_sum, motivated_ranks = packed.tolist()
    if round(motivated_ranks) not in (0, size):
        raise RuntimeError(f"ranks disagree on the role of this step ({round(motivated_ranks)} of "
                           f"{size} motivated): the motivation condition is not deterministic")
    return loss_sum / size


def average_gradients(regions: dict[torch.Tensor, Any]) -> None:
    """Average, across ranks, the gradient elements each parameter's region selects, in one flat
    bucket. A missing gradient contributes zeros (so every rank's bucket has the same layout) and
    stays missing."""
    if not _active():
        return
    pieces, targets = [], []
    for param, region in regions.items():
        if region is None:
            continue
        grad = param.grad[region] if param.grad is not None else None
        pieces.append(grad.reshape(-1) if grad is not None
                      else param.new_zeros(param[region].numel()))
        targets.append(grad)
    if not pieces:
        return
    bucket = torch.cat(pieces)  # (total region elements,)
    _collective("gradient all-reduce", torch.distributed.all_reduce, bucket)
    bucket.div_(world_size())
    offset = 0
    for piece, grad in zip(pieces, targets):
        if grad is not None:
            grad.copy_(bucket[offset:offset + piece.numel()].view_as(grad))
        offset += piece.numel()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (a stop request every rank obeys at the
    same step)."""
    if not _active():
        return flag
    value = torch.tensor([float(flag)], device=_collective_device())
    _collective("stop-request all-reduce", torch.distributed.all_reduce, value)
    return bool(value.item() > 0)


def shard_range(count: int) -> range:
    """This rank's contiguous share of `count` items (all of them in a single process)."""
    size, index = world_size(), rank()
    return range(count * index // size, count * (index + 1) // size)


def sum_across_ranks(values: list[float]) -> list[float]:
    """Element-wise sums of `values` over every rank (the values themselves in one process)."""
    if not _active():
        return list(values)
    packed = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    _collective("evaluation all-reduce", torch.distributed.all_reduce, packed)
    return packed.tolist()


def broadcast_buffers(module: torch.nn.Module, include_parameters: bool = False) -> None:
    """Copy rank 0's buffers (BN statistics), and optionally its parameters, to every rank."""
    if not _active():
        return
    tensors = list(module.buffers())
    if include_parameters:
        tensors += list(module.parameters())
    with torch.no_grad():
        for tensor in tensors:
            _collective("broadcast of rank 0's model", torch.distributed.broadcast, tensor, src=0)


def barrier() -> None:
    """Wait until every rank got here."""
    if _active():
        _collective("barrier", torch.distributed.barrier)


def _sha256_tensors(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_debug(fields: dict[str, Any]) -> None:
    folder = os.environ.get(DEBUG_DIR_ENV)
    if not folder:
        return
    path = Path(folder) / f"rank{rank()}.json"
    previous: dict[str, Any] = {}
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
    atomic_write_json(path, {**previous, "rank": rank(), "world_size": world_size(), **fields})


def write_debug_state(session: TrainSession) -> None:
    """With SEEKDEPLOY_DIST_DEBUG_DIR set, every rank writes rank<R>.json there: pid, the role
    and loss of every step so far, and hashes of its parameters and whole state (for tests that
    check the ranks agree)."""
    if not os.environ.get(DEBUG_DIR_ENV):
        return
    steps = session.records.motivation
    _write_debug({
        "pid": os.getpid(), "step": session.progress.step,
        "evaluated_samples": dict(session.evaluated_samples),
        "roles": [record["role"] for record in steps],
        "losses": [record["loss"] for record in steps],
        "params_sha256": _sha256_tensors(dict(session.supernet.named_parameters())),
        "state_sha256": _sha256_tensors(session.supernet.state_dict()),
        "optimizer_sha256": _sha256_tensors({
            f"{index}.{key}": value for index, state in enumerate(session.optimizer.state.values())
            for key, value in state.items() if isinstance(value, torch.Tensor)})})
