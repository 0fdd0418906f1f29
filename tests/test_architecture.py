"""The design's dependency rules, read from the source (function-local imports included):
only `sweeps` imports the other packages, which do not import each other; Ray is imported in
`search_spaces` and `trainables` only by their adapter module `_tune.py`, and never in
`analysis`; no two modules import each other, however indirectly; and no module imports
another module's private names."""

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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """Which of the project's modules each one imports (`from pkg import sub` counts `sub`;
    `from pkg import name` counts the package's `__init__`)."""
    paths = {_module_name(p): p for package in PACKAGES for p in _modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in paths:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names if alias.name in paths}
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other() -> None:
    assert _cycles(_module_graph()) == []


def test_the_cycle_rule_finds_a_cycle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names() -> None:
    offending = []
    for package in PACKAGES:
        for path in _modules(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.ImportFrom)
                    and (node.module or "").split(".")[0] in PACKAGES
                ):
                    offending += [
                        f"{path.relative_to(ROOT)}: {alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_")
                    ]
    assert offending == []


def test_the_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import ray.tune\n    from analysis import x\n")
    assert _imports(module) == {"ray", "analysis"}


def test_every_package_folder_is_packaged() -> None:
    """A folder of modules missing from `[tool.setuptools] packages` installs nowhere: the
    editable install the suite runs with would still find it, a wheel would not."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert folders - listed == set()


def test_the_results_layout_is_spelled_only_by_sweep_layout() -> None:
    """Every name under `<results>/<sweep>/` lives in `analysis/_layout.py`; a module that
    spells one itself can drift from what the others read."""
    from analysis import SweepLayout

    layout = SweepLayout(ROOT / "r" / "s")
    paths = [
        layout.schema("trials"), layout.space, layout.runs, layout.search_state("x"),
        layout.auto_decision("x"), layout.panda_checkpoints("x", "y"), layout.ray,
        layout.compact_lock("trials"), layout.best,
    ]  # fmt: skip
    names = {p.relative_to(layout.sweep_dir).parts[0] for p in paths}
    names |= {SweepLayout.RUN_LOCK, SweepLayout.RETUNE_LOCK}
    assert len(names) == 11  # distinct: no two kinds of file share a name
    # and a table's own names: its partition folders (today's and the hive ones it replaced),
    # its part files and its columns file; f-strings keep such a prefix as a constant
    names |= {"run-", "round-", "run=", "round=", "part-", SweepLayout.COLUMNS_FILE}
    spelled = {
        f"{path.relative_to(ROOT)}:{node.lineno}": node.value
        for package in PACKAGES
        for path in _modules(package)
        if path != ROOT / "analysis" / "_layout.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in names
    }
    assert spelled == {}
