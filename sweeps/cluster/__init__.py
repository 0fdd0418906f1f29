"""`caviar submit`: the Ray Jobs submission and what travels with it."""

from sweeps.cluster._submit import dry_run, jobs_api_address, submit_sweep, wait_for_job

__all__ = [
    "dry_run",
    "jobs_api_address",
    "submit_sweep",
    "wait_for_job",
]
