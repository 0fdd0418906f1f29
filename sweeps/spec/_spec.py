"""The sweep spec: YAML validated once, at the edge, into frozen typed objects.

Structure and types are checked by pydantic; what pydantic cannot know (domains, hyperparameter
names and ranges, `initial` points against the space) is checked afterwards against
`search_spaces` and `trainables`. Every problem found is reported at once, as a field path, the
offending value and why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from analysis import Mode, results_uri_problem
from search_spaces import SearchSpace, SearchSpaceError
from sweeps._errors import MISSING, Problem, SpecError
from sweeps.spec._data_spec import resolve_file_dataset
from sweeps.spec._export_spec import ExportSpec, MlflowExportSpec
from sweeps.spec._function_spec import check_function_spec, function_columns
from sweeps.spec._hparam_checks import check_fixed, check_searched
from sweeps.spec._model_spec import (
    check_factory_builds,
    factory_pack_problem,
    load_model_data,
    model_hyperparameters,
    resolve_factory,
    structural_keywords,
)
from sweeps.spec._strategy_specs import (
    MAX_TRIALS,
    STRICT,
    AutoStrategy,
    CoarseToFineStrategy,
    GridStrategy,
    PandaStrategy,
    RandomStrategy,
    SobolStrategy,
    TpeStrategy,
    parse_time_budget,
)
from sweeps.spec._strategy_table import (
    STRATEGIES,
    Strategy,
    behaviour,
    default_strategy,
    strategy_row,
)
from sweeps.spec._yaml import MAX_SPEC_BYTES, load_yaml
from trainables import (
    DATASETS,
    FileSource,
    HyperParameter,
    HyperParameterError,
    is_factory_reference,
    portable_path,
    synthetic_input_scale,
)

if TYPE_CHECKING:
    from trainables import ModelFactory  # imports torch: only a spec with a factory loads one

__all__ = [
    "RESERVED_COLUMNS",
    "AshaSpec",
    "AutoStrategy",
    "CoarseToFineStrategy",
    "ExportSpec",
    "GridStrategy",
    "PandaStrategy",
    "RandomStrategy",
    "RetuneSpec",
    "SobolStrategy",
    "SpecModel",
    "Sweep",
    "TpeStrategy",
    "load_spec",
    "parse_spec",
    "parse_time_budget",
    "with_strategy",
]

# Columns every `trials` row has; a hyperparameter may not take one of these names.
RESERVED_COLUMNS = frozenset(
    {
        "sweep", "run_id", "round", "trial_id", "status", "seed", "error", "epochs_done",
        "started_at", "ended_at", "duration_s", "node", "node_id", "config_index", "pack_id",
        "train_loss", "val_loss", "val_accuracy", "best_val_accuracy", "best_val_loss", "epoch",
        "precision",
    }
)  # fmt: skip
# Custom resource names as a node declares them; Ray's own names are asked for by their fields.
_CUSTOM_RESOURCE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_RAY_BUILTIN_RESOURCES = frozenset(
    {"cpu", "gpu", "memory", "object_store_memory", "custom_resources"}
)


class Objective(BaseModel):
    model_config = STRICT
    metric: Literal["val_accuracy", "val_loss", "train_loss"] = "val_accuracy"
    mode: Mode | None = None

    @property
    def resolved_mode(self) -> Mode:
        if self.mode is not None:
            return self.mode
        return "max" if self.metric == "val_accuracy" else "min"


class TrainableSpec(BaseModel):
    model_config = STRICT
    # A user's whole training loop, train(config, report) (sweeps/spec/_function_spec.py)
    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = None
    # "bn_mlp", or a user's factory "module:function" (sweeps/spec/_model_spec.py)
    model: Annotated[str, Field(pattern=r"^(bn_mlp|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")] = "bn_mlp"
    # A built-in name, or a user's file `{path, target, features, val_path}`
    # (sweeps/spec/_data_spec.py)
    dataset: str | dict[str, Any] = "digits"
    epochs: Annotated[int, Field(ge=1, le=10_000)] = 20
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    fixed: dict[str, Any] = Field(default_factory=dict)
    # A label of the data (a date, a release); the synthetic dataset's versions drift (an int).
    data_version: str | int | None = None

    @field_validator("dataset", mode="before")
    @classmethod
    def _builtin_or_file(cls, value: object) -> object:
        if isinstance(value, dict):
            return value  # checked against its file by parse_spec
        if value not in DATASETS:
            raise ValueError(f"must be one of {list(DATASETS)} or a file {{path: ...}}")
        return value

    @field_validator("data_version", mode="before")
    @classmethod
    def _version_label(cls, value: object, info: ValidationInfo) -> object:
        # Checked here rather than by the union, so a bad value gives one line, not one per arm.
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a string or an integer")
        if not 1 <= len(str(value).strip()) <= 64:
            raise ValueError("must be 1 to 64 characters")
        if info.data.get("dataset") == "synthetic":
            try:
                synthetic_input_scale(str(value))
            except HyperParameterError as exc:
                raise ValueError(exc.message) from None
        return value

    @model_serializer(mode="wrap")
    def _omit_no_version(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Specs without a data version keep their digest, so their interrupted runs resume.
        data: dict[str, Any] = handler(self)
        if self.data_version is None:
            data.pop("data_version", None)
        return data


class AshaSpec(BaseModel):
    """Asynchronous successive halving: stop a trial whose curve trails its peers at a rung."""

    model_config = STRICT
    kind: Literal["asha"] = "asha"
    grace_period: Annotated[int, Field(ge=1, le=10_000)] = 2
    reduction_factor: Annotated[float, Field(gt=1.0, le=100.0)] = 3.0


class Resources(BaseModel):
    """Per trial. `custom` names Ray custom resources a node declares (`ray start --resources`),
    e.g. an accelerator kind, so trials land only on the nodes that have it."""

    model_config = STRICT
    cpu: Annotated[float, Field(gt=0.0, le=1024)] = 1.0
    gpu: Annotated[float, Field(ge=0.0, le=64)] = 0.0
    custom: dict[str, float] = Field(default_factory=dict)

    @field_validator("gpu")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        # Ray shares a GPU between trials only in fractions of one; 1.5 GPUs can never be granted.
        if value > 1 and not float(value).is_integer():
            raise ValueError("a trial takes a fraction of one GPU or whole GPUs")
        return value

    @field_validator("custom", mode="before")
    @classmethod
    def _custom_names(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value  # pydantic reports the type
        for name, amount in value.items():
            if not isinstance(name, str) or not _CUSTOM_RESOURCE.fullmatch(name):
                raise ValueError(f"resource name {name!r} must match {_CUSTOM_RESOURCE.pattern}")
            if name.lower() in _RAY_BUILTIN_RESOURCES:
                raise ValueError(f"{name!r} is a built-in resource; use resources.cpu / gpu")
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise ValueError(f"amount of {name!r} must be a number")
            # Ray grants fractions of one unit or whole units, like GPUs.
            if not 0 < amount <= 1_000_000 or (amount > 1 and not float(amount).is_integer()):
                raise ValueError(f"amount of {name!r} must be in (0, 1] or a whole number")
        return {name: float(amount) for name, amount in value.items()}

    @model_serializer(mode="wrap")
    def _omit_no_custom(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Specs without custom resources keep the digest they had before `custom` existed, so
        # their interrupted runs still resume.
        data: dict[str, Any] = handler(self)
        if not self.custom:
            data.pop("custom", None)
        return data


class RetuneSpec(BaseModel):
    """How `caviar retune` warm-starts from history; see docs/retune.md.

    `budget` is a share of the full sweep's configurations (a float in (0, 1]) or a count (an
    int), the incumbent's re-evaluation included. `margin` pads the good region in unit
    coordinates; `explore` is the share drawn from the whole space; `top` the share of history
    that defines the good region. Drift is an absolute drop of the objective larger than
    `drift_threshold`; a newcomer replaces the incumbent only when it beats the incumbent's
    score today by more than `min_improvement`, so noise does not churn the current best.
    """

    model_config = STRICT
    budget: float | int = 0.25
    margin: Annotated[float, Field(ge=0.0, le=0.5, allow_inf_nan=False)] = 0.1
    explore: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.25
    top: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.25
    drift_threshold: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.02
    min_improvement: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.01

    @field_validator("budget", mode="before")
    @classmethod
    def _share_or_count(cls, value: object) -> object:
        # A float is a share and an int a count, so `1.0` (everything) and `1` (only the
        # incumbent) differ; checked here so a bad value gives one line, not one per arm.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a share in (0, 1] (a float) or a count >= 1 (an integer)")
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError("a share of the full sweep must be in (0, 1]; a count is an integer")
        if isinstance(value, int) and not 1 <= value <= MAX_TRIALS:
            raise ValueError(f"a count must be in [1, {MAX_TRIALS}]")
        return value


class SpecModel(BaseModel):
    """The YAML, typed. Field order is the order `caviar validate --explain` prints."""

    model_config = STRICT
    spec_version: Literal[1] = 1
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    objective: Objective = Field(default_factory=Objective)
    trainable: TrainableSpec = Field(default_factory=TrainableSpec)
    search_space: dict[str, Any]
    strategy: Strategy = Field(default_factory=default_strategy)
    initial: list[dict[str, Any]] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    pack: Literal["auto"] | int = 1
    # bf16: forward passes under bfloat16 autocast, float32 master weights and optimizer state
    precision: Literal["fp32", "bf16"] = "fp32"
    results: Annotated[str, Field(min_length=1)] = "results"
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    max_failures: Annotated[int, Field(ge=0, le=100)] = 0
    max_concurrent: Annotated[int, Field(ge=1, le=100_000)] | None = None
    early_stopping: AshaSpec | None = None
    retune: RetuneSpec | None = None  # not part of the digest: it never changes a run's plan
    export: ExportSpec | None = None  # nor is this: where results go after a run

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_size(cls, value: object) -> object:
        # Checked here so a bad value gives one line, not one per arm of the union.
        whole = isinstance(value, int) and not isinstance(value, bool)
        # Why the type ignore below: `whole` proved value an int; mypy cannot carry that
        # through a bool
        if value == "auto" or (whole and 1 <= value <= 4096):  # type: ignore[operator]
            return value
        raise ValueError("must be 'auto' or a number of configurations in [1, 4096]")

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _asha_shorthand(cls, value: object) -> object:
        # `early_stopping: asha` is the common case; the mapping form tunes it.
        return {"kind": "asha"} if value == "asha" else value

    @field_validator("results")
    @classmethod
    def _results_location(cls, value: str) -> str:
        # The text only: `caviar validate` opens nothing; the run checks the bucket.
        problem = results_uri_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


@dataclass(frozen=True)
class Sweep:
    """A validated spec plus what was derived from it once: the space and a content digest."""

    spec: SpecModel
    space: SearchSpace
    digest: str
    source: str
    data_file: FileSource | None = None  # a user's data file, paths resolved
    factory: ModelFactory | None = None  # a user's network factory, imported
    function_dir: str = ""  # where a user's training function is imported from
    notes: tuple[str, ...] = ()  # what the user should hear before a run: a pack fallback
    # A user's network: the searched factory keywords that change its structure, so split
    # packs (None: not probed, and every keyword splits; see `structural_keywords`).
    structural: tuple[str, ...] | None = None
    # ... and those that change only attributes a pack holds per member (dropout rates):
    # configurations that differ in them share packs.
    attribute_keywords: tuple[str, ...] = ()

    @property
    def model_columns(self) -> dict[str, str]:
        """A user's factory keywords and their kinds: `trials` columns beside caviar's own."""
        if self.spec.trainable.function is not None:
            return function_columns(self.spec.trainable.fixed, self.space)
        if self.factory is None:
            return {}
        return {name: hp.kind for name, hp in self.factory.params.items()}

    @property
    def pack_by(self) -> str:
        """`structural` as the trial setting `pack_by` carries it to the trainables."""
        return "*" if self.structural is None else ",".join(self.structural)

    @property
    def dataset(self) -> str:
        """The `dataset` of a flat trial config: a built-in name or the file's config."""
        if self.data_file is not None:
            return self.data_file.portable().to_config()
        return str(self.spec.trainable.dataset)

    @property
    def name(self) -> str:
        return self.spec.name

    def trial_config(self, point: dict[str, object], seed: int) -> dict[str, object]:
        """The flat config a trainable receives: fixed values, the point, and the run settings."""
        t = self.spec.trainable
        if t.function is not None:  # the function's own config: its names, seed and epochs
            function_dir = portable_path(self.function_dir)
            return {
                **t.fixed, **point, "function": t.function, "function_dir": function_dir,
                "objective": self.spec.objective.metric, "epochs": t.epochs, "seed": seed,
                **({} if t.data_version is None else {"data_version": str(t.data_version)}),
            }  # fmt: skip
        factory = self.factory
        defaults = {} if factory is None else {n: hp.default for n, hp in factory.params.items()}
        return {
            **defaults,  # a factory's keywords left out take its defaults, recorded as such
            **t.fixed,
            **point,
            "model": t.model,
            **({} if factory is None else {"model_dir": portable_path(factory.directory)}),
            **({} if factory is None else {"pack_by": self.pack_by}),
            "dataset": self.dataset,
            "epochs": t.epochs,
            "val_fraction": t.val_fraction,
            "checkpoint_every": t.checkpoint_every,
            "seed": seed,
            **({} if t.data_version is None else {"data_version": str(t.data_version)}),
            "precision": self.spec.precision,
        }


def with_strategy(sweep: Sweep, strategy: BaseModel, **changes: object) -> Sweep:
    """The sweep with another strategy (and other spec fields), keeping its digest and source.

    For `auto`: the decided strategy runs under the run the auto spec started, so `--resume`
    with the same spec finds it.
    """
    return replace(sweep, spec=sweep.spec.model_copy(update={"strategy": strategy, **changes}))


def load_spec(path: str | Path) -> Sweep:
    """Read and validate a spec file; raises SpecError naming every problem, writes nothing."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise SpecError([Problem("SPEC", source, "no such file")])
    if path.is_dir():
        raise SpecError([Problem("SPEC", source, "is a directory, not a spec file")])
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            message = f"is {size} bytes; a spec is at most {MAX_SPEC_BYTES}"
            raise SpecError([Problem("SPEC", source, message)])
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([Problem("SPEC", source, f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem("SPEC", source, f"not UTF-8 text (bad byte at offset {exc.start})")
        raise SpecError([problem]) from None
    return parse_spec(text, source=source)


def parse_spec(text: str, source: str = "<spec>") -> Sweep:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError([Problem("SPEC", source, f"invalid YAML at {where}: {reason}")]) from None
    if not isinstance(data, dict):
        problem = Problem("", type(data).__name__, "the spec must be a YAML mapping")
        raise SpecError([problem], source=source)
    try:
        model = SpecModel.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_pydantic_problems(exc, data), source=source) from None

    try:
        space = SearchSpace.from_dict(model.search_space)
    except SearchSpaceError as exc:
        problems = [_prefixed("search_space", p) for p in exc.problems]
        raise SpecError(problems, source=source) from None
    base = Path(source).resolve().parent if source != "<spec>" else Path.cwd()
    if model.trainable.function is not None:
        return _parse_function_spec(model, model.trainable.function, space, base, source)
    factory, problems = resolve_factory(model.trainable.model, base)
    data_file = None
    if isinstance(dataset := model.trainable.dataset, dict):
        t = model.trainable
        data_file, version, data_problems = resolve_file_dataset(
            dataset, base, t.data_version, seed=model.seed, val_fraction=t.val_fraction
        )
        problems += data_problems
        if data_file is not None:  # the resolved version is part of the digest: new data, new run
            trainable = model.trainable.model_copy(update={"data_version": version})
            model = model.model_copy(update={"trainable": trainable})
    if factory is not None or not is_factory_reference(model.trainable.model):
        # A factory that did not load declares nothing to check the names against.
        problems += _check_hparams(model, space, model_hyperparameters(factory))
    problems += (
        _check_initial(model, space)
        + _check_size(model, space)
        + _check_pack(model, factory)
        + _check_precision(model, factory)
        + _check_requirements(model)
        + _check_strategy(model, space)
    )
    notes: tuple[str, ...] = ()
    structural: tuple[str, ...] | None = None
    attribute_keywords: tuple[str, ...] = ()
    digest = _digest(model)
    if not problems and factory is not None:
        t = model.trainable
        # Loaded (and split) once, on first use, for the checks below that need it.
        data = cache(partial(
            load_model_data, data_file.to_config() if data_file else str(t.dataset),
            seed=model.seed, val_fraction=t.val_fraction,
            data_version="" if t.data_version is None else str(t.data_version),
        ))  # fmt: skip
        problems = check_factory_builds(factory, t.fixed, data)
        why = None if problems or model.pack == 1 else factory_pack_problem(factory, t.fixed, data)
        if why is not None and model.pack != "auto":
            message = (
                f"{factory.reference} cannot be trained as one vectorized model ({why}); "
                "use pack: 1, or pack: auto to fall back"
            )
            problems = [Problem("pack", model.pack, message)]
        elif why is not None:
            # The digest stays the spec's as written: what a resume or a re-tune matches.
            model = model.model_copy(update={"pack": 1})
            notes = (
                f"pack: auto runs one configuration per trial: {factory.reference} cannot be "
                f"trained as one vectorized model ({why})",
            )
        if not problems and model.pack != 1:
            effects = structural_keywords(factory, t.fixed, space.domains, data)
            structural, attribute_keywords = effects.structural, effects.attributes
    if not problems and model.precision != "fp32" and factory is None and model.pack == "auto":
        model = model.model_copy(update={"pack": 1})
        notes += (
            "pack: auto runs one configuration per trial: packs of the built-in MLP train in "
            "float32, and this sweep asks for precision: bf16",
        )
    if problems:
        raise SpecError(problems, source=source)
    return Sweep(
        model, space, digest, source, data_file, factory, notes=notes, structural=structural,
        attribute_keywords=attribute_keywords,
    )  # fmt: skip


def _parse_function_spec(
    model: SpecModel, function: str, space: SearchSpace, base: Path, source: str
) -> Sweep:
    t = model.trainable
    problems = check_function_spec(
        function, base, fields_set=set(t.model_fields_set), fixed=t.fixed, space=space,
        strategy_kind=model.strategy.kind, pack=model.pack,
        strategy_refusal=strategy_row(model.strategy).refuses_function,
    )  # fmt: skip
    problems += (
        _check_initial(model, space) + _check_size(model, space) + _check_requirements(model)
    )
    problems += _clashing_names(model, space)
    if model.precision != "fp32":
        message = "a training function runs its own loop: set its precision there"
        problems.append(Problem("precision", model.precision, message))
    if problems:
        raise SpecError(problems, source=source)
    return Sweep(model, space, _digest(model), source, function_dir=str(base))


def _check_hparams(
    model: SpecModel, space: SearchSpace, known: Mapping[str, HyperParameter]
) -> list[Problem]:
    problems = check_fixed(model.trainable.fixed, "trainable.fixed", known)
    problems += check_searched(space, "search_space", known)
    return problems + _clashing_names(model, space)


def _clashing_names(model: SpecModel, space: SearchSpace) -> list[Problem]:
    """Any trainable's: a name fixed and searched at once, or one taken by a result column."""
    fixed = model.trainable.fixed
    both = "is also in search_space; a hyperparameter is fixed or searched, not both"
    problems = [Problem(f"trainable.fixed.{n}", fixed[n], both) for n in space.names if n in fixed]
    message = "clashes with a result column"
    problems += [
        Problem(f"search_space.{n}", n, message) for n in space.names if n in RESERVED_COLUMNS
    ]
    return problems


def _digest(model: SpecModel) -> str:
    """Of everything that decides a run's plan (`retune` and `export` do not)."""
    dumped = model.model_dump(mode="json", exclude={"retune", "export"})
    if dumped.get("precision") == "fp32":  # the default, added later: old digests stay valid
        del dumped["precision"]
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def _check_initial(model: SpecModel, space: SearchSpace) -> list[Problem]:
    problems: list[Problem] = []
    for i, config in enumerate(model.initial):
        try:
            space.check_config(config)
        except SearchSpaceError as exc:
            problems += [_prefixed(f"initial[{i}]", p) for p in exc.problems]
    return problems


def _check_strategy(model: SpecModel, space: SearchSpace) -> list[Problem]:
    """What the strategy itself asks of the rest of the spec (panda's start point and lr)."""
    return behaviour(model.strategy).problems(
        model.strategy,
        space,
        fixed=model.trainable.fixed,
        initial=model.initial,
        early_stopping=None if model.early_stopping is None else model.early_stopping.kind,
    )


def _check_requirements(model: SpecModel) -> list[Problem]:
    """A strategy's optional module (TPE's optuna), found missing here, before anything is
    written."""
    kind, required = model.strategy.kind, strategy_row(model.strategy).requires
    if required is None or importlib.util.find_spec(required):
        return []
    return [Problem("strategy.kind", kind, f"needs {required}: pip install 'caviar[{kind}]'")]


def _check_pack(model: SpecModel, factory: ModelFactory | None) -> list[Problem]:
    """Packs need points decided in batches: fixed plans, or coarse-to-fine's rounds. (Whether
    a user's network can be vectorized is tried once the rest of the spec is known good.)"""
    if model.pack == 1 or strategy_row(model.strategy).packs:
        return []
    kinds = [kind for kind, row in STRATEGIES.items() if row.packs]
    packable = f"{', '.join(kinds[:-1])} and {kinds[-1]}"
    message = f"packing runs {packable}; strategy {model.strategy.kind!r} needs 1"
    return [Problem("pack", model.pack, message)]


def _check_precision(model: SpecModel, factory: ModelFactory | None) -> list[Problem]:
    """The built-in MLP's packs run a hand-written float32 step: bf16 is for its single
    trials and for any packed factory network. (`pack: auto` falls back to 1 instead.)"""
    if model.precision == "fp32" or factory is not None or model.pack in (1, "auto"):
        return []
    message = (
        "packs of the built-in MLP train in float32 (a hand-written step); "
        "use pack: 1 or pack: auto, or a model factory"
    )
    return [Problem("precision", model.precision, message)]


def _check_size(model: SpecModel, space: SearchSpace) -> list[Problem]:
    problem = behaviour(model.strategy).size_problem(model.strategy, space, len(model.initial))
    return [] if problem is None else [problem]


def _prefixed(prefix: str, problem: object) -> Problem:
    field = getattr(problem, "field", "")
    joined = f"{prefix}.{field}" if field else prefix
    return Problem(joined, getattr(problem, "value", None), getattr(problem, "message", ""))


def _pydantic_problems(exc: ValidationError, data: dict[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        kind = err["type"]
        value: object = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            value, message = MISSING, "required field is missing"
        elif kind == "extra_forbidden":
            message = "unknown key" + _valid_keys_hint(loc[:-1], data)
        problems.append(Problem(field, value, message))
    return problems


_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): SpecModel,
    ("objective",): Objective,
    ("trainable",): TrainableSpec,
    ("resources",): Resources,
    ("early_stopping",): AshaSpec,
    ("retune",): RetuneSpec,
    ("export",): ExportSpec,
    ("export", "mlflow"): MlflowExportSpec,
}


def _valid_keys_hint(parent: Sequence[object], data: dict[str, Any]) -> str:
    model = _MODELS.get(tuple(str(p) for p in parent))
    if parent == ["strategy"]:
        strategy = data.get("strategy")
        kind = strategy.get("kind") if isinstance(strategy, dict) else None
        row = STRATEGIES.get(kind) if isinstance(kind, str) else None
        model = None if row is None else row.model
    if model is None:
        return ""
    return f"; valid keys: {', '.join(model.model_fields)}"
