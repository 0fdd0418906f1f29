"""Results: Parquet written atomically by the driver, read back as pandas DataFrames."""

from analysis._errors import ResultsError
from analysis._load import load_epochs, load_table, load_trials, sweeps_in
from analysis._store import TABLES, ResultsStore, write_text_atomically

__all__ = [
    "TABLES",
    "ResultsError",
    "ResultsStore",
    "load_epochs",
    "load_table",
    "load_trials",
    "sweeps_in",
    "write_text_atomically",
]
