"""The frozen-encoder recipe (optim.freeze_encoder): only the classification head moves, trained on
encoder features computed once, and the exported model scores exactly what the cached path saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from crest.train.trainer import train_model
from test_train_loop import _data, _records, _settings

pytestmark = pytest.mark.slow


def test_frozen_encoder_trains_the_head_only_and_exports_what_it_scored(toy_shards, tiny_encoder,
                                                                         tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    settings = _settings(freeze_encoder=True, select="auroc", lr=5e-2, max_steps=200, eval_every=40,
                         save_every=1000, weight_decay=0.01)
    out = tmp_path / "model"
    summary = train_model(data, str(tiny_encoder), settings, tmp_path / "state", out, info)

    before, after = load_file(Path(tiny_encoder) / "model.safetensors"), load_file(out / "model.safetensors")
    encoder_keys = [k for k in before if not k.startswith(("lm_head", "pooler"))]
    assert encoder_keys
    for k in encoder_keys:  # every encoder weight exactly as loaded
        assert torch.equal(before[k], after["roberta." + k if "roberta." + k in after else k]), k
    head = [k for k in after if k.startswith("classifier.")]
    assert head and summary["select"] == "auroc"

    torch.manual_seed(settings["seed"])  # the trainer's head initialisation, redone: the head moved
    init = AutoModelForSequenceClassification.from_pretrained(str(tiny_encoder), num_labels=2).state_dict()
    assert any(not torch.equal(init[k], after[k]) for k in head)
    evals = _records(out / "metrics.jsonl", "eval")
    best = next(r for r in evals if r["step"] == summary["best_step"])

    # The exported model, run end to end, gives the validation metrics the cached path logged.
    rows = pd.read_parquet(data)
    val = rows[rows["split"] == "validation"]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        enc = tok(val["text"].tolist(), padding=True, truncation=True, max_length=64, return_tensors="pt")
        prob = torch.softmax(model(**enc).logits, -1)[:, 1].numpy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(val["label"], prob) == pytest.approx(best["auroc"], abs=1e-4)
    assert "Classification head only" in (out / "README.md").read_text()
    assert json.loads((out / "training_config.json").read_text())["optim"]["freeze_encoder"] is True
