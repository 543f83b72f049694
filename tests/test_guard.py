"""The guardrail API and CLI on a tiny XLM-R trained here to flag one trigger word."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from crest.guard import Guard, calibrate_threshold, save_threshold
from crest.guard.windows import window_starts
from crest.paths import REPO_ROOT
from crest.tiny import build_tiny_xlmr, sample_texts

TRIGGER = "zyxbomb"
WORDS = [w for w in sample_texts(("en",)) if " " not in w][:200]


def _text(rng: random.Random, words: list[str], n: int, trigger_at: int | None) -> str:
    out = [rng.choice(words) for _ in range(n)]
    if trigger_at is not None:
        out.insert(min(trigger_at, n), TRIGGER)
    return " ".join(out)


@pytest.fixture(scope="session")
def trigger_model(tmp_path_factory) -> Path:
    """A tiny classifier trained (plain torch loop, seconds on CPU) to say unsafe iff the trigger
    token occurs, on sequences of up to 510 tokens so every position is trained."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = build_tiny_xlmr(tmp_path_factory.mktemp("guard") / "m", num_labels=2, extra_symbols=[TRIGGER],
                          hidden_size=64, intermediate_size=128, num_heads=4)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out, hidden_dropout_prob=0.0,
                                                               attention_probs_dropout_prob=0.0)
    pieces = [tok(w, add_special_tokens=False)["input_ids"] for w in WORDS]
    trigger = tok.convert_tokens_to_ids(TRIGGER)
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    model.train()
    for step in range(140):
        n = (8, 32, 128, 508)[step % 4]
        seqs, labels = [], []
        for _ in range(16):
            seq: list[int] = []
            while len(seq) < n:
                seq += rng.choice(pieces)
            seq, unsafe = seq[:n], rng.random() < 0.5
            if unsafe:
                seq[rng.randrange(n)] = trigger
            seqs.append([tok.cls_token_id, *seq, tok.sep_token_id])
            labels.append(int(unsafe))
        loss = model(input_ids=torch.tensor(seqs), labels=torch.tensor(labels)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    return out


def test_window_starts_cover_every_token() -> None:
    assert window_starts(5, 10, 5) == [0]
    assert window_starts(25, 10, 5) == [0, 5, 10, 15]
    for n in range(1, 60):
        starts = window_starts(n, 10, 4)
        covered = {i for s in starts for i in range(s, min(s + 10, n))}
        assert covered == set(range(n)) and all(s + 10 <= max(n, 10) for s in starts)


def test_score_separates_trigger_texts(trigger_model: Path) -> None:
    guard = Guard.from_pretrained(trigger_model, device="cpu")
    rng = random.Random(1)
    words = WORDS
    safe = [_text(rng, words, 20, None) for _ in range(20)]
    unsafe = [_text(rng, words, 20, 10) for _ in range(20)]
    probs = guard.score(safe + unsafe)
    assert probs.dtype == np.float32 and probs.shape == (40,)
    assert probs[20:].min() > 0.5 > probs[:20].max()
    assert [r["label"] for r in guard.classify(unsafe[:2] + safe[:1])] == ["unsafe", "unsafe", "safe"]
    assert guard.score([]).shape == (0,)
    # batching and order do not change scores
    np.testing.assert_allclose(Guard.from_pretrained(trigger_model, device="cpu", batch_size=3).score(unsafe[:5] + safe[:5]),
                               np.concatenate([probs[20:25], probs[:5]]), atol=1e-5)


def test_attack_past_token_512_is_caught(trigger_model: Path) -> None:
    """A prompt whose unsafe part sits ~600 tokens in: a guard that truncates at 512 misses it,
    the sliding windows do not."""
    guard = Guard.from_pretrained(trigger_model, device="cpu")
    rng = random.Random(2)
    words = WORDS
    long_text = _text(rng, words, 900, 600)
    ids = guard.tokenizer(long_text, add_special_tokens=False)["input_ids"]
    trigger_id = guard.tokenizer.convert_tokens_to_ids(TRIGGER)
    assert ids.index(trigger_id) > 512 and len(ids) > 900
    first_512 = guard.tokenizer.decode(ids[:500])
    assert guard.score([first_512])[0] < 0.5  # what a truncating guard sees
    assert guard.score([long_text])[0] > 0.5


def test_calibration_hits_target_and_is_stored(trigger_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1] * 100 + [0] * 200)
    probs = np.concatenate([rng.uniform(0.3, 1.0, 100), rng.uniform(0.0, 0.7, 200)])
    r = calibrate_threshold(probs, labels, target_recall=0.9)
    assert r["recall"] >= 0.9 and ((probs[labels == 1] >= r["threshold"]).mean() == r["recall"])
    assert (probs[labels == 1] >= np.nextafter(r["threshold"], 1)).mean() < 0.9  # highest such threshold
    f = calibrate_threshold(probs, labels, target_fpr=0.05)
    assert f["fpr"] <= 0.05 and (probs[labels == 0] >= np.nextafter(f["threshold"], 0)).mean() > 0.05 - 1e-9
    with pytest.raises(ValueError, match="exactly one"):
        calibrate_threshold(probs, labels)
    with pytest.raises(ValueError, match="no unsafe"):
        calibrate_threshold(probs[labels == 0], labels[labels == 0], target_recall=0.9)

    model = tmp_path / "m"
    import shutil

    shutil.copytree(trigger_model, model)
    save_threshold(model, r, "validation split of x.parquet")
    save_threshold(model, r, "validation split of x.parquet")  # idempotent card section
    assert Guard.from_pretrained(model, device="cpu").threshold == pytest.approx(r["threshold"])
    assert Guard.from_pretrained(model, device="cpu", threshold=0.7).threshold == 0.7
    card = (model / "README.md").read_text()
    assert card.count("## Decision threshold") == 1 and "recall >= 0.9" in card


def crest(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crest", *args], input=stdin, capture_output=True,
                          cwd=REPO_ROOT, timeout=120)


@pytest.mark.slow
def test_cli_classify_lines_jsonl_csv(trigger_model: Path, tmp_path: Path) -> None:
    res = crest("classify", "--model", str(trigger_model), "-", stdin=f"hello there\nthe {TRIGGER} now\n".encode())
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert [(r["text"], r["label"]) for r in rows] == [("hello there", "safe"), (f"the {TRIGGER} now", "unsafe")]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "prompt": f"a {TRIGGER}"}) + "\n")
    res = crest("classify", "--model", str(trigger_model), "--field", "prompt", str(jsonl))
    assert json.loads(res.stdout)["id"] == 1 and json.loads(res.stdout)["label"] == "unsafe"

    csv = tmp_path / "in.csv"
    csv.write_text("id,body\n1,hello\n")
    out = tmp_path / "out.jsonl"
    res = crest("classify", "--model", str(trigger_model), "--field", "body", "--threshold", "0.0", "--out", str(out), str(csv))
    assert res.returncode == 0 and res.stdout == b"" and json.loads(out.read_text())["label"] == "unsafe"


@pytest.mark.parametrize("content,fmt,message", [
    (b"", "auto", "no input texts (empty input)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "auto", "binary data"),
    (b"id,body\n1,hello\n", "csv", "record 1 has no column 'text' (it has: body, id)"),
    (b"ok line\n\xff\xfe\n", "lines", "not valid UTF-8 at byte 8 (line 2)"),
])
def test_cli_bad_input_fails_cleanly(trigger_model: Path, tmp_path: Path, content: bytes, fmt: str, message: str) -> None:
    path = tmp_path / "input.dat"
    path.write_bytes(content)
    res = crest("classify", "--model", str(trigger_model), "--format", fmt, str(path))
    assert res.returncode == 2 and res.stdout == b""
    assert message in res.stderr.decode() and "input.dat" in res.stderr.decode()


def test_cli_calibrate_writes_threshold(trigger_model: Path, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(trigger_model, model)
    rng = random.Random(3)
    words = WORDS
    rows = [{"text": _text(rng, words, 15, 5 if i % 2 else None), "label": i % 2, "split": "validation"} for i in range(40)]
    pd.DataFrame(rows).to_parquet(tmp_path / "val.parquet")
    res = crest("guard", "calibrate", "--model", str(model), "--data", str(tmp_path / "val.parquet"), "--target-recall", "0.95")
    assert res.returncode == 0, res.stderr
    stored = json.loads((model / "crest_guard.json").read_text())
    assert stored["calibration"]["recall"] >= 0.95 and stored["threshold"] == json.loads(res.stdout)["threshold"]
