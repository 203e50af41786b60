"""The training options `seekdeploy train` and `seekdeploy run` share. Each default is read from
`TrainConfig` and each list of choices from its registry, so neither command spells them again.

Light (click, the family and condition registries, the config dataclass): no torch at import.
"""

from __future__ import annotations

import click

from seekdeploy.nn.registry import list_families
from seekdeploy.train.conditions import condition_synopsis
from seekdeploy.train.config import DATASET_EPOCHS, OTHER_DATA_EPOCHS, TrainConfig

DEFAULTS = TrainConfig()

arch_option = click.option("--arch", type=click.Choice(list_families()), default=DEFAULTS.arch,
                           show_default=True, help="Model family.")
data_option = click.option("--data", default=DEFAULTS.data, show_default=True,
                           help="Dataset name, or imagefolder:PATH (`seekdeploy doctor` lists those usable here).")
epochs_option = click.option(
    "--epochs", type=click.IntRange(min=1), default=None,
    help="Training epochs [default: the dataset's: " + ", ".join(
        f"{name} {epochs}" for name, epochs in DATASET_EPOCHS.items()) + f", others {OTHER_DATA_EPOCHS}].")
condition_option = click.option(
    "--condition", default=DEFAULTS.condition, show_default=True,
    help=f"Which batches are motivated: {condition_synopsis()}. schedule: a fixed fraction, evenly "
         "spread; streak: the paper's; never: the base alone; always: the motivated model alone.")
workers_option = click.option(
    "--workers", type=click.IntRange(min=0), default=None,
    help="imagefolder: processes that decode and resize images on the first run "
         "(0 = the training process) [one per core, at most 8].")
skip_bad_files_option = click.option(
    "--skip-bad-files", is_flag=True,
    help="imagefolder: leave out files that are not usable images (empty, corrupt, "
         "truncated, too large) and say how many, instead of stopping.")
