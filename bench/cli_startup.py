"""Benchmark: how long `caviar` commands that train nothing take, start to exit, as a user runs
them (the installed console script, HOME in a temporary directory).

    .venv/bin/python bench/cli_startup.py                       # runs the demo sweep once first
    .venv/bin/python bench/cli_startup.py --results results     # reuse the demo's results
    .venv/bin/python bench/cli_startup.py --runs 15

Times `caviar --version`, `caviar best sweeps/examples/demo.yaml --results R`, `caviar validate`
of the demo spec and `caviar report R`, where R holds the demo sweep's results (made by
`caviar run sweeps/examples/demo.yaml --results R` unless --results names them). For
reference it also times a bare interpreter (`python -c pass`), `import pandas, pyarrow` (what
reading results costs) and `import torch` (what every command paid before the CLI imported it
only for training). Prints the median, min and max wall time of each over --runs runs; asserts
nothing about time (tests/sweeps/test_cli_imports.py checks what the commands import). Goals
(docs/performance.md): `--version` under 0.3 s, `best` under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "sweeps" / "examples" / "demo.yaml"
CAVIAR = str(Path(sys.executable).parent / "caviar")
# Settings a user's shell does not have (as tests/helpers/_procs.py strips them).
_NOT_A_USERS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_A_USERS}
    return {**env, "HOME": str(home)}


def _wall(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (default 9)")
    parser.add_argument("--results", help="the demo sweep's results (default: run it once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="caviar-cli-bench-") as tmp:
        work = Path(tmp)
        env = _env(work / "home")
        (work / "home").mkdir()
        if args.results is None:
            results = work / "results"
            print(f"running the demo sweep once: caviar run {DEMO} --results {results}")
            ran = _wall([CAVIAR, "run", str(DEMO), "--results", str(results)], env, work)
            print(f"  ({ran:.0f} s)")
        else:
            results = Path(args.results).resolve()
        python = sys.executable
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import pandas, pyarrow'": [python, "-c", "import pandas, pyarrow"],
            "python -c 'import torch'": [python, "-c", "import torch"],
            "caviar --version": [CAVIAR, "--version"],
            "caviar best demo.yaml": [CAVIAR, "best", str(DEMO), "--results", str(results)],
            "caviar validate demo.yaml": [CAVIAR, "validate", str(DEMO)],
            "caviar report": [CAVIAR, "report", str(results), "--out", str(work / "r.html")],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so that a busy moment hits every command
            for name, argv in commands.items():
                times[name].append(_wall(argv, env, work))
    width = max(map(len, times))
    print(f"wall time of {args.runs} runs each (s): median  min  max")
    for name, values in times.items():
        print(
            f"  {name:<{width}}  {statistics.median(values):6.2f} "
            f"{min(values):5.2f} {max(values):5.2f}"
        )


if __name__ == "__main__":
    main()
