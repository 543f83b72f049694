"""crest.train without a model: batches, arms, an arm's data set, the config checks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crest.config import load_config
from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.schema import ConfigError
from crest.train.arms import ArmContext, anchor_methods, arm_languages
from crest.train.batching import BucketBatcher, bucket_lengths, collate, eval_batches, shard_steps
from crest.train.dataset import build_arm_dataset
from crest.train.plan import dataset_settings, job_settings, train_jobs

TABLE = load_languages(REPO_ROOT / "config/languages.tsv")
LANGS = {"en": "en", "de": "de", "hi": "hi", "zh": "zh", "sw": "sw"}


# --- batching ----------------------------------------------------------------------------------------


def _lengths(n: int = 500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 130, size=n)


def test_epoch_batches_cover_every_example_once_within_budget() -> None:
    lengths = _lengths()
    batcher = BucketBatcher(lengths, batch_tokens=1024, max_batch_size=48, pad_to=8, seed=1)
    for epoch in range(3):
        batches = batcher.epoch(epoch)
        assert len(batches) == len(batcher)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        for b in batches:
            padded = bucket_lengths(lengths[b], 8)
            assert len(set(padded.tolist())) == 1, "one bucket per batch"
            assert len(b) <= 48 and (len(b) == 1 or len(b) * padded[0] <= 1024)
    assert [b.tolist() for b in batcher.epoch(1)] == [b.tolist() for b in batcher.epoch(1)]
    assert [b.tolist() for b in batcher.epoch(1)] != [b.tolist() for b in batcher.epoch(2)]
    # a fixed batch size when there is no token budget
    assert {len(b) for b in BucketBatcher(np.full(64, 10), batch_tokens=None, max_batch_size=16).epoch(0)} == {16}


def test_resampling_balances_labels_with_a_fixed_epoch_size() -> None:
    lengths = _lengths(400)
    labels = (np.random.default_rng(2).random(400) < 0.85).astype(np.int64)
    batcher = BucketBatcher(lengths, batch_tokens=2048, max_batch_size=64, seed=3, labels=labels, balance_labels=True)
    sizes = {sum(len(b) for b in batcher.epoch(e)) for e in range(3)}
    assert len(sizes) == 1 and len({len(batcher.epoch(e)) for e in range(3)}) == 1
    drawn = np.concatenate(batcher.epoch(0))
    share = labels[drawn].mean()
    assert 0.45 < share < 0.6, share  # from 0.85 unsafe to about half (single-label buckets stay as they are)


def test_steps_give_every_rank_the_same_number_of_micro_batches() -> None:
    batches = [np.array([i]) for i in range(11)]
    steps = shard_steps(batches, world_size=2, grad_accum=2)
    assert len(steps) == 3 and all(len(step) == 2 and all(len(m) == 2 for m in step) for step in steps)
    seen = [int(b[0]) for step in steps for micro in step for b in micro]
    assert seen[:11] == list(range(11)) and seen[11:] == [0]  # padded by cycling


def test_collate_pads_to_a_multiple_and_eval_batches_cover_all() -> None:
    ids, mask = collate([np.arange(3), np.arange(10)], pad_id=1, pad_to=8)
    assert ids.shape == (2, 16) and mask.sum() == 13 and (ids[0, 3:] == 1).all()
    lengths = _lengths(300)
    batches = eval_batches(lengths, batch_tokens=2000, max_batch_size=50, pad_to=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    assert all(len(b) <= 50 and len(b) * bucket_lengths(lengths[b], 8).max() <= 2000 for b in batches if len(b) > 1)


# --- arms --------------------------------------------------------------------------------------------

ARMS = {
    "crest": {"languages": "anchors"},
    "kept": {"languages": {"anchors": "kmeans", "untranslated": "skip"}},
    "english": {"languages": ["en"]},
    "fixed": {"languages": "train"},
    "random": {"languages": {"random": "crest", "seed": 0, "exclude": ["en"]}},
    "three": {"languages": {"random": 3, "seed": 7}},
    "all": {"languages": "all"},
    "hi_zh": {"languages": ["hi", "zh", "hi"]},
}


def _ctx(anchors=None, translated=("en", "de", "hi", "zh", "sw", "ar")) -> ArmContext:
    return ArmContext(groups={"train": ["en", "de", "zh"]}, translated=list(translated), table=TABLE,
                      methods=["kmeans", "ward"], anchors=anchors)


def test_arm_languages_by_kind() -> None:
    ctx = _ctx(anchors={"kmeans": ["de", "hi", "ja"]})
    assert arm_languages("english", ARMS, ctx) == ["en"]
    assert arm_languages("fixed", ARMS, ctx) == ["en", "de", "zh"]
    assert arm_languages("all", ARMS, ctx) == ctx.translated
    assert arm_languages("hi_zh", ARMS, ctx) == ["hi", "zh"]
    assert arm_languages("kept", ARMS, ctx) == ["de", "hi"]  # ja is not translated: skipped
    with pytest.raises(ConfigError, match=r"train\.arms\.crest.*ja not among the corpus's translated"):
        arm_languages("crest", ARMS, ctx)
    ok = _ctx(anchors={"kmeans": ["de", "hi", "sw"]})
    random = arm_languages("random", ARMS, ok)
    assert len(random) == 3 and "en" not in random and set(random) <= set(ok.translated)
    assert random == arm_languages("random", ARMS, ok)  # seeded
    assert len(arm_languages("three", ARMS, ok)) == 3
    # at DAG-build time the anchors are unknown: so is everything that hangs on them
    assert arm_languages("crest", ARMS, _ctx()) is None and arm_languages("random", ARMS, _ctx()) is None
    assert anchor_methods("random", ARMS, ["kmeans"]) == ["kmeans"] and anchor_methods("three", ARMS, ["kmeans"]) == []


@pytest.mark.parametrize("spec, message", [
    (["en", "xx"], "unknown language code"),
    (["ta"], "ta not among the corpus's translated languages"),
    ({"random": 9}, "cannot draw 9 random languages from 6"),
    ({"random": "loop"}, "cycle"),
    ({"anchors": "spectral"}, "unknown cluster method 'spectral'"),
])
def test_arm_errors_name_the_arm(spec, message) -> None:
    arms = {"bad": {"languages": spec}, "loop": {"languages": {"random": "bad"}}}
    with pytest.raises(ConfigError, match=rf"train\.arms\.(bad|loop)\.languages.*{message}"):
        arm_languages("bad", arms, _ctx())


def test_anchors_all_untranslated_is_an_empty_arm() -> None:
    with pytest.raises(ConfigError, match="the arm has no languages"):
        arm_languages("kept", ARMS, _ctx(anchors={"kmeans": ["ja", "ko"]}))


# --- the run config ----------------------------------------------------------------------------------


def _config(**train) -> dict:
    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    config["train"].update(train)
    return config


def test_paper_config_enumerates_arms_sizes_seeds() -> None:
    config = load_config(REPO_ROOT / "config/config.yaml")
    jobs = train_jobs(config)
    arms, sizes, seeds = config["train"]["arms"], config["train"]["sizes"], config["train"]["seeds"]
    assert sizes == ["base", "large"] and len(seeds) >= 3
    nulls = [f"shuffled_{i}" for i in range(3)]
    assert {"crest", "crest_alldata", "english", "all", "paper13", "transfer_hi", "transfer_kn", "transfer_sd",
            "transfer_zh", "transfer_hi_zh", *(f"random_{i}" for i in range(5)), *nulls} <= set(arms)
    assert config["train"]["budget"]["examples"] and arms["crest_alldata"]["budget"] is False
    # The null control: three permutations at one seed each, as many models as an arm's three seeds.
    assert sorted((a, z, s) for a, z, s in jobs if a.startswith("shuffled")) == \
        [(a, z, 0) for a in nulls for z in ("base", "large")]
    assert len(jobs) == len(set(jobs)) == (len(arms) - len(nulls)) * len(sizes) * len(seeds) + len(nulls) * len(sizes)
    large = job_settings(config, "crest", "large", seeds[0])
    assert large["encoder"] == "FacebookAI/xlm-roberta-large" and large["optim"]["lr"] < config["train"]["optim"]["lr"]


def test_demo_config_trains_the_comparison_and_its_controls() -> None:
    config = load_config(REPO_ROOT / "config/demo.yaml")
    # the null at ten permutations (docs/train.md, "The label-shuffled null control"): enough draws for the equivalence test to say "at chance"
    assert {arm for arm, _, _ in train_jobs(config)} == {"crest", "english", "random_0", "random_1", "all", "typology",
                                                         *(f"shuffled_{i}" for i in range(10))}
    settings = dataset_settings(config, "english", TABLE)
    assert "en" in settings["translated"] and list(settings["arms"]) == ["english"]


@pytest.mark.parametrize("change, message", [
    ({"sizes": ["huge"]}, r"train\.sizes: 'huge' is not a key of models\.encoders"),
    ({"corpus": "other"}, r"train\.corpus: 'other' is not a translated corpus"),
    ({"arms": {"english": {"languages": ["en", "yi"]}}}, r"train\.arms\.english\.languages: yi not among"),
    ({"arms": {"baselines": {"languages": ["en"]}}}, r"train\.arms"),
])
def test_config_errors(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(**change))


def test_offline_config_refuses_a_hub_encoder() -> None:
    config = _config(sizes=["hub"])
    config["models"]["encoders"]["hub"] = "FacebookAI/xlm-roberta-base"
    with pytest.raises(ConfigError, match=r"train\.sizes: models\.encoders\.hub = .* needs the Hugging Face Hub"):
        load_config(config)


# --- an arm's data set -------------------------------------------------------------------------------


def _settings(arm: str, arms: dict, translated=tuple(LANGS), **data) -> dict:
    opts = {"rows_per_language": None, "validation_rows_per_language": None, "id_sharing": "parallel",
            "equalize": False, "seed": 13} | data
    return {"corpus": "toy", "arm": arm, "arms": copy.deepcopy(arms), "groups": {}, "translated": list(translated),
            "methods": ["kmeans"], "data": opts}


def test_parallel_arm_with_stratified_caps(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(LANGS, rows=300)
    info = build_arm_dataset(_settings("multi", {"multi": {"languages": ["en", "de", "hi"]}}, rows_per_language=100,
                                       validation_rows_per_language=20), shards, tmp_path / "d.parquet",
                             tmp_path / "d.json", table=TABLE)
    rows = pd.read_parquet(tmp_path / "d.parquet")
    assert set(rows["split"]) == {"train", "validation"} and info["rows"] == {"train": 300, "validation": 60}
    train = rows[rows["split"] == "train"]
    assert train.groupby("lang").size().to_dict() == {"de": 100, "en": 100, "hi": 100}
    ids = [set(train[train["lang"] == lang]["id"]) for lang in ("en", "de", "hi")]
    assert ids[0] == ids[1] == ids[2]  # parallel: the same source rows in every language
    shard = pd.read_parquet(shards / "en.parquet")
    full = shard[shard["split"] == "train"]["label"].mean()
    assert abs(train["label"].mean() - full) < 0.02  # label-stratified
    val = rows[rows["split"] == "validation"]
    assert val.groupby("lang").size().to_dict() == {"de": 20, "en": 20, "hi": 20}
    assert set(val["id"]).isdisjoint(train["id"])
    assert info["translator_is_random"] and not info["shards"]["en"]["translator_is_random"]
    assert len(info["shards"]["de"]["sha256"]) == 64 and info["rows_per_language"]["hi"]["train"][1] > 0


def test_disjoint_arm_uses_each_source_row_once(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(LANGS, rows=300)
    build_arm_dataset(_settings("multi", {"multi": {"languages": ["en", "de", "hi"]}}, id_sharing="disjoint"),
                      shards, tmp_path / "d.parquet", tmp_path / "d.json", table=TABLE)
    train = pd.read_parquet(tmp_path / "d.parquet").query("split == 'train'")
    assert train["id"].is_unique and len(train) == 240
    assert train.groupby("lang").size().between(70, 90).all()


def test_anchor_arm_records_its_anchors(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(LANGS)
    anchors = tmp_path / "anchors.tsv"
    anchors.write_text("language\tcluster\tscore\treason\nhi\t0\t0.9\ta\nja\t1\t0.8\tb\nzh\t2\t0.7\tc\n")
    info = build_arm_dataset(_settings("crest", {"crest": {"languages": {"anchors": "kmeans", "untranslated": "skip"}}}),
                             shards, tmp_path / "d.parquet", tmp_path / "d.json", anchors={"kmeans": anchors}, table=TABLE)
    assert info["languages"] == ["hi", "zh"] and info["anchors"]["kmeans"]["not_translated"] == ["ja"]


def test_missing_shard_is_named_before_any_read(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en", "de"])
    with pytest.raises(FileNotFoundError, match=r"no translated shard for hi, zh"):
        build_arm_dataset(_settings("x", {"x": {"languages": ["en", "hi", "zh"]}}), shards, tmp_path / "d.parquet",
                          tmp_path / "d.json", table=TABLE)
    assert not (tmp_path / "d.parquet").exists()


def test_label_outside_0_1_names_shard_row_and_value(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en", "de"])
    df = pd.read_parquet(shards / "de.parquet")
    df.loc[5, "label"] = 2
    df.to_parquet(shards / "de.parquet", index=False)
    with pytest.raises(ValueError, match=r"de\.parquet: label 2 of row 'toy-00005' is outside \{0, 1\}"):
        build_arm_dataset(_settings("x", {"x": {"languages": ["en", "de"]}}), shards, tmp_path / "d.parquet",
                          tmp_path / "d.json", table=TABLE)


def test_arm_without_validation_rows_is_refused(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en"])
    df = pd.read_parquet(shards / "en.parquet")
    df.loc[df["split"] == "validation", "split"] = "test"
    df.to_parquet(shards / "en.parquet", index=False)
    with pytest.raises(ValueError, match="no validation rows"):
        build_arm_dataset(_settings("x", {"x": {"languages": ["en"]}}), shards, tmp_path / "d.parquet",
                          tmp_path / "d.json", table=TABLE)
