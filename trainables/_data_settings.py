"""The trial settings that choose the data: which datasets exist, the validation share, data
versions, and how a synthetic version scales its inputs.

Kept apart from `_data` (which builds the tensors) so that reading a sweep spec checks these
without importing torch.
"""

from __future__ import annotations

from trainables._files import FileSource
from trainables._hparams import HyperParameter, HyperParameterError

__all__ = [
    "DATASET",
    "DATASETS",
    "DATA_VERSION",
    "SYNTHETIC_DRIFT",
    "VAL_FRACTION",
    "dataset_problem",
    "synthetic_input_scale",
]

DATASETS: tuple[str, ...] = ("digits", "mnist1d", "synthetic")

DATASET = HyperParameter(
    "dataset",
    "str",
    "digits",
    "digits: sklearn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes); "
    "mnist1d: procedurally generated MNIST-1D (5000 samples, 40 features, 10 classes); "
    "synthetic: sklearn make_classification (2000 samples, 20 features, 5 classes); "
    "or a user's file (`FileSource.to_config()`).",
)
VAL_FRACTION = HyperParameter(
    "val_fraction",
    "float",
    0.2,
    "Share of the samples held out (stratified by class) for validation; bounded so that every "
    "class keeps samples on both sides of the split.",
    low=0.01,
    high=0.9,
)

DATA_VERSION = HyperParameter(
    "data_version",
    "str",
    "",
    "Which version of the data to train on. For digits and mnist1d only a label recorded with "
    "the results; for synthetic an integer >= 1 ('' means 1): version v multiplies the "
    "standardised inputs by SYNTHETIC_DRIFT ** (v - 1), a drifting dataset whose best "
    "learning rate (without BatchNorm) moves down with each version.",
)

# Version v's inputs arrive 10x larger than version v-1's ("the sensor's units changed") while
# the preprocessing keeps its old scaling; without BatchNorm the best lr then drops about 10x.
SYNTHETIC_DRIFT = 10.0


def dataset_problem(value: object) -> str | None:
    """None if `value` names a built-in dataset or is a file source's config, else why not."""
    if FileSource.is_config(value):
        return None
    if value not in DATASETS:
        return f"must be one of {list(DATASETS)} or a data file"
    return None


def synthetic_input_scale(data_version: str) -> float:
    """The input scale of a synthetic data version; applied after standardisation, so that the
    drift survives it (the pipeline's statistics are the old version's)."""
    version = str(DATA_VERSION.coerce(data_version)).strip() or "1"
    if not version.isdigit() or int(version) < 1:
        raise HyperParameterError(
            "data_version", data_version, "the synthetic dataset's versions are integers >= 1"
        )
    return SYNTHETIC_DRIFT ** (int(version) - 1)
