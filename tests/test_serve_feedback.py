"""`/v1/feedback` of `crest serve` and what becomes of it: SQLite in WAL mode that loses no
acknowledged post when the server is SIGKILLed under concurrent clients; caps per request and in
total; bound parameters only; several named guards in one server; `crest feedback export`; the
registry's `feedback` loader (deduplicated, with provenance, the person's label) whose rows train a
model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import TRIGGER, toy_rows
from crest.guard import Guard
from crest.guard.feedback import FeedbackFull, FeedbackLimits, FeedbackStore, export_feedback, read_feedback
from crest.guard.serve import ServedModel, create_app, parse_models
from crest.schema import ConfigError
from test_serve import announced_url, until, wait_healthy


def start_server(model: Path, db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", f"tiny={model}", "--port", "0",
                                 "--device", "cpu", "--feedback-db", str(db)],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = announced_url(log, proc)
    wait_healthy(url, proc)
    return proc, url


@pytest.mark.slow
def test_sigkill_under_ten_clients_loses_no_acknowledged_post(tiny_classifier: Path, tmp_path: Path) -> None:
    """50 posts from 10 concurrent clients; the server is SIGKILLed after ~20 acknowledgements. Every
    post answered 2xx is in the database after a restart, none twice; re-sending the others with the
    same ids (what a client does after a failure) stores each once."""
    db = tmp_path / "fb.sqlite"
    proc, url = start_server(tiny_classifier, db, tmp_path / "serve.log")
    posts = [{"id": f"post-{i:04d}-x", "text": f"prompt {i} {TRIGGER} ü", "label": "unsafe" if i % 2 else "safe",
              "note": f"client {i % 10}", "scores": [{"model": "tiny", "prob_unsafe": 0.5, "threshold": 0.5,
                                                     "verdict": "unsafe"}]} for i in range(50)]
    acked: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()
    go = threading.Event()

    def client(k: int) -> None:
        go.wait()
        with httpx.Client(base_url=url, timeout=20) as c:
            for post in posts[k::10]:
                try:
                    r = c.post("/v1/feedback", json=post)
                    ok = 200 <= r.status_code < 300
                except httpx.TransportError:
                    ok = False
                with lock:
                    (acked if ok else failed).append(post["id"])
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    go.set()
    until(lambda: len(acked) >= 20, 60, "20 acknowledged posts")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for t in threads:
        t.join(timeout=60)
    assert len(acked) + len(failed) == 50 and 20 <= len(acked) < 50, (len(acked), len(failed))

    proc, url = start_server(tiny_classifier, db, tmp_path / "restart.log")  # the database opens after the kill
    try:
        ids = [r["id"] for r in read_feedback(db)]
        assert set(acked) <= set(ids) and len(ids) == len(set(ids))  # every acknowledged post, none twice
        with httpx.Client(base_url=url, timeout=20) as c:
            statuses = {p["id"]: c.post("/v1/feedback", json=p).status_code for p in posts}
        assert all(statuses[i] == 200 for i in ids)  # already there: a duplicate, not stored again
        assert all(statuses[i] == 201 for i in set(statuses) - set(ids))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = read_feedback(db)
    assert sorted(r["id"] for r in rows) == sorted(p["id"] for p in posts)
    assert {r["id"]: (r["text"], r["label"], r["note"]) for r in rows} == {
        p["id"]: (p["text"], p["label"], p["note"]) for p in posts}
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_feedback_caps_and_bound_parameters(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite", FeedbackLimits(max_rows=3, max_bytes=10_000))
    hostile = "x'); DROP TABLE feedback; --"
    assert store.add({"text": hostile, "label": "unsafe", "lang": "en'--", "note": "\"; DELETE FROM feedback"})[1]
    assert store.add({"id": "abcdefgh", "text": "a", "label": "safe"}) == ("abcdefgh", True)
    assert store.add({"id": "abcdefgh", "text": "other", "label": "unsafe"}) == ("abcdefgh", False)  # kept once
    store.add({"text": "b", "label": "safe"})
    with pytest.raises(FeedbackFull, match="3 rows"):
        store.add({"text": "c", "label": "safe"})
    rows = read_feedback(tmp_path / "fb.sqlite")
    assert [r["text"] for r in rows] == [hostile, "a", "b"] and rows[0]["lang"] == "en'--"
    store.close()
    big = FeedbackStore(tmp_path / "big.sqlite", FeedbackLimits(max_bytes=100))
    with pytest.raises(FeedbackFull, match="bytes"):
        big.add({"text": "y" * 200, "label": "safe"})
    big.close()


def test_server_refusals_and_several_guards(tiny_classifier: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    a = Guard.from_pretrained(tiny_classifier, device="cpu")
    b = Guard.from_pretrained(tiny_classifier, device="cpu", threshold=0.2, max_length=32)
    store = FeedbackStore(tmp_path / "fb.sqlite", FeedbackLimits(max_text_chars=100, max_note_chars=10,
                                                                 max_body_bytes=2000, max_rows=2))
    app = create_app([ServedModel("first", a, tiny_classifier), ServedModel("second", b, tiny_classifier)],
                     feedback=store)
    long_text = " ".join(["hello"] * 300)
    with TestClient(app) as c:
        listed = c.get("/v1/model").json()
        assert listed["model"] == "first" and [m["model"] for m in listed["models"]] == ["first", "second"]
        assert listed["models"][1]["threshold"] == 0.2 and listed["feedback"]["max_rows"] == 2
        assert listed["models"][0]["facts"]["revision"] == listed["models"][1]["facts"]["revision"]
        one = c.post("/v1/classify", json={"text": long_text, "detail": True}).json()
        two = c.post("/v1/classify", json={"text": long_text, "model": "second", "detail": True}).json()
        assert one["model"] == "first" and two["model"] == "second" and two["thresholds"] == [0.2]
        assert one["tokens"] == two["tokens"] and two["windows"][0] > one["windows"][0]
        assert [one["windows"][0], two["windows"][0]] == [len(g._windows([long_text])[1]) for g in (a, b)]
        np.testing.assert_allclose(two["prob_unsafe"], b.score([long_text]), atol=1e-5)
        r = c.post("/v1/classify", json={"text": "x", "model": "third"})
        assert r.status_code == 422 and "served: first, second" in r.json()["detail"]
        assert c.post("/v1/moderations", json={"input": "x", "model": "second"}).json()["model"] == "second"
        assert c.post("/v1/moderations", json={"input": "x", "model": "omni-moderation-latest"}).json()["model"] == "first"

        def post(**body):
            return c.post("/v1/feedback", json={"text": "t", "label": "safe", **body})

        assert post(text="").json()["detail"] == "the text is empty: there is nothing to keep"
        assert post(text="x" * 101).status_code == 413 and post(note="n" * 11).status_code == 413
        assert c.post("/v1/feedback", content=b'{"text": "' + b"x" * 3000 + b'"}').status_code == 413  # body cap
        assert post(label="maybe").status_code == 422 and post(id="short").status_code == 422
        assert post(scores=[{"model": "first", "prob_unsafe": 1.5, "threshold": 0.5, "verdict": "safe"}]).status_code == 422
        assert post(extra=1).status_code == 422
        assert c.post("/v1/feedback", content=b"not json").status_code == 422
        assert post().status_code == 201 and post(text="u").status_code == 201
        full = post(text="v")
        assert full.status_code == 507 and full.json()["error"] == "feedback database full"
    rows = read_feedback(tmp_path / "fb.sqlite")
    assert [r["text"] for r in rows] == ["t", "u"] and set(rows[0]["models"]) == {"first", "second"}


def test_feedback_off_and_model_names(tiny_classifier: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Guard.from_pretrained(tiny_classifier, device="cpu"), model_id="tiny")
    with TestClient(app) as c:
        r = c.post("/v1/feedback", json={"text": "t", "label": "safe"})
        assert r.status_code == 404 and r.json()["error"] == "feedback is off"
        assert c.get("/v1/model").json()["feedback"] is None
        page = c.get("/")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script src=\"page.js\"" in page.text and "http" not in page.text.split("<body>")[0].replace(
            "http-equiv", "")  # nothing loaded from outside
    assert parse_models(["crest=/a/b", "english=c"]) == [("crest", "/a/b"), ("english", "c")]
    assert parse_models(["results/x=1/m"]) == [("results/x=1/m", "results/x=1/m")]  # a path with '='
    assert parse_models(["/m"], "tiny") == [("tiny", "/m")]
    with pytest.raises(ValueError, match="given twice"):
        parse_models(["a=/x", "a=/y"])
    with pytest.raises(ValueError, match="single model"):
        parse_models(["a=/x", "b=/y"], "tiny")


def feedback_export(tmp_path: Path, n: int = 300) -> Path:
    """Feedback as the page sends it, through the app into SQLite, exported: TRIGGER rows are unsafe by
    the person's word although the guard said safe; a few repeats and a changed mind."""
    from fastapi.testclient import TestClient

    from crest.tiny import build_tiny_xlmr

    model = build_tiny_xlmr(tmp_path / "guard", num_labels=2)
    store = FeedbackStore(tmp_path / "fb.sqlite")
    app = create_app([ServedModel("crest", Guard.from_pretrained(model, device="cpu"), model)], feedback=store)
    rows = toy_rows(n, seed=7)
    with TestClient(app) as c:
        for i, row in rows.iterrows():
            body = {"id": f"fb-{i:05d}-z", "text": row["text"], "label": ["safe", "unsafe"][row["label"]],
                    "lang": row["lang"], "scores": [{"model": "crest", "prob_unsafe": 0.1, "threshold": 0.5,
                                                     "verdict": "safe"}]}
            assert c.post("/v1/feedback", json=body).status_code == 201
        first = rows.iloc[0]
        again = {"text": first["text"].upper(), "label": ["unsafe", "safe"][first["label"]], "lang": first["lang"]}
        assert c.post("/v1/feedback", json={**again, "id": "changed-mind"}).status_code == 201  # the latest word
    out = tmp_path / "feedback.jsonl"
    assert export_feedback(tmp_path / "fb.sqlite", out) == n + 1
    return out


def registry(tmp_path: Path, export: Path, **loader) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(json.dumps({"sources": {"redteam": {"license": "internal", "loader": {
        "feedback": {"path": str(export), **loader}}}}}))
    return path


def test_feedback_loader_dedups_keeps_the_persons_label_and_provenance(tmp_path: Path) -> None:
    from crest.data.prepare import prepare_source
    from crest.data.registry import get_source

    export = feedback_export(tmp_path, n=60)
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text(export.read_text() * 2)  # two exports concatenated: each id read once
    source = get_source([registry(tmp_path, doubled)], "redteam")
    stats = prepare_source(source, tmp_path / "redteam.parquet", cache_dir=tmp_path / "cache")
    df = pd.read_parquet(tmp_path / "redteam.parquet")
    prov = stats["provenance"]
    assert prov["loader"] == "feedback" and prov["records"] == 122 and prov["repeated_ids"] == 61
    assert prov["same_text_dropped"] == 1 and list(prov["models"]) == ["crest"]
    rows = toy_rows(60, seed=7)
    assert len(df) == 60 and set(df["lang"]) == {"en", "de", "fr"}
    first = df[df["text"].str.casefold() == rows["text"].iloc[0].casefold()]
    assert len(first) == 1 and first["label"].iloc[0] == 1 - rows["label"].iloc[0]  # the changed mind wins
    assert first["origin"].iloc[0].startswith("feedback:") and "#changed-mind@" in first["origin"].iloc[0]
    merged = df.merge(rows.iloc[1:], on="text")
    assert (merged["label_x"] == merged["label_y"]).all() and len(merged) == 59  # the person's labels

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a1234567", "text": "hi", "label": "safe", "lang": null}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: line 1: feedback without a language"):
        prepare_source(get_source([registry(tmp_path, bad)], "redteam"), tmp_path / "x.parquet", cache_dir=tmp_path)
    assert prepare_source(get_source([registry(tmp_path, bad, lang="en")], "redteam"), tmp_path / "y.parquet",
                          cache_dir=tmp_path, validation=0, test=0)["rows_kept"] == 1
    bad.write_text('{"id": "a1234567", "text": "hi", "label": "meh", "lang": "en"}\n')
    with pytest.raises(ValueError, match=r"line 1: label 'meh'"):
        prepare_source(get_source([registry(tmp_path, bad)], "redteam"), tmp_path / "z.parquet", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="crest feedback export"):
        prepare_source(get_source([registry(tmp_path, tmp_path / "none.jsonl")], "redteam"), tmp_path / "z.parquet",
                       cache_dir=tmp_path)


@pytest.mark.slow
def test_a_feedback_export_trains_a_model(tiny_encoder: Path, tmp_path: Path) -> None:
    """Export -> registry `feedback` source -> prepared rows (cleaned, split) -> crest's trainer
    (`train_model`, the pipeline's): the model learns the person's labels (TRIGGER unsafe) and holds
    on the held-out test split at 0.5. Validation AUROC saturates at 1.0 within a few evaluations
    here; the exported weights are the lowest-loss of those, not the first (which scored the test
    rows at chance, 0.51: a model that "predicts everything unsafe")."""
    from crest.data.prepare import prepare_source
    from crest.data.registry import get_source
    from crest.train.trainer import train_model
    from test_train_loop import _records, _settings

    export = feedback_export(tmp_path, n=900)
    data = tmp_path / "redteam.parquet"
    prepare_source(get_source([registry(tmp_path, export)], "redteam"), data, cache_dir=tmp_path / "cache")
    rows = pd.read_parquet(data)
    test = rows[rows["split"] == "test"]
    assert (rows["split"] == "train").sum() > 600 and len(test) > 60
    # 150 steps of 32 rows: with a 512-token budget (~12 of these 3-12-word rows a step) and lr 1e-2
    # the tiny encoder was still at loss ln 2 after 60 steps, and after 200 in 3 seeds of 5.
    settings = _settings(batch_tokens=None, lr=3e-3, max_steps=150, eval_every=25, save_every=150, select="auroc")
    settings.update(corpus="redteam", arm="feedback", arm_description="Red-team feedback.")
    summary = train_model(data, str(tiny_encoder), settings, tmp_path / "state", tmp_path / "model",
                          {"corpus": "redteam", "languages": ["de", "en", "fr"], "sources": {"redteam": len(rows)}})
    evals = _records(tmp_path / "model" / "metrics.jsonl", "eval")
    top = [r for r in evals if r["auroc"] == 1.0]
    assert len(top) >= 2 and summary["best_step"] == min(top, key=lambda r: r["eval_loss"])["step"], evals
    probs = Guard.from_pretrained(tmp_path / "model", device="cpu").score(test["text"].tolist())
    assert ((probs >= 0.5) == test["label"].to_numpy().astype(bool)).mean() > 0.95
