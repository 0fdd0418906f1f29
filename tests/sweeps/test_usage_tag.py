"""A run's start does not import mlflow (1.5 s) for Ray's usage tag of its callbacks when usage
stats are off, as caviar's Ray session sets them by default."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="without mlflow there is nothing to import"
)

# Ray's own call, as `Tuner.fit()` makes it with caviar's callbacks; prints whether mlflow came in.
TAG = """
import sys
from ray.tune import Callback
from sweeps.tune._tune_adapter import skip_callback_usage_tag
print(skip_callback_usage_tag() if sys.argv[1] == "skip" else None)
from ray.tune import tune as tune_module
tune_module.air_usage.tag_callbacks([Callback()])
print("mlflow" in sys.modules)
"""


def _tag(mode: str, usage_stats: str) -> list[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": usage_stats}
    proc = subprocess.run(
        [sys.executable, "-c", TAG, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_the_tag_imports_mlflow_unless_skipped() -> None:
    assert _tag("keep", "0") == ["None", "True"]  # what Ray does by itself
    assert _tag("skip", "0") == ["True", "False"]


def test_with_usage_stats_on_the_tag_stays() -> None:
    assert _tag("skip", "1") == ["False", "True"]
