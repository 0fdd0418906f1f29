"""Small classification datasets that are built locally, never downloaded.

Sweeps run on clusters without internet access and must be reproducible from a seed, so every
dataset here either ships with a library (digits) or is generated procedurally (mnist1d,
synthetic). Raw arrays are cached per process because Ray reuses worker processes for many
trials; the split and the standardisation are cheap and recomputed per call.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import threading
from dataclasses import dataclass

import numpy as np
import torch

from trainables._hparams import HyperParameter, HyperParameterError
from trainables._split import digits, stratified_split

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("digits", "mnist1d", "synthetic")

DATASET = HyperParameter(
    "dataset",
    "str",
    "digits",
    "digits: sklearn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes); "
    "mnist1d: procedurally generated MNIST-1D (5000 samples, 40 features, 10 classes); "
    "synthetic: sklearn make_classification (2000 samples, 20 features, 5 classes).",
    choices=DATASETS,
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

# MNIST-1D's published size; generation takes about 3 s on one core, once per (process, seed).
MNIST1D_SAMPLES = 5000
SYNTHETIC_SAMPLES = 2000
SYNTHETIC_FEATURES = 20
SYNTHETIC_CLASSES = 5

# mnist1d seeds numpy's and Python's global generators; this lock keeps concurrent loads in one
# process from interleaving their save/seed/restore of that global state.
_GLOBAL_RNG_LOCK = threading.Lock()


@dataclass(frozen=True)
class Dataset:
    """A standardised, stratified train/validation split, already on the training device.

    x tensors have the requested float dtype and shape (n, n_features); y tensors are int64
    class indices in [0, n_classes).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_features: int
    n_classes: int

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def dtype(self) -> torch.dtype:
        return self.x_train.dtype


def _mnist1d(seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Imported lazily: mnist1d pulls in matplotlib and requests, which most trials never need.
    # Only make_dataset is used; get_dataset would try to download a pickle from GitHub.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = MNIST1D_SAMPLES
    args.url = None  # make_dataset never reads it; cleared so no code path can fetch it
    with _GLOBAL_RNG_LOCK:
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:
            generated = make_dataset(args)
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
    # mnist1d splits train/test itself; we pool the samples and split stratified by our seed.
    # Its global centring/scaling is one affine map of all features, which the per-feature
    # train-only standardisation below undoes, so no validation statistics leak through it.
    x = np.concatenate([generated["x"], generated["x_test"]])
    y = np.concatenate([generated["y"], generated["y_test"]])
    return x, y


def _synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Imported here: scikit-learn costs ~1 s to import, and most trials never need it.
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=SYNTHETIC_SAMPLES,
        n_features=SYNTHETIC_FEATURES,
        n_informative=10,
        n_redundant=5,
        n_classes=SYNTHETIC_CLASSES,
        n_clusters_per_class=2,
        random_state=seed,
    )


@functools.lru_cache(maxsize=16)
def _raw_arrays(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsplit float64 features and int64 labels, read-only because they are shared."""
    logger.debug("building dataset %s (seed %d)", name, seed)
    if name == "digits":
        x, y = digits()  # fixed data: the seed only affects the split
    elif name == "mnist1d":
        x, y = _mnist1d(seed)
    else:
        x, y = _synthetic(seed)
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_dataset(
    name: str,
    *,
    seed: int,
    val_fraction: float = 0.2,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    data_version: str = "",
) -> Dataset:
    """Load `name`, split it stratified by `seed`, standardise with train statistics only.

    The seed drives the split and, for generated datasets, the data itself, so one seed gives
    one reproducible problem. Raises HyperParameterError for an unknown name, a bad fraction or
    a synthetic `data_version` that is not an integer >= 1.
    """
    name = str(DATASET.coerce(name))
    scale = synthetic_input_scale(data_version) if name == "synthetic" else 1.0
    val_fraction = float(VAL_FRACTION.coerce(val_fraction))  # type: ignore[arg-type]
    digits_seed = 0 if name == "digits" else seed  # one cache entry for the fixed digits data
    x, y = _raw_arrays(name, digits_seed)
    train, val = stratified_split(y, val_fraction, seed)  # = sklearn's train_test_split
    x_train, x_val, y_train, y_val = x[train], x[val], y[train], y[val]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    # Constant features (e.g. the always-blank corner pixels of digits) would divide by zero.
    std[std == 0] = 1.0
    x_train = (x_train - mean) / std * scale
    x_val = (x_val - mean) / std * scale

    def tensor(array: np.ndarray, tensor_dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(array, dtype=tensor_dtype, device=device)

    return Dataset(
        name=name,
        x_train=tensor(x_train, dtype),
        y_train=tensor(y_train, torch.int64),
        x_val=tensor(x_val, dtype),
        y_val=tensor(y_val, torch.int64),
        n_features=int(x.shape[1]),
        n_classes=int(y.max()) + 1,
    )


def synthetic_input_scale(data_version: str) -> float:
    """The input scale of a synthetic data version; applied after standardisation, so that the
    drift survives it (the pipeline's statistics are the old version's)."""
    version = str(DATA_VERSION.coerce(data_version)).strip() or "1"
    if not version.isdigit() or int(version) < 1:
        raise HyperParameterError(
            "data_version", data_version, "the synthetic dataset's versions are integers >= 1"
        )
    return SYNTHETIC_DRIFT ** (int(version) - 1)


def dataset_fingerprint(data: Dataset) -> str:
    """sha256 of the split, standardised arrays: two runs saw the same data iff they match."""
    digest = hashlib.sha256(data.name.encode())
    for tensor in (data.x_train, data.y_train, data.x_val, data.y_val):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
