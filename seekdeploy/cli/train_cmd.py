"""`seekdeploy train`: train a nested base/motivated pair with motivated training."""

from __future__ import annotations

from pathlib import Path

import click

from seekdeploy._io import safe_name
from seekdeploy.cli._train_options import (DEFAULTS, arch_option, condition_option, data_option, epochs_option,
                                          skip_bad_files_option, workers_option)
from seekdeploy.errors import ConfigError
from seekdeploy.layout import RUNS_DIR, default_run_name
from seekdeploy.roles import ROLE_NAMES, Role
from seekdeploy.train.config import (
    DEFAULT_DIST_TIMEOUT_S, DEFAULT_RAMP, MAX_FRESH_GAP, OPTIMIZER_DEFAULTS, BnMode, DeviceChoice,
    MotivatedStep, OptimizerName, TrainConfig, default_epochs, fraction_condition,
)  # fmt: skip

_TRAINING_OPTIONS = ("arch", "data", "data_dir", "epochs", "batch_size", "lr", "optimizer",
                     *ROLE_NAMES, "condition", "motivated_fraction", "motivated_step",
                     "distill_weight", "distill_temperature", "growth", "private_affine",
                     "private_head", "private_convs", "clone_growth", "motivated_clock", "additive", "bn",
                     "bn_recalibrate", "seed", "deterministic", "profile", "out", "workers",
                     "skip_bad_files")


def _run_dir(out: str | None, profile: str, arch: str, data: str) -> Path:
    if out is None:
        return Path(RUNS_DIR) / safe_name(default_run_name(Path(profile).stem, arch, data), "run name")
    path = Path(out)
    safe_name(path.name, "run name")
    return path


def _given(ctx: click.Context, names: tuple[str, ...]) -> list[str]:
    source = click.core.ParameterSource.COMMANDLINE
    return [name for name in names if ctx.get_parameter_source(name) == source]


@click.command("train")
@click.option("--profile", help="Hardware profile (name or YAML path); gives the input size.")
@arch_option
@data_option
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding the dataset.")
@workers_option
@skip_bad_files_option
@epochs_option
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True,
              help="Global batch per step; under torchrun each of the N processes trains "
                   "batch-size / N of it (must divide evenly).")
@click.option("--lr", type=float, default=None, help="Peak learning rate [" + ", ".join(
    f"{name.value} {lr:g}" for name, (lr, _) in OPTIMIZER_DEFAULTS.items()) + "].")
@click.option("--optimizer", type=click.Choice([name.value for name in OptimizerName]),
              default=DEFAULTS.optimizer.value, show_default=True)
@click.option("--base", help="Base spec, e.g. 'depth=2,2,2;width=8,16,32' [family default].")
@click.option("--motivated", help="Motivated spec (the supernet) [family default].")
@condition_option
@click.option("--motivated-fraction", type=click.FloatRange(0.0, 1.0), default=None,
              help="Pick a point on the cost/accuracy frontier (docs/results.md): "
                   f"--condition schedule:p=F with the default's rising share (ramp {DEFAULT_RAMP:g}, "
                   "narrowed near 0 and 1); training cost ≈ base/motivated FLOPs + F of the "
                   "motivated model's.")
@click.option("--motivated-step", type=click.Choice([step.value for step in MotivatedStep]),
              default=DEFAULTS.motivated_step.value, show_default=True,
              help="A motivated batch trains both roles in one backward (joint: the base learns "
                   "on every batch), both with the base's slice moved by the base's loss alone "
                   "(shielded: the base trains exactly as it would alone), or the motivated model "
                   "alone (the paper as read).")
@click.option("--distill-weight", type=click.FloatRange(0.0, 1.0), default=DEFAULTS.distill_weight,
              show_default=True, help="On joint batches, blend this much distillation from the "
                                      "motivated model's predictions into the base's loss (0 = off).")
@click.option("--distill-temperature", type=click.FloatRange(min=0.0, min_open=True),
              default=DEFAULTS.distill_temperature, show_default=True,
              help="Softmax temperature of that distillation.")
@click.option("--growth/--no-growth", default=DEFAULTS.growth, show_default=True,
              help="Start the motivated model as exactly the base's function (its extra "
                   "connections into the base's channels and its extra blocks start at zero), "
                   "so training only adds to what the base knows.")
@click.option("--private-affine/--shared-affine", default=DEFAULTS.private_affine,
              show_default=True,
              help="Give the motivated model offsets to the BatchNorm scale/shift and the "
                   "classifier bias (with --bn private; off under --bn shared); the base's stay "
                   "the base's.")
@click.option("--private-head/--shared-head", default=DEFAULTS.private_head, show_default=True,
              help="With --private-affine, give the motivated model an offset to the classifier "
                   "weight too, so it can reweight the base's features; its exported classifier "
                   "is then its own (every other layer stays shared with the base). Off "
                   "wherever --private-affine is.")
@click.option("--private-convs/--shared-convs", default=DEFAULTS.private_convs, show_default=True,
              help="With --private-affine (resnet, mbconv): give the motivated model an offset "
                   "to every convolution's weight too, so it can retune the base's filters for "
                   "itself; the base's stay the base's. Its exported model then shares no "
                   "convolution weights with the base (a cascade file stores them twice).")
@click.option("--motivated-clock/--run-clock", default=DEFAULTS.motivated_clock,
              show_default=True,
              help="Weights only the motivated model uses follow a learning-rate schedule "
                   "advanced by motivated steps alone (with a fixed-share condition such as "
                   "schedule or random; conditions that follow the loss keep the run's clock).")
@click.option("--clone-growth/--no-clone-growth", default=DEFAULTS.clone_growth, show_default=True,
              help="With --growth: when the motivated model first trains, its extra channels "
                   "start as copies of the base's trained channels instead of random weights "
                   "(resnet, mbconv). Pair it with a condition that trains the base alone first, "
                   "e.g. --condition schedule:p=0.6,start=0.4.")
@click.option("--additive/--no-additive", default=DEFAULTS.additive, show_default=True,
              help="Nest the base additively (resnet, with --bn shared): its activations are a "
                   "prefix of the motivated model's, so a shielded motivated step computes only "
                   "what the base lacks. Measured against the default in docs/results.md.")
@click.option("--bn", type=click.Choice([mode.value for mode in BnMode]), default=DEFAULTS.bn.value,
              show_default=True, help="BatchNorm statistics per role or shared.")
@click.option("--bn-recalibrate", type=click.IntRange(min=0), default=DEFAULTS.bn_recalibrate_batches,
              show_default=True,
              help="Batches that re-estimate a role's BN statistics before evaluation (0 = off); "
                   f"only a role that skipped more than {MAX_FRESH_GAP} batches in a row in the last "
                   "epoch is re-estimated.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--device", type=click.Choice([choice.value for choice in DeviceChoice]),
              default=DEFAULTS.device.value, show_default=True,
              help="Where to train. With --resume: the run continues where it was started unless "
                   "--device moves it.")
@click.option("--deterministic", is_flag=True, help="torch.use_deterministic_algorithms(True).")
@click.option("--out", help="Run folder [runs/<profile>-<arch>-<data>].")
@click.option("--resume", "resume", type=click.Path(), help="Continue an interrupted run folder.")
@click.option("--dist-timeout", "dist_timeout_s", type=click.FloatRange(min=1),
              default=DEFAULT_DIST_TIMEOUT_S, show_default=True,
              help="Under torchrun: seconds a rank waits for the others (to join, or in a step) "
                   "before the run stops with an error.")
@click.pass_context
def train(ctx: click.Context, **options: object) -> None:
    """Train a base model and the motivated model that contains it, sharing weights.

    The condition decides which batches are motivated; a motivated batch trains the motivated
    model (and, with --motivated-step joint, the base too), every other batch the base alone.
    Writes runs/NAME/ (checkpoint.pt, metrics.jsonl, motivation.jsonl, manifest.json).
    Ctrl-C saves a checkpoint; --resume RUN continues it.

    \b
    Data-parallel on N GPUs (or CPU processes), one node or several:
      torchrun --nproc-per-node N -m seekdeploy train --profile P ...
    """
    from rich.console import Console

    from seekdeploy.train import distributed

    device = options["device"]
    if options["resume"] and not _given(ctx, ("device",)):
        from seekdeploy.train.run import saved_device

        device = saved_device(Path(options["resume"]))  # where the run was trained
    with distributed.distributed_training(device, options["dist_timeout_s"]):
        summary = _train(ctx, options, Console(stderr=True))
        if distributed.is_main():
            _print_summary(summary)


def _train(ctx: click.Context, options: dict, console):
    from seekdeploy.train.run import train_pair

    resume = options["resume"]
    if resume:
        ignored = _given(ctx, _TRAINING_OPTIONS)
        if ignored:
            raise ConfigError(f"--resume continues {resume} with its saved settings; drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in ignored)}")
        # --device with --resume moves the run (e.g. a GPU run finished on a CPU); without it
        # the run continues on the device it was started with.
        device = options["device"] if _given(ctx, ("device",)) else None
        summary = train_pair(None, Path(resume), resume=True, console=console, device=device)
    else:
        if not options["profile"]:
            raise ConfigError("--profile is required (see `seekdeploy profiles list`), "
                              "or --resume RUN to continue a run")
        if options["motivated_fraction"] is not None and _given(ctx, ("condition",)):
            raise ConfigError("--motivated-fraction F is --condition schedule:p=F,ramp=...; give "
                              "one of the two, not both")
        config, loaded = _build_config(options)
        run_dir = _run_dir(options["out"], loaded.name, config.arch, config.data)
        summary = train_pair(config, run_dir, profile=loaded, console=console)
    return summary


def _build_config(options: dict):
    from seekdeploy.profiles.loader import load_profile
    from seekdeploy.train.conditions import parse_condition

    condition = options["condition"]
    if options["motivated_fraction"] is not None:
        condition = fraction_condition(options["motivated_fraction"])
    parse_condition(condition)  # fail before loading data if the condition text is wrong
    loaded = load_profile(options["profile"])
    lr, weight_decay = OPTIMIZER_DEFAULTS[OptimizerName(options["optimizer"])]
    config = TrainConfig.from_dict({
        "arch": options["arch"], "data": options["data"], "data_dir": options["data_dir"],
        "workers": options["workers"], "skip_bad_files": options["skip_bad_files"],
        "epochs": options["epochs"] or default_epochs(options["data"]), "batch_size": options["batch_size"],
        "lr": options["lr"] if options["lr"] is not None else lr,
        "optimizer": options["optimizer"], "weight_decay": weight_decay,
        "condition": condition, "motivated_step": options["motivated_step"],
        "distill_weight": options["distill_weight"],
        "distill_temperature": options["distill_temperature"], "growth": options["growth"],
        "private_affine": options["private_affine"], "private_head": options["private_head"],
        "private_convs": options["private_convs"],
        "clone_growth": options["clone_growth"],
        "motivated_clock": options["motivated_clock"], "additive": options["additive"],
        "bn": options["bn"],
        "bn_recalibrate_batches": options["bn_recalibrate"], "seed": options["seed"],
        "device": options["device"], "deterministic": options["deterministic"],
        "base_spec": options[Role.BASE], "motivated_spec": options[Role.MOTIVATED]})
    return config, loaded


def _print_summary(summary) -> None:
    top1 = summary.test_top1
    click.echo(f"run:                {summary.run_dir}")
    click.echo(f"test top-1:         base {top1[Role.BASE]:.2%}   motivated {top1[Role.MOTIVATED]:.2%}")
    click.echo(f"motivated fraction: {summary.motivated_fraction:.1%} of batches")
    click.echo(f"training cost:      {summary.train_flops / 1e12:.3f} TFLOP = "
               f"{summary.cost_ratio:.2f}x the standalone motivated model "
               f"({summary.standalone_motivated_flops / 1e12:.3f} TFLOP)")
    parts = {part: flops for part, flops in summary.cost_flops.items() if flops}
    if parts and summary.train_flops:
        click.echo("  of which:         " + ", ".join(
            f"{part.replace('_', ' ')} {flops / summary.train_flops:.0%}"
            for part, flops in parts.items()))
    click.echo(f"time:               {summary.seconds:.1f} s")
    click.echo(summary.verdict()[1])
