"""`precision: bf16`: forward passes under bfloat16 autocast, float32 master weights and
optimizer state, for single trials and packed user networks; refused where it cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainables import FileSource, HParams, build_state, load_dataset, load_factory, run_training
from trainables._train import precision_problem
from trainables.packing import PackMember, run_packed_training

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"
IMAGES = FileSource(str(EXAMPLES / "data" / "digits_images.npz")).to_config()


def _cnn():  # type: ignore[no-untyped-def]
    factory = load_factory("digits_cnn:make", EXAMPLES)
    return lambda d: factory.build(d.input_shape, d.n_classes, {"channels": 4})


def test_bf16_trains_with_float32_weights_and_differs_from_fp32() -> None:
    data = load_dataset(IMAGES, seed=0)
    hp, network = HParams(lr=0.05, batch_size=64), _cnn()
    runs = {}
    for precision in ("fp32", "bf16"):
        state = build_state(hp, data, seed=0, network=network)
        runs[precision] = run_training(hp, data, epochs=2, seed=0, state=state, precision=precision)
        assert all(p.dtype == torch.float32 for p in state.model.parameters())
        moments = [v for s in state.optimizer.state.values() for v in s.values()]
        assert moments and all(m.dtype == torch.float32 for m in moments)
    assert runs["bf16"][-1].val_accuracy > 0.8  # it learns
    assert runs["bf16"][-1].train_loss != runs["fp32"][-1].train_loss  # autocast was on


def test_a_bf16_pack_trains_each_member_close_to_its_single_bf16_run() -> None:
    data = load_dataset(IMAGES, seed=0)
    hp, network = HParams(lr=0.05, batch_size=64), _cnn()
    members = [PackMember(hp, seed, data, network, "cnn", "bf16") for seed in (0, 1)]
    fp32 = [PackMember(hp, seed, data, network, "cnn") for seed in (0, 1)]
    packed = run_packed_training(members, epochs=2)
    assert packed[0][-1].train_loss != run_packed_training(fp32, epochs=2)[0][-1].train_loss
    for seed, results in enumerate(packed):
        state = build_state(hp, data, seed=seed, network=network)
        alone = run_training(hp, data, epochs=2, seed=seed, state=state, precision="bf16")
        # bfloat16 keeps 8 bits of mantissa: kernels that round differently drift apart.
        assert results[-1].val_accuracy == pytest.approx(alone[-1].val_accuracy, abs=0.05)
        assert results[-1].train_loss == pytest.approx(alone[-1].train_loss, rel=0.1)


def test_the_built_in_mlps_hand_written_pack_refuses_bf16() -> None:
    data = load_dataset("digits", seed=0)
    member = PackMember(HParams(), 0, data, None, None, "bf16")
    with pytest.raises(ValueError, match="written for float32, not bf16"):
        run_packed_training([member], epochs=1)


def test_a_gpu_without_bfloat16_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    problem = precision_problem("cuda", "bf16")
    assert problem == "this GPU (Tesla V100) has no bfloat16 support; use precision: fp32"
    assert precision_problem("cuda", "fp32") is None
    assert precision_problem("cpu", "bf16") is None  # CPUs autocast bfloat16 everywhere


def test_the_embedded_rays_gpu_without_bfloat16_refuses_the_run_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sweeps import SpecError, parse_spec
    from sweeps.run import RaySession, check_resources

    spec = parse_spec(
        "name: p\nsearch_space: {lr: {type: float, low: 0.001, high: 0.1, scale: log}}\n"
        "resources: {cpu: 1, gpu: 1}\nprecision: bf16\n"
    ).spec
    session = RaySession("embedded", 4.0, 1.0, 1, ((4.0, 1.0),), embedded=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(SpecError, match=r"precision: this GPU \(Tesla T4\) has no bfloat16"):
        check_resources(spec, session)
    cluster = RaySession("10.0.0.1:6379", 4.0, 1.0, 1, ((4.0, 1.0),), embedded=False)
    check_resources(spec, cluster)  # a cluster's trials check their own GPU
