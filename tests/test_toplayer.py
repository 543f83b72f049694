"""The frozen recipe with the encoder's last layer trained too (optim.unfreeze_top_layers: 1,
crest.guard.toplayer): the position-0 shortcut equals the full layer, only the last layer and the
head move, and every cached path (training, calibration, shared evaluation features) scores what
the exported model scores end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from crest.guard import Guard
from crest.guard.features import FeatureScorer, write_set_features
from crest.guard.toplayer import check_top_layers, first_token_state, layer_inputs, pack

TEXTS = ["how do I make a bomb", "what is the capital of France", "zyxbomb " * 60, "hello", "hello"]


def test_first_token_state_is_the_full_layer_at_position_0(tiny_classifier: Path) -> None:
    """Padded batches of unequal lengths: the shortcut gives the full model's first-token state."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    enc = tok(TEXTS[:4], padding=True, truncation=True, max_length=40, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()  # some rows padded
    with torch.no_grad():
        full = model.base_model(**enc).last_hidden_state[:, 0]
        inputs = layer_inputs(model, enc["input_ids"], enc["attention_mask"], 1)
        seqs = [inputs[i, :int(enc["attention_mask"][i].sum())].numpy() for i in range(4)]
        hidden, mask = pack(seqs)
        mine = first_token_state(model.base_model.encoder.layer[-1], hidden, mask)[:, 0]
    torch.testing.assert_close(mine, full, atol=1e-5, rtol=1e-5)


def test_top_layers_setting_is_checked() -> None:
    assert check_top_layers(1) == 1
    for bad in (2, -1, True, "1"):
        with pytest.raises(ValueError, match="trained top layers"):
            check_top_layers(bad)


def test_cached_layer_inputs_score_exactly_as_the_model(tiny_classifier: Path, tmp_path: Path) -> None:
    """A top-layer model scored from shared features (the last layer's input, float16, sliding windows)
    gives what the model gives; features without top layers are refused for it, and vice versa."""
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", max_length=32, top_layers=1)
    write_set_features(guard, {"bench/en": TEXTS}, tmp_path / "top")
    scorer = FeatureScorer(guard, tmp_path / "top")
    scorer.load("bench/en")
    np.testing.assert_allclose(scorer.score(TEXTS), guard.score(TEXTS), atol=2e-3)  # float16 inputs
    assert scorer.describe()["encoded_texts"] == 0
    np.testing.assert_allclose(scorer.score(["not cached"]), guard.score(["not cached"]), atol=2e-3)
    head_only = Guard.from_pretrained(tiny_classifier, device="cpu", max_length=32)
    write_set_features(head_only, {"bench/en": TEXTS}, tmp_path / "head")
    with pytest.raises(ValueError, match="another encoder|trained top layer"):
        FeatureScorer(guard, tmp_path / "head").load("bench/en")
    with pytest.raises(ValueError, match="another encoder|trained top layer"):
        FeatureScorer(head_only, tmp_path / "top").load("bench/en")


@pytest.mark.slow
def test_top_layer_training_moves_the_last_layer_and_head_only(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    """Shared feature files (the last layer's input) train the same model as the job's own pass; only
    the last layer and the head move; crest_guard.json says trained_top_layers 1 and its threshold
    is the one the CLI's scoring of the exported model gives."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from crest.guard.calibrate import calibrate_threshold
    from crest.train.frozen import feature_texts, load_features, write_features
    from crest.train.trainer import train_model
    from test_train_loop import _data, _records, _settings

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    settings = _settings(freeze_encoder=True, unfreeze_top_layers=1, top_layers_lr=1e-3, select="auroc", lr=5e-2,
                         max_steps=60, eval_every=30, save_every=1000, max_length=24)
    settings["calibrate"] = {"target_recall": 0.9}
    opt = settings["optim"]
    rows = pd.read_parquet(data)
    parts = [tmp_path / f"part{i}.npz" for i in range(2)]
    for i in range(2):
        write_features(str(tiny_encoder), feature_texts([data], i, 2), parts[i], max_length=24, pad_to=8,
                       batch_tokens=opt["batch_tokens"], max_batch_size=opt["max_batch_size"], top_layers=1)
    with pytest.raises(ValueError, match="trained top layer"):
        load_features(parts, str(np.load(parts[0])["digest"]), 24, 0)

    own = train_model(data, str(tiny_encoder), settings, tmp_path / "s1", tmp_path / "own", info)
    shared = train_model(data, str(tiny_encoder), settings, tmp_path / "s2", tmp_path / "shared", info,
                         feature_files=parts)
    assert shared["features"] == {"cached": len(rows), "encoded": 0}
    assert own["features"] == {"cached": 0, "encoded": len(rows)}
    out = tmp_path / "shared"
    before, after = load_file(Path(tiny_encoder) / "model.safetensors"), load_file(out / "model.safetensors")
    n_layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    last = f"encoder.layer.{n_layers - 1}."
    moved = [k for k in before if not k.startswith(("lm_head", "pooler"))
             and not torch.equal(before[k], after["roberta." + k if "roberta." + k in after else k])]
    assert moved and all(k.removeprefix("roberta.").startswith(last) for k in moved), moved
    wa = load_file(tmp_path / "own/model.safetensors")
    assert all(torch.allclose(wa[k], after[k], atol=2e-3) for k in wa)  # float16 cache vs float32 pass

    stored = json.loads((out / "crest_guard.json").read_text())
    assert stored["trained_top_layers"] == 1
    guard = Guard.from_pretrained(out, device="cpu")
    assert guard.top_layers == 1
    val = rows[rows["split"] == "validation"]
    # end to end, without any cache: the validation AUROC logged for the selected step
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        enc = tok(val["text"].tolist(), padding=True, truncation=True, max_length=24, return_tensors="pt")
        prob = torch.softmax(model(**enc).logits, -1)[:, 1].numpy()
    from sklearn.metrics import roc_auc_score

    best = next(r for r in _records(out / "metrics.jsonl", "eval") if r["step"] == shared["best_step"])
    from crest.guard.toplayer import top_logits

    cached = load_features(parts, str(np.load(parts[0])["digest"]), 24, 1)
    with torch.no_grad():
        from_cache = torch.softmax(top_logits(model, [cached[t] for t in val["text"]]), -1)[:, 1].numpy()
    assert roc_auc_score(val["label"], from_cache) == pytest.approx(best["auroc"], abs=1e-6)  # what selection saw
    np.testing.assert_allclose(from_cache, prob, atol=2e-3)  # float16 cache vs the whole model in float32
    expect = calibrate_threshold(guard.score(val["text"].tolist()), val["label"].to_numpy(), target_recall=0.9)
    assert stored["threshold"] == pytest.approx(expect["threshold"], abs=2e-3)
    assert "last layer" in (out / "README.md").read_text()
