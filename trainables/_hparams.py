"""The model hyperparameters, declared once with their constraints.

Every check and every error message is generated from the declarations in `HYPERPARAMETERS`, so
each hyperparameter is validated the same way and the spec loader, the Ray trainable and the docs
all read one list.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Literal

Kind = Literal["float", "int", "bool", "str"]


class HyperParameterError(ValueError):
    """A hyperparameter (or trial setting) the user gave is unknown or out of its bounds.

    Carries the field name and the offending value so callers can report them with a field path.
    """

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}: {message} (got {value!r})")

    def __reduce__(self) -> tuple[type[HyperParameterError], tuple[str, object, str]]:
        # Ray ships a worker's exception to the driver by pickling it; the default reduce
        # would call __init__ with the formatted message only.
        return (type(self), (self.field, self.value, self.message))


def _format_bound(bound: float) -> str:
    # Integral bounds read better without a trailing ".0": "[1, 8192]" rather than "[1.0, 8192.0]".
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


@dataclass(frozen=True)
class HyperParameter:
    """One declared setting: its type, default, documentation and admissible values.

    Immutable and self-describing so that error messages, docs and search-space checks can all be
    generated from the declaration instead of being written by hand in several places.
    """

    name: str
    kind: Kind
    default: object
    doc: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[object, ...] | None = None

    def __post_init__(self) -> None:
        # A declaration whose own default is invalid is a programming error; catch it at import.
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(
                f"{self.name}: low < high must hold, but got low={self.low}, high={self.high}"
            )
        problem = self.check(self.default)
        if problem is not None:
            raise ValueError(f"{self.name}: default {self.default!r} is invalid: {problem}")

    @property
    def constraint(self) -> str | None:
        """The admissible values in words (e.g. "in [0, 1)"), for messages and docs."""
        if self.choices is not None:
            return f"one of {sorted(map(str, self.choices))}"
        if self.low is not None and self.high is not None:
            left = "[" if self.low_inclusive else "("
            right = "]" if self.high_inclusive else ")"
            return f"in {left}{_format_bound(self.low)}, {_format_bound(self.high)}{right}"
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {_format_bound(self.low)}"
        if self.high is not None:
            return f"{'<=' if self.high_inclusive else '<'} {_format_bound(self.high)}"
        return None

    def check(self, value: object) -> str | None:
        """None if `value` is admissible, else why not ("must be > 0", "must be an integer")."""
        type_problem = _type_problem(self.kind, value)
        if type_problem is not None:
            return type_problem
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.constraint}"
        if self.kind in ("float", "int"):
            number = float(value)  # type: ignore[arg-type]  # _type_problem proved it is Real
            if not self._within_bounds(number):
                return f"must be {self.constraint}"
        return None

    def coerce(self, value: object) -> object:
        """`value` as the declared Python type (numpy scalars and 3 for 3.0 included).

        Raises HyperParameterError when `value` is not admissible.
        """
        problem = self.check(value)
        if problem is not None:
            raise HyperParameterError(self.name, value, problem)
        if self.kind == "float":
            # Why the type ignore below: check() above accepted value as a number
            return float(value)  # type: ignore[arg-type]
        if self.kind == "int":
            # Why the type ignore below: check() above accepted value as an integer
            return int(value)  # type: ignore[call-overload]
        if self.kind == "bool":
            return bool(value)
        return str(value)

    def _within_bounds(self, number: float) -> bool:
        if self.low is not None and (
            number < self.low or (number == self.low and not self.low_inclusive)
        ):
            return False
        return not (
            self.high is not None
            and (number > self.high or (number == self.high and not self.high_inclusive))
        )


def _is_bool(value: object) -> bool:
    # numpy.bool_ is neither bool nor Integral, so it is recognised by name to stay numpy-free.
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def _type_problem(kind: Kind, value: object) -> str | None:
    if kind == "bool":
        return None if _is_bool(value) else "must be a boolean"
    if kind == "str":
        return None if isinstance(value, str) else "must be a string"
    # Numbers: bools are Integral in Python, but a True learning rate is surely a mistake.
    if _is_bool(value) or not isinstance(value, numbers.Real):
        return "must be an integer" if kind == "int" else "must be a number"
    if not math.isfinite(float(value)):
        return "must be finite"
    if kind == "int" and not float(value).is_integer():
        return "must be an integer"
    return None


def declare(parameters: Iterable[HyperParameter]) -> Mapping[str, HyperParameter]:
    """A read-only, ordered name → declaration mapping."""
    return MappingProxyType({parameter.name: parameter for parameter in parameters})


HYPERPARAMETERS: Mapping[str, HyperParameter] = declare(
    [
        HyperParameter("lr", "float", 0.01, "Base learning rate.", low=0.0, high=10.0,
                       low_inclusive=False),
        HyperParameter("beta", "float", 0.9,
                       "Momentum of SGD with momentum (optimizer 'momentum' only), in PyTorch's "
                       "form: v <- beta * v + grad, w <- w - lr * v.",
                       low=0.0, high=1.0, high_inclusive=False),
        HyperParameter("beta1", "float", 0.9, "Adam's first-moment decay (optimizer 'adam' only).",
                       low=0.0, high=1.0, high_inclusive=False),
        HyperParameter("beta2", "float", 0.999,
                       "Adam's second-moment decay (optimizer 'adam' only).",
                       low=0.0, high=1.0, high_inclusive=False),
        HyperParameter("eps", "float", 1e-8, "Adam's denominator epsilon (optimizer 'adam' only).",
                       low=0.0, low_inclusive=False),
        HyperParameter("weight_decay", "float", 0.0,
                       "L2 penalty added to every parameter's gradient by the optimizer (coupled, "
                       "also for Adam; BatchNorm's gamma and beta included).",
                       low=0.0),
        HyperParameter("lr_decay", "str", "none",
                       "Learning-rate schedule over epochs: 'none' keeps lr constant; "
                       "'inverse_time' uses lr / (1 + decay_rate * t); 'exponential' uses "
                       "lr * exp(-decay_rate * t), where t is the number of completed epochs.",
                       choices=("none", "inverse_time", "exponential")),
        HyperParameter("decay_rate", "float", 0.0,
                       "Rate of the lr_decay schedule (ignored when lr_decay is 'none').",
                       low=0.0),
        HyperParameter("hidden", "int", 64, "Width of every hidden layer.", low=1, high=8192),
        HyperParameter("depth", "int", 2, "Number of hidden (Linear → BatchNorm → ReLU) blocks.",
                       low=1, high=32),
        HyperParameter("batch_size", "int", 64,
                       "Training mini-batch size; at least 2 when batchnorm is on.",
                       low=1, high=65536),
        HyperParameter("batchnorm", "bool", True,
                       "Normalise every hidden layer with BatchNorm1d; off gives a plain MLP "
                       "with biases."),
        HyperParameter("bn_momentum", "float", 0.1,
                       "PyTorch's BatchNorm momentum: weight of the newest batch in the running "
                       "(EWMA) mean and variance used at evaluation time.",
                       low=0.0, high=1.0, low_inclusive=False),
        HyperParameter("optimizer", "str", "momentum",
                       "'sgd' is plain SGD (beta ignored); 'momentum' is SGD with momentum beta; "
                       "'adam' is Adam(beta1, beta2, eps).",
                       choices=("sgd", "momentum", "adam")),
    ]
)  # fmt: skip


def unknown_name_error(
    name: str, value: object, valid: Iterable[str], *, what: str = "hyperparameter"
) -> HyperParameterError:
    """The error for a name that is not declared, listing the valid ones."""
    return HyperParameterError(name, value, f"unknown {what}; valid names are {sorted(valid)}")


def _cross_field_errors(values: Mapping[str, object]) -> list[HyperParameterError]:
    # BatchNorm in training mode cannot normalise a batch of one sample (zero variance).
    if values["batchnorm"] and values["batch_size"] == 1:
        return [
            HyperParameterError(
                "batch_size", 1, "must be >= 2 when batchnorm is true (BatchNorm needs 2 samples)"
            )
        ]
    return []


def hyperparameter_errors(values: Mapping[str, object]) -> list[HyperParameterError]:
    """Every problem with a (partial) hyperparameter mapping at once, for all-errors reporting."""
    errors = [
        unknown_name_error(name, value, HYPERPARAMETERS)
        for name, value in values.items()
        if name not in HYPERPARAMETERS
    ]
    resolved: dict[str, object] = {}
    for name, parameter in HYPERPARAMETERS.items():
        value = values.get(name, parameter.default)
        problem = parameter.check(value)
        if problem is None:
            resolved[name] = parameter.coerce(value)
        else:
            errors.append(HyperParameterError(name, value, problem))
    if len(resolved) == len(HYPERPARAMETERS):
        errors.extend(_cross_field_errors(resolved))
    return errors


@dataclass(frozen=True)
class HParams:
    """A validated, fully resolved set of model hyperparameters.

    Checks itself on construction so that training code can trust every field; see
    `HYPERPARAMETERS` for what each one means.
    """

    lr: float = 0.01
    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_decay: str = "none"
    decay_rate: float = 0.0
    hidden: int = 64
    depth: int = 2
    batch_size: int = 64
    batchnorm: bool = True
    bn_momentum: float = 0.1
    optimizer: str = "momentum"

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        errors = hyperparameter_errors(values)
        if errors:
            raise errors[0]
        for name, value in values.items():
            # Normalise numpy scalars and ints-for-floats so equality and hashing behave.
            object.__setattr__(self, name, HYPERPARAMETERS[name].coerce(value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> HParams:
        """Validate a partial mapping (e.g. a flat Tune config's model keys); defaults fill gaps."""
        errors = hyperparameter_errors(values)
        if errors:
            raise errors[0]
        # Why the type ignore below: hyperparameter_errors above checked every name and type
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Plain name → value mapping, in declaration order."""
        return {name: getattr(self, name) for name in HYPERPARAMETERS}
