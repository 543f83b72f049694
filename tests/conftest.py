"""Shared fixtures: small registries and run configs written to tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_yaml(tmp_path: Path):
    def write(name: str, doc: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def local_source(tmp_path: Path):
    """A registry entry over a local CSV the test writes."""

    def make(rows: str, fmt: str = "csv", **spec: Any) -> dict[str, Any]:
        data = tmp_path / f"data.{fmt}"
        data.write_text(rows, encoding="utf-8")
        entry = {"license": "test", "loader": {"local": {"path": str(data), "format": fmt}},
                 "text": "prompt", "label": {"field": "label", "map": {"safe": 0, "unsafe": 1}}, "lang": "en"}
        entry.update(spec)
        return entry

    return make


# --- training fixtures (crest.train): a tiny encoder and translated shards with a learnable rule ----
TRIGGER = "zyxbomb"
"""A word planted in every unsafe row of `toy_shards`: the rule a tiny classifier can learn."""


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A random-weight XLM-R encoder (2 layers, hidden 32) whose vocabulary holds TRIGGER as one
    piece, built once per session."""
    from crest.tiny import build_tiny_xlmr

    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny_encoder") / "xlmr", extra_symbols=[TRIGGER])


def write_toy_shards(folder: Path, langs: dict[str, str] | list[str], rows: int = 200, unsafe: float = 0.7,
                     seed: int = 0, random_translator: bool = True) -> Path:
    """Translated shards as the translation stage writes them ({lang}.parquet + {lang}.qc.json):
    the same ids, labels and splits (80/10/10) in every language; texts of 2-8 CLDR words of the
    language (`langs` maps a code to a babel locale), TRIGGER in the unsafe ones."""
    import random

    import pandas as pd

    from crest.tiny import sample_texts

    langs = dict(langs) if isinstance(langs, dict) else {c: c for c in langs}
    rng = random.Random(seed)
    labels = [int(rng.random() < unsafe) for _ in range(rows)]
    lengths = [rng.randint(2, 8) for _ in range(rows)]
    splits = ["train" if i % 10 < 8 else ("validation" if i % 10 == 8 else "test") for i in range(rows)]
    folder.mkdir(parents=True, exist_ok=True)
    for code, locale in langs.items():
        words = [w for w in sample_texts((locale,)) if " " not in w][:150]
        r = random.Random(f"{seed}:{code}")
        texts = []
        for label, n in zip(labels, lengths, strict=True):
            ws = [r.choice(words) for _ in range(n)]
            if label:
                ws.insert(r.randrange(n + 1), TRIGGER)
            texts.append(" ".join(ws))
        pd.DataFrame({"id": [f"toy-{i:05d}" for i in range(rows)], "text": texts, "label": labels, "lang": code,
                      "source": "toy", "category": "", "split": splits, "origin": "", "src_text": texts},
                     ).to_parquet(folder / f"{code}.parquet", index=False)
        (folder / f"{code}.qc.json").write_text(
            f'{{"lang": "{code}", "translator_is_random": {str(random_translator and code != "en").lower()}}}\n')
    return folder


@pytest.fixture
def toy_shards(tmp_path: Path):
    """write_toy_shards into tmp_path/translated, or into `folder`."""
    return lambda langs, folder=None, **kw: write_toy_shards(folder or tmp_path / "translated", langs, **kw)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    """A random-weight tiny XLM-R safe/unsafe classifier (labels safe=0, unsafe=1), built once per
    session: scores vary with the text, which is all the guard-serving tests need."""
    from crest.tiny import build_tiny_xlmr

    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny_classifier") / "m", num_labels=2, extra_symbols=[TRIGGER])


# --- a trained tiny guard (crest.guard tests: ONNX export, the serve page) ---------------------------
def toy_rows(n: int, seed: int, langs=("en", "de", "fr"), unsafe: float = 0.5):
    """Labelled rows of 3-12 CLDR words of a language, TRIGGER in the unsafe ones."""
    import random

    import pandas as pd

    from crest.tiny import sample_texts

    words = {lang: [w for w in sample_texts((lang,)) if " " not in w][:150] for lang in langs}
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lang, label = langs[i % len(langs)], int(rng.random() < unsafe)
        ws = [rng.choice(words[lang]) for _ in range(rng.randint(3, 12))]
        if label:
            ws.insert(rng.randrange(len(ws) + 1), TRIGGER)
        rows.append({"text": " ".join(ws), "label": label, "lang": lang, "split": "validation"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def trained_guard(tmp_path_factory) -> Path:
    """A tiny classifier trained (seconds, plain torch loop) to say unsafe iff TRIGGER occurs."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from crest.tiny import build_tiny_xlmr

    out = build_tiny_xlmr(tmp_path_factory.mktemp("trained_guard") / "m", num_labels=2, extra_symbols=[TRIGGER],
                          hidden_size=64, intermediate_size=128, num_heads=4)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out, hidden_dropout_prob=0.0,
                                                               attention_probs_dropout_prob=0.0)
    train = toy_rows(1200, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for step in range(80):  # validation AUROC 1.0 from ~60 steps
        batch = train.iloc[(step * 32) % (len(train) - 32):][:32]
        enc = tok(batch["text"].tolist(), padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor(batch["label"].to_numpy())).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out)
    return out
