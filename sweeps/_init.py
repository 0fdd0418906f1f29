"""`caviar init DIR`: a starter project that `caviar validate` and `caviar run` accept as
written: a spec, a model-factory module and a small data file, each saying what to change."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sweeps._errors import Problem, SpecError

__all__ = ["init_project"]

SPEC_FILE = "sweep.yaml"
MODEL_FILE = "model.py"
DATA_FILE = "data/train.csv"

_SPEC = """\
# A starter sweep: your network (model.py) on your data (data/train.csv). Change what the
# comments say; `caviar validate sweep.yaml --explain` shows the plan before anything runs.
name: {name}                      # [a-z0-9][a-z0-9_-]*; results go to results/{name}/
objective: {{metric: val_accuracy, mode: max}}
trainable:
  model: model:make             # module:function beside this file; or bn_mlp, the built-in MLP
  # Your table: `target` is the label column (strings or integers); every other column is a
  # feature unless `features: [..]` lists them. .parquet and .npz files work too.
  dataset: {{path: {data}, target: label}}
  epochs: 10
  fixed: {{optimizer: momentum, batch_size: 32}}
search_space:
  lr:    {{type: float, low: 1.0e-3, high: 1.0, scale: log}}          # each decade equally often
  beta:  {{type: float, low: 0.8, high: 0.99, scale: reverse_log}}    # 1 - beta log-uniform
  width: {{type: int, low: 8, high: 128, scale: log}}                 # a keyword of model.make
# Round 1 samples the whole space; each next round samples a box around the best so far.
strategy: {{kind: coarse_to_fine, rounds: 3, per_round: 8}}
seed: 0
"""

_MODEL = '''\
"""Your network: caviar calls make(input_shape, n_classes, **hyperparameters) for each
configuration and trains what it returns (softmax cross-entropy on the logits).

Each keyword with a default is a hyperparameter: search it in sweep.yaml's search_space, fix it
in trainable.fixed, or leave it out to use the default. Replace the body with your own model.
"""

from torch import nn


def make(input_shape: tuple[int, ...], n_classes: int, width: int = 32) -> nn.Module:
    (n_features,) = input_shape  # a table's row; an .npz of images gives (C, H, W)
    return nn.Sequential(
        nn.Linear(n_features, width, bias=False),  # BatchNorm's shift replaces the bias
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, n_classes),  # logits
    )
'''


def init_project(directory: Path) -> list[Path]:
    """Write the starter files into `directory` (new or empty); returns them. Refuses, writing
    nothing, when the directory holds anything already."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        message = "exists and is not an empty directory; caviar init writes a new project"
        raise SpecError([Problem("DIR", str(directory), message)])
    name = re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-_") or "sweep"
    if not name[0].isalnum():
        name = f"sweep-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir()
    files = [directory / SPEC_FILE, directory / MODEL_FILE, directory / DATA_FILE]
    files[0].write_text(_SPEC.format(name=name[:64], data=DATA_FILE), encoding="utf-8")
    files[1].write_text(_MODEL, encoding="utf-8")
    files[2].write_text(_starter_table(), encoding="utf-8")
    return files


def _starter_table(n: int = 300, seed: int = 0) -> str:
    """Three overlapping classes in four numeric columns, labels as strings: small enough to
    read, hard enough that the learning rate matters."""
    rng = np.random.default_rng(seed)
    labels = np.array(["apple", "banana", "cherry"])
    y = rng.integers(0, 3, size=n)
    centres = rng.normal(scale=1.5, size=(3, 4))
    x = centres[y] + rng.normal(size=(n, 4))
    lines = ["weight,length,colour_score,sweetness,label"]
    lines += [
        ",".join(f"{v:.4f}" for v in row) + f",{labels[c]}" for row, c in zip(x, y, strict=True)
    ]
    return "\n".join(lines) + "\n"
