"""crest.train's training loop on a tiny real XLM-R: it learns, it exports a complete model directory,
a killed run resumes to the same weights, two DDP processes on CPU write one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.train.dataset import build_arm_dataset
from crest.train.trainer import KILL_ENV, train_model

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TABLE = load_languages(REPO_ROOT / "config/languages.tsv")


def _data(toy_shards, tmp_path: Path, langs: list[str], rows: int) -> tuple[Path, dict]:
    shards = toy_shards({c: c for c in langs}, rows=rows)
    settings = {"corpus": "toy", "arm": "multi", "arms": {"multi": {"languages": langs}}, "groups": {},
                "translated": langs, "methods": [],
                "data": {"rows_per_language": None, "validation_rows_per_language": None, "id_sharing": "parallel",
                         "equalize": False, "seed": 13}}
    info = build_arm_dataset(settings, shards, tmp_path / "data.parquet", tmp_path / "data.json", table=TABLE)
    return tmp_path / "data.parquet", info


def _settings(**optim) -> dict:
    opt = {"lr": 1e-2, "weight_decay": 0.0, "warmup_ratio": 0.05, "scheduler": "linear", "epochs": 1, "max_steps": 60,
           "batch_tokens": 512, "max_batch_size": 32, "grad_accum": 1, "max_grad_norm": 1.0, "max_length": 64,
           "pad_to": 8, "imbalance": "class_weights", "freeze_embeddings": False, "eval_every": 15, "save_every": 15,
           "keep_checkpoints": 2, "patience": None, "min_delta": 0.0, "precision": "auto", "log_every": 5} | optim
    return {"run": "test", "corpus": "toy", "arm": "multi", "arm_description": "Toy languages.", "size": "tiny",
            "encoder": "tiny", "seed": 0, "optim": opt, "device": "cpu", "threads": 1, "keep_state": False,
            "wandb": {"enabled": False, "project": "crest", "mode": "offline"}}


def _records(path: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["event"] == event]


def _cli(args: list[str], env: dict | None = None, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (launcher or []) + [str(BIN / "crest"), "train", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_tiny_model_learns_and_exports_a_complete_model(toy_shards, tiny_encoder, tmp_path: Path, monkeypatch) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data, info = _data(toy_shards, tmp_path, ["en", "de", "hi"], rows=300)
    settings = _settings()
    settings["wandb"]["enabled"] = True
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline unless the user opts in
    out = tmp_path / "model"
    summary = train_model(data, str(tiny_encoder), settings, tmp_path / "state", out, info)

    evals = _records(out / "metrics.jsonl", "eval")
    assert [r["step"] for r in evals] == [15, 30, 45, 60]
    assert evals[-1]["eval_loss"] < 0.75 * evals[0]["eval_loss"], [r["eval_loss"] for r in evals]
    assert summary["best_f1"] > 0.9 and summary["step"] == 60
    assert set(evals[-1]["f1_unsafe_by_language"]) == {"en", "de", "hi"}

    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_config.json", "provenance.json",
            "metrics.jsonl", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["translator_is_random"] and provenance["languages"] == ["en", "de", "hi"]
    assert provenance["dataset_sha256"] == info["dataset_sha256"] and provenance["rows"]["train"] == 720
    assert json.loads((out / "training_config.json").read_text())["optim"]["lr"] == 1e-2
    card = (out / "README.md").read_text()
    assert "arm `multi`" in card and "random-weight translator" in card and "| hi |" in card
    assert not list((tmp_path / "state").glob("checkpoint-*")), "checkpoints are removed unless keep_state"
    assert list((tmp_path / "state" / "wandb").glob("offline-run-*"))

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "safe", 1: "unsafe"}
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        probs = model(**tok(["Deutschland zyxbomb Kenia", "Deutschland Kenia"], padding=True, return_tensors="pt")
                      ).logits.softmax(-1)[:, 1]
    assert probs[0] > 0.5 > probs[1]


def test_killed_run_resumes_to_the_same_weights(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    (tmp_path / "info.json").write_text(json.dumps(info))
    settings = _settings(max_steps=12, save_every=4, eval_every=4, warmup_ratio=0.2)
    settings["keep_state"] = True
    train_model(data, str(tiny_encoder), settings, tmp_path / "a", tmp_path / "model_a", info)

    args = ["--data", str(data), "--info", str(tmp_path / "info.json"), "--encoder", str(tiny_encoder),
            "--settings", json.dumps(settings), "--state-dir", str(tmp_path / "b"), "--out", str(tmp_path / "model_b")]
    killed = _cli(args, env={KILL_ENV: "6"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [p.name for p in (tmp_path / "b").glob("checkpoint-*")] == ["checkpoint-4"]
    assert not (tmp_path / "model_b").exists()
    resumed = _cli(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr and "step 4 of 12" in resumed.stderr

    for a, b in [(tmp_path / "a/checkpoint-12", tmp_path / "b/checkpoint-12"),
                 (tmp_path / "model_a", tmp_path / "model_b")]:
        wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), a.name
    assert [r["step"] for r in _records(tmp_path / "b/metrics.jsonl", "eval")] == [4, 8, 12]


def test_two_process_ddp_on_cpu_writes_one_checkpoint(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=200)
    settings = _settings(max_steps=4, save_every=4, eval_every=2)
    settings["keep_state"] = True
    run = _cli(["--data", str(data), "--encoder", str(tiny_encoder), "--settings", json.dumps(settings),
                "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "model")],
               launcher=[str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "--no-python"])
    assert run.returncode == 0, run.stderr[-3000:]
    state = tmp_path / "state"
    assert sorted(p.name for p in state.iterdir() if not p.name.startswith(".")) == \
        ["best", "checkpoint-4", "metrics.jsonl"]
    start = _records(state / "metrics.jsonl", "start")
    assert len(start) == 1 and start[0]["world_size"] == 2
    assert [r["step"] for r in _records(state / "metrics.jsonl", "eval")] == [2, 4]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    summaries = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and json.loads(summaries[0])["step"] == 4  # rank 0's only


def test_bad_label_stops_before_the_model_loads(tmp_path: Path) -> None:
    rows = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [0, 1, 3], "lang": "en",
                         "split": ["train", "train", "validation"], "source": "t", "category": ""})
    rows.to_parquet(tmp_path / "data.parquet", index=False)
    with pytest.raises(ValueError, match=r"label 3 of row 'c' is outside \{0, 1\}"):
        train_model(tmp_path / "data.parquet", str(tmp_path / "no-such-encoder"), _settings(), tmp_path / "s",
                    tmp_path / "m")


def test_a_one_label_validation_split_is_refused_before_training(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    """A validation split of one label cannot pick weights (AUROC undefined, F1 0 or degenerate):
    it used to export the first evaluation's weights silently; now the CLI says why, exit 2."""
    data, info = _data(toy_shards, tmp_path, ["en"], rows=200)
    rows = pd.read_parquet(data)
    rows[(rows["split"] != "validation") | (rows["label"] == 1)].to_parquet(data, index=False)
    args = ["--data", str(data), "--encoder", str(tiny_encoder), "--settings", json.dumps(_settings(select="auroc")),
            "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "model")]
    done = _cli(args)
    assert done.returncode == 2, done.stderr[-2000:]
    unsafe = int(rows["label"][rows["split"] == "validation"].sum())
    assert (f"{data}: the validation split has no safe rows (only {unsafe} unsafe): optim.select auroc cannot "
            "pick weights on one label") in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "model").exists()
    rows[(rows["split"] != "validation") | (rows["label"] == 0)].to_parquet(data, index=False)
    with pytest.raises(ValueError, match="has no unsafe rows .*optim.select f1_unsafe"):
        train_model(data, str(tiny_encoder), _settings(), tmp_path / "s", tmp_path / "m")
