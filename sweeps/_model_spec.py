"""`trainable.model: "module:function"`: a user's network factory, checked when the spec is read.

The module is imported from the spec file's directory first, then from sys.path; the factory's
keywords become the hyperparameters the spec may search or fix (with caviar's training ones);
and the model is built once and run on a batch of two samples of the sweep's data, so a factory
that raises, or returns the wrong number of logits, is one line naming `trainable.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from sweeps._errors import Problem
from trainables import (
    HYPERPARAMETERS,
    Dataset,
    HyperParameter,
    HyperParameterError,
    ModelFactory,
    is_factory_reference,
    load_dataset,
    load_factory,
    vectorize_problem,
)

__all__ = [
    "check_factory_builds",
    "factory_pack_problem",
    "load_model_data",
    "model_hyperparameters",
    "resolve_factory",
]


def resolve_factory(reference: str, base: Path) -> tuple[ModelFactory | None, list[Problem]]:
    if not is_factory_reference(reference):
        return None, []
    try:
        return load_factory(reference, base), []
    except HyperParameterError as exc:
        return None, [Problem(exc.field, exc.value, exc.message)]


def model_hyperparameters(factory: ModelFactory | None) -> Mapping[str, HyperParameter]:
    return HYPERPARAMETERS if factory is None else factory.hyperparameters


def load_model_data(dataset: str, *, seed: int, val_fraction: float, data_version: str) -> Dataset:
    """The sweep's data as its trials split it: what the checks below run the network on."""
    return load_dataset(dataset, seed=seed, val_fraction=val_fraction, data_version=data_version)


def check_factory_builds(
    factory: ModelFactory, values: Mapping[str, object], data: Callable[[], Dataset]
) -> list[Problem]:
    """Build the network with `values` (the fixed keywords, the rest at their defaults) and run
    it on two training samples of `data()` in train mode: logits of shape (2, n_classes) or
    one problem."""
    loaded = data()
    try:
        model = factory.build(loaded.input_shape, loaded.n_classes, values).to(loaded.dtype)
        with torch.no_grad():
            logits = model(loaded.x_train[:2])
    except HyperParameterError as exc:
        return [Problem(exc.field, exc.value, exc.message)]
    except Exception as exc:  # the user's forward pass
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        message = f"the model failed on a batch of 2 samples of shape {loaded.input_shape}: "
        message += f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        return [Problem("trainable.model", factory.reference, message)]
    wanted = (2, loaded.n_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != wanted:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        message = f"must return logits of shape {wanted} for 2 samples, returned {got}"
        return [Problem("trainable.model", factory.reference, message)]
    return []


def factory_pack_problem(
    factory: ModelFactory, values: Mapping[str, object], data: Callable[[], Dataset]
) -> str | None:
    """Why the network (built with `values`, the rest at their defaults) cannot be packed:
    two copies trained for one small vectorized epoch on `data()`; None when they can."""
    return vectorize_problem(lambda d: factory.build(d.input_shape, d.n_classes, values), data())
