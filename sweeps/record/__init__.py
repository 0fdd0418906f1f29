"""Where rows are written: trial and epoch rows, the events table's schema, the current best
(panda's own rows are `sweeps.panda`'s), and what an adaptive strategy has decided so far
(`_search_state`, read back by `--resume`). The package's public names are exported by `sweeps`;
these modules are private."""

from sweeps.record._best import (
    best_row,
    current_best,
    ok_history,
    read_best,
    record_from_row,
    write_best,
)
from sweeps.record._record import (
    AUTO_EVENT,
    PANDA_EVENT,
    RETUNE_EVENT,
    branch_columns,
    epoch_row,
    epochs_schema,
    events_schema,
    trial_row,
    trials_schema,
    with_own_metrics,
)
from sweeps.record._search_state import SearchState, load_search_state, save_search_state

__all__ = [
    "AUTO_EVENT",
    "PANDA_EVENT",
    "RETUNE_EVENT",
    "SearchState",
    "best_row",
    "branch_columns",
    "current_best",
    "epoch_row",
    "epochs_schema",
    "events_schema",
    "load_search_state",
    "ok_history",
    "read_best",
    "record_from_row",
    "save_search_state",
    "trial_row",
    "trials_schema",
    "with_own_metrics",
    "write_best",
]
