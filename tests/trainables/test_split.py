"""The split and the digits data without scikit-learn are scikit-learn's, exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import train_test_split

from trainables._split import digits, stratified_split

PACKAGE_ROOT = Path(__file__).parents[2]


def _labels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "digits": load_digits().target,
        "synthetic": make_classification(
            n_samples=2000, n_classes=5, n_informative=10, random_state=3
        )[1],
        # Uneven classes and ties in the proportional shares: the tie-breaking draws matter.
        "uneven": np.repeat(np.arange(7), [2, 3, 5, 7, 11, 13, 40]),
        "many": rng.integers(0, 40, size=997),
    }


@pytest.mark.parametrize("name", ["digits", "synthetic", "uneven", "many"])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.33, 0.5, 0.9])
def test_the_split_is_train_test_split_stratified(name: str, fraction: float) -> None:
    y = _labels()[name]
    if name == "many":
        y = y[np.isin(y, np.flatnonzero(np.bincount(y) >= 2))]  # sklearn refuses singletons
    index = np.arange(len(y))
    for seed in range(12):
        try:
            expected = train_test_split(index, test_size=fraction, stratify=y, random_state=seed)
        except ValueError:  # too few rows for the classes on one side: so must ours refuse
            with pytest.raises(ValueError):
                stratified_split(y, fraction, seed)
            continue
        train, val = stratified_split(y, fraction, seed)
        np.testing.assert_array_equal(train, expected[0])
        np.testing.assert_array_equal(val, expected[1])


def test_digits_are_load_digits() -> None:
    x, y = digits()
    bunch = load_digits()
    assert x.dtype == bunch.data.dtype and y.dtype == bunch.target.dtype
    np.testing.assert_array_equal(x, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


def test_loading_digits_does_not_import_scikit_learn() -> None:
    # A fresh interpreter: this one has imported scikit-learn for the tests above.
    code = (
        "import sys\n"
        "from trainables import load_dataset\n"
        "load_dataset('digits', seed=1)\n"
        "print('sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
