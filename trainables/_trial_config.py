"""The flat trial configuration that Ray Tune hands to the trainable, parsed and validated.

Kept apart from the Ray adapter so that the sweep layer can validate a configuration (and
list every problem at once) without importing Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from trainables._data import DATA_VERSION, DATASET, VAL_FRACTION, dataset_problem
from trainables._hparams import (
    HYPERPARAMETERS,
    HParams,
    HyperParameter,
    HyperParameterError,
    declare,
    hyperparameter_errors,
    unknown_name_error,
)

MODELS: tuple[str, ...] = ("bn_mlp",)

TRIAL_SETTINGS: Mapping[str, HyperParameter] = declare(
    [
        HyperParameter("model", "str", "bn_mlp", "Model family to train.", choices=MODELS),
        DATASET,
        HyperParameter("epochs", "int", 20, "Total number of training epochs.",
                       low=1, high=100_000),
        HyperParameter("seed", "int", 0,
                       "Seeds the data split, synthetic data, initialisation and shuffling.",
                       low=0, high=2**32 - 1),
        VAL_FRACTION,
        HyperParameter("checkpoint_every", "int", 0,
                       "Save a checkpoint every N epochs and after the last one; 0 never saves.",
                       low=0),
        DATA_VERSION,
    ]
)  # fmt: skip


def trial_config_errors(config: Mapping[str, object]) -> list[HyperParameterError]:
    """Every problem with a flat trial configuration, unknown keys included, at once."""
    valid = [*HYPERPARAMETERS, *TRIAL_SETTINGS]
    errors = [
        unknown_name_error(key, value, valid, what="trial setting or hyperparameter")
        for key, value in config.items()
        if key not in HYPERPARAMETERS and key not in TRIAL_SETTINGS
    ]
    for name, setting in TRIAL_SETTINGS.items():
        if name in config:
            check = dataset_problem if name == "dataset" else setting.check
            problem = check(config[name])
            if problem is not None:
                errors.append(HyperParameterError(name, config[name], problem))
    model_values = {k: v for k, v in config.items() if k in HYPERPARAMETERS}
    errors.extend(hyperparameter_errors(model_values))
    return errors


@dataclass(frozen=True)
class TrialConfig:
    """One trial: the model hyperparameters plus what to train them on and for how long."""

    hparams: HParams = field(default_factory=HParams)
    model: str = "bn_mlp"
    dataset: str = "digits"
    epochs: int = 20
    seed: int = 0
    val_fraction: float = 0.2
    checkpoint_every: int = 0
    data_version: str = ""

    @classmethod
    def from_flat(cls, config: Mapping[str, object]) -> TrialConfig:
        """Parse Tune's flat config: hyperparameter keys plus the `TRIAL_SETTINGS` keys.

        Raises the first HyperParameterError; `trial_config_errors` lists them all.
        """
        errors = trial_config_errors(config)
        if errors:
            raise errors[0]
        settings = {
            name: setting.coerce(config.get(name, setting.default))
            for name, setting in TRIAL_SETTINGS.items()
        }
        hparams = HParams.from_mapping({k: v for k, v in config.items() if k in HYPERPARAMETERS})
        return cls(hparams=hparams, **settings)  # type: ignore[arg-type]

    def checkpoint_due(self, epoch: int) -> bool:
        """Whether a checkpoint is saved after `epoch` (1-based) under `checkpoint_every`."""
        if self.checkpoint_every == 0:
            return False
        return epoch % self.checkpoint_every == 0 or epoch == self.epochs
