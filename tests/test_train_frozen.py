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
    # selected by AUROC; best_f1 is the exported weights' F1, not the selection score under its name
    assert best["auroc"] == max(r["auroc"] for r in evals) and summary["best_score"] == best["auroc"]
    assert summary["best_f1"] == best["f1_unsafe"] and best["f1_unsafe"] != best["auroc"]

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


def _val_scores(model_dir: Path, texts: list[str]) -> np.ndarray:
    from crest.guard import Guard

    return Guard.from_pretrained(model_dir, device="cpu").score(texts)


def test_shared_features_train_the_same_head_and_calibrate_like_the_cli(toy_shards, tiny_encoder,
                                                                          tmp_path: Path) -> None:
    """Rule train_features' files stand in for each job's own encoder pass: the same selected weights,
    every text read from them; the in-job threshold equals `crest guard calibrate`'s on the same rows,
    also for validation texts longer than max_length (those are scored through the encoder again)."""
    from crest.guard.calibrate import calibrate_threshold
    from crest.train.frozen import feature_texts, write_features

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    rows = pd.read_parquet(data)
    long = rows["split"] == "validation"
    rows.loc[long[long].index[:6], "text"] = rows.loc[long[long].index[:6], "text"] + " Kenia" * 40
    rows.to_parquet(data, index=False)
    settings = _settings(freeze_encoder=True, select="auroc", lr=5e-2, max_steps=80, eval_every=40,
                         save_every=1000, max_length=24)
    settings["calibrate"] = {"target_recall": 0.9}
    opt = settings["optim"]
    parts = [tmp_path / f"part{i}.npz" for i in range(2)]
    n = [write_features(str(tiny_encoder), feature_texts([data], i, 2), parts[i], max_length=24, pad_to=8,
                        batch_tokens=opt["batch_tokens"], max_batch_size=opt["max_batch_size"]) for i in range(2)]
    assert sum(n) == rows["text"].nunique() and min(n) > 0

    own = train_model(data, str(tiny_encoder), settings, tmp_path / "s1", tmp_path / "own", info)
    shared = train_model(data, str(tiny_encoder), settings, tmp_path / "s2", tmp_path / "shared", info,
                         feature_files=parts)
    assert shared["features"] == {"cached": len(rows), "encoded": 0}
    assert own["features"] == {"cached": 0, "encoded": len(rows)}
    assert shared["best_step"] == own["best_step"]
    wa, wb = load_file(tmp_path / "own/model.safetensors"), load_file(tmp_path / "shared/model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)

    val = rows[rows["split"] == "validation"]
    expect = calibrate_threshold(_val_scores(tmp_path / "shared", val["text"].tolist()), val["label"].to_numpy(),
                                 target_recall=0.9)
    stored = json.loads((tmp_path / "shared/crest_guard.json").read_text())
    assert stored["threshold"] == pytest.approx(expect["threshold"], abs=1e-6)
    assert stored["calibration"]["recall"] == expect["recall"] and stored["calibration"]["n"] == len(val)
    assert "Decision threshold" in (tmp_path / "shared/README.md").read_text()


def test_shared_features_of_another_encoder_or_length_are_refused(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    from crest.train.frozen import load_features, write_features

    path = tmp_path / "f.npz"
    write_features(str(tiny_encoder), ["a b", "c d"], path, max_length=24, pad_to=8, batch_tokens=512, max_batch_size=8)
    digest = str(np.load(path)["digest"])
    assert set(load_features([path], digest, 24)) == {"a b", "c d"}
    with pytest.raises(ValueError, match="another encoder"):
        load_features([path], "0" * 16, 24)
    with pytest.raises(ValueError, match="max_length 24, training uses 64"):
        load_features([path], digest, 64)


def test_frozen_checkpoints_hold_the_head_and_resume_exactly(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    """With the encoder frozen a checkpoint is the head (and optimizer) only, and a killed run resumed
    from it exports the uninterrupted run's weights."""
    from crest.train.trainer import KILL_ENV
    from test_train_loop import _cli

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    settings = _settings(freeze_encoder=True, max_steps=12, save_every=4, eval_every=4, warmup_ratio=0.2)
    settings["keep_state"] = True
    train_model(data, str(tiny_encoder), settings, tmp_path / "a", tmp_path / "model_a", info)
    ckpt = tmp_path / "a/checkpoint-12"
    assert (ckpt / "head.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    assert set(load_file(ckpt / "head.safetensors")) == {k for k in load_file(tmp_path / "model_a/model.safetensors")
                                                          if k.startswith("classifier.")}

    args = ["--data", str(data), "--encoder", str(tiny_encoder), "--settings", json.dumps(settings),
            "--state-dir", str(tmp_path / "b"), "--out", str(tmp_path / "model_b")]
    assert _cli(args, env={KILL_ENV: "6"}).returncode == -9
    resumed = _cli(args)
    assert resumed.returncode == 0 and "step 4 of 12" in resumed.stderr, resumed.stderr[-2000:]
    wa, wb = load_file(tmp_path / "model_a/model.safetensors"), load_file(tmp_path / "model_b/model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_null_control_is_exported_at_its_last_step_whatever_its_validation_labels(toy_shards, tiny_encoder,
                                                                                      tmp_path: Path) -> None:
    """A label-shuffled arm's weights are not picked on validation labels. The same
    null trained on validation labels flipped exports the same weights (the last step's); its draws
    start from their own head initialisation (one shared start made every draw agree, off chance)."""
    from crest.train.trainer import null_training

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    null_info = {**info, "label_shuffle": True, "draw": 1}
    settings = _settings(freeze_encoder=True, select="auroc", lr=5e-2, max_steps=60, eval_every=20, save_every=1000)
    rows = pd.read_parquet(data)
    flipped = tmp_path / "flipped.parquet"
    val = rows["split"] == "validation"
    rows.loc[val, "label"] = 1 - rows.loc[val, "label"]
    rows.to_parquet(flipped)
    weights, summaries = [], []
    for name, path in (("a", data), ("b", flipped)):
        summaries.append(train_model(path, str(tiny_encoder), settings, tmp_path / name / "state", tmp_path / name / "out",
                                     null_info))
        weights.append(load_file(tmp_path / name / "out" / "model.safetensors"))
    assert all(s["select"] == "last" and s["best_step"] == 60 for s in summaries)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the real arm under the same settings selects by AUROC; the draws of a null do not share a seed
    assert null_training(settings, info) == (0, "auroc")
    seeds = {null_training(settings, {"label_shuffle": True, "draw": d})[0] for d in range(10)}
    assert len(seeds) == 10
    assert "the last step (a null control" in (tmp_path / "a" / "out" / "README.md").read_text()
