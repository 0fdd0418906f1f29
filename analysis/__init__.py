"""Results: Parquet written atomically by the driver, read back as pandas DataFrames, analysed.

Reading: `load_trials`, `load_epochs`, `load_rounds`, `load_space`, `compact`, `upgrade_layout`;
each takes a local directory or an ``s3://bucket/prefix`` (`results_path`). Questions:
`best`, `round_summary`, `best_so_far`, `next_bounds`, `importance`, `lr_range_width`. Pictures:
the ``plot_*`` functions (matplotlib figures) and `write_report` (one self-contained HTML file).
"""

import lazy_loader

from analysis._compact import compact
from analysis._errors import ResultsError
from analysis._fs import (
    ObjectPath,
    ResultsLike,
    ResultsPath,
    arrow_filesystem,
    arrow_path,
    interrupted_writes,
    results_path,
    results_uri_problem,
    write_bytes_atomically,
    write_text_atomically,
)
from analysis._importance import importance
from analysis._layout import SweepLayout
from analysis._load import (
    load_epochs,
    load_rounds,
    load_space,
    load_table,
    load_trials,
    sweeps_in,
)
from analysis._lr_range import lr_range_width
from analysis._next_search import next_bounds
from analysis._rounds import round_bounds
from analysis._scales import Scale, infer_scale, resolve_scales
from analysis._store import TABLES, ResultsStore
from analysis._summary import Mode, best, best_so_far, round_summary
from analysis._upgrade import upgrade_layout

# Figures and the report need matplotlib, which takes a second to import; `sweeps` imports this
# package for every `caviar` command, so those names load on first use (PEP 562).
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_report": ["default_objective", "write_report"],
        "_plots": [
            "plot_best_so_far",
            "plot_importance",
            "plot_learning_curves",
            "plot_objective_vs",
        ],
        "_plot_search": ["plot_lr_range", "plot_parallel_coordinates", "plot_rounds"],
        "_plot_axes": ["reverse_log_axis"],
    },
)


__all__ = [
    "TABLES",
    "Mode",
    "ObjectPath",
    "ResultsError",
    "ResultsLike",
    "ResultsPath",
    "ResultsStore",
    "Scale",
    "SweepLayout",
    "arrow_filesystem",
    "arrow_path",
    "best",
    "best_so_far",
    "compact",
    "default_objective",
    "importance",
    "infer_scale",
    "interrupted_writes",
    "load_epochs",
    "load_rounds",
    "load_space",
    "load_table",
    "load_trials",
    "lr_range_width",
    "next_bounds",
    "plot_best_so_far",
    "plot_importance",
    "plot_learning_curves",
    "plot_lr_range",
    "plot_objective_vs",
    "plot_parallel_coordinates",
    "plot_rounds",
    "resolve_scales",
    "results_path",
    "results_uri_problem",
    "reverse_log_axis",
    "round_bounds",
    "round_summary",
    "sweeps_in",
    "upgrade_layout",
    "write_bytes_atomically",
    "write_report",
    "write_text_atomically",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
