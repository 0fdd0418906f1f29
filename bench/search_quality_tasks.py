"""The real tuning tasks of the search-quality benchmark: networks trained on local data.

Each task is what a user tunes: a BatchNorm network, a dataset, 5-6 hyperparameters on log,
reverse-log, int and choice scales, a few epochs. They are chosen so that the hyperparameters
matter a great deal (random search's best of 32 is far from the best found with 128), unlike
the digits MLP whose methods all land within a validation image or two of each other.

A method's batch of configurations is trained as one pack (`run_packed_training`), exactly as
caviar trains a round with `pack`, so a 128-evaluation run costs seconds to a minute instead of
minutes. Seed s fixes the data split (and mnist1d's generated data) and every member's
initialisation and shuffling: seed s of every method searches the same problem.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from search_quality_problems import Objective

if TYPE_CHECKING:
    from trainables import Dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "sweeps" / "examples"


@dataclass(frozen=True)
class TrainingTask:
    """One tuning problem: the space searched, what is fixed, and how a configuration scores.

    `metric` is the validation accuracy (maximised; the objective returns minus it) or the
    validation cross-entropy (minimised). A diverged run scores NaN, which every method ranks
    worst. `model` is a factory `module:function` of `sweeps/examples` (None: caviar's MLP).
    """

    name: str
    space: Mapping[str, Mapping[str, object]]
    fixed: Mapping[str, object]
    epochs: int
    metric: Literal["val_accuracy", "val_loss"]
    dataset: str
    model: str | None = None
    note: str = field(default="", compare=False)

    def data(self, seed: int) -> Dataset:
        from trainables import FileSource, load_dataset

        if self.dataset == "breast_cancer":
            source = FileSource(str(_breast_cancer_file()), target="diagnosis")
            return load_dataset(source.to_config(), seed=seed)
        if self.dataset == "digits_images":
            source = FileSource(str(EXAMPLES / "data" / "digits_images.npz"))
            return load_dataset(source.to_config(), seed=seed)
        if self.dataset == "digits_jittered":
            source = FileSource(str(_jittered_digits_file()))
            return load_dataset(source.to_config(), seed=seed)
        return load_dataset(self.dataset, seed=seed)

    def objective(self, seed: int) -> Objective:
        """Losses of a batch of configurations, trained together as one pack."""
        import torch

        from trainables import HParams, PackMember, load_factory, run_packed_training

        torch.set_num_threads(1)
        data = self.data(seed)
        factory = None if self.model is None else load_factory(self.model, EXAMPLES)
        keywords = set() if factory is None else set(factory.params)

        def member(config: Mapping[str, object]) -> PackMember:
            values = {**self.fixed, **config}
            hp = HParams.from_mapping({k: v for k, v in values.items() if k not in keywords})
            if factory is None:
                return PackMember(hp, seed, data)
            network_values = {k: v for k, v in values.items() if k in keywords}

            def network(d, values=network_values):
                return factory.build(d.input_shape, d.n_classes, values)

            # Every keyword is treated as structural: a pack then never mixes architectures.
            return PackMember(hp, seed, data, network, tuple(sorted(network_values.items())))

        def loss(configs: Sequence[Mapping[str, object]]) -> np.ndarray:
            results = run_packed_training([member(c) for c in configs], epochs=self.epochs)
            out = []
            for history in results:
                last = history[-1]
                if last.diverged:
                    out.append(np.nan)
                elif self.metric == "val_accuracy":
                    out.append(-last.val_accuracy)
                else:
                    out.append(last.val_loss)
            return np.asarray(out, dtype=np.float64)

        return loss


def _generated_file(name: str, write: Callable[[Path], None]) -> Path:
    """`name` in the temporary directory, written by `write` once per machine and user; a
    partial file is renamed into place, so concurrent workers never read half of one."""
    path = Path(tempfile.gettempdir()) / f"caviar-bench-{name.replace('.', f'-{os.getuid()}.')}"
    if not path.exists():
        partial = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
        write(partial)
        partial.replace(path)
    return path


@functools.cache
def _breast_cancer_file() -> Path:
    """scikit-learn's bundled breast-cancer table as a Parquet file: the user's-table path."""

    def write(path: Path) -> None:
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "diagnosis"})
        frame["diagnosis"] = np.where(frame["diagnosis"] == 1, "benign", "malignant")
        frame.to_parquet(path)

    return _generated_file("breast-cancer.parquet", write)


@functools.cache
def _jittered_digits_file() -> Path:
    """The digits images made harder, as a user's `.npz`: each 8x8 digit at a random place on a
    10x10 canvas, with pixel noise. A CNN must learn where a stroke is not fixed, and the
    bundled digits' ceiling (~99 % after two epochs) no longer hides the methods' differences.
    Generated with a fixed seed, so every run and seed of the benchmark sees the same images."""

    def write(path: Path) -> None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        rng = np.random.default_rng(0)
        n = len(bunch.target)
        canvas = np.zeros((n, 1, 10, 10), dtype=np.float32)
        rows, cols = rng.integers(0, 3, n), rng.integers(0, 3, n)
        for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
            canvas[i, 0, r : r + 8, c : c + 8] = bunch.images[i]
        canvas += rng.normal(0.0, 1.0, canvas.shape).astype(np.float32)
        with path.open("wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, x=canvas, y=bunch.target.astype(np.int64))

    return _generated_file("digits-jittered.npz", write)


_LR = {"type": "float", "low": 1e-3, "high": 3.0, "scale": "log"}
_BETA = {"type": "float", "low": 0.5, "high": 0.999, "scale": "reverse_log"}
_WEIGHT_DECAY = {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"}

# Both image tasks: the worked example's CNN, searched and trained alike; only the data differ.
_CNN: dict = {
    "space": {
        "lr": {"type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
        "beta": _BETA,
        "channels": {"type": "choice", "values": [4, 8, 16]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "weight_decay": _WEIGHT_DECAY,
    },
    "fixed": {"optimizer": "momentum", "batch_size": 64},
    "epochs": 2,
    "metric": "val_accuracy",
    "model": "digits_cnn:make",
}

TASKS: tuple[TrainingTask, ...] = (
    TrainingTask(
        name="mnist1d-mlp",
        space={
            "lr": _LR,
            "beta": _BETA,
            "hidden": {"type": "int", "low": 16, "high": 512, "scale": "log"},
            "batch_size": {"type": "choice", "values": [32, 64, 128, 256]},
            "weight_decay": _WEIGHT_DECAY,
        },
        fixed={"depth": 2, "optimizer": "momentum"},
        epochs=4,
        metric="val_accuracy",
        dataset="mnist1d",
        note="caviar's BatchNorm MLP on MNIST-1D (4,000 training, 1,000 validation samples)",
    ),
    TrainingTask(
        name="digits-cnn",
        **_CNN,
        dataset="digits_images",
        note="the worked example's BatchNorm CNN (sweeps/examples/digits_cnn.py) on 8x8 digits",
    ),
    TrainingTask(
        name="digits-jitter-cnn",
        **_CNN,
        dataset="digits_jittered",
        note="the same CNN on the digits shifted about a 10x10 canvas, with pixel noise",
    ),
    TrainingTask(
        name="breast-cancer-table",
        space={
            "lr": _LR,
            "beta": _BETA,
            "hidden": {"type": "int", "low": 4, "high": 256, "scale": "log"},
            "batch_size": {"type": "choice", "values": [16, 32, 64, 128]},
            "weight_decay": _WEIGHT_DECAY,
            "depth": {"type": "choice", "values": [1, 2, 3]},
        },
        fixed={"optimizer": "momentum"},
        epochs=10,
        metric="val_loss",
        dataset="breast_cancer",
        note="caviar's BatchNorm MLP on scikit-learn's breast-cancer table, read from Parquet",
    ),
)
