"""The flat trial configuration that Ray Tune hands to the trainable, parsed and validated.

Kept apart from the Ray adapter so that the sweep layer can validate a configuration (and
list every problem at once) without importing Ray, and free of torch unless the configuration
names a user's network (whose module imports it anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainables._data_settings import DATA_VERSION, DATASET, VAL_FRACTION, dataset_problem
from trainables._hparams import (
    HYPERPARAMETERS,
    HParams,
    HyperParameter,
    HyperParameterError,
    declare,
    hyperparameter_errors,
    unknown_name_error,
)
from trainables._model_choice import BUILTIN_MODEL, is_factory_reference

if TYPE_CHECKING:
    from torch import nn

    from trainables._data import Dataset
    from trainables._factory import ModelFactory

# What `precision` may be; `_train` says which a device runs.
PRECISIONS = ("fp32", "bf16")

TRIAL_SETTINGS: Mapping[str, HyperParameter] = declare(
    [
        HyperParameter("model", "str", BUILTIN_MODEL,
                       "'bn_mlp' (the built-in BatchNorm MLP) or a user's 'module:function'."),
        HyperParameter("model_dir", "str", "",
                       "Where a user's model module is imported from first (the spec's dir)."),
        HyperParameter("pack_by", "str", "*",
                       "A user's model: the factory keywords that change its structure, comma-"
                       "separated ('*': all of them); configurations that agree on these and on "
                       "batch_size and optimizer share a pack."),
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
        HyperParameter("precision", "str", "fp32",
                       "'fp32', or 'bf16': forward passes under bfloat16 autocast, float32 "
                       "master weights and optimizer state.",
                       choices=PRECISIONS),
    ]
)  # fmt: skip


def trial_config_errors(config: Mapping[str, object]) -> list[HyperParameterError]:
    """Every problem with a flat trial configuration, unknown keys included, at once."""
    model = config.get("model", BUILTIN_MODEL)
    if model != BUILTIN_MODEL and not is_factory_reference(model):
        return [HyperParameterError("model", model, "must be 'bn_mlp' or 'module:function'")]
    factory = None
    if is_factory_reference(model):
        from trainables._factory import load_factory  # torch: only for a user's network

        try:
            factory = load_factory(str(model), str(config.get("model_dir", "")))
        except HyperParameterError as exc:
            return [exc]
    known = HYPERPARAMETERS if factory is None else factory.hyperparameters
    valid = [*known, *TRIAL_SETTINGS]
    errors = [
        unknown_name_error(key, value, valid, what="trial setting or hyperparameter")
        for key, value in config.items()
        if key not in known and key not in TRIAL_SETTINGS
    ]
    for name, setting in TRIAL_SETTINGS.items():
        if name in config and name != "model":
            check = dataset_problem if name == "dataset" else setting.check
            problem = check(config[name])
            if problem is not None:
                errors.append(HyperParameterError(name, config[name], problem))
    model_values = {k: v for k, v in config.items() if k in HYPERPARAMETERS}
    errors.extend(hyperparameter_errors(model_values))
    if factory is not None:
        for name, hp in factory.params.items():
            if name in config and (problem := hp.check(config[name])) is not None:
                errors.append(HyperParameterError(name, config[name], problem))
    return errors


@dataclass(frozen=True)
class TrialConfig:
    """One trial: the model hyperparameters plus what to train them on and for how long."""

    hparams: HParams = field(default_factory=HParams)
    model: str = BUILTIN_MODEL
    model_dir: str = ""
    pack_by: str = "*"
    dataset: str = "digits"
    epochs: int = 20
    seed: int = 0
    val_fraction: float = 0.2
    checkpoint_every: int = 0
    data_version: str = ""
    precision: str = "fp32"
    # A user's model: its factory and the values of its keywords (defaults filled in).
    factory: ModelFactory | None = None
    model_params: Mapping[str, object] = field(default_factory=dict)

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
        factory, params = None, {}
        if is_factory_reference(settings["model"]):
            from trainables._factory import load_factory

            factory = load_factory(str(settings["model"]), str(settings["model_dir"]))
            params = {
                name: hp.coerce(config.get(name, hp.default)) for name, hp in factory.params.items()
            }
        # Why the type ignore below: each setting was coerced to its declared type above
        return cls(hparams=hparams, factory=factory, model_params=params, **settings)  # type: ignore[arg-type]

    @property
    def network(self) -> Callable[[Dataset], nn.Module] | None:
        """The user's network builder for `build_state`; None for the built-in MLP."""
        factory, params = self.factory, dict(self.model_params)
        if factory is None:
            return None
        return lambda data: factory.build(data.input_shape, data.n_classes, params)

    @property
    def network_key(self) -> Hashable:
        """Equal for configurations expected to build networks of one structure (None: the
        built-in MLP, whose packs group by `shape_group`): the factory and the values of its
        keywords in `pack_by` (all of them for '*')."""
        if self.factory is None:
            return None
        names = None if self.pack_by == "*" else set(filter(None, self.pack_by.split(",")))
        values = sorted((k, v) for k, v in self.model_params.items() if names is None or k in names)
        return (self.factory.reference, tuple(values))

    def checkpoint_due(self, epoch: int) -> bool:
        """Whether a checkpoint is saved after `epoch` (1-based) under `checkpoint_every`."""
        if self.checkpoint_every == 0:
            return False
        return epoch % self.checkpoint_every == 0 or epoch == self.epochs
