"""Which network a trial trains: the built-in MLP by name, or a user's factory by its
'module:function' reference.

Kept apart from `_factory` (which imports the factory and wraps its torch module) so that
reading a sweep spec of the built-in MLP does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from trainables._hparams import HYPERPARAMETERS, HyperParameter

__all__ = ["BUILTIN_MODEL", "BUILTIN_ONLY", "TRAINING_HYPERPARAMETERS", "is_factory_reference"]

BUILTIN_MODEL = "bn_mlp"
# The built-in MLP's shape; a user's network has its own.
BUILTIN_ONLY = ("hidden", "depth", "batchnorm", "bn_momentum")
TRAINING_HYPERPARAMETERS: Mapping[str, HyperParameter] = MappingProxyType(
    {name: hp for name, hp in HYPERPARAMETERS.items() if name not in BUILTIN_ONLY}
)


def is_factory_reference(model: object) -> bool:
    return isinstance(model, str) and model != BUILTIN_MODEL and ":" in model
