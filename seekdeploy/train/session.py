"""Everything one training run holds (data, supernet, optimizer, schedule, condition, RNGs,
progress), built fresh from a config or restored from a checkpoint, and saved back into one."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from seekdeploy import layout
from seekdeploy.errors import ConfigError, SpecError
from seekdeploy.roles import ROLE_NAMES, Role, statistics_of, statistics_sets
from seekdeploy.train import checkpoint as ckpt
from seekdeploy.train import distributed
from seekdeploy.train.conditions import MotivationCondition, create_condition, parse_condition
from seekdeploy.train.config import BnMode, DeviceChoice, TrainConfig
from seekdeploy.train.optim import CosineWarmupSchedule, cosine_warmup_lr, create_optimizer
from seekdeploy.train.records import RunRecords

if TYPE_CHECKING:
    from seekdeploy.data.dataset import ImageDataset
    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.spec import FamilyConfig, SubnetSpec

TRAINING_FLOPS_PER_FORWARD = 3.0  # forward + backward (≈ 2× forward): the usual estimate
# Where the pair's training FLOPs go: training steps of each role, the base's extra pass on a
# joint batch, and the forward-only BN recalibration passes.
COST_PARTS = ("base_steps", "motivated_steps", "joint_base_passes", "bn_recalibration")


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint (`batch_in_epoch` > 0 after a Ctrl-C)."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    train_flops: float = 0.0
    motivated_batches: int = 0
    seconds: float = 0.0
    finished: bool = False
    cost_flops: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_PARTS, 0.0))
    loss_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLE_NAMES, 0.0))
    batches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_NAMES, 0))
    # Per role, this epoch: batches since it last ran, and the longest such run of skipped
    # batches (how stale its running BN statistics can have become).
    gap: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_NAMES, 0))
    max_gap: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLE_NAMES, 0))

    def count_batch(self, ran: list[str]) -> None:
        """Record which roles ran on this batch (for the staleness of their statistics)."""
        for role in self.gap:
            self.gap[role] = 0 if role in ran else self.gap[role] + 1
            self.max_gap[role] = max(self.max_gap[role], self.gap[role])

    def add_cost(self, part: str, flops: float) -> None:
        """Count `flops` under `part` (one of COST_PARTS) and in the total."""
        self.cost_flops[part] = self.cost_flops.get(part, 0.0) + flops
        self.train_flops += flops

    def reset_epoch(self) -> None:
        """Clear the per-epoch loss accumulators."""
        self.loss_sum = dict.fromkeys(ROLE_NAMES, 0.0)  # keyed by name: saved in the checkpoint
        self.batches = dict.fromkeys(ROLE_NAMES, 0)
        self.gap = dict.fromkeys(ROLE_NAMES, 0)
        self.max_gap = dict.fromkeys(ROLE_NAMES, 0)


def resolve_device(choice: DeviceChoice) -> torch.device:
    """`auto` → CUDA when available, else CPU; `cuda` without a GPU is a ConfigError."""
    if choice is DeviceChoice.CUDA and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is usable here; "
                          "use --device cpu (or auto)")
    if choice is DeviceChoice.CPU or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


@dataclass
class TrainSession:
    """One run's live objects. Built by `new_session` or `resume_session`."""

    config: TrainConfig
    run_dir: Path
    dataset: ImageDataset
    data_kwargs: dict[str, Any]
    supernet: Supernet
    specs: dict[Role, SubnetSpec]
    optimizer: torch.optim.Optimizer
    schedule: CosineWarmupSchedule
    scaler: torch.amp.GradScaler
    condition: MotivationCondition
    device: torch.device
    amp_dtype: torch.dtype | None
    augment_generator: torch.Generator
    order_generator: torch.Generator
    progress: Progress
    records: RunRecords
    steps_per_epoch: int
    regions: dict[Role, dict[torch.Tensor, Any]] = field(default_factory=dict)
    # --motivated-clock: per motivated parameter, True where the base uses it.
    base_masks: dict[torch.Tensor, torch.Tensor] = field(default_factory=dict)
    forward_flops: dict[Role, float] = field(default_factory=dict)
    # --additive: FLOPs of the motivated model's forward beyond the base's (what a shielded
    # motivated step computes on top of the base's forward); 0 = no additive nesting.
    reused_flops: float = 0.0
    evaluated_samples: dict[str, int] = field(default_factory=dict)  # last evaluation, this rank

    def bn_role(self, role: Role) -> str:
        """The BN statistics role a training role runs with."""
        return statistics_of(role, statistics_sets(self.config.bn is BnMode.SHARED))

    def model_args(self) -> dict[str, Any]:
        """Construction arguments of the supernet plus the pair of specs (plain data)."""
        args = ckpt.supernet_kwargs(self.supernet)
        args["base_spec"] = self.specs[Role.BASE].to_json()
        args["motivated_spec"] = self.specs[Role.MOTIVATED].to_json()
        return args

    def checkpoint_payload(self, final: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything needed to resume or rebuild this run, as plain data."""
        generators = {"augment": self.augment_generator, "data_order": self.order_generator}
        return {
            "model": self.model_args(),
            "state_dict": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "condition": {"text": self.config.condition, "state": self.condition.state_dict()},
            "rng": ckpt.capture_rng(generators),
            "progress": dataclasses.asdict(self.progress),
            "config": self.config.to_dict(),
            "data": {"name": self.config.data, "kwargs": dict(self.data_kwargs)},
            "final": final,
        }


def _load_data(config: TrainConfig, data_kwargs: dict[str, Any]) -> ImageDataset:
    from seekdeploy.data import load_dataset

    return load_dataset(config.data, **data_kwargs)


def _prepare(config: TrainConfig, run_dir: Path, data_kwargs: dict[str, Any], supernet: Supernet,
             specs: dict[Role, SubnetSpec], dataset: ImageDataset | None = None) -> TrainSession:
    """Wire optimizer, schedule, condition, generators and cost around a supernet (fresh state)."""
    from seekdeploy import nn as sd_nn

    seed_everything(config.seed, config.deterministic)
    device = resolve_device(config.device)
    dataset = dataset if dataset is not None else _load_data(config, data_kwargs)
    distributed.per_rank_batch_size(config.batch_size)  # under torchrun: divisible by the ranks
    steps_per_epoch = len(dataset.train) // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the {len(dataset.train)} "
                          f"training images of {config.data}; use a smaller batch size")
    supernet.to(device).train()
    optimizer = create_optimizer(config.optimizer.value, supernet.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay, momentum=config.momentum,
                                 nesterov=config.nesterov)
    total_steps = steps_per_epoch * config.epochs
    schedule = CosineWarmupSchedule(optimizer, config.lr, total_steps,
                                    round(config.warmup_epochs * steps_per_epoch), config.min_lr)
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    session = TrainSession(
        config=config, run_dir=run_dir, dataset=dataset, data_kwargs=data_kwargs,
        supernet=supernet, specs=specs, optimizer=optimizer, schedule=schedule, scaler=scaler,
        condition=create_condition(config.condition, seed=config.seed,
                                   total_steps=steps_per_epoch * config.epochs), device=device,
        amp_dtype=amp_dtype, augment_generator=torch.Generator(device=device).manual_seed(config.seed),
        order_generator=torch.Generator().manual_seed(config.seed), progress=Progress(),
        records=RunRecords(run_dir), steps_per_epoch=steps_per_epoch)
    params = dict(supernet.named_parameters())
    for role, spec in specs.items():
        region_map = supernet.slice_map(spec, bn_role=session.bn_role(role))
        session.regions[role] = {params[name]: region_map[name] for name in params}
        cost = sd_nn.estimate_cost(spec, in_channels=supernet.in_channels,
                                   image_size=supernet.image_size, num_classes=supernet.num_classes)
        session.forward_flops[role] = float(cost.flops)
    _limit_offsets(session, params)
    if config.additive and trains_pair(config):
        _nest_additively(session)
    # The clock's length is the condition's expected motivated steps: a condition that follows
    # the loss has none, and a run of one role needs no second clock.
    fraction = session.condition.expected_fraction
    if config.motivated_clock and trains_pair(config) and fraction is not None:
        session.base_masks = _base_masks(session.regions)
    return session


def _nest_additively(session: TrainSession) -> None:
    from seekdeploy import nn as sd_nn

    supernet, base, motivated = session.supernet, session.specs[Role.BASE], session.specs[Role.MOTIVATED]
    if motivated != supernet.max_spec:
        raise ConfigError(f"--additive needs the motivated model to be the whole supernet; it is {motivated} "
                          f"in {supernet.max_spec}")
    supernet.make_additive(base)
    macs = sd_nn.get_family(supernet.family).reused_forward_macs(
        base, motivated, in_channels=supernet.in_channels, image_size=supernet.image_size,
        num_classes=supernet.num_classes)
    session.reused_flops = 2.0 * macs


def trains_pair(config: TrainConfig) -> bool:
    """Whether the run trains both roles. Growth, private offsets and the motivated clock concern
    a pair: a run of one role (`never`, `always`) keeps the family's own model and one clock."""
    return parse_condition(config.condition)[0] not in ("never", "always")


def _limit_offsets(session: TrainSession, params: dict[str, torch.Tensor]) -> None:
    """A private offset (`x_delta_motivated`) trains only on the base's channels: beyond them the
    shared `x` already belongs to the motivated model alone, and training both there would
    double its learning rate."""
    for name, param in params.items():
        shared, _, role = name.partition("_delta_")
        if role == Role.MOTIVATED.value and session.regions[Role.MOTIVATED].get(param) is not None:
            session.regions[Role.MOTIVATED][param] = session.regions[Role.BASE][params[shared]]


def _base_masks(regions: dict[Role, dict[torch.Tensor, Any]]) -> dict[torch.Tensor, torch.Tensor]:
    masks = {}
    for param, region in regions[Role.MOTIVATED].items():
        if region is None:
            continue
        mask = torch.zeros_like(param, dtype=torch.bool)
        base_region = regions[Role.BASE].get(param)
        if base_region is not None:
            mask[base_region] = True
        masks[param] = mask
    return masks


def motivated_clock_lr(session: TrainSession) -> float:
    """The learning rate of the motivated-only weights for the next motivated step: the run's
    warm-up and cosine, stretched over the condition's expected motivated steps and advanced
    by the motivated steps taken so far."""
    fraction = session.condition.expected_fraction or 0.0
    schedule = session.schedule
    return cosine_warmup_lr(session.progress.motivated_batches, schedule.peak_lr,
                            round(fraction * schedule.total_steps),
                            round(fraction * schedule.warmup_steps), schedule.min_lr)


def new_session(config: TrainConfig, run_dir: Path, *, in_channels: int, image_size: int,
                base_spec: SubnetSpec, motivated_spec: SubnetSpec,
                family_config: FamilyConfig) -> TrainSession:
    """A fresh run: create the supernet (seeded) and everything around it."""
    from seekdeploy import nn as sd_nn

    if not motivated_spec.contains(base_spec):
        raise SpecError(f"the base {base_spec} is not nested in the motivated {motivated_spec}: "
                        "every base depth/width must be <= the motivated one's")
    data_kwargs = {"channels": in_channels, "height": image_size, "width": image_size,
                   "seed": config.seed, "data_dir": config.data_dir,
                   "val_fraction": config.val_fraction, "workers": config.workers,
                   "skip_bad_files": config.skip_bad_files}
    bn_roles = statistics_sets(config.bn is BnMode.SHARED)
    seed_everything(config.seed, config.deterministic)  # the weights' initialization is seeded
    dataset = _load_data(config, data_kwargs)
    pair_run = trains_pair(config)
    private = ((Role.MOTIVATED.value,) if config.private_affine and pair_run
               and config.bn != BnMode.SHARED else ())
    supernet = sd_nn.create_supernet(config.arch, family_config, num_classes=dataset.num_classes,
                                     in_channels=in_channels, image_size=image_size,
                                     bn_roles=bn_roles, private_roles=private,
                                     private_head=bool(private) and config.private_head,
                                     private_convs=bool(private) and config.private_convs)
    specs = {Role.BASE: base_spec, Role.MOTIVATED: motivated_spec}
    session = _prepare(config, run_dir, data_kwargs, supernet, specs, dataset)
    if config.growth and pair_run:
        supernet.grow_from(base_spec)
    return session


def resume_session(run_dir: Path, device: str | None = None) -> TrainSession:
    """Rebuild a run from its checkpoint and restore every state it held; it trains where it
    was trained (its saved --device) unless `device` (auto|cpu|cuda) overrides that."""
    payload = ckpt.read_checkpoint(run_dir / layout.CHECKPOINT)
    try:
        return _restore_session(run_dir, payload, device)
    except ckpt.MALFORMED_PAYLOAD_ERRORS as exc:
        # weights_only keeps code out, not nonsense: a foreign payload is the user's input.
        raise ckpt.malformed_checkpoint_error(run_dir / layout.CHECKPOINT, exc) from exc


def _restore_session(run_dir: Path, payload: dict[str, Any], device: str | None) -> TrainSession:
    from seekdeploy import nn as sd_nn

    config = TrainConfig.from_saved(payload["config"])
    if device is not None:
        config = dataclasses.replace(config, device=DeviceChoice(device))
    model_args = payload["model"]
    supernet = ckpt.build_supernet(model_args, payload["state_dict"])
    specs = {Role.BASE: sd_nn.spec_from_json(model_args["base_spec"]),
             Role.MOTIVATED: sd_nn.spec_from_json(model_args["motivated_spec"])}
    session = _prepare(config, run_dir, dict(payload["data"]["kwargs"]), supernet, specs)
    session.supernet.load_state_dict(payload["state_dict"])
    session.optimizer.load_state_dict(payload["optimizer"])
    session.schedule.load_state_dict(payload["schedule"])
    session.scaler.load_state_dict(payload["scaler"])
    session.condition.load_state_dict(payload["condition"]["state"])
    ckpt.restore_rng(payload["rng"], {"augment": session.augment_generator,
                                      "data_order": session.order_generator})
    session.progress = Progress(**payload["progress"])
    session.records.load_until(session.progress.step, session.progress.epoch)
    return session
