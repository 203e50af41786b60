"""Every default `seekdeploy train` and `seekdeploy run` show is the config's own value, and the
help lists every condition the registry knows (the default one included)."""

from __future__ import annotations

import enum

from seekdeploy.cli.run_cmd import run
from seekdeploy.cli.train_cmd import train
from seekdeploy.pipeline import PipelineConfig
from seekdeploy.train.conditions import list_conditions
from seekdeploy.train.config import OPTIMIZER_DEFAULTS, OptimizerName, TrainConfig

# CLI option -> the TrainConfig field it feeds.
FIELDS = {"arch": "arch", "data": "data", "batch_size": "batch_size",
          "condition": "condition", "optimizer": "optimizer", "motivated_step": "motivated_step",
          "distill_weight": "distill_weight", "distill_temperature": "distill_temperature",
          "growth": "growth", "private_affine": "private_affine", "motivated_clock": "motivated_clock",
          "bn": "bn", "bn_recalibrate": "bn_recalibrate_batches", "seed": "seed", "device": "device"}


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def test_train_options_default_to_the_training_config() -> None:
    defaults, params = TrainConfig(), {p.name: p for p in train.params}
    for option, field in FIELDS.items():
        assert params[option].default == _plain(getattr(defaults, field)), option
    assert OPTIMIZER_DEFAULTS[OptimizerName.SGD] == (defaults.lr, defaults.weight_decay)


def test_run_options_and_the_pipeline_default_to_the_training_config() -> None:
    defaults, params, pipeline = TrainConfig(), {p.name: p for p in run.params}, PipelineConfig("p")
    for option in ("arch", "data", "condition"):
        assert params[option].default == getattr(defaults, option) == getattr(pipeline, option), option


def test_epochs_default_to_the_datasets_own() -> None:
    """No --epochs: the dataset's count (the config's default is the default dataset's), in the help."""
    from seekdeploy.train.config import DATASET_EPOCHS, OTHER_DATA_EPOCHS, default_epochs

    assert default_epochs(TrainConfig().data) == TrainConfig().epochs
    assert default_epochs("fashion_mnist") == DATASET_EPOCHS["fashion-mnist"] != OTHER_DATA_EPOCHS
    assert default_epochs("imagefolder:photos") == default_epochs("cifar10") == OTHER_DATA_EPOCHS
    for command in (train, run):
        option = next(p for p in command.params if p.name == "epochs")
        assert option.default is None and all(f"{name} {n}" in option.help for name, n in DATASET_EPOCHS.items())
    assert PipelineConfig("p").training_epochs == TrainConfig().epochs
    assert PipelineConfig("p", data="fashion-mnist").training_epochs == DATASET_EPOCHS["fashion-mnist"]
    assert PipelineConfig("p", data="fashion-mnist", epochs=3).train_request()["epochs"] == 3


def test_the_condition_help_names_every_condition() -> None:
    for command in (train, run):
        help_text = next(p for p in command.params if p.name == "condition").help
        assert all(name in help_text for name in list_conditions()), command.name
        assert TrainConfig().condition.split(":")[0] in help_text
