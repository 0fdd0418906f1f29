"""Packs: many configurations of one shape trained together in one Ray trial.

A Ray trial costs about a second of orchestration however small the network; a pack pays it once
for all its members and trains them as stacked tensors (see docs/performance.md). Members must
share the hyperparameters that fix tensor shapes and the update rule (`trainables.pack_group`:
for the built-in MLP batch size, depth, batchnorm and optimizer, widths differ freely, padded
and masked; for a user's network the factory's keywords too). Packs are
formed in plan order within each group, so the same plan always makes the same packs and a
resumed run packs only what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sweeps.plan import MEMBERS_KEY, PACK_ID_KEY
from trainables import TrialConfig

# `pack_group` and `pack_size_auto` import torch: loaded by the functions that group, so that
# reading a spec that does not pack (`caviar validate`, `caviar best`) does not.

__all__ = ["Pack", "group_key", "pack_trial_config", "plan_packs"]


@dataclass(frozen=True)
class Pack:
    pack_id: str
    configs: list[dict[str, Any]]  # flat trial configs, driver keys included


def plan_packs(
    configs: Sequence[dict[str, Any]],
    pack: int | Literal["auto"],
    *,
    strip: tuple[str, ...],
    device: str,
    parallel_trials: int,
    auto_size: Callable[[int], int] | None = None,
) -> list[Pack]:
    """Group `configs` by shape and cut each group into packs of `pack`, or for auto of
    `auto_size(group size)` (default: `pack_size_auto` on `device`)."""
    groups: dict[object, list[dict[str, Any]]] = {}
    for config in configs:
        groups.setdefault(group_key(config, strip), []).append(config)
    packs: list[Pack] = []
    for members in groups.values():
        if pack != "auto":
            size = pack
        elif auto_size is not None:
            size = auto_size(len(members))
        else:
            from trainables import pack_size_auto

            size = pack_size_auto(device, len(members), parallel_trials=parallel_trials)
        for start in range(0, len(members), size):
            packs.append(Pack(f"p{len(packs):05d}", members[start : start + size]))
    return packs


def group_key(config: Mapping[str, Any], strip: tuple[str, ...]) -> object:
    """The shape a configuration's network and update rule have; packs share one."""
    from trainables import pack_group

    trial = TrialConfig.from_flat({k: v for k, v in config.items() if k not in strip})
    return pack_group(trial.hparams, trial.network_key)


def pack_trial_config(
    pack: Pack,
    *,
    strip: tuple[str, ...],
    describe: Mapping[str, str],
    early_stopping: dict[str, object] | None,
) -> dict[str, Any]:
    """The config of the Ray trial that trains `pack`.

    `describe` maps descriptor names (trial_id, index, origin, round) to the driver keys that
    hold them in each member's config.
    """
    members = []
    for config in pack.configs:
        flat = {k: v for k, v in config.items() if k not in strip}
        members.append({**flat, "member_id": config[describe["trial_id"]]})
    out: dict[str, Any] = {
        "members": members,
        PACK_ID_KEY: pack.pack_id,
        MEMBERS_KEY: [
            {name: config[key] for name, key in describe.items()} for config in pack.configs
        ],
    }
    if early_stopping is not None:
        out["early_stopping"] = early_stopping
    return out
