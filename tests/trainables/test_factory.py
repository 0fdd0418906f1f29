"""A user's network factory: imported from a directory, its keywords declared as typed
hyperparameters, and trained by caviar's loop with checkpoints that restore bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from trainables import (
    FileSource,
    HyperParameterError,
    TrialConfig,
    build_state,
    load_dataset,
    load_factory,
    load_state,
    run_training,
    state_dict,
)

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"


@pytest.fixture
def cnn_dir(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "digits_cnn.py", tmp_path / "user_cnn.py")
    shutil.copy(EXAMPLES / "data" / "digits_images.npz", tmp_path / "digits.npz")
    return tmp_path


def _config(cnn_dir: Path, **extra: object) -> dict[str, object]:
    return {
        "model": "user_cnn:make", "model_dir": str(cnn_dir), "lr": 0.05, "seed": 2,
        "dataset": FileSource(str(cnn_dir / "digits.npz")).to_config(), **extra,
    }  # fmt: skip


def test_keywords_become_typed_hyperparameters(cnn_dir: Path) -> None:
    factory = load_factory("user_cnn:make", cnn_dir)
    assert {n: (hp.kind, hp.default) for n, hp in factory.params.items()} == {
        "channels": ("int", 8),
        "dropout": ("float", 0.0),
    }
    assert "lr" in factory.hyperparameters and "hidden" not in factory.hyperparameters


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def make(shape, classes):\n    pass\n", "must take (input_shape, n_classes"),
        ("def make(input_shape, n_classes, width):\n    pass\n", "'width' needs a default"),
        ("def make(input_shape, n_classes, lr=0.1):\n    pass\n", "training hyperparameters"),
        ("def make(input_shape, n_classes, sizes=(1, 2)):\n    pass\n", "bool, int, float or str"),
        ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
    ],
)
def test_a_factory_that_cannot_serve_is_refused(tmp_path: Path, source: str, message: str) -> None:
    name = f"bad_factory_{abs(hash(source))}"  # a module of its own: imports are cached
    (tmp_path / f"{name}.py").write_text(source)
    with pytest.raises(HyperParameterError) as error:
        load_factory(f"{name}:make", tmp_path)
    assert error.value.field == "trainable.model" and message in error.value.message


def test_flat_configs_accept_the_factorys_keywords_and_refuse_the_mlps(cnn_dir: Path) -> None:
    trial = TrialConfig.from_flat(_config(cnn_dir, channels=4))
    assert dict(trial.model_params) == {"channels": 4, "dropout": 0.0}
    with pytest.raises(HyperParameterError, match="hidden: unknown"):
        TrialConfig.from_flat(_config(cnn_dir, hidden=4))
    with pytest.raises(HyperParameterError, match="channels: must be an integer"):
        TrialConfig.from_flat(_config(cnn_dir, channels=4.5))


def test_caviars_loop_trains_a_user_cnn_and_its_checkpoint_restores_bit_for_bit(
    cnn_dir: Path,
) -> None:
    torch.set_num_threads(1)
    trial = TrialConfig.from_flat(_config(cnn_dir, channels=4, dropout=0.2))
    data = load_dataset(trial.dataset, seed=trial.seed, data_version="1")
    state = build_state(trial.hparams, data, seed=trial.seed, network=trial.network)
    first = run_training(trial.hparams, data, epochs=2, seed=trial.seed, state=state)
    assert first[-1].val_accuracy > 0.8  # it learns
    saved = state_dict(state)  # weights, optimizer, BatchNorm buffers, RNG (dropout draws)
    straight = run_training(trial.hparams, data, epochs=4, seed=trial.seed, state=state)
    resumed_state = build_state(trial.hparams, data, seed=trial.seed, network=trial.network)
    load_state(resumed_state, saved)
    resumed = run_training(trial.hparams, data, epochs=4, seed=trial.seed, state=resumed_state)
    assert straight == resumed
