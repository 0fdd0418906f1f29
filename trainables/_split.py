"""The stratified train/validation split, and the digits data, without importing scikit-learn.

Every trial worker loads its dataset once at start; importing scikit-learn for that costs
about a second per worker process (it pulls in SciPy). So the two things caviar used it for on
that path are done here with NumPy alone, and give exactly scikit-learn's results:

- `stratified_split` returns the indices `sklearn.model_selection.train_test_split(...,
  stratify=y, random_state=seed)` selects (StratifiedShuffleSplit's algorithm, the same calls
  on the same `numpy.random.RandomState`), so splits made before this module existed are the
  splits made now;
- `digits` reads the CSV that ships inside scikit-learn's package, as `load_digits` does,
  without importing the package.

Both are tested against scikit-learn itself (tests/trainables/test_split.py).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

__all__ = ["digits", "stratified_split"]


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: `val_fraction` of the rows, each class in proportion.

    Raises ValueError where scikit-learn would: a class with fewer than 2 rows, or fewer rows
    on either side than there are classes.
    """
    n = len(y)
    n_val = math.ceil(val_fraction * n)
    n_train = n - n_val
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(f"classes {classes[class_counts < 2].tolist()} have only 1 member")
    if min(n_train, n_val) < len(classes):
        raise ValueError(
            f"a split of {n_train} / {n_val} rows cannot hold all {len(classes)} classes"
        )
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_val, rng)
    train: list[int] = []
    val: list[int] = []
    for i in range(len(classes)):
        permutation = rng.permutation(class_counts[i])
        members = class_indices[i].take(permutation, mode="clip")
        train.extend(members[: n_i[i]])
        val.extend(members[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(val)


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """Rows per class for `n_draws` draws: floors of the proportional shares, then the largest
    remainders, ties broken by `rng` (scikit-learn's `_approximate_mode`)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: (1797, 64) float64 pixels and (1797,) int labels."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits dataset ships with scikit-learn, not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False)
