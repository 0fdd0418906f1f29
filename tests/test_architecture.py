"""The design's dependency rules, read from the source (function-local and relative imports
included): each package's modules import only their own layer or lower ones (`sweeps`' own
subpackages too, in issue #28's order; `KNOWN_UPWARD` would list a tolerated exception); only
`sweeps` imports the other packages, which do not import each other; Ray is imported in
`search_spaces` and `trainables` only by their adapter module `_tune.py`, and never in
`analysis`; no two modules import each other, however indirectly; no module imports
another module's private names; and no module of `sweeps` imports a private module of another
of its subpackages (`KNOWN_PRIVATE_MODULE_IMPORTS` lists those still tolerated)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("sweeps", "trainables", "search_spaces", "analysis")
RAY_ADAPTER = "_tune.py"


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _statements(path: Path, root: Path = ROOT) -> list[tuple[str, tuple[str, ...]]]:
    """Every import in `path`, anywhere in the file, as (module, names): `import a.b` is
    ("a.b", ()), `from m import x, y` is ("m", ("x", "y")), and a relative `m` is made
    absolute (in package `p`, `from . import x` is ("p", ("x",)), `from ._m import y` is
    ("p._m", ("y",)))."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            found.append((module, tuple(alias.name for alias in node.names)))
    return found


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Top-level names of every module `path` imports, anywhere in the file."""
    return {module.split(".")[0] for module, _ in _statements(path, root)}


def _private_names(path: Path, root: Path = ROOT) -> list[str]:
    """The private names `path` imports from the packages (`from x import _helper`); a private
    module's public names (`from x._mod import helper`) are the way to share within a package."""
    return [
        name
        for module, names in _statements(path, root)
        if module.split(".")[0] in PACKAGES
        for name in names
        if name.startswith("_")
    ]


def _modules(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


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


@functools.cache
def _module_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Which of the project's modules each one imports (`from pkg import sub` counts `sub`;
    `from pkg import name` counts the package's `__init__`)."""
    paths = {_module_name(p, root): p for package in packages for p in _modules(package, root)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for module, names in _statements(path, root):
            if not names and module in paths:
                deps.add(module)
            for alias in names:
                sub = f"{module}.{alias}"
                deps |= {sub} if sub in paths else {module} & paths.keys()
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
    offending = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in PACKAGES
        for path in _modules(package)
        for name in _private_names(path)
    ]
    assert offending == []


def test_the_rules_see_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    package = tmp_path / "search_spaces" / "sub"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import m\n")
    module = package / "m.py"
    module.write_text(
        "def f():\n    import ray.tune\n    from analysis import x\n"
        "    from .. import _y\n    from ._z import w\n"
    )
    assert _statements(module, tmp_path) == [
        ("ray.tune", ()), ("analysis", ("x",)), ("search_spaces", ("_y",)),
        ("search_spaces.sub._z", ("w",)),
    ]  # fmt: skip
    assert _statements(package / "__init__.py", tmp_path) == [("search_spaces.sub", ("m",))]
    assert _imports(module, tmp_path) == {"ray", "analysis", "search_spaces"}
    assert _private_names(module, tmp_path) == ["_y"]


# Layers, lowest first; a module may import its own layer and lower ones. An entry is a module or
# a package (holding every module inside it) and the longest entry that holds a module places
# it, so a package's own name, in its top layer, places its `__init__` and any module no other
# entry names.
Layers = tuple[tuple[str, ...], ...]


def _in(package: str, modules: str) -> tuple[str, ...]:
    return tuple(f"{package}.{module}" for module in modules.split())


PACKAGE_LAYERS: Layers = (("analysis", "search_spaces", "trainables"), ("sweeps",))
TRAINABLES_LAYERS: Layers = (
    # one configuration's training without Ray: settings, data, the model, the step
    _in("trainables", "_hparams _job_paths _model_choice _files _data_settings _split _data")
    + _in("trainables", "_factory _trial_config _model _lifted _network_signature _train"),
    ("trainables.packing",),  # many configurations as one vectorized model
    ("trainables",),  # the Ray adapter (`_tune.py`) and the package's names
)
SEARCH_SPACES_LAYERS: Layers = (
    ("search_spaces._errors",),
    _in("search_spaces", "_domains _searcher_safe"),  # one parameter
    _in("search_spaces", "_space _tune"),  # the space, and its Ray Tune form
    _in("search_spaces", "_samplers _narrowing _box_sampling _surrogate _gaussian_process"),
    ("search_spaces._coarse_to_fine",),
    ("search_spaces",),
)
ANALYSIS_LAYERS: Layers = (
    ("analysis._errors",),
    _in("analysis", "_fs _layout _parts _store _load _compact _upgrade"),  # results, stored
    _in("analysis", "_summary _scales _rounds _fanova _importance _lr_range _next_search"),
    _in("analysis", "_plot_axes _plots _plot_search"),
    _in("analysis", "_report _report_sections _report_panda _report_retunes"),
    ("analysis",),  # the package's names, and the notebook that uses them
)
# Issue #28's planned order of `sweeps`' own parts.
SWEEPS_LAYERS: Layers = (
    ("sweeps._errors",),
    ("sweeps.plan",),
    ("sweeps.spec",),
    ("sweeps.record",),
    ("sweeps.run",),
    ("sweeps.tune",),
    ("sweeps.strategies", "sweeps.panda", "sweeps.retune", "sweeps.cluster", "sweeps.export"),
    ("sweeps",),  # `_cli.py`, `_init.py`, `__main__.py` and the package's names
)
# Imports against that order that are known and tolerated: none is left since issue #28's
# restructure; a new one fails the test (and would have to be listed here, with a reason).
KNOWN_UPWARD: frozenset[str] = frozenset()


def _placed(module: str, layers: Layers) -> tuple[int, str] | None:
    """The index of the layer that holds `module`, and the entry that places it there."""
    holding = [
        (len(entry), index, entry)
        for index, layer in enumerate(layers)
        for entry in layer
        if module == entry or module.startswith(f"{entry}.")
    ]
    return max(holding)[1:] if holding else None


def _upward_imports(graph: dict[str, set[str]], layers: Layers) -> dict[str, str]:
    """Every import in `graph` from a layer to a higher one, as {"a -> b": "a -> b (layer 6
    sweeps.strategies above layer 4 sweeps.run)"}; a module no layer holds is not checked."""
    found = {}
    for module, deps in graph.items():
        for dep in deps:
            own, theirs = _placed(module, layers), _placed(dep, layers)
            if own and theirs and theirs[0] > own[0]:
                where = f"layer {theirs[0]} {theirs[1]} above layer {own[0]} {own[1]}"
                found[f"{module} -> {dep}"] = f"{module} -> {dep} ({where})"
    return dict(sorted(found.items()))


@pytest.mark.parametrize(
    "layers",
    [PACKAGE_LAYERS, TRAINABLES_LAYERS, SEARCH_SPACES_LAYERS, ANALYSIS_LAYERS],
    ids=["packages", "trainables", "search_spaces", "analysis"],
)
def test_modules_import_only_their_own_layer_or_lower(layers: Layers) -> None:
    assert list(_upward_imports(_module_graph(), layers).values()) == []


def test_sweeps_imports_up_its_planned_layers_only_where_known() -> None:
    upward = _upward_imports(_module_graph(), SWEEPS_LAYERS)
    assert [why for pair, why in upward.items() if pair not in KNOWN_UPWARD] == []


def test_every_known_upward_import_in_sweeps_is_still_there() -> None:
    """One that the restructure removed leaves `KNOWN_UPWARD` too, so it cannot come back."""
    assert sorted(KNOWN_UPWARD - _upward_imports(_module_graph(), SWEEPS_LAYERS).keys()) == []


def test_the_layer_rule_finds_an_upward_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/low.py": "def f():\n    from .high import x\n",
        "pkg/high.py": "from .sub.deep import y\nx = y\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "from .. import low\ny = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = _module_graph(tmp_path, ("pkg",))
    assert graph["pkg.high"] == {"pkg.sub.deep"} and graph["pkg.sub.deep"] == {"pkg.low"}
    layers = (("pkg.low",), ("pkg.sub",), ("pkg",))
    assert list(_upward_imports(graph, layers).values()) == [
        "pkg.low -> pkg.high (layer 2 pkg above layer 0 pkg.low)"
    ]
    assert _upward_imports(graph, (("pkg.low", "pkg.high", "pkg.sub"), ("pkg",))) == {}


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


PACKAGE_INITS = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for package in PACKAGES
    for init in (ROOT / package).rglob("__init__.py")
    if "notebooks" not in init.parts
)


@pytest.mark.parametrize("package", PACKAGE_INITS)
def test_every_exported_name_resolves(package: str) -> None:
    """A package's `__all__` is what the layers above use, and many of its names load on first
    use (`lazy_loader.attach`): a name listed there whose module was renamed, or never written,
    would fail only in the code that first reaches for it."""
    import importlib

    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    assert [name for name in exported if not hasattr(module, name)] == []
    assert sorted(set(exported) - set(dir(module))) == []


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


# Imports of another `sweeps` subpackage's private module (`sweeps.run._lock`) that are known and
# tolerated, each with why: none is left since issue #28 item 1; the rest go through that
# subpackage's `__init__`, and a new one fails the test (or is listed here, with a reason).
KNOWN_PRIVATE_MODULE_IMPORTS: dict[str, str] = {}


def _subpackage(module: str) -> str | None:
    """`sweeps.run` for `sweeps.run._lock`; None for the top layer (`sweeps._cli`, `sweeps`)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or not parts[-1].startswith("_") else None


def _private_module_imports(root: Path = ROOT, package: str = "sweeps") -> dict[str, str]:
    """Every import in `package` of a private module of another of its subpackages, as
    {"sweeps.tune._trials -> sweeps.run._lock": ...}; a subpackage's own modules import each
    other's directly (not through their `__init__`, which would be a cycle)."""
    found = {}
    for path in _modules(package, root):
        module = _module_name(path, root)
        own = _subpackage(module) if module != package else None
        for dep, _ in _statements(path, root):
            parts = dep.split(".")
            if parts[0] != package or len(parts) < 3 or not parts[2].startswith("_"):
                continue
            if own != ".".join(parts[:2]):
                found[f"{module} -> {dep}"] = f"{module} imports {dep}"
    return dict(sorted(found.items()))


def test_sweeps_subpackages_are_used_through_their_exports() -> None:
    found = _private_module_imports()
    assert [why for pair, why in found.items() if pair not in KNOWN_PRIVATE_MODULE_IMPORTS] == []


def test_every_known_private_module_import_is_still_there() -> None:
    """One that was moved to the exports leaves the list too, so it cannot come back."""
    assert sorted(KNOWN_PRIVATE_MODULE_IMPORTS.keys() - _private_module_imports().keys()) == []


def test_the_export_rule_finds_a_private_module_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg.low._a import a\n",
        "pkg/_cli.py": "def main():\n    from pkg.high._c import c\n",
        "pkg/low/__init__.py": "from pkg.low._a import a\n",
        "pkg/low/_a.py": "from pkg.low._b import b\na = b\n",
        "pkg/low/_b.py": "b = 1\n",
        "pkg/high/__init__.py": "",
        "pkg/high/_c.py": "from pkg.low import a\nfrom ..low._b import b\nc = a + b\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert list(_private_module_imports(tmp_path, "pkg")) == [
        "pkg -> pkg.low._a",
        "pkg._cli -> pkg.high._c",
        "pkg.high._c -> pkg.low._b",
    ]
