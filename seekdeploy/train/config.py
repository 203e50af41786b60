"""`TrainConfig`: every option of a training run, with defaults, as one frozen dataclass.

The resolved config is written to `runs/<name>/config.yaml` and stored in every checkpoint as a
plain dict (`to_dict`), so a run can be resumed and its models rebuilt from the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from seekdeploy.errors import ConfigError
from seekdeploy.nn.registry import DEFAULT_FAMILY, families_with, get_family  # light: no torch at import


class OptimizerName(str, enum.Enum):
    """The sliced optimizers (see `seekdeploy.train.optim`)."""

    SGD = "sgd"
    ADAMW = "adamw"


class BnMode(str, enum.Enum):
    """BatchNorm statistics: one set per role (`private`) or one set for both (`shared`)."""

    PRIVATE = "private"
    SHARED = "shared"


class DeviceChoice(str, enum.Enum):
    """Where training runs; `auto` picks CUDA when available."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class MotivatedStep(str, enum.Enum):
    """What a motivated batch trains: the motivated model `alone` (the paper as read: the base
    skips that batch); `joint`ly with the base (one backward over both losses, so the base
    learns on every batch, as slimmable/BigNAS training does); or `shielded`: both roles, but the
    base's slice moves by the base's loss alone (the motivated loss trains only the weights the
    base does not use), so the base is trained exactly as it would be alone."""

    ALONE = "alone"
    JOINT = "joint"
    SHIELDED = "shielded"


# Chosen on validation by bench/pair_vs_baselines.py (docs/results.md, "The full-set frontier of
# the default"): shielded steps, 60 % of batches motivated, the share rising from 40 % to 80 % over
# the run; the cheapest share whose validation figures clear the bar (motivated above its base on
# every seed and by >= 0.3 pp on average, not under two separate trainings of equal cost).
DEFAULT_FRACTION, DEFAULT_RAMP = 0.6, 0.4
DEFAULT_CONDITION = f"schedule:p={DEFAULT_FRACTION:g},ramp={DEFAULT_RAMP:g}"


def fraction_condition(fraction: float) -> str:
    """The condition of `--motivated-fraction F`: the default's shape at another share, i.e.
    `schedule:p=F` with the default ramp, narrowed near 0 and 1 so the share stays in [0, 1]
    (the points of docs/results.md's frontier are these conditions)."""
    ramp = round(min(DEFAULT_RAMP, 2 * min(fraction, 1 - fraction)), 6)
    return f"schedule:p={fraction:g}" + (f",ramp={ramp:g}" if ramp else "")
DEFAULT_MOTIVATED_STEP = MotivatedStep.SHIELDED
# Growth from the base, the motivated role's private BN/bias offsets and its own learning-rate
# clock: chosen on validation by bench/pair_vs_baselines.py (docs/results.md, "Does the pair beat
# two separate trainings?"; 12,000-image Fashion-MNIST, seeds 0-2, mean motivated validation
# top-1: all three 91.1 %, growth alone 90.9 %, none 90.2 %).
DEFAULT_GROWTH, DEFAULT_PRIVATE_AFFINE, DEFAULT_MOTIVATED_CLOCK = True, True, True
# The motivated role's own classifier weight offset: chosen on validation on the full set
# (docs/results.md, "A private classifier head"; seeds 0-2 at the default share: validation gain
# over the base +0.53 pp against +0.34 with the shared head; on test +0.25 against +0.27, a tie).
DEFAULT_PRIVATE_HEAD = True
# Peak learning rate and weight decay of each optimizer (TrainConfig's own are SGD's).
OPTIMIZER_DEFAULTS: dict[OptimizerName, tuple[float, float]] = {
    OptimizerName.SGD: (0.05, 5e-4), OptimizerName.ADAMW: (0.002, 0.05)}
# A role's running BN statistics are a momentum-0.1 average: its last ~10 forwards carry most of
# their weight. A role that never skipped more than this many batches in a row has statistics
# that describe (nearly) its current weights; measured, re-estimating them then changes
# validation top-1 by < 0.3 pp (docs/results.md, "Step types and conditions at 40 % motivated"), so it is not paid for.
MAX_FRESH_GAP = 8
# Under torchrun: seconds a rank waits for the others before the run stops with an error.
DEFAULT_DIST_TIMEOUT_S = 300.0

# Options added after runs were first saved: a checkpoint or config.yaml without them was
# trained with these values, so a resumed old run keeps its meaning.
LEGACY_VALUES: dict[str, Any] = {"motivated_step": "alone", "distill_weight": 0.0,
                                 "distill_temperature": 1.0, "growth": False,
                                 "private_affine": False, "motivated_clock": False,
                                 "additive": False, "private_head": False,
                                 "clone_growth": False, "private_convs": False}


# Epochs when --epochs is not given, per built-in dataset (others: OTHER_DATA_EPOCHS). digits
# (1,294 training images, ~20 steps an epoch), README pair, seed 0: 15 epochs gave base / motivated
# validation top-1 ~97-98 %, 30 epochs 100.0 / 99.3 % (seed 1: 99.3 / 98.6 %), test 98.9 / 99.2 %;
# Fashion-MNIST's benchmarks train 10 (docs/results.md).
DATASET_EPOCHS = {"digits": 30, "fashion-mnist": 10}
OTHER_DATA_EPOCHS = 15


def default_epochs(data: str) -> int:
    """Training epochs for `data` when the user gives none (DATASET_EPOCHS, else OTHER_DATA_EPOCHS)."""
    key = data.strip().lower().replace("_", "-")
    return DATASET_EPOCHS.get("fashion-mnist" if key == "fashionmnist" else key, OTHER_DATA_EPOCHS)


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (units in names; defaults sized for the digits demo)."""

    arch: str = DEFAULT_FAMILY
    data: str = "digits"
    data_dir: str | None = None
    epochs: int = 30  # default_epochs("digits"): the CLI's default is the dataset's own
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = OPTIMIZER_DEFAULTS[OptimizerName.SGD][0]
    optimizer: OptimizerName = OptimizerName.SGD
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = OPTIMIZER_DEFAULTS[OptimizerName.SGD][1]
    warmup_epochs: float = 0.5
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    condition: str = DEFAULT_CONDITION
    motivated_step: MotivatedStep = DEFAULT_MOTIVATED_STEP
    # In-place distillation on joint batches: the base's loss becomes
    # (1 - w) * CE + w * T^2 * KL(motivated/T || base/T), the motivated logits detached. 0 = off.
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    bn: BnMode = BnMode.PRIVATE
    # Growth: the motivated model starts as exactly the base's function (connections from its
    # extra channels into the base's, and the ends of its extra blocks, start at zero).
    growth: bool = DEFAULT_GROWTH
    # The motivated role gets offsets to the BatchNorm scale/shift and classifier bias, so it can
    # retune the base's channels while the base's own stay the base's (with --bn private only).
    private_affine: bool = DEFAULT_PRIVATE_AFFINE
    # Where the private offsets are on: the motivated role owns an offset to the classifier's
    # weight too, so it can reweight the base's features in its logits (the deployed motivated
    # model then has a classifier of its own; every other layer stays shared).
    private_head: bool = DEFAULT_PRIVATE_HEAD
    # Private convolution offsets (resnet, mbconv; with private offsets): the motivated role owns
    # an offset to every convolution's weight as well, so it can retune the base's filters for
    # itself; the base's stay the base's. The deployed motivated model then shares no
    # convolution weights with the base (a cascade file stores the base's twice).
    private_convs: bool = False
    # The weights only the motivated model uses follow a learning-rate schedule of their own,
    # advanced by motivated steps alone (its length: the condition's expected motivated steps;
    # only with a condition whose share is known in advance, such as `schedule` or `random`).
    motivated_clock: bool = DEFAULT_MOTIVATED_CLOCK
    # Growth by copying (with growth; resnet, mbconv): when the motivated model first trains,
    # its extra channels start as copies of the base's trained channels (reading the base's
    # inputs, feeding nothing yet), so it starts from the base's features, not random ones. Pair
    # it with a schedule that trains the base alone first (`schedule:p=0.6,start=0.4`).
    clone_growth: bool = False
    # Additive nesting (resnet, --bn shared): the base's activations are a prefix of the motivated
    # model's (weights from the motivated model's extra channels into the base's held at zero, its
    # extra blocks writing only its extra channels), so a shielded motivated step reuses the
    # base's forward. Measured against the default in docs/results.md; off by default.
    additive: bool = False
    # A role that skipped more than MAX_FRESH_GAP batches in a row in the last epoch has stale
    # running BN statistics; those roles alone are re-estimated on this many training batches
    # after the last epoch, before the test and the export (per-epoch validation uses the
    # running statistics). Measured: docs/results.md.
    bn_recalibrate_batches: int = 20
    seed: int = 0
    device: DeviceChoice = DeviceChoice.AUTO
    deterministic: bool = False
    val_fraction: float = 0.1
    # Image folders (`imagefolder:PATH`): decoding processes (None: one per core, 0: the
    # training process), and whether unusable files are left out (and counted) instead of
    # stopping the run before training.
    workers: int | None = None
    skip_bad_files: bool = False
    base_spec: str | None = None  # spec text; None = the family's default pair
    motivated_spec: str | None = None

    def __post_init__(self) -> None:
        _check_positive(self, ("epochs", "batch_size", "eval_batch_size"), int)
        _check_positive(self, ("lr",), float)
        checks = [
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("bn_recalibrate_batches", self.bn_recalibrate_batches >= 0, ">= 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("distill_weight", 0 <= self.distill_weight <= 1, "in [0, 1]"),
            ("distill_temperature", self.distill_temperature > 0, "> 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"training option {name}={getattr(self, name)!r} must be {allowed}")
        if self.private_convs and not (self.private_affine and self.bn == BnMode.PRIVATE):
            raise ConfigError("--private-convs needs --private-affine and --bn private: the offsets "
                              "belong to the motivated role's private parameters")
        if self.clone_growth and not self.growth:
            raise ConfigError("--clone-growth needs --growth: the copied channels keep the base's "
                              "function only while what reads them starts at zero")
        self._check_family_options()
        if self.additive and self.bn != BnMode.SHARED:
            raise ConfigError("--additive needs --bn shared: inside the motivated model the base's "
                              "channels must be normalised with the base's own statistics")

    def _check_family_options(self) -> None:
        # Refused here, before a run loads its data, where the family declares it cannot do them.
        if not (self.private_convs or self.clone_growth):
            return
        family = get_family(self.arch)
        if self.private_convs and not family.private_convs:
            raise ConfigError(f"--private-convs is not available for the {family.name!r} family: "
                              "its forward does not hand the role to every convolution (available "
                              f"for: {', '.join(families_with('private_convs'))}); train without it")
        if self.clone_growth and not family.clones_channels:
            raise ConfigError(f"--clone-growth is not available for the {family.name!r} family: a "
                              "copied channel keeps the base's function only in convolutional "
                              f"families ({', '.join(families_with('clones_channels'))}); train "
                              "without it")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (enums as their values) for YAML, JSON and checkpoints."""
        return {key: (value.value if isinstance(value, enum.Enum) else value)
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        for key, kind in (("optimizer", OptimizerName), ("bn", BnMode), ("device", DeviceChoice),
                          ("motivated_step", MotivatedStep)):
            if key in values:
                values[key] = kind(values[key])
        return cls(**values)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> TrainConfig:
        """`from_dict` for a config saved by a run: options it predates take their old values."""
        return cls.from_dict(LEGACY_VALUES | dict(data))


def _check_positive(config: TrainConfig, names: tuple[str, ...], kind: type) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"training option {name}={value!r} must be a positive {kind.__name__}")
