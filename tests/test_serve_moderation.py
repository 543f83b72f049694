"""OpenAI's moderation API in `crest serve`, through the real `openai` client on loopback, and
operating points per language (calibrated, stored, applied and reported by classify and serve)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from crest.guard import Guard, calibrate_threshold
from crest.guard.languages import calibrate_languages
from crest.guard.serve import Limits, create_app
from crest.paths import REPO_ROOT
from crest.tiny import sample_texts
from test_serve import InProcessServer

WORDS = {lang: [w for w in sample_texts((lang,)) if " " not in w][:200] for lang in ("en", "de", "fr")}


Server = InProcessServer  # uvicorn in a thread on a loopback socket bound to port 0


def label_by_own_scores(rows: pd.DataFrame, probs: np.ndarray, shares: dict[str, float]) -> np.ndarray:
    """Labels from the model's own scores: each language's top `share` of rows unsafe, so every
    language's operating point differs."""
    labels = np.zeros(len(rows), dtype=int)
    for lang, share in shares.items():
        idx = np.flatnonzero(rows["lang"] == lang)
        labels[idx[np.argsort(-probs[idx])[: int(share * len(idx))]]] = 1
    return labels


def texts_of(lang: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS[lang], size=rng.integers(2, 15))) for _ in range(n)]


@pytest.fixture
def model_dir(tiny_classifier: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny classifier (tests here write crest_guard.json into it)."""
    return Path(shutil.copytree(tiny_classifier, tmp_path / "m"))


def test_openai_client_round_trip_agrees_with_classify(model_dir: Path) -> None:
    from openai import OpenAI

    guard = Guard.from_pretrained(model_dir, device="cpu")
    texts = texts_of("en", 6, 0) + texts_of("de", 6, 1)
    probs = guard.score(texts)
    guard.threshold = float(np.median(probs))  # half flagged: `flagged` must follow the threshold
    with Server(create_app(guard, model_id="crest-tiny", model_dir=model_dir)) as srv:
        client = OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0)
        answer = client.moderations.create(input=texts, model="omni-moderation-latest")
        assert answer.model == "crest-tiny" and answer.id.startswith("modr-") and len(answer.results) == len(texts)
        classify = httpx.post(f"{srv.url}/v1/classify", json={"texts": texts}).json()
        flagged = [r.flagged for r in answer.results]
        assert flagged == [label == "unsafe" for label in classify["labels"]]
        assert 0 < sum(flagged) < len(texts)
        scores = [r.category_scores.model_dump()["unsafe"] for r in answer.results]
        np.testing.assert_allclose(scores, probs, atol=1e-5)
        assert all(r.categories.model_dump()["unsafe"] == r.flagged for r in answer.results)
        one = client.moderations.create(input=texts[0])  # a single string, no model
        assert len(one.results) == 1 and one.results[0].category_scores.model_dump()["unsafe"] == pytest.approx(
            float(probs[0]), abs=1e-5)
        # raw shape, as a gateway reads it (LiteLLM: results[0].flagged, categories, category_scores)
        raw = httpx.post(f"{srv.url}/v1/moderations", json={"input": [{"type": "text", "text": texts[1]}]}).json()
        assert set(raw) == {"id", "model", "results"}
        assert set(raw["results"][0]) >= {"flagged", "categories", "category_scores"}
        assert httpx.get(f"{srv.url}/v1/model").json()["moderation_categories"] == ["unsafe"]


def test_moderations_limits_and_errors(model_dir: Path) -> None:
    guard = Guard.from_pretrained(model_dir, device="cpu")
    with Server(create_app(guard, model_id="m", limits=Limits(max_texts=3, max_chars=50))) as srv:
        post = lambda body: httpx.post(f"{srv.url}/v1/moderations", json=body)  # noqa: E731
        r = post({"input": ["a", "b", "c", "d"]})
        assert r.status_code == 413 and r.json()["limit"] == 3 and r.json()["got"] == 4
        assert post({"input": "x" * 51}).status_code == 413
        r = post({"input": [{"type": "image_url", "image_url": {"url": "http://x"}}]})
        assert r.status_code == 422 and "text only" in r.text
        assert post({"input": []}).status_code == 422
        assert post({"text": "hi"}).status_code == 422  # /v1/classify's shape is not this one
        assert post({"input": "hi", "model": "anything"}).status_code == 200


@pytest.mark.slow
def test_per_language_thresholds_calibrated_applied_and_reported(model_dir: Path, tmp_path: Path) -> None:
    """de and fr have enough rows of both classes and get their own thresholds; en has too few
    unsafe rows and falls back to the global one; classify and serve apply and report them."""
    guard = Guard.from_pretrained(model_dir, device="cpu")
    rows = pd.DataFrame({"text": texts_of("de", 60, 2) + texts_of("fr", 60, 3) + texts_of("en", 30, 4),
                         "lang": ["de"] * 60 + ["fr"] * 60 + ["en"] * 30, "split": "validation"})
    probs = guard.score(rows["text"].tolist())
    rows["label"] = labels = label_by_own_scores(rows, probs, {"de": 0.5, "fr": 0.3, "en": 0.1})
    data = tmp_path / "val.parquet"
    rows.to_parquet(data, index=False)
    run = subprocess.run([sys.executable, "-m", "crest.cli", "guard", "calibrate", "--model", str(model_dir),
                          "--data", str(data), "--target-recall", "0.9", "--per-language", "--min-rows-per-class", "10",
                          "--device", "cpu"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert set(result["languages"]["languages"]) == {"de", "fr"} and "en" in result["languages"]["fallback"]
    for lang in ("de", "fr"):
        rows_l = (rows["lang"] == lang).to_numpy()
        expected = calibrate_threshold(probs[rows_l], labels[rows_l], target_recall=0.9)["threshold"]
        assert result["languages"]["languages"][lang] == pytest.approx(expected, abs=1e-6)
    stored = json.loads((model_dir / "crest_guard.json").read_text())
    assert "3 unsafe" in stored["language_calibration"]["fallback"]["en"]
    assert "## Thresholds per language" in (model_dir / "README.md").read_text()

    guard = Guard.from_pretrained(model_dir, device="cpu")
    t_de, t_glob = guard.lang_thresholds["de"], guard.threshold
    assert t_de != t_glob
    text = rows["text"][0]
    out = guard.classify([text, text, text], langs=["de", "EN", None], detect=False)
    assert [o["threshold_from"] for o in out] == ["language", "model", "model"]
    assert [o["lang_from"] for o in out] == ["given", "given", None]
    assert [o["threshold"] for o in out] == [t_de, t_glob, t_glob] and out[0]["lang"] == "de"
    assert out[0]["label"] == ("unsafe" if out[0]["prob_unsafe"] >= t_de else "safe")
    # a text between the two thresholds is judged differently by language
    between = [t for t in rows["text"] if min(t_de, t_glob) <= guard.score([t])[0] < max(t_de, t_glob)]
    assert between
    labels_by = [guard.classify([between[0]], langs=lang)[0]["label"] for lang in ("de", "en")]
    assert labels_by[0] != labels_by[1]
    # an explicit threshold overrides every language's
    assert Guard.from_pretrained(model_dir, device="cpu", threshold=0.3).lang_thresholds == {}
    assert guard.classify([text], threshold=0.3, langs="de")[0]["threshold_from"] == "request"

    with Server(create_app(guard, model_id="m", model_dir=model_dir)) as srv:
        r = httpx.post(f"{srv.url}/v1/classify", json={"texts": [text, text], "langs": ["de", "sw"]}).json()
        assert r["thresholds"] == [t_de, t_glob] and r["threshold_from"] == ["language", "model"]
        assert r["langs"] == ["de", "sw"] and r["lang_from"] == ["given", "given"]
        r = httpx.post(f"{srv.url}/v1/classify", json={"text": text, "lang": "fr"}).json()
        assert r["thresholds"] == [guard.lang_thresholds["fr"]]
        bad = httpx.post(f"{srv.url}/v1/classify", json={"texts": [text], "langs": ["de", "fr"]})
        assert bad.status_code == 422 and "2 languages for 1 texts" in bad.text
        info = httpx.get(f"{srv.url}/v1/model").json()
        assert info["language_thresholds"] == guard.lang_thresholds and "en" in info["language_calibration"]["fallback"]
        mod = httpx.post(f"{srv.url}/v1/moderations", json={"input": [text], "lang": "de"}).json()
        assert mod["results"][0]["flagged"] == (guard.score([text])[0] >= t_de)

    # crest classify: --lang-field picks each record's threshold
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": text, "lang": lang}) for lang in ("de", "en")) + "\n")
    run = subprocess.run([sys.executable, "-m", "crest.cli", "classify", "--model", str(model_dir), "--device", "cpu",
                          "--lang-field", "lang", str(jsonl)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    got = [json.loads(line) for line in run.stdout.splitlines()]
    assert [g["threshold"] for g in got] == [t_de, t_glob] and got[0]["threshold_from"] == "language"


def test_language_calibration_needs_rows(tmp_path: Path) -> None:
    (tmp_path / "crest_guard.json").write_text('{"threshold": 0.5}')
    result = calibrate_languages(tmp_path, np.array([0.1, 0.9, 0.2, 0.8]), np.array([0, 1, 0, 1]),
                                 ["de", "de", "fr", "fr"], target_recall=0.9, min_rows=2)
    assert result["languages"] == {} and set(result["fallback"]) == {"de", "fr"}
    with pytest.raises(ValueError, match="not one per row"):
        calibrate_languages(tmp_path, np.array([0.1]), np.array([0]), ["de", "fr"], target_recall=0.9)
