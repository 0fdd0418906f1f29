"""A user's network factory in the spec: imported from the spec's directory, its keywords
searched and recorded, trained by caviar's loop under coarse-to-fine and panda, and every way
it can be wrong refused up front in one line."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from _procs import assert_refused, run_caviar, user_env

from analysis import load_table, load_trials
from sweeps import load_spec, run_sweep
from sweeps.spec import plan_points
from sweeps.tune import settle_auto_packing

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"

SPEC = textwrap.dedent(
    """
    name: cnn
    objective: {metric: val_accuracy, mode: max}
    trainable:
      model: digits_cnn:make
      dataset: {path: data/digits_images.npz}
      epochs: 2
      fixed: {optimizer: momentum, batch_size: 64}
    search_space:
      lr:       {type: float, low: 1.0e-2, high: 0.3, scale: log}
      beta:     {type: float, low: 0.8, high: 0.99, scale: reverse_log}
      channels: {type: int, low: 4, high: 12, scale: log}
      dropout:  {type: float, low: 0.0, high: 0.3}
    strategy: {kind: coarse_to_fine, rounds: 2, per_round: 3}
    seed: 4
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: the spec, the factory module beside it, and the data; nothing of it
    on sys.path."""
    shutil.copy(EXAMPLES / "digits_cnn.py", tmp_path / "digits_cnn.py")
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "digits_images.npz", tmp_path / "data")
    (tmp_path / "cnn.yaml").write_text(SPEC)
    return tmp_path


def test_the_factorys_keywords_are_hyperparameters_with_their_defaults(project: Path) -> None:
    sweep = load_spec(project / "cnn.yaml")
    assert sweep.factory is not None and sweep.factory.directory == str(project)
    assert sweep.model_columns == {"channels": "int", "dropout": "float"}
    fixed = load_spec_text(
        project, SPEC.replace("  dropout:  {type: float, low: 0.0, high: 0.3}\n", "")
    )
    config = fixed.trial_config({"lr": 0.1, "beta": 0.9, "channels": 6}, seed=1)
    assert config["dropout"] == 0.0  # left out: the factory's default, recorded as such
    assert config["model_dir"] == str(project)


def load_spec_text(project: Path, text: str):  # type: ignore[no-untyped-def]
    (project / "other.yaml").write_text(text)
    return load_spec(project / "other.yaml")


BAD = [
    ("model: digits_cnn:make", "model: no_such_module:make", "trainable.model",
     "no module 'no_such_module'"),
    ("model: digits_cnn:make", "model: digits_cnn:build", "trainable.model",
     "has no function 'build'"),
    ("model: digits_cnn:make", "model: mods:raises", "trainable.model",
     "ValueError: channels must be even"),
    ("model: digits_cnn:make", "model: mods:no_default", "trainable.model",
     "keyword 'width' needs a default"),
    ("model: digits_cnn:make", "model: mods:wrong_logits", "trainable.model",
     "must return logits of shape (2, 10) for 2 samples, returned (2, 3)"),
    ("model: digits_cnn:make", "model: digits_cnn", "trainable.model", "should match pattern"),
    ("channels: {type: int, low: 4, high: 12, scale: log}", "colour: {type: int, low: 4, high: 12}",
     "search_space.colour", "unknown hyperparameter; valid names: "),
    ("fixed: {optimizer: momentum, batch_size: 64}", "fixed: {optimizer: momentum, hidden: 64}",
     "trainable.fixed.hidden", "only the built-in bn_mlp has it"),
    ("seed: 4", "seed: 4\npack: 4\n", "pack",
     "mods:branches cannot be trained as one vectorized model (RuntimeError: vmap: It looks"),
]  # fmt: skip


@pytest.mark.cli
@pytest.mark.parametrize(("old", "new", "field", "message"), BAD)
def test_a_bad_model_is_one_line_naming_the_field_and_nothing_is_written(
    project: Path, old: str, new: str, field: str, message: str
) -> None:
    (project / "mods.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def raises(input_shape, n_classes, channels=3, dropout=0.0):
                raise ValueError("channels must be even")

            def no_default(input_shape, n_classes, width):
                return nn.Flatten()

            def wrong_logits(input_shape, n_classes, channels=8, dropout=0.0):
                return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

            class Branching(nn.Module):
                # Data-dependent control flow: fine alone, not under vmap.

                def __init__(self, n_classes):
                    super().__init__()
                    self.linear = nn.Linear(64, n_classes)

                def forward(self, x):
                    x = x.flatten(1)
                    return self.linear(x if x.sum() > 0 else -x)

            def branches(input_shape, n_classes, channels=8, dropout=0.0):
                return Branching(n_classes)
            """
        )
    )
    assert old in SPEC
    text = SPEC.replace(old, new)
    if field == "pack":  # a network that runs alone but not vectorized
        text = text.replace("model: digits_cnn:make", "model: mods:branches")
    (project / "bad.yaml").write_text(text)
    assert_refused(project, "bad.yaml", field, message)


@pytest.mark.ray
def test_coarse_to_fine_over_a_user_cnn_records_its_keywords_and_data_version(
    ray_local: None, project: Path
) -> None:
    sweep = load_spec(project / "cnn.yaml")
    outcome = run_sweep(sweep, project / "out")
    trials = load_trials(project / "out", "cnn")
    assert len(trials) == 6 and set(trials["status"]) == {"ok"}
    assert sorted(trials["round"].unique()) == [0, 1]
    assert str(trials["channels"].dtype) == "int64" and str(trials["dropout"].dtype) == "float64"
    assert trials["channels"].between(4, 12).all() and trials["dropout"].between(0, 0.3).all()
    assert trials["hidden"].isna().all()  # the built-in MLP's width means nothing here
    assert set(trials["data_version"]) == {sweep.spec.trainable.data_version}
    assert outcome.best is not None and outcome.best["val_accuracy"] > 0.8


@pytest.mark.ray
def test_a_user_cnn_is_babysat_with_a_rollback(ray_local: None, project: Path) -> None:
    """lr 0.05 trains the CNN; raised 100-fold (clamped to 5.0) it wrecks it within an epoch,
    and panda rolls back to the checkpoint of the user's model."""
    panda = (
        SPEC.replace(
            "strategy: {kind: coarse_to_fine, rounds: 2, per_round: 3}",
            "strategy: {kind: panda, period: 1, start: {lr: 0.05, beta: 0.9, channels: 6, "
            "dropout: 0.0}, raise_factor: 100.0, lower_factor: 0.1, patience: 2}",
        )
        .replace("high: 0.3, scale: log}", "high: 5.0, scale: log}")
        .replace("epochs: 2", "epochs: 5")
    )
    sweep = load_spec_text(project, panda)
    run_sweep(sweep, project / "out")
    events = load_table(project / "out", "events", "cnn")
    assert (events["action"] == "rollback").any(), events[["action", "lr_before", "metric"]]
    trials = load_trials(project / "out", "cnn")
    assert len(trials) == 1 and trials["status"].iloc[0] == "ok"
    assert trials["channels"].iloc[0] == 6


PACKED = SPEC.replace(
    "  channels: {type: int, low: 4, high: 12, scale: log}\n"
    "  dropout:  {type: float, low: 0.0, high: 0.3}\n",
    "",
).replace(
    "{optimizer: momentum, batch_size: 64}", "{optimizer: momentum, batch_size: 64, channels: 6}"
)


@pytest.mark.ray
def test_a_user_cnn_trains_in_packs_as_it_would_alone(ray_local: None, project: Path) -> None:
    """One network (its keywords fixed) over lr and beta: members share packs of 3, and each
    row matches the unpacked run's up to float32 rounding."""
    # Rates that train stably: a chaotic run would amplify rounding differences.
    spec = PACKED.replace(
        "strategy: {kind: coarse_to_fine, rounds: 2, per_round: 3}",
        "strategy: {kind: random, samples: 6}",
    ).replace("low: 1.0e-2, high: 0.3", "low: 3.0e-3, high: 3.0e-2")
    run_sweep(load_spec_text(project, spec), project / "alone")
    run_sweep(load_spec_text(project, spec + "pack: 3\n"), project / "packed")

    alone = load_trials(project / "alone", "cnn").set_index("trial_id").sort_index()
    packed = load_trials(project / "packed", "cnn").set_index("trial_id").sort_index()
    assert alone["pack_id"].isna().all()
    assert sorted(packed.groupby("pack_id").size()) == [3, 3]
    for column in ("lr", "beta", "channels", "seed", "status", "epochs_done"):
        assert list(packed[column]) == list(alone[column]), column
    assert (packed["val_loss"] - alone["val_loss"]).abs().max() < 1e-3


@pytest.mark.cli
def test_pack_auto_falls_back_for_a_network_vmap_cannot_run(project: Path) -> None:
    (project / "branchy.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Branching(nn.Module):
                def __init__(self, n_classes):
                    super().__init__()
                    self.linear = nn.Linear(64, n_classes)

                def forward(self, x):
                    x = x.flatten(1)
                    return self.linear(x if x.sum() > 0 else -x)

            def make(input_shape, n_classes, channels=8):
                return Branching(n_classes)
            """
        )
    )
    spec = PACKED.replace("digits_cnn:make", "branchy:make") + "pack: auto\n"
    (project / "auto.yaml").write_text(spec)

    proc = run_caviar("validate", "auto.yaml", cwd=project, env=user_env(project / "home"))

    assert proc.returncode == 0, proc.stderr
    [note] = proc.stderr.strip().splitlines()
    assert note.startswith("note: pack: auto runs one configuration per trial: branchy:make")
    assert "cannot be trained as one vectorized model (RuntimeError: vmap:" in note
    sweep = load_spec(project / "auto.yaml")
    assert sweep.spec.pack == 1
    assert sweep.digest == load_spec_text(project, spec).digest


SCALED = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make(input_shape, n_classes, channels=4, dropout=0.0, init_scale=1.0, norm_momentum=0.1):
        c, h, w = input_shape
        net = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels, momentum=norm_momentum),
            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(channels * (h // 2) * (w // 2), n_classes),
        )
        with torch.no_grad():
            net[0].weight.mul_(init_scale)
        return net
    """
)


@pytest.mark.parametrize(
    ("searched", "pack_by"),
    [
        ("channels: {type: choice, values: [4, 8]}", "channels"),
        # No shape changes, and the rate is held per member in a pack: it does not split.
        ("dropout: {type: float, low: 0.0, high: 0.5}", ""),
        ("init_scale: {type: float, low: 0.5, high: 2.0, scale: log}", ""),
        # BatchNorm's momentum is held per member too, where a stack mixes it.
        ("norm_momentum: {type: float, low: 0.01, high: 0.5, scale: log}", ""),
    ],
)
def test_validation_finds_the_keywords_that_change_the_network(
    project: Path, searched: str, pack_by: str
) -> None:
    (project / "scaled.py").write_text(SCALED)
    spec = PACKED.replace("digits_cnn:make", "scaled:make").replace(
        "batch_size: 64, channels: 6}", "batch_size: 64}"
    )
    spec = spec.replace("search_space:\n", f"search_space:\n  {searched}\n") + "pack: auto\n"
    sweep = load_spec_text(project, spec)
    assert sweep.pack_by == pack_by
    point = {"lr": 0.1, "beta": 0.9}
    config = sweep.trial_config(point, seed=0)
    assert config["pack_by"] == pack_by
    assert load_spec_text(project, spec.replace("pack: auto", "pack: 1")).pack_by == "*"


@pytest.mark.cli
def test_explain_shows_which_configurations_share_a_pack(project: Path) -> None:
    (project / "scaled.py").write_text(SCALED)
    spec = textwrap.dedent(
        """
        name: scaled
        trainable:
          model: scaled:make
          dataset: {path: data/digits_images.npz}
          epochs: 2
          fixed: {optimizer: momentum, batch_size: 64}
        search_space:
          lr:         {type: float, low: 1.0e-3, high: 0.3, scale: log}
          channels:   {type: choice, values: [4, 8]}
          dropout:    {type: float, low: 0.0, high: 0.5}
          init_scale: {type: float, low: 0.5, high: 2.0, scale: log}
          norm_momentum: {type: float, low: 0.01, high: 0.5, scale: log}
        strategy: {kind: random, samples: 12}
        pack: auto
        """
    )
    (project / "scaled.yaml").write_text(spec)

    env = user_env(project / "home")
    proc = run_caviar("validate", "scaled.yaml", "--explain", cwd=project, env=env)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pack: auto"))
    assert lines[start + 1] == (
        "  configurations share a pack when they agree on batch_size, optimizer and channels"
    )
    assert (
        "channels changes its structure, dropout and norm_momentum only attributes a pack holds "
        "per member (dropout rates, LeakyReLU slopes, BatchNorm momentum and eps), so they do "
        "not split packs, init_scale only its initial values" in lines[start + 2]
    )
    sweep = load_spec(project / "scaled.yaml")
    channels = [p.params["channels"] for p in plan_points(sweep)]
    big, small = sorted((channels.count(4), channels.count(8)), reverse=True)
    assert lines[start + 3] == f"  the first 12 configurations fall into 2 groups of {big}, {small}"


@pytest.mark.ray
def test_configurations_differing_in_initial_values_or_batchnorm_momentum_share_packs(
    ray_local: None, project: Path
) -> None:
    (project / "scaled.py").write_text(SCALED)
    spec = (
        PACKED.replace("digits_cnn:make", "scaled:make")
        .replace("batch_size: 64, channels: 6}", "batch_size: 64}")
        .replace(
            "strategy: {kind: coarse_to_fine, rounds: 2, per_round: 3}",
            "strategy: {kind: random, samples: 6}",
        )
        .replace("low: 1.0e-2, high: 0.3", "low: 3.0e-3, high: 3.0e-2")
        .replace(
            "search_space:\n",
            "search_space:\n  init_scale: {type: float, low: 0.5, high: 2.0, scale: log}\n"
            "  norm_momentum: {type: float, low: 0.01, high: 0.5, scale: log}\n",
        )
    )
    run_sweep(load_spec_text(project, spec), project / "alone")
    run_sweep(load_spec_text(project, spec + "pack: 3\n"), project / "packed")

    alone = load_trials(project / "alone", "cnn").set_index("trial_id").sort_index()
    packed = load_trials(project / "packed", "cnn").set_index("trial_id").sort_index()
    assert sorted(packed.groupby("pack_id").size()) == [3, 3]
    assert (packed.groupby("pack_id")["init_scale"].nunique() == 3).all()
    assert (packed.groupby("pack_id")["norm_momentum"].nunique() == 3).all()
    assert list(packed["init_scale"]) == list(alone["init_scale"])
    assert (packed["val_loss"] - alone["val_loss"]).abs().max() < 1e-3


def test_auto_runs_plain_trials_where_most_packs_would_hold_one_or_two(project: Path) -> None:
    """`channels` drawn from a range gives nearly every configuration its own network: packs
    of one are no faster than plain trials, so auto runs those, and says why."""
    spec = SPEC.replace("rounds: 2, per_round: 3", "rounds: 2, per_round: 8") + "pack: auto\n"
    settled = settle_auto_packing(load_spec_text(project, spec))
    assert settled.spec.pack == 1
    assert len(settled.notes) == 1
    assert "pack: auto runs one configuration per trial, with worker reuse" in settled.notes[0]
    assert "channels split them" in settled.notes[0]
    assert settled.digest == load_spec_text(project, spec).digest  # what --resume matches

    # The dropout rate alone does not split packs: auto keeps them.
    dropout_only = spec.replace("  channels: {type: int, low: 4, high: 12, scale: log}\n", "")
    kept = load_spec_text(project, dropout_only)
    assert settle_auto_packing(kept) is kept
    # An explicit pack size is the user's: never changed.
    explicit = load_spec_text(project, spec.replace("pack: auto", "pack: 4"))
    assert settle_auto_packing(explicit) is explicit


@pytest.mark.cli
def test_validate_explain_says_auto_runs_plain_trials(project: Path) -> None:
    spec = SPEC.replace("rounds: 2, per_round: 3", "rounds: 2, per_round: 8") + "pack: auto\n"
    (project / "auto.yaml").write_text(spec)
    proc = run_caviar(
        "validate", "auto.yaml", "--explain", cwd=project, env=user_env(project / "home")
    )
    assert proc.returncode == 0, proc.stderr
    assert "note: pack: auto runs one configuration per trial" in proc.stderr
    assert "pack: 1 (one configuration per Ray trial)" in proc.stdout
