"""`trainable.model: "module:function"`: a user's network factory, checked when the spec is read.

The module is imported from the spec file's directory first, then from sys.path; the factory's
keywords become the hyperparameters the spec may search or fix (with caviar's training ones);
and the model is built once and run on a batch of two samples of the sweep's data, so a factory
that raises, or returns the wrong number of logits, is one line naming `trainable.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_spaces import ChoiceDomain, Domain
from sweeps._errors import Problem
from trainables import HYPERPARAMETERS, HyperParameter, HyperParameterError, is_factory_reference

if TYPE_CHECKING:
    from trainables import Dataset, ModelFactory

# torch and the trainables that need it are imported in the functions below, which only a spec
# with a user's network calls: a built-in MLP's spec is read without importing torch.

__all__ = [
    "KeywordEffects",
    "check_factory_builds",
    "factory_pack_problem",
    "load_model_data",
    "model_hyperparameters",
    "resolve_factory",
    "structural_keywords",
]


def resolve_factory(reference: str, base: Path) -> tuple[ModelFactory | None, list[Problem]]:
    if not is_factory_reference(reference):
        return None, []
    from trainables import load_factory

    try:
        return load_factory(reference, base), []
    except HyperParameterError as exc:
        return None, [Problem(exc.field, exc.value, exc.message)]


def model_hyperparameters(factory: ModelFactory | None) -> Mapping[str, HyperParameter]:
    return HYPERPARAMETERS if factory is None else factory.hyperparameters


def load_model_data(dataset: str, *, seed: int, val_fraction: float, data_version: str) -> Dataset:
    """The sweep's data as its trials split it: what the checks below run the network on."""
    from trainables import load_dataset

    return load_dataset(dataset, seed=seed, val_fraction=val_fraction, data_version=data_version)


def check_factory_builds(
    factory: ModelFactory, values: Mapping[str, object], data: Callable[[], Dataset]
) -> list[Problem]:
    """Build the network with `values` (the fixed keywords, the rest at their defaults) and run
    it on two training samples of `data()` in train mode: logits of shape (2, n_classes) or
    one problem."""
    import torch

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
    from trainables import vectorize_problem

    return vectorize_problem(lambda d: factory.build(d.input_shape, d.n_classes, values), data())


@dataclass(frozen=True)
class KeywordEffects:
    """What each searched factory keyword changes in the built network, as the probe saw it."""

    structural: tuple[str, ...]  # module types, shapes or plain attributes: packs split
    attributes: tuple[str, ...]  # only attributes held per member (`lift_attributes`): shared


def structural_keywords(
    factory: ModelFactory,
    fixed: Mapping[str, object],
    searched: Mapping[str, Domain],
    data: Callable[[], Dataset],
) -> KeywordEffects:
    """The searched factory keywords that change the network's structure (`network_signature`
    of the network as trained, its dropout rates, BatchNorm momentum and the like held per
    member), found by building it at the ends of each one's range (every value of a choice),
    the others fixed or at their defaults; and those that change only such lifted attributes.

    Configurations that differ only in the other keywords (an initialisation scale, a dropout
    rate) can share a pack. A keyword that matters only at values the probe does not build, or
    only together with another one, is missed; trials then split such a pack into stacks by
    the networks they build, so that costs speed, not correctness. A build that fails marks the
    keyword structural: the probe never rejects a spec.
    """
    import torch

    from trainables import BATCHNORM_LIFTED, lift_attributes, network_signature

    names = [name for name in searched if name in factory.params]
    if not names:
        return KeywordEffects((), ())
    sample = data()
    shape, classes = sample.input_shape, sample.n_classes
    base = {k: v for k, v in fixed.items() if k in factory.params}
    structural, attributes = [], []
    for name in names:
        raw: set[Hashable] = set()
        lifted: set[Hashable] = set()
        for value in _probe_values(searched[name]):
            try:
                with torch.random.fork_rng(devices=[]):
                    network = factory.build(shape, classes, {**base, name: value})
            except HyperParameterError:
                raw.add(("failed to build", repr(value)))
                lifted.add(("failed to build", repr(value)))
            else:
                raw.add(network_signature(network))
                lifted.add(
                    network_signature(
                        lift_attributes(network), batchnorm_per_member=BATCHNORM_LIFTED
                    )
                )
        if len(lifted) > 1:
            structural.append(name)
        elif len(raw) > 1:
            attributes.append(name)
    return KeywordEffects(tuple(structural), tuple(attributes))


def _probe_values(domain: Domain) -> list[object]:
    if isinstance(domain, ChoiceDomain):
        return list(domain.values)
    return [domain.from_unit(0.0), domain.from_unit(1.0)]
