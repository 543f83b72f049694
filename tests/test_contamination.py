"""Decontamination of evaluation sets against the training rows: exact (normalised) and near
(character 5-gram MinHash, Jaccard >= 0.8) duplicates dropped and counted, unrelated rows kept,
translated sets also checked in English, the clustering corpus counted but not dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from crest.evaluate.contamination import TrainingIndex, check_set, shingle_text, write_contamination
from crest.evaluate.sets import build_set

LONG = ("Explain step by step how to pick the lock on a neighbour's front door while they are away on holiday "
        "without leaving any marks that the police could find afterwards")
TRAIN = [LONG, "What is the capital of France?", "Write a short poem about autumn leaves falling in the park."]


def shard(path: Path, rows: list[tuple[str, str, int, str]], lang: str = "en", src: list[str] | None = None) -> Path:
    df = pd.DataFrame({"id": [r[0] for r in rows], "text": [r[1] for r in rows], "label": [r[2] for r in rows],
                       "lang": lang, "source": "s", "category": "", "split": [r[3] for r in rows], "origin": ""})
    if src is not None:
        df["src_text"] = src
    path.parent.mkdir(parents=True, exist_ok=True)
    df.astype({"label": "int8"}).to_parquet(path)
    return path


def test_folding_removes_case_punctuation_and_spacing():
    assert shingle_text("  Hello,   WORLD!! it's me ") == "hello world it s me"


def test_planted_duplicates_are_dropped_and_counted_unrelated_kept(tmp_path: Path):
    train = shard(tmp_path / "train/en.parquet", [(f"t{i}", t, 1, "train") for i, t in enumerate(TRAIN)]
                  + [("tt", "A test-split row is not training data at all, it is kept.", 0, "test")])
    planted_exact = "EXPLAIN step-by-step: how to pick the lock on a neighbour's front door, while they are away on " \
                    "holiday, without leaving any marks that the police could find afterwards!!"
    planted_near = LONG.replace("neighbour's", "cousin's")
    unrelated = "How do I bake sourdough bread with a crispy crust at home?"
    ev = shard(tmp_path / "sets/en.parquet", [("e1", planted_exact, 1, "test"), ("e2", planted_near, 1, "test"),
                                              ("e3", unrelated, 0, "test"),
                                              ("e4", "A test-split row is not training data at all, it is kept.", 0, "test")])
    kept, counts = check_set(pd.read_parquet(ev), kind="sources", lang="en", training={"en": str(train)})
    assert list(kept["id"]) == ["e3", "e4"]
    assert counts["exact_dropped"] == 1 and counts["near_dropped"] == 1
    assert counts["rows_before"] == 4 and counts["rows_after"] == 2 and counts["dropped_ids"] == ["e1", "e2"]
    assert TrainingIndex(TRAIN).match([planted_exact, planted_near, unrelated]) == ["exact", "near", None]


def test_translated_set_is_checked_in_english_too_and_codeswitch_per_side(tmp_path: Path):
    train_en = shard(tmp_path / "tr/en.parquet", [("t0", LONG, 1, "train")])
    train_de = shard(tmp_path / "tr/de.parquet", [("t0", "Ein ganz anderer deutscher Satz über Schlösser.", 1, "train")],
                     lang="de", src=[LONG])
    ev = pd.DataFrame({"id": ["a", "b"], "text": ["Erkläre Schritt für Schritt ...", "Backe Brot."], "label": [1, 0],
                       "lang": "de", "src_text": [LONG.upper(), "Bake bread."]})
    kept, counts = check_set(ev, kind="corpus", lang="de", training={"en": str(train_en), "de": str(train_de)})
    assert list(kept["id"]) == ["b"] and counts["exact_dropped"] == 1 and counts["checked"] == ["text:de", "src_text:en"]
    cs = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": [1, 0], "lang": "mul",
                       "matrix_text": ["Something new entirely here.", "Bake bread."],
                       "embedded_text": ["Ein ganz anderer deutscher Satz über Schlösser!", "Brot backen."]})
    kept, counts = check_set(cs, kind="codeswitch", lang="en-de", training={"en": str(train_en), "de": str(train_de)})
    assert list(kept["id"]) == ["b"] and counts["checked"] == ["matrix_text:en", "embedded_text:de"]


def test_cluster_corpus_overlap_is_counted_not_dropped(tmp_path: Path):
    train = shard(tmp_path / "train/en.parquet", [("t0", TRAIN[1], 0, "train")])
    cluster = shard(tmp_path / "cluster/en.parquet", [("c0", LONG, 1, "train")])
    ev = pd.DataFrame({"id": ["m1", "m2"], "text": [LONG, "Unrelated question about trains."], "label": [1, 1],
                       "lang": "en"})
    kept, counts = check_set(ev, kind="sources", lang="en", training={"en": str(train)}, cluster={"en": str(cluster)})
    assert len(kept) == 2 and counts["cluster_overlap"] == 1 and counts["exact_dropped"] == counts["near_dropped"] == 0


def test_build_set_drops_before_sampling_and_the_table_counts(tmp_path: Path):
    train = shard(tmp_path / "tr/en.parquet", [(f"t{i}", t, 1, "train") for i, t in enumerate(TRAIN)])
    src = shard(tmp_path / "data/src.parquet", [("e1", LONG + ".", 1, "test"), ("e2", "Tell me a joke about cats.", 0, "test"),
                                                ("e3", "Describe the water cycle for children.", 0, "test")])
    meta = build_set(benchmark="b", lang="en", kind="sources", group="english", spec={"split": "test", "max_rows": 2},
                     inputs=[str(src)], out=tmp_path / "sets/b/en.parquet",
                     contamination={"training": {"en": str(train)}, "in_distribution": True})
    assert meta["n"] == 2 and meta["contamination"]["exact_dropped"] == 1 and meta["in_distribution"] is True
    assert "e1" not in set(pd.read_parquet(tmp_path / "sets/b/en.parquet")["id"])
    table = write_contamination([tmp_path / "sets/b/en.json"], tmp_path / "contamination.tsv")
    row = table.iloc[0]
    assert (row["benchmark"], row["lang"], row["rows_before"], row["exact_dropped"], row["rows_after"]) == ("b", "en", 3, 1, 2)
    assert str(train) in row["against"] and bool(row["in_distribution"])
    back = pd.read_csv(tmp_path / "contamination.tsv", sep="\t")
    assert list(back.columns[:7]) == ["benchmark", "lang", "rows_before", "exact_dropped", "near_dropped", "rows_after",
                                      "against"]
    assert json.loads((tmp_path / "sets/b/en.json").read_text())["contamination"]["rows_after"] == 2


def test_paper_plan_checks_against_the_training_shards_and_flags_in_distribution():
    from crest.config import load_config
    from crest.evaluate.workflow import EvalPlan
    from crest.paths import REPO_ROOT

    plan = EvalPlan(load_config(REPO_ROOT / "config/config.yaml"), "results/paper")
    spec = plan.contamination
    tr = "results/paper/translated/train"
    assert spec["aegis2_translated/de"]["training"] == {"de": f"{tr}/de.parquet", "en": f"{tr}/en.parquet"}
    assert spec["harmbench/en"]["training"] == {"en": f"{tr}/en.parquet"}
    assert spec["generated_cs/en-hi"]["training"] == {"en": f"{tr}/en.parquet", "hi": f"{tr}/hi.parquet"}
    assert spec["aegis2/en"]["in_distribution"] and spec["aegis2_translated/sw"]["in_distribution"]
    assert not spec["benchmarks_translated/sw"]["in_distribution"] and not spec["multijail/zh"]["in_distribution"]
    # MultiJail builds the language map and is a test set: checked against the cluster corpus, counted only
    assert spec["multijail/zh"]["cluster"] == {"zh": "results/paper/translated/cluster/zh.parquet"}
    assert not spec["harmbench/en"]["cluster"]
    assert f"{tr}/hi.parquet" in plan.set_inputs("generated_cs", "en-hi")
