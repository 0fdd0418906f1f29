"""PyTorch BatchNorm/softmax models, local datasets and the Ray Tune trainables caviar sweeps.

Importing this package imports neither torch nor Ray: what a sweep spec is checked against (the
hyperparameter and trial-setting declarations, the dataset names, data files, trial configs) is
plain Python, so `caviar best`, `report` and `validate` of a built-in-MLP spec start in a
fraction of a second. The training code (torch) and the Ray adapters (`train_bn_mlp`,
`train_bn_mlp_packed`, `trial_device`, `trial_data`) are loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

from trainables._data_settings import DATASETS, synthetic_input_scale
from trainables._files import FILE_FORMATS, FileSource, file_digest
from trainables._hparams import (
    HYPERPARAMETERS,
    HParams,
    HyperParameter,
    HyperParameterError,
)
from trainables._job_paths import SHIPPED_ENV, portable_path
from trainables._model_choice import BUILTIN_ONLY, is_factory_reference
from trainables._trial_config import TrialConfig

if TYPE_CHECKING:
    from trainables._data import Dataset, dataset_fingerprint, load_dataset
    from trainables._factory import ModelFactory, load_factory, load_training_function
    from trainables._lifted import BATCHNORM_LIFTED, lift_attributes
    from trainables._model import BNMLP, softmax_cross_entropy
    from trainables._network_signature import network_signature
    from trainables._train import (
        EpochResult,
        TrainState,
        build_state,
        evaluate,
        load_state,
        precision_problem,
        run_training,
        state_dict,
        train_epoch,
    )
    from trainables._tune import (
        train_bn_mlp,
        train_bn_mlp_packed,
        train_function,
        trial_data,
        trial_device,
    )
    from trainables.packing import (
        PackMember,
        pack_group,
        pack_size_auto,
        run_packed_training,
        vectorize_problem,
    )

__all__ = [
    "BATCHNORM_LIFTED",
    "BNMLP",
    "BUILTIN_ONLY",
    "DATASETS",
    "FILE_FORMATS",
    "HYPERPARAMETERS",
    "SHIPPED_ENV",
    "Dataset",
    "EpochResult",
    "FileSource",
    "HParams",
    "HyperParameter",
    "HyperParameterError",
    "ModelFactory",
    "PackMember",
    "TrainState",
    "TrialConfig",
    "build_state",
    "dataset_fingerprint",
    "evaluate",
    "file_digest",
    "is_factory_reference",
    "lift_attributes",
    "load_dataset",
    "load_factory",
    "load_state",
    "load_training_function",
    "network_signature",
    "pack_group",
    "pack_size_auto",
    "portable_path",
    "precision_problem",
    "run_packed_training",
    "run_training",
    "softmax_cross_entropy",
    "state_dict",
    "synthetic_input_scale",
    "train_bn_mlp",
    "train_bn_mlp_packed",
    "train_epoch",
    "train_function",
    "trial_data",
    "trial_device",
    "vectorize_problem",
]

# Where each name that needs torch (or, for `_tune`'s, Ray) lives.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_data": ["Dataset", "dataset_fingerprint", "load_dataset"],
        "_factory": ["ModelFactory", "load_factory", "load_training_function"],
        "_lifted": ["BATCHNORM_LIFTED", "lift_attributes"],
        "_model": ["BNMLP", "softmax_cross_entropy"],
        "_network_signature": ["network_signature"],
        "_train": [
            "EpochResult",
            "TrainState",
            "build_state",
            "evaluate",
            "load_state",
            "precision_problem",
            "run_training",
            "state_dict",
            "train_epoch",
        ],
        "_tune": [
            "train_bn_mlp",
            "train_bn_mlp_packed",
            "train_function",
            "trial_data",
            "trial_device",
        ],
        "packing": [
            "PackMember",
            "pack_group",
            "pack_size_auto",
            "run_packed_training",
            "vectorize_problem",
        ],
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
