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

from trainables._data_settings import VAL_FRACTION, dataset_problem, synthetic_input_scale
from trainables._files import FileArrays, FileSource, read_file_arrays
from trainables._hparams import HyperParameterError
from trainables._split import digits, stratified_split

logger = logging.getLogger(__name__)

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

    x tensors have the requested float dtype and shape (n, n_features), flattened;
    `input_shape` is a sample's shape as the data gave it (`(C, H, W)` for images), so a model
    that wants it views `x.view(-1, *input_shape)`. y tensors are int64 class indices in
    [0, n_classes); `classes` are a file's labels in class order (empty for built-in data).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_features: int
    n_classes: int
    input_shape: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()

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


@functools.lru_cache(maxsize=4)
def _file_arrays(config: str, data_version: str) -> tuple[FileArrays, FileArrays | None]:
    """A file's arrays, cached per process and per version: a rewritten file (a new
    `data_version`) is read again, the same one is not."""
    logger.debug("reading data file %s (version %s)", config, data_version)
    return read_file_arrays(FileSource.from_config(config))


def _standardised(
    x_train: np.ndarray, x_val: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Train-split statistics only: per feature, or per channel for image-shaped samples
    (N, C, H, W, ...), so the model never sees validation statistics."""
    axes = (0,) if x_train.ndim <= 2 else (0, *range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    # Constant features (e.g. the always-blank corner pixels of digits) would divide by zero.
    std[std == 0] = 1.0
    return (x_train - mean) / std * scale, (x_val - mean) / std * scale


def load_dataset(
    name: str,
    *,
    seed: int,
    val_fraction: float = 0.2,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    data_version: str = "",
) -> Dataset:
    """Load `name` (a built-in dataset, or a user's file as `FileSource.to_config()`), split it
    stratified by `seed` (unless a file brings its own validation file), standardise with train
    statistics only.

    The seed drives the split and, for generated datasets, the data itself, so one seed gives
    one reproducible problem. Raises HyperParameterError for an unknown name, a bad fraction or
    a synthetic `data_version` that is not an integer >= 1.
    """
    problem = dataset_problem(name)
    if problem is not None:
        raise HyperParameterError("dataset", name, problem)
    # Why the type ignore below: coerce returns the float kind's value as a float
    val_fraction = float(VAL_FRACTION.coerce(val_fraction))  # type: ignore[arg-type]
    classes: tuple[str, ...] = ()
    if FileSource.is_config(name):
        train_file, val_file = _file_arrays(name, data_version)
        label, classes = FileSource.from_config(name).label, train_file.classes
        if val_file is None:
            try:
                x_train, x_val, y_train, y_val = _split(
                    train_file.x, train_file.y, val_fraction, seed
                )
            except ValueError as exc:  # a class too small for a stratified split
                raise HyperParameterError("dataset.path", label, str(exc)) from None
        else:
            x_train, x_val = train_file.x, val_file.x
            y_train, y_val = train_file.y, val_file.y
        n_classes, scale = len(classes), 1.0
    else:
        label = name
        scale = synthetic_input_scale(data_version) if name == "synthetic" else 1.0
        digits_seed = 0 if name == "digits" else seed  # one cache entry for the fixed digits
        x, y = _raw_arrays(name, digits_seed)
        x_train, x_val, y_train, y_val = _split(x, y, val_fraction, seed)
        n_classes = int(y.max()) + 1
    x_train, x_val = _standardised(x_train, x_val, scale)
    input_shape = tuple(int(n) for n in x_train.shape[1:])

    def tensor(array: np.ndarray, tensor_dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(array, dtype=tensor_dtype, device=device)

    def flat(array: np.ndarray) -> np.ndarray:
        return array.reshape(len(array), -1)

    return Dataset(
        name=label,
        x_train=tensor(flat(x_train), dtype),
        y_train=tensor(y_train, torch.int64),
        x_val=tensor(flat(x_val), dtype),
        y_val=tensor(y_val, torch.int64),
        n_features=int(np.prod(input_shape)),
        n_classes=n_classes,
        input_shape=input_shape,
        classes=classes,
    )


def _split(
    x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train, val = stratified_split(y, val_fraction, seed)  # = sklearn's train_test_split
    return x[train], x[val], y[train], y[val]


def dataset_fingerprint(data: Dataset) -> str:
    """sha256 of the split, standardised arrays: two runs saw the same data iff they match."""
    digest = hashlib.sha256(data.name.encode())
    for tensor in (data.x_train, data.y_train, data.x_val, data.y_val):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
