"""What a sweep plans, as values: its points (`Point`, an adaptive strategy's `PlannedPoint`),
where each came from (`Origin`), its trial id and seed, the interface of an adaptive strategy
(`Proposer`), how a trial ended and what it scored, what the terminal shows (`Progress`) and
the keys caviar adds to a trial's config. The lowest layer of `sweeps` above its errors: no
Ray, no I/O, nothing imported from the layers above."""

from sweeps.plan._config_keys import (
    DRIVER_KEYS,
    INDEX_KEY,
    MEMBERS_KEY,
    ORIGIN_KEY,
    PACK_ID_KEY,
    ROUND_KEY,
    TRIAL_KEY,
)
from sweeps.plan._points import Origin, PlannedPoint, Point, trial_id_of, trial_seed
from sweeps.plan._progress import Progress
from sweeps.plan._proposer import Proposer
from sweeps.plan._trial_outcome import (
    SCORED,
    STATUSES,
    Status,
    babysat_status,
    ended_by_itself,
    recorded_score,
    reported_score,
    trial_status,
)

__all__ = [
    "DRIVER_KEYS",
    "INDEX_KEY",
    "MEMBERS_KEY",
    "ORIGIN_KEY",
    "PACK_ID_KEY",
    "ROUND_KEY",
    "SCORED",
    "STATUSES",
    "TRIAL_KEY",
    "Origin",
    "PlannedPoint",
    "Point",
    "Progress",
    "Proposer",
    "Status",
    "babysat_status",
    "ended_by_itself",
    "recorded_score",
    "reported_score",
    "trial_id_of",
    "trial_seed",
    "trial_status",
]
