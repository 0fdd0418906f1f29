"""The keys caviar adds to a Ray trial's config besides the configuration itself: which planned
point a trial is (the driver's keys, removed before the trainable sees the config), and a
pack's members and id (read by the driver only; the trainable gets `members`)."""

from __future__ import annotations

__all__ = [
    "DRIVER_KEYS",
    "INDEX_KEY",
    "MEMBERS_KEY",
    "ORIGIN_KEY",
    "PACK_ID_KEY",
    "ROUND_KEY",
    "TRIAL_KEY",
]

TRIAL_KEY = "caviar_trial_id"
INDEX_KEY = "caviar_config_index"
ORIGIN_KEY = "caviar_origin"
ROUND_KEY = "caviar_round"
DRIVER_KEYS = (TRIAL_KEY, INDEX_KEY, ORIGIN_KEY, ROUND_KEY)

MEMBERS_KEY = "caviar_members"  # one descriptor per member: trial id, index, origin, round
PACK_ID_KEY = "caviar_pack_id"
