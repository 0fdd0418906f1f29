"""The config of a packed Ray trial, parsed and validated without Ray.

`{"members": [member, ...], "early_stopping": {...}}` where each member is exactly the flat
config `train_bn_mlp` accepts plus an opaque `member_id` that the sweep layer uses to map
results back to its configurations. Every problem is reported at once with a field path
(`members[3].lr`), as for single trials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from trainables._hparams import HyperParameterError, unknown_name_error
from trainables._train import EpochResult
from trainables._trial_config import TrialConfig, trial_config_errors
from trainables.packing._halving import SuccessiveHalving

MEMBER_ID = "member_id"
# Settings every member of a pack must share: one pack trains on one dataset split size for
# one number of epochs (its members advance epoch by epoch together) and checkpoints as one.
SHARED_SETTINGS: tuple[str, ...] = (
    "model", "dataset", "val_fraction", "epochs", "checkpoint_every", "precision",
)  # fmt: skip
PACK_KEYS: tuple[str, ...] = ("members", "early_stopping")
# What each member's entry in a pack's per-epoch report holds, in order.
MEMBER_METRICS: tuple[str, ...] = (
    MEMBER_ID, "epoch", "train_loss", "val_loss", "val_accuracy", "lr", "diverged", "stopped",
)  # fmt: skip


@dataclass(frozen=True)
class PackMemberConfig:
    """One configuration of a pack: the caller's id and its validated trial config."""

    member_id: str
    trial: TrialConfig


@dataclass(frozen=True)
class PackConfig:
    """A validated pack: its members and the optional in-pack early-stopping rule."""

    members: tuple[PackMemberConfig, ...]
    early_stopping: SuccessiveHalving | None = None

    @property
    def dataset(self) -> str:
        return self.members[0].trial.dataset

    @property
    def val_fraction(self) -> float:
        return self.members[0].trial.val_fraction

    @property
    def epochs(self) -> int:
        return self.members[0].trial.epochs

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> PackConfig:
        """Parse a packed trial's config; raises the first HyperParameterError.

        `pack_config_errors` lists them all.
        """
        errors = pack_config_errors(config)
        if errors:
            raise errors[0]
        members = tuple(
            PackMemberConfig(
                str(member[MEMBER_ID]),
                TrialConfig.from_flat({k: v for k, v in member.items() if k != MEMBER_ID}),
            )
            for member in cast(list[Mapping[str, object]], config["members"])  # checked above
        )
        stopping = config.get("early_stopping")
        # Why the type ignore below: pack_config_errors checked early_stopping's keys and types
        return cls(members, SuccessiveHalving(**stopping) if stopping else None)  # type: ignore[arg-type]


def pack_config_errors(config: Mapping[str, object]) -> list[HyperParameterError]:
    """Every problem with a packed trial's config at once, each with its field path."""
    errors = [
        unknown_name_error(key, value, PACK_KEYS, what="pack setting")
        for key, value in config.items()
        if key not in PACK_KEYS
    ]
    members = config.get("members")
    if not isinstance(members, Sequence) or isinstance(members, str) or not members:
        errors.append(
            HyperParameterError("members", members, "must be a non-empty list of member configs")
        )
    else:
        errors += _member_errors(members)
    stopping = config.get("early_stopping")
    if stopping is not None:
        errors += _early_stopping_errors(stopping)
    return errors


def _member_errors(members: Sequence[object]) -> list[HyperParameterError]:
    errors: list[HyperParameterError] = []
    seen_ids: dict[str, int] = {}
    first_valid: tuple[int, TrialConfig] | None = None
    for index, member in enumerate(members):
        path = f"members[{index}]"
        if not isinstance(member, Mapping):
            errors.append(HyperParameterError(path, member, "must be a mapping"))
            continue
        member_id = member.get(MEMBER_ID)
        if not isinstance(member_id, str) or not member_id:
            errors.append(
                HyperParameterError(f"{path}.{MEMBER_ID}", member_id, "must be a non-empty string")
            )
        elif member_id in seen_ids:
            message = f"must be unique, but members[{seen_ids[member_id]}] has it too"
            errors.append(HyperParameterError(f"{path}.{MEMBER_ID}", member_id, message))
        else:
            seen_ids[member_id] = index
        flat = {k: v for k, v in member.items() if k != MEMBER_ID}
        member_errors = trial_config_errors(flat)
        errors += [
            HyperParameterError(f"{path}.{e.field}", e.value, e.message) for e in member_errors
        ]
        if member_errors:
            continue
        trial = TrialConfig.from_flat(flat)
        if first_valid is None:
            first_valid = (index, trial)
            continue
        first_index, first = first_valid
        for name in SHARED_SETTINGS:
            if getattr(trial, name) != getattr(first, name):
                message = (
                    f"must equal members[{first_index}].{name}={getattr(first, name)!r}: the "
                    f"members of a pack share {', '.join(SHARED_SETTINGS)}"
                )
                errors.append(HyperParameterError(f"{path}.{name}", getattr(trial, name), message))
    return errors


def _early_stopping_errors(stopping: object) -> list[HyperParameterError]:
    if not isinstance(stopping, Mapping):
        return [HyperParameterError("early_stopping", stopping, "must be a mapping")]
    valid = ("metric", "mode", "grace_period", "reduction_factor")
    errors = [
        unknown_name_error(f"early_stopping.{key}", value, valid, what="early-stopping setting")
        for key, value in stopping.items()
        if key not in valid
    ]
    if errors:
        return errors
    try:
        SuccessiveHalving(**stopping)
    except HyperParameterError as error:
        return [error]
    return []


def member_metrics(member_id: str, result: EpochResult, *, stopped: bool) -> dict[str, Any]:
    """One member's entry in a pack's per-epoch report (keys: `MEMBER_METRICS`)."""
    return {MEMBER_ID: member_id, **asdict(result), "stopped": stopped}
