"""The design's dependency rules, read from the source (function-local imports included):
only `sweeps` imports the other packages, which do not import each other; Ray is imported in
`search_spaces` and `trainables` only by their adapter module `_tune.py`, and never in
`analysis`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("sweeps", "trainables", "search_spaces", "analysis")
RAY_ADAPTER = "_tune.py"


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "sweeps"])
def test_only_sweeps_imports_the_other_packages(package: str) -> None:
    others = set(PACKAGES) - {package}
    offending = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & others)
        for path in _modules(package)
        if _imports(path) & others
    }
    assert offending == {}


@pytest.mark.parametrize("package", ["trainables", "search_spaces", "analysis"])
def test_ray_is_imported_only_by_the_adapter_module(package: str) -> None:
    importers = [
        str(path.relative_to(ROOT)) for path in _modules(package) if "ray" in _imports(path)
    ]
    allowed = [] if package == "analysis" else [f"{package}/{RAY_ADAPTER}"]
    assert importers == [p for p in allowed if (ROOT / p).exists()]


def test_the_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import ray.tune\n    from analysis import x\n")
    assert _imports(module) == {"ray", "analysis"}
