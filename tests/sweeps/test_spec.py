"""Spec validation: good specs parse; every malformed one gives one line naming field and value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeps import SpecError, load_spec, parse_spec
from sweeps._cli import main

GOOD = textwrap.dedent(
    """
    name: digits-bn
    objective: {metric: val_accuracy, mode: max}
    trainable: {model: bn_mlp, dataset: digits, epochs: 3, fixed: {depth: 2, optimizer: momentum}}
    search_space:
      lr:         {type: float, low: 1.0e-4, high: 1.0, scale: log}
      beta:       {type: float, low: 0.9, high: 0.999, scale: reverse_log}
      hidden:     {type: int, low: 16, high: 512, scale: log}
      batch_size: {type: choice, values: [32, 64, 128, 256]}
    strategy: {kind: random, samples: 8}
    initial: [{lr: 0.01, beta: 0.9, hidden: 128, batch_size: 64}]
    resources: {cpu: 1, gpu: 0}
    """
)


def test_good_spec_parses_into_typed_values() -> None:
    sweep = parse_spec(GOOD)
    assert sweep.name == "digits-bn"
    assert sweep.space.names == ("lr", "beta", "hidden", "batch_size")
    assert sweep.spec.strategy.kind == "random"
    assert sweep.spec.strategy.samples == 8
    assert sweep.spec.objective.resolved_mode == "max"
    assert sweep.spec.trainable.fixed == {"depth": 2, "optimizer": "momentum"}


def test_defaults_fill_optional_sections() -> None:
    sweep = parse_spec("name: x\nsearch_space: {lr: {type: float, low: 0.001, high: 0.1}}\n")
    assert sweep.spec.strategy.kind == "random"
    assert sweep.spec.objective.metric == "val_accuracy"
    assert sweep.spec.results == "results"
    assert sweep.spec.objective.resolved_mode == "max"


def test_loss_objective_defaults_to_minimising() -> None:
    text = (
        "name: x\nobjective: {metric: val_loss}\n"
        "search_space: {lr: {type: float, low: 0.001, high: 0.1}}\n"
    )
    assert parse_spec(text).spec.objective.resolved_mode == "min"


def test_digest_changes_with_the_spec_and_not_with_formatting() -> None:
    a = parse_spec(GOOD).digest
    b = parse_spec(GOOD.replace("samples: 8", "samples:   8")).digest
    c = parse_spec(GOOD.replace("samples: 8", "samples: 9")).digest
    assert a == b != c


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("low: 1.0e-4", "low: 0.0").replace("high: 0.999", "high: 1.5")
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    fields = [p.field for p in info.value.problems]
    assert "search_space.lr.low" in fields
    assert "search_space.beta.high" in fields


# "Billion laughs": each level repeats the one before nine times.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
)


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


# (spec text, field the one error line must name, value text it must show)
MALFORMED = [
    pytest.param(
        _replace("name: digits-bn", "name: ../escape"), "name", "../escape", id="name-traversal"
    ),
    pytest.param(_replace("name: digits-bn", "name: a/b"), "name", "a/b", id="name-slash"),
    pytest.param(_replace("name: digits-bn\n", ""), "name", "(missing)", id="name-missing"),
    pytest.param(
        _replace("low: 1.0e-4, high: 1.0", "low: 1.0, high: 1.0e-4"),
        "search_space.lr",
        "0.0001",
        id="inverted-bounds",
    ),
    pytest.param(
        _replace("low: 1.0e-4", "low: 0.0"), "search_space.lr.low", "0.0", id="log-low-zero"
    ),
    pytest.param(
        _replace("high: 0.999", "high: 1.0"),
        "search_space.beta.high",
        "1.0",
        id="reverse-log-high-one",
    ),
    pytest.param(
        _replace("scale: log}", "scale: logarithmic}"),
        "search_space.lr.scale",
        "logarithmic",
        id="unknown-scale",
    ),
    pytest.param(
        _replace("values: [32, 64, 128, 256]", "values: []"),
        "search_space.batch_size.values",
        "[]",
        id="empty-choice",
    ),
    pytest.param(
        _replace("low: 1.0e-4", "low: .nan"), "search_space.lr.low", "nan", id="nan-bound"
    ),
    pytest.param(
        _replace("high: 1.0,", "high: .inf,"), "search_space.lr.high", "inf", id="inf-bound"
    ),
    pytest.param(_replace("samples: 8", "samples: 0"), "strategy.samples", "0", id="zero-samples"),
    pytest.param(
        _replace("samples: 8", "samples: 100000000"),
        "strategy.samples",
        "100000000",
        id="huge-samples",
    ),
    pytest.param(
        _replace("samples: 8", 'samples: "8"'), "strategy.samples", "'8'", id="samples-string"
    ),
    pytest.param(
        _replace("kind: random", "kind: annealing"), "strategy", "annealing", id="unknown-strategy"
    ),
    pytest.param(
        _replace("epochs: 3", "epochs: -1"), "trainable.epochs", "-1", id="negative-epochs"
    ),
    pytest.param(
        _replace("dataset: digits", "dataset: imagenet"),
        "trainable.dataset",
        "imagenet",
        id="unknown-dataset",
    ),
    pytest.param(
        _replace("resources: {cpu: 1, gpu: 0}", "resources: {cpu: 1, gpus: 1}"),
        "resources.gpus",
        "1",
        id="unknown-key",
    ),
    pytest.param(
        _replace("objective:", "objectve:"), "objectve", "metric", id="misspelled-top-key"
    ),
    pytest.param(
        _replace("metric: val_accuracy", "metric: accuracy"),
        "objective.metric",
        "accuracy",
        id="unknown-metric",
    ),
    pytest.param(
        _replace("fixed: {depth: 2,", "fixed: {depth: 2, momentum_beta: 0.9,"),
        "trainable.fixed.momentum_beta",
        "momentum_beta",
        id="unknown-hparam-fixed",
    ),
    pytest.param(
        "name: x\nsearch_space: {dropout: {type: float, low: 0.1, high: 0.5}}\n",
        "search_space.dropout",
        "dropout",
        id="unknown-hparam-searched",
    ),
    pytest.param(
        _replace("fixed: {depth: 2,", "fixed: {hidden: 64, depth: 2,"),
        "trainable.fixed.hidden",
        "64",
        id="fixed-and-searched",
    ),
    pytest.param(
        _replace("fixed: {depth: 2,", "fixed: {depth: 0,"),
        "trainable.fixed.depth",
        "0",
        id="fixed-out-of-range",
    ),
    pytest.param(
        _replace("optimizer: momentum", "optimizer: rmsprop"),
        "trainable.fixed.optimizer",
        "rmsprop",
        id="unknown-optimizer",
    ),
    pytest.param(
        _replace("values: [32, 64, 128, 256]", "values: [0, 64]"),
        "search_space.batch_size.values[0]",
        "0",
        id="choice-out-of-range",
    ),
    pytest.param(
        _replace("high: 1.0,", "high: 100.0,"),
        "search_space.lr.high",
        "100.0",
        id="lr-bound-out-of-range",
    ),
    pytest.param(
        _replace("hidden: 128", "hidden: 1024"),
        "initial[0].hidden",
        "1024",
        id="initial-outside-space",
    ),
    pytest.param(
        _replace("{lr: 0.01, beta: 0.9,", "{lr: 0.01, beta: 0.9, gamma: 1,"),
        "initial[0].gamma",
        "gamma",
        id="initial-unknown-name",
    ),
    pytest.param("- just\n- a list\n", "spec", "list", id="not-a-mapping"),
    pytest.param("name: [unclosed\n", "SPEC", "invalid YAML", id="bad-yaml"),
    pytest.param(
        "name: x\nsearch_space: {}\n",
        "search_space",
        "empty",
        id="empty-space",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: grid, points: 1000"),
        "strategy.points",
        "1000",
        id="grid-too-large",
    ),
    pytest.param(
        _replace("epochs: 3", "epochs: true"), "trainable.epochs", "True", id="bool-as-int"
    ),
    pytest.param(
        _replace("samples: 8", "samples: 1.5"), "strategy.samples", "1.5", id="float-count"
    ),
    pytest.param(_replace("name: digits-bn", "name: null"), "name", "None", id="null-name"),
    pytest.param(_replace("name: digits-bn", "name: " + "a" * 65), "name", "aaaa", id="long-name"),
    pytest.param(GOOD + "seed: -1\n", "seed", "-1", id="negative-seed"),
    pytest.param(_replace("cpu: 1, gpu: 0", "cpu: 0, gpu: 0"), "resources.cpu", "0", id="zero-cpu"),
    pytest.param(
        _replace("cpu: 1, gpu: 0", "cpu: 1, gpu: -1"), "resources.gpu", "-1", id="negative-gpu"
    ),
    pytest.param(
        _replace(
            "{type: int, low: 16, high: 512, scale: log}", "{type: float, low: 16, high: 512}"
        ),
        "search_space.hidden.type",
        "float",
        id="float-domain-for-int",
    ),
    pytest.param(
        _replace("trainable: {", "trainable: {fixed: {}, "),
        "SPEC",
        "duplicate key 'fixed'",
        id="duplicate-key",
    ),
    pytest.param(
        "name: &n x\nsearch_space: {lr: {type: float, low: 0.001, high: 0.1}}\nresults: *n\n",
        "SPEC",
        "aliases",
        id="alias",
    ),
    pytest.param(
        ALIAS_BOMB,
        "SPEC",
        "aliases",
        id="alias-bomb",
    ),
    pytest.param(
        _replace("lr:         {type: float,", "lr:         {type: float, step: 2,"),
        "search_space.lr.step",
        "step",
        id="unknown-domain-key",
    ),
    pytest.param(
        _replace("trainable: {", "trainable: {epochs: 5, "),
        "SPEC",
        "duplicate key",
        id="duplicate-nested-key",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: coarse_to_fine, start_next_at: 0"),
        "strategy.start_next_at",
        "0",
        id="c2f-start-next-at-zero",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: coarse_to_fine, rounds: 1000, per_round: 1000"),
        "strategy.per_round",
        "1000",
        id="c2f-too-many",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: coarse_to_fine, sampler: tpe"),
        "strategy.sampler",
        "tpe",
        id="c2f-unknown-sampler",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: tpe, samples: 8, startup: 0"),
        "strategy.startup",
        "0",
        id="tpe-startup-zero",
    ),
    pytest.param(
        GOOD + "early_stopping: hyperband\n",
        "early_stopping",
        "hyperband",
        id="early-stopping-unknown",
    ),
    pytest.param(
        GOOD + "early_stopping: {kind: asha, grace_period: 0}\n",
        "early_stopping.grace_period",
        "0",
        id="asha-grace-zero",
    ),
    pytest.param(
        _replace("kind: random, samples: 8", "kind: auto, time_budget: 2 hours"),
        "strategy.time_budget",
        "2 hours",
        id="auto-bad-budget",
    ),
]


@pytest.mark.parametrize(("text", "field", "value"), MALFORMED)
def test_malformed_spec_gives_one_line_exit_2_and_writes_nothing(
    text: str,
    field: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(spec), "--results", str(tmp_path / "results")])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert field in lines[0], lines[0]
    assert value in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_missing_file_directory_and_non_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(missing)]) == 2
    assert f"SPEC: no such file (got '{missing}')" in capsys.readouterr().err
    assert main(["validate", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert main(["validate", str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_oversized_spec_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(GOOD + "#" * (2 * 1024 * 1024))
    assert main(["validate", str(spec)]) == 2
    assert "a spec is at most" in capsys.readouterr().err


def test_validate_prints_the_resolved_space_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    assert main(["validate", str(spec), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "search beta: float [0.9, 0.999] scale=reverse_log" in out
    assert "9 configurations (1 from `initial`)" in out
    assert "t00000 [initial] lr=0.01, beta=0.9, hidden=128, batch_size=64" in out


def test_every_example_spec_is_valid() -> None:
    examples = sorted((Path(__file__).parents[2] / "sweeps" / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {"demo.yaml", "random_packed.yaml"}
    for path in examples:
        load_spec(path)  # raises SpecError naming the problem
    demo = load_spec(examples[[p.name for p in examples].index("demo.yaml")])
    assert demo.spec.strategy.kind == "coarse_to_fine"


def test_adaptive_strategies_and_early_stopping_parse() -> None:
    c2f = parse_spec(_replace("kind: random, samples: 8", "kind: coarse_to_fine, rounds: 3"))
    assert (c2f.spec.strategy.rounds, c2f.spec.strategy.per_round) == (3, 64)
    assert c2f.spec.strategy.start_next_at == 0.75 and c2f.spec.strategy.sampler == "model"
    asha = parse_spec(GOOD + "early_stopping: asha\n").spec.early_stopping
    assert asha is not None and (asha.grace_period, asha.reduction_factor) == (2, 3.0)
    assert parse_spec(GOOD).spec.early_stopping is None
    tpe = parse_spec(_replace("kind: random, samples: 8", "kind: tpe, samples: 20"))
    assert (tpe.spec.strategy.samples, tpe.spec.strategy.startup) == (20, 10)


def test_validate_explains_coarse_to_fine_rounds_and_shows_round_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        _replace("kind: random, samples: 8", "kind: coarse_to_fine, rounds: 3, per_round: 4")
    )
    assert main(["validate", str(spec), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "coarse_to_fine, 3 rounds x 4 (model sampler) + 1 from `initial` = 13" in out
    assert "t00000 [initial]" in out
    shown = [line for line in out.splitlines() if "[coarse_to_fine]" in line]
    assert len(shown) == 4  # round 1 depends on nothing run yet, so it is shown exactly
    from search_spaces import CoarseToFine

    sweep = load_spec(spec)
    first = CoarseToFine(sweep.space, 3, 4, 0, "max").ask()[0]
    assert f"lr={first['lr']:.4g}" in shown[0]


def test_tpe_without_optuna_is_a_spec_error_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a)
    )
    with pytest.raises(SpecError) as err:
        parse_spec(_replace("kind: random, samples: 8", "kind: tpe, samples: 8"))
    assert [(p.field, p.value) for p in err.value.problems] == [("strategy.kind", "tpe")]


@pytest.mark.cli
def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`caviar validate SPEC --explain | head -1`: the closed pipe ends caviar quietly, with
    the shell's SIGPIPE status, instead of a BrokenPipeError trace."""
    demo = Path(__file__).parents[2] / "sweeps" / "examples" / "demo.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "validate", str(demo), "--explain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # before caviar has written anything: it starts in ~1 s
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err.decode()
    assert err.decode() == ""


def test_precision_bf16_is_checked_where_it_cannot_apply() -> None:
    base = "name: p\nsearch_space: {lr: {type: float, low: 0.001, high: 0.1, scale: log}}\n"
    assert parse_spec(base).spec.precision == "fp32"
    assert (
        parse_spec(base + "precision: bf16\n").trial_config({"lr": 0.01}, seed=0)["precision"]
        == "bf16"
    )
    with pytest.raises(SpecError, match=r"precision: .*'fp32' or 'bf16'|precision: .*fp16"):
        parse_spec(base + "precision: fp16\n")
    with pytest.raises(SpecError, match=r"precision: packs of the built-in MLP train in float32"):
        parse_spec(base + "precision: bf16\npack: 4\n")
    auto = parse_spec(base + "precision: bf16\npack: auto\n")
    assert auto.spec.pack == 1 and "precision: bf16" in auto.notes[0]
    # The default leaves the digest of specs written before `precision` existed alone.
    assert parse_spec(base + "precision: fp32\n").digest == parse_spec(base).digest
    assert parse_spec(base + "precision: bf16\n").digest != parse_spec(base).digest
