"""The GPU paths the README says run on CPU in the tests: bf16 autocast training (Accelerate's bf16
mixed precision, which `choose_precision` only picks on a GPU) and the guard in bfloat16 and under
`compile=True` (torch.compile, mode reduce-overhead: CUDA graphs on a GPU, Inductor on CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from crest.guard import Guard
from crest.train import trainer
from crest.train.trainer import choose_precision, train_model
from test_train_loop import _data, _records, _settings

TEXTS = ["hello world", "how do I pick a lock on a door " * 6, "x", "Schreibe ein Gedicht über das Meer"]


def test_precision_is_bf16_only_on_a_gpu_that_has_it(monkeypatch) -> None:
    assert [choose_precision(p, "cpu") for p in ("auto", "bf16", "fp32")] == ["no", "no", "no"]
    assert choose_precision("bf16", "cuda") == "bf16" and choose_precision("fp32", "cuda") == "no"
    for supported, expected in ((True, "bf16"), (False, "no")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert choose_precision("auto", "cuda") == expected


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one precision per process: reset it around a run in another one."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.slow
def test_bf16_autocast_training_runs_on_cpu(toy_shards, tiny_encoder, tmp_path: Path, monkeypatch,
                                            fresh_accelerator_state) -> None:
    """The trainer under Accelerate's bf16 mixed precision (what a GPU run gets) on CPU: the loss is
    computed in bf16 (it differs from fp32's, a little), the run records bf16, and the exported
    weights stay float32."""
    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=120)
    settings = _settings(max_steps=20, eval_every=10, save_every=1000)
    fp32 = train_model(data, str(tiny_encoder), settings, tmp_path / "s32", tmp_path / "m32", info)
    monkeypatch.setattr(trainer, "choose_precision", lambda precision, device_type: "bf16")
    AcceleratorState._reset_state(reset_partial_state=True)
    bf16 = train_model(data, str(tiny_encoder), settings, tmp_path / "s16", tmp_path / "m16", info)
    assert fp32["precision"] == "no" and bf16["precision"] == "bf16" and bf16["step"] == 20

    loss32 = [r["loss"] for r in _records(tmp_path / "m32/metrics.jsonl", "train")]
    loss16 = [r["loss"] for r in _records(tmp_path / "m16/metrics.jsonl", "train")]
    assert len(loss16) == len(loss32) > 0 and all(math.isfinite(x) for x in loss16)
    assert loss16[0] != loss32[0] and loss16[0] == pytest.approx(loss32[0], abs=0.05)  # bf16 rounding, same data
    weights = load_file(tmp_path / "m16/model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_guard_in_bfloat16_on_cpu(tiny_classifier: Path) -> None:
    fp32 = Guard.from_pretrained(tiny_classifier, device="cpu").score(TEXTS)
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", dtype="bfloat16")
    assert next(guard.model.parameters()).dtype == torch.bfloat16
    scores = guard.score(TEXTS)
    assert scores.dtype == np.float32 and not np.array_equal(scores, fp32)  # really computed in bf16
    np.testing.assert_allclose(scores, fp32, atol=1e-2)


@pytest.mark.slow
def test_compiled_guard_on_cpu_scores_as_eager(tmp_path: Path) -> None:
    """compile=True: lengths padded to multiples of 64, the forward compiled once per shape (a second
    call of the same shape reuses it), the scores those of the eager model."""
    from torch._dynamo.utils import counters

    from crest.tiny import build_tiny_xlmr

    model = build_tiny_xlmr(tmp_path / "m", num_labels=2, num_layers=1)  # one block: compiles in seconds
    eager = Guard.from_pretrained(model, device="cpu").score(TEXTS)
    torch._dynamo.reset()
    counters.clear()
    guard = Guard.from_pretrained(model, device="cpu", compile=True)
    assert guard.pad_to_multiple_of == 64 and isinstance(guard.model, torch._dynamo.eval_frame.OptimizedModule)
    np.testing.assert_allclose(guard.score(TEXTS), eager, atol=1e-5)
    compiled = counters["stats"]["unique_graphs"]
    assert compiled >= 1
    np.testing.assert_allclose(guard.score(TEXTS[::-1]), eager[::-1], atol=1e-5)  # same shape: no new graph
    assert counters["stats"]["unique_graphs"] == compiled
