"""A user's network: `make(input_shape, n_classes, **hyperparameters) -> nn.Module` (logits).

caviar trains it with its own loop (softmax cross-entropy, optimizer, checkpoints, panda), so
the factory only builds the network. Its keyword parameters are its hyperparameters: each is
declared as a `HyperParameter` whose kind comes from its default (a float default makes a float
hyperparameter), so the spec checks, the `trials` columns and their dtypes are generated from
the factory exactly as they are for the built-in MLP.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from trainables._hparams import HYPERPARAMETERS, HyperParameter, HyperParameterError, Kind
from trainables._job_paths import local_path
from trainables._model_choice import TRAINING_HYPERPARAMETERS

__all__ = ["ModelFactory", "import_callable", "load_factory", "load_training_function"]

_POSITIONAL = ("input_shape", "n_classes")
_KINDS: dict[type, Kind] = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class ModelFactory:
    """A resolved factory: where it came from and its keyword hyperparameters."""

    reference: str  # "module:function"
    directory: str  # imported from here first ("" for sys.path only)
    function: Callable[..., Any]
    params: Mapping[str, HyperParameter]

    @property
    def hyperparameters(self) -> Mapping[str, HyperParameter]:
        """What a spec may fix or search with this model: the factory's keywords and caviar's
        training hyperparameters."""
        return MappingProxyType({**TRAINING_HYPERPARAMETERS, **self.params})

    def build(
        self, input_shape: tuple[int, ...], n_classes: int, values: Mapping[str, object]
    ) -> nn.Module:
        """The user's network behind an adapter that takes caviar's flat batches."""
        kwargs = {name: values.get(name, hp.default) for name, hp in self.params.items()}
        try:
            module = self.function(tuple(input_shape), int(n_classes), **kwargs)
        except Exception as exc:  # the user's code: its message, in one line
            raise HyperParameterError("trainable.model", self.reference, _first_line(exc)) from None
        if not isinstance(module, nn.Module):
            message = f"must return a torch.nn.Module, returned {type(module).__name__}"
            raise HyperParameterError("trainable.model", self.reference, message)
        return ShapedInput(module, tuple(input_shape))


class ShapedInput(nn.Module):
    """Gives the network its samples in their own shape: caviar's datasets hold them flat."""

    def __init__(self, network: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.network = network
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.view(x.shape[0], *self.input_shape))


def import_callable(reference: str, directory: str | Path, field: str) -> Callable[..., Any]:
    """`module:function`, imported from `directory` first (the spec's), then from sys.path.

    Raises HyperParameterError (`field`) naming what is wrong: the form, a missing module or
    function, or the module's own error while importing.
    """
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name.isidentifier():
        raise HyperParameterError(field, reference, "must be 'module:function'")
    where = local_path(str(directory))
    if where and where not in sys.path:
        sys.path.insert(0, where)
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            message = f"no module {module_name!r} in {where or 'sys.path'} or on sys.path"
        else:
            message = f"importing {module_name!r} failed: {_first_line(exc)}"
        raise HyperParameterError(field, reference, message) from None
    except Exception as exc:  # the user's module raised while importing
        message = f"importing {module_name!r} failed: {_first_line(exc)}"
        raise HyperParameterError(field, reference, message) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        message = f"module {module_name!r} has no function {function_name!r}"
        raise HyperParameterError(field, reference, message)
    return function


def load_factory(reference: str, directory: str | Path = "") -> ModelFactory:
    """The factory `module:function` (see `import_callable`), its keywords declared.

    Raises HyperParameterError (field `trainable.model`) for what `import_callable` refuses,
    a signature that does not take (input_shape, n_classes), or a keyword without a default.
    """
    if reference.partition(":")[0] == "":
        raise HyperParameterError(
            "trainable.model", reference, "must be 'bn_mlp' or 'module:function'"
        )
    function = import_callable(reference, directory, "trainable.model")
    return ModelFactory(reference, str(directory), function, _declared_params(reference, function))


def load_training_function(reference: str, directory: str | Path = "") -> Callable[..., Any]:
    """A whole training function `train(config, report) -> None` (`trainable.function`)."""
    function = import_callable(reference, directory, "trainable.function")
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as exc:
        raise HyperParameterError("trainable.function", reference, str(exc)) from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.default is p.empty and p.kind in positional]
    if len(parameters) < 2 or len(required) > 2:
        message = "must take (config, report): config a dict, report(**metrics) once per epoch"
        raise HyperParameterError("trainable.function", reference, message)
    return function


def _declared_params(reference: str, function: Callable[..., Any]) -> Mapping[str, HyperParameter]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise HyperParameterError("trainable.model", reference, str(exc)) from None
    parameters = list(signature.parameters.values())
    positional = [p.name for p in parameters[:2]]
    if positional != list(_POSITIONAL):
        message = f"must take (input_shape, n_classes, **hyperparameters); takes {signature}"
        raise HyperParameterError("trainable.model", reference, message)
    declared: dict[str, HyperParameter] = {}
    for p in parameters[2:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            message = f"keyword {p.name!r} needs a default (its value when a spec leaves it out)"
            raise HyperParameterError("trainable.model", reference, message)
        if p.name in HYPERPARAMETERS:
            message = f"keyword {p.name!r} is one of caviar's training hyperparameters; rename it"
            raise HyperParameterError("trainable.model", reference, message)
        kind = _KINDS.get(type(p.default))
        if kind is None:
            message = (
                f"keyword {p.name!r} defaults to a {type(p.default).__name__}; "
                "hyperparameters are bool, int, float or str"
            )
            raise HyperParameterError("trainable.model", reference, message)
        doc = f"A keyword of {reference}."
        declared[p.name] = HyperParameter(p.name, kind, p.default, doc)
    return MappingProxyType(declared)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
