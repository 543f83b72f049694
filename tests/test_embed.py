"""crest.embed: batching, mean pooling over the mask, layers, per-language outputs, config checks.
A tiny random-weight XLM-R with a trained SentencePiece vocabulary stands in for the encoder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crest.config import load_config
from crest.embed.encode import Encoder, normalise_layers, plan_batches
from crest.embed.run import embed_corpus, read_language_means, read_rows, read_text_embeddings
from crest.paths import REPO_ROOT
from crest.schema import ConfigError
from crest.tiny import build_tiny_xlmr, sample_texts

TEXTS = ["Deutschland", "Vereinigte Staaten von Amerika", "Россия", "中国", "Brasil", "الهند", "भारत",
         "Afrique du Sud", "Nouvelle-Zélande et les îles Cook", "Kenya"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny") / "xlmr", sample_texts(per_locale=120), vocab_size=800,
                           num_layers=3)


@pytest.fixture(scope="module")
def encoder(tiny: Path) -> Encoder:
    return Encoder(str(tiny), device="cpu")


def test_plan_batches_sorted_capped_and_complete() -> None:
    lengths = [5, 40, 12, 3, 40, 7, 100, 9]
    batches = plan_batches(lengths, batch_size=3, max_tokens=90)
    seen = np.concatenate([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(len(lengths)))  # every text exactly once
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert len(b.index) <= 3 and len(b.index) * b.length <= max(90, b.length)
        assert b.length == max(lengths[i] for i in b.index)
    assert plan_batches([5, 6], batch_size=8, multiple_of=8)[0].length == 8
    with pytest.raises(ValueError):
        plan_batches([1], batch_size=0)


def test_normalise_layers() -> None:
    assert normalise_layers([-1, 0, 2, -2], 12) == [12, 0, 2, 11]
    with pytest.raises(ValueError, match="layer 13 out of range"):
        normalise_layers([13], 12)


def _reference(tiny: Path, texts: list[str], layer: int) -> np.ndarray:
    """Mean pooling done the plain way: each text alone, no padding at all."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModel.from_pretrained(tiny).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_tensors="pt")
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer]
            out.append(hidden[0].mean(0).numpy())
    return np.stack(out)


def test_dynamic_padding_and_layers_match_unpadded_pooling(encoder: Encoder, tiny: Path) -> None:
    vectors, lengths = encoder.encode(TEXTS, layers=[-1, 1], batch_size=4, progress=False)
    assert set(vectors) == {3, 1} and vectors[3].shape == (len(TEXTS), 32)
    np.testing.assert_allclose(vectors[3], _reference(tiny, TEXTS, 3), atol=1e-5)
    np.testing.assert_allclose(vectors[1], _reference(tiny, TEXTS, 1), atol=1e-5)
    # a token budget changes the batches, not the vectors
    budget, _ = encoder.encode(TEXTS, layers=[-1], batch_size=64, max_tokens=20, progress=False)
    np.testing.assert_allclose(budget[3], vectors[3], atol=1e-5)
    assert lengths.min() >= 3  # <s> text </s>


def test_cpu_batches_are_capped_at_the_cpu_token_budget(encoder: Encoder, tiny: Path, monkeypatch) -> None:
    """On CPU no batch exceeds CPU_MAX_TOKENS padded tokens, whatever the caller asks (8k-token
    batches page-fault fresh memory every forward: docs/performance.md), and the vectors stay those
    of unpadded one-text-at-a-time pooling."""
    from crest.embed import encode

    texts = [" ".join(TEXTS[i:] + TEXTS[:i]) for i in range(len(TEXTS))] * 3  # ~40 tokens each
    monkeypatch.setattr(encode, "CPU_MAX_TOKENS", 128)
    seen: list[int] = []

    def spy(lengths, batch_size, max_tokens=None, multiple_of=1):
        batches = plan_batches(lengths, batch_size, max_tokens, multiple_of)
        seen.extend(len(b.index) * b.length for b in batches)
        return batches

    monkeypatch.setattr(encode, "plan_batches", spy)
    for asked in (None, 8192):
        seen.clear()
        vectors, _ = encoder.encode(texts, batch_size=64, max_tokens=asked, progress=False)
        assert len(seen) > 1 and max(seen) <= 128
        np.testing.assert_allclose(vectors[3], _reference(tiny, texts, 3), atol=1e-5)


def _corpus(tmp_path: Path) -> Path:
    rows = []
    for lang, words in {"de": ["Deutschland", "Frankreich", "Spanien", "Russland"],
                        "fr": ["Allemagne", "France", "Espagne", "Russie"],
                        "ru": ["Германия", "Франция", "Испания", "Россия"],
                        "es": ["Alemania", "Francia", "España", "Rusia"]}.items():
        rows += [{"id": f"cldr-territories:{k}-{lang}", "text": w, "lang": lang, "source": "cldr"}
                 for k, w in zip(["DE", "FR", "ES", "RU"], words)]
    rows.append({"id": "cldr-territories:IT-de", "text": "Italien", "lang": "de", "source": "cldr"})
    path = tmp_path / "cldr.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_embed_corpus_writes_per_language_outputs(encoder: Encoder, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    (out).mkdir()
    np.save(out / "xx.npy", np.zeros(3))  # a stale file of an earlier run
    manifest = embed_corpus([_corpus(tmp_path)], out, str(tiny), layers=[-1, 2], min_per_language=2,
                            max_per_language=4, encoder=encoder, progress=False)
    assert manifest["languages"] == 4 and manifest["texts"] == 16 and manifest["layers"] == [3, 2]
    assert not (out / "xx.npy").exists()
    rows = read_rows(out)
    assert set(rows.loc[rows["lang"] == "de", "key"]) == {"territories:DE", "territories:FR", "territories:ES",
                                                           "territories:RU"}  # IT is in one language only
    de = np.load(out / "de.npy")
    assert de.dtype == np.float16 and de.shape == (4, 32)
    assert np.load(out / "layer2" / "ru.npy").shape == (4, 32)
    langs, means, layer = read_language_means(out / "language_means.parquet")
    assert layer == 3 and langs == ["de", "fr", "ru", "es"]
    np.testing.assert_allclose(means[0], de.astype(np.float32).mean(0), atol=2e-3)
    _, means2, layer2 = read_language_means(out / "language_means.parquet", layer=2)
    assert layer2 == 2 and not np.allclose(means, means2)
    assert read_language_means(out / "language_means.parquet", layer=-1)[2] == 3
    with pytest.raises(ValueError, match="no layer 1"):
        read_language_means(out / "language_means.parquet", layer=1)
    texts = read_text_embeddings(out, ["fr"], layer=2)
    assert texts["fr"].shape == (4, 32)
    # same inputs, same seed: the same bytes
    again = tmp_path / "again"
    embed_corpus([_corpus(tmp_path)], again, str(tiny), layers=[-1, 2], min_per_language=2, max_per_language=4,
                 encoder=encoder, progress=False)
    assert (again / "de.npy").read_bytes() == (out / "de.npy").read_bytes()
    # the manifest on disk is the one returned, and counts the work done (its speed is bench/'s business)
    assert json.loads((out / "embed.json").read_text()) == manifest
    assert manifest["tokens"] == int(rows["n_tokens"].sum()) > manifest["texts"]
    assert manifest["texts_per_language"] == {"de": 4, "fr": 4, "ru": 4, "es": 4}


def test_embed_cli(tiny: Path, tmp_path: Path) -> None:
    from crest.cli import main

    rc = main(["embed", "run", str(_corpus(tmp_path)), "--model", str(tiny), "--out-dir", str(tmp_path / "o"),
               "--languages", "de", "fr", "--layers", "-1", "--no-progress", "--threads", "1"])
    assert rc == 0 and (tmp_path / "o" / "fr.npy").is_file() and not (tmp_path / "o" / "ru.npy").exists()
    rc = main(["embed", "run", str(_corpus(tmp_path)), "--model", str(tiny), "--out-dir", str(tmp_path / "p"),
               "--languages", "de", "sw", "--no-progress"])
    assert rc == 2  # a requested language without texts


def _demo() -> dict:
    return yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda c: c["embed"].update(encoder="huge"), r"embed\.encoder: 'huge' is not a key of models\.encoders"),
    (lambda c: c["embed"].update(input={"source": "flores_de"}), r"embed\.input\.source: 'flores_de' is not in data"),
    (lambda c: c["embed"].update(input={"corpus": "nope"}), r"embed\.input\.corpus: 'nope' is not in data\.corpora"),
    (lambda c: c["embed"].update(languages=["de", "xx"]), r"embed\.languages.*'xx'"),
    (lambda c: c["embed"].update(languages="nogroup"), r"embed\.languages: 'nogroup' is not a group"),
    (lambda c: c["models"]["encoders"].update(base="FacebookAI/xlm-roberta-base"), r"offline: true"),
    (lambda c: c["embed"].update(input={"source": "cldr", "corpus": "safety"}), r"embed\.input"),
])
def test_embed_config_errors_name_the_key(change, message) -> None:
    config = copy.deepcopy(_demo())
    change(config)
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_embed_stage_is_off_without_input() -> None:
    from crest.embed.config import embed_enabled

    config = _demo()
    del config["embed"]
    config["train"]["arms"].pop("typology")  # the typology map takes its k from the embedding map's
    loaded = load_config(config)
    assert not embed_enabled(loaded) and loaded["embed"]["layers"] == [-1]
    assert embed_enabled(load_config(_demo()))
