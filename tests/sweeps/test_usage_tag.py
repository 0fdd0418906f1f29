"""A run's start does not import mlflow (1.5 s) for Ray's usage tag of its callbacks when usage
stats are off, as caviar's Ray session sets them by default."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

needs_mlflow = pytest.mark.skipif(
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


# Every Tuner caviar makes (a sweep's trials, panda's) comes from build_tuner.
BUILD = """
import sys, tempfile
from pathlib import Path
from analysis import ResultsStore
from sweeps import load_spec
from sweeps.tune import build_tuner
from ray.air._internal import usage
sweep = load_spec(Path(sys.argv[1]))
store = ResultsStore(tempfile.mkdtemp(), sweep.name)
build_tuner(sweep.spec, store, "r1", lambda config: None, None, 1, [])
print(usage.tag_callbacks.__name__)
"""
DEMO = Path(__file__).parents[2] / "sweeps" / "examples" / "demo.yaml"


def _run(code: str, arg: str, usage_stats: str) -> list[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": usage_stats}
    proc = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


@needs_mlflow
def test_the_tag_imports_mlflow_unless_skipped() -> None:
    assert _run(TAG, "keep", "0") == ["None", "True"]  # what Ray does by itself
    assert _run(TAG, "skip", "0") == ["True", "False"]


@needs_mlflow
def test_with_usage_stats_on_the_tag_stays() -> None:
    assert _run(TAG, "skip", "1") == ["False", "True"]


def test_every_tuner_caviar_builds_goes_without_the_tag() -> None:
    assert _run(BUILD, str(DEMO), "0") == ["_no_tag"]
    assert _run(BUILD, str(DEMO), "1") == ["tag_callbacks"]
