"""Fair arms (docs/train.md, "Arms"): evaluation languages never train, random
arms are tier-matched draws, the label-shuffled null control, the equal-budget comparison."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crest.cli import main
from crest.config import load_config
from crest.heldout import trainable_candidates
from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.schema import ConfigError
from crest.train.arms import (
    ArmContext,
    arm_languages,
    expand_arms,
    tier_counts,
    tier_draw,
)
from crest.train.dataset import build_arm_dataset, shuffle_labels
from crest.train.plan import dataset_settings, job_settings, train_jobs

TABLE = load_languages(REPO_ROOT / "config/languages.tsv")
GROUPS = {"train": ["es", "en", "de", "ru", "cs", "fi", "hi", "ta", "zh", "vi", "ar", "sw", "tl"],
          "unseen_hrl": ["fr", "it", "de", "pt", "es"],
          "ood_lrl": ["gl", "is", "af", "sl", "si", "th", "mr", "ps", "jv", "ha", "ka"]}
EVAL = set(GROUPS["unseen_hrl"]) | set(GROUPS["ood_lrl"])
TRANSLATED = ["es", "de", "ru", "cs", "fi", "hi", "ta", "zh", "vi", "ar", "sw", "tl", "gl", "th", "si"]


def _config(arms: dict, **train) -> dict:
    """The demo config with its own language groups and translated languages (the paper's groups),
    so these tests do not follow the demo's choice of languages."""
    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    config["languages"]["groups"] = copy.deepcopy(GROUPS)
    config["translate"] = {k: v for k, v in config["translate"].items() if k not in ("backends", "routes")}
    config["translate"]["languages"] = list(TRANSLATED)
    config.pop("evaluate", None)
    config["train"]["arms"] = arms
    config["train"]["budget"] = None
    config["train"].update(train)
    return config


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- 1. a training language is never an evaluation language of the same model -----------------------


def test_an_arm_listing_an_ood_language_fails_at_dag_build_naming_arm_and_language(tmp_path: Path) -> None:
    path = _write(tmp_path, _config({"leaky": {"languages": ["en", "th"]}}))  # th: languages.groups.ood_lrl
    with pytest.raises(ConfigError, match=r"train\.arms\.leaky\.languages: arm 'leaky' would train on th, "
                                          r"evaluated as unseen.*allow_eval_languages: \[th\]"):
        load_config(path)
    # a group holding evaluation languages is refused the same way (the demo's `train` has de, es)
    with pytest.raises(ConfigError, match=r"arm 'fixed' would train on es, de"):
        load_config(_config({"fixed": {"languages": "train"}}))


def test_an_arm_opts_in_and_records_its_seen_evaluation_languages(toy_shards, tmp_path: Path) -> None:
    config = load_config(_config({"paper13": {"languages": "train", "allow_eval_languages": ["de", "es"]}}))
    assert "de" in arm_languages("paper13", config["train"]["arms"], _ctx(config))
    with pytest.raises(ConfigError, match=r"allow_eval_languages: ru is not evaluation"):
        load_config(_config({"x": {"languages": ["ru"], "allow_eval_languages": ["ru"]}}))
    settings = dataset_settings(config, "paper13", TABLE)
    shards = toy_shards(["en", "de", "es", "ru"])
    settings["arms"]["paper13"]["languages"] = ["en", "de", "es", "ru"]
    info = build_arm_dataset(settings, shards, tmp_path / "d.parquet", tmp_path / "d.json", table=TABLE)
    assert info["eval_languages_trained"] == ["de", "es"] and info["languages"] == ["en", "de", "es", "ru"]
    assert json.loads((tmp_path / "d.json").read_text())["eval_languages_trained"] == ["de", "es"]


def test_pools_all_and_anchor_candidates_leave_evaluation_languages_out() -> None:
    config = load_config(_config({"all": {"languages": "all"}, "any": {"languages": {"random": 11, "seed": 3}}}))
    ctx = _ctx(config)
    translated = set(ctx.translated)
    assert {"gl", "th", "si", "de", "es"} <= translated  # the demo translates them, to evaluate on
    assert set(arm_languages("all", config["train"]["arms"], ctx)) == translated - EVAL
    assert set(arm_languages("any", config["train"]["arms"], ctx)) == translated - EVAL  # the whole pool
    assert set(trainable_candidates(config, TABLE, None)) == set(TABLE) - EVAL
    assert trainable_candidates(config, TABLE, ["en", "th", "hi"]) == ["en", "hi"]
    # anchors that name an evaluation language (e.g. an old anchors.tsv) stop the arm's job
    with pytest.raises(ConfigError, match=r"anchors of kmeans\): arm 'crest' would train on th"):
        arm_languages("crest", {"crest": {"languages": {"anchors": "kmeans", "untranslated": "skip"}}},
                      _ctx(config, anchors={"kmeans": ["en", "hi", "th"]}))


def _ctx(config: dict, anchors=None) -> ArmContext:
    from crest.train.plan import arm_context

    ctx = arm_context(config, TABLE)
    ctx.anchors = anchors
    return ctx


# --- 3. random arms: tier-matched draws, expanded from one entry ------------------------------------

CREST = ["en", "ru", "zh", "hi", "cs", "sw", "tl"]


def _draw_config(**random) -> dict:
    return _config({"crest": {"languages": {"anchors": "kmeans", "untranslated": "skip"}},
                    "random": {"languages": {"random": "crest", "draws": 5, "seed": 100} | random}})


def test_one_entry_expands_into_five_tier_matched_draws() -> None:
    config = load_config(_draw_config())
    arms = config["train"]["arms"]
    assert [a for a in arms if a.startswith("random")] == [f"random_{i}" for i in range(5)]
    assert {arms[f"random_{i}"]["languages"]["seed"] for i in range(5)} == {100, 101, 102, 103, 104}
    assert {arms[f"random_{i}"]["family"] for i in range(5)} == {"random"}
    assert {a for a, _, _ in train_jobs(config)} == {"crest", *(f"random_{i}" for i in range(5))}
    ctx = _ctx(config, anchors={"kmeans": CREST})
    draws = [arm_languages(f"random_{i}", arms, ctx) for i in range(5)]
    for draw in draws:
        assert tier_counts(draw, TABLE) == tier_counts(CREST, TABLE) and "en" in draw
        assert not set(draw) & EVAL and set(draw) <= set(ctx.translated)
    assert len({tuple(d) for d in draws}) >= 4  # each draw its own language list
    assert draws == [arm_languages(f"random_{i}", arms, ctx) for i in range(5)]  # the same at job time
    assert expand_arms(arms) == arms  # expanding twice changes nothing
    # at DAG-build time the anchors are unknown, and so are the draws
    assert arm_languages("random_0", arms, _ctx(config)) is None


def test_tier_draw_is_a_pure_function_and_fails_naming_the_short_tier() -> None:
    pool = ["ru", "vi", "zh", "fi", "cs", "ar", "hi", "ta", "sw", "tl"]
    tiers = {c: TABLE[c].tier for c in pool}
    wanted = tier_counts(["ru", "zh", "hi", "sw"], TABLE)
    assert tier_draw(pool, tiers, wanted, 7) == tier_draw(list(pool), dict(tiers), dict(wanted), 7)
    assert tier_counts(tier_draw(pool, tiers, wanted, 7), TABLE) == wanted
    with pytest.raises(ConfigError, match=r"cannot draw 9 high-resource languages"):
        tier_draw(pool, tiers, {"high": 9}, 0)


def test_draws_match_the_translation_backend_too_when_a_run_mixes_backends() -> None:
    """In a run where some languages are glosses and others NLLB, a random draw
    takes a gloss language for each of crest's gloss languages of the same tier (the demo's crest
    trained on glosses, its random draws on Apertium Catalan: a backend gap read as a transfer gap)."""
    from collections import Counter

    from crest.train.arms import strata

    config = _draw_config()
    gloss = {"cs", "fi", "hi", "ar"}
    config["translate"]["backends"] = {c: "gloss" for c in gloss}  # the rest: NLLB (ctranslate2)
    config = load_config(config)
    arms = config["train"]["arms"]
    ctx = _ctx(config, anchors={"kmeans": CREST})
    assert ctx.backends["hi"] == "gloss" and ctx.backends["zh"] == "ctranslate2" and "en" not in ctx.backends
    of = strata(ctx.translated, ctx)
    assert of["hi"] == (TABLE["hi"].tier, "gloss") and of["en"] == (TABLE["en"].tier, "source")

    def backends(codes):
        return Counter((TABLE[c].tier, c in gloss) for c in codes)

    draws = [arm_languages(f"random_{i}", arms, ctx) for i in range(5)]
    for draw in draws:
        assert backends(draw) == backends(CREST) and "en" in draw and not set(draw) & EVAL
    assert len({tuple(d) for d in draws}) >= 3
    # the tier rule alone (what the draws were before) mixes backends up in some draw
    pool = [c for c in ctx.translated if c not in EVAL and c != "en"]
    tier_only = [tier_draw(pool, {c: TABLE[c].tier for c in pool}, tier_counts([c for c in CREST if c != "en"], TABLE),
                           100 + i) for i in range(5)]
    assert any(backends(d) != backends([c for c in CREST if c != "en"]) for d in tier_only)
    # one backend for every language: strata are the tiers, the draws those of the tier rule
    plain = load_config(_draw_config())
    assert set(strata(["hi", "zh"], _ctx(plain)).values()) <= {TABLE["hi"].tier, TABLE["zh"].tier}
    info_settings = dataset_settings(config, "random_0", TABLE)
    assert info_settings["backends"]["hi"] == "gloss"
    with pytest.raises(ConfigError, match=r"cannot draw 2 high-resource gloss languages"):
        tier_draw(["ru", "zh"], {"ru": ("high", "gloss"), "zh": ("high", "ctranslate2")}, {("high", "gloss"): 2}, 0)


def test_english_is_kept_only_when_the_matched_arm_has_it() -> None:
    config = load_config(_draw_config())
    arms = config["train"]["arms"]
    without = [c for c in CREST if c != "en"]
    for i in range(5):
        draw = arm_languages(f"random_{i}", arms, _ctx(config, anchors={"kmeans": without}))
        assert tier_counts(draw, TABLE) == tier_counts(without, TABLE)
    count = load_config(_draw_config(match="count"))
    draw = arm_languages("random_0", count["train"]["arms"], _ctx(count, anchors={"kmeans": CREST}))
    assert len(draw) == len(CREST) and not set(draw) & EVAL


def test_crest_train_arms_prints_the_draws_with_their_tiers(tmp_path: Path, capsys) -> None:
    anchors = tmp_path / "anchors.tsv"
    anchors.write_text("language\tcluster\n" + "".join(f"{c}\t{i}\n" for i, c in enumerate(CREST)))
    path = _write(tmp_path, _draw_config())
    assert main(["train", "arms", "--configfile", str(path), "--anchors", f"kmeans={anchors}"]) in (0, None)
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[[i for i, x in enumerate(lines) if x.startswith("arm ")][0] + 1:]}
    want = "{}/{}/{}".format(*tier_counts(CREST, TABLE).values())
    assert set(rows) == {"crest", *(f"random_{i}" for i in range(5))}
    for arm, line in rows.items():
        langs = line.split(want, 1)[1].split()
        assert want in line and not set(langs) & EVAL, line
    assert "th" in next(x for x in lines if x.startswith("evaluation languages"))


# --- the label-shuffled control (docs/train.md, "The label-shuffled null control") ----------------


def test_shuffled_labels_are_seeded_and_keep_counts_in_train_and_validation(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en", "hi"], rows=400)
    rows = pd.concat([pd.read_parquet(shards / f"{c}.parquet").assign(lang=c) for c in ("en", "hi")],
                     ignore_index=True)
    rows = rows[rows["split"].isin(["train", "validation"])].reset_index(drop=True)
    a, b, c = shuffle_labels(rows, 1), shuffle_labels(rows, 1), shuffle_labels(rows, 2)
    train = rows["split"] == "train"
    assert a["label"].tolist() == b["label"].tolist() != c["label"].tolist()
    assert a[train]["label"].value_counts().to_dict() == rows[train]["label"].value_counts().to_dict()
    # validation labels are permuted too (a null's job never reads the real ones), counts kept
    assert a[~train]["label"].value_counts().to_dict() == rows[~train]["label"].value_counts().to_dict()
    for part in (train, ~train):
        changed = (a[part]["label"] != rows[part]["label"]).mean()
        assert 0.2 < changed < 0.7, changed  # a permutation of a 70/30 column changes ~42% of rows

    config = load_config(_config({"shuffled": {"languages": ["en", "hi"], "shuffle_labels": True}}))
    settings = dataset_settings(config, "shuffled", TABLE)
    info = build_arm_dataset(settings, shards, tmp_path / "d.parquet", tmp_path / "d.json", table=TABLE)
    assert info["label_shuffle"] is True and info["family"] == "shuffled" and info["draw"] is None
    assert info["label_shuffle_splits"] == ["train", "validation"]


def test_shuffle_draws_are_arms_of_one_family_each_with_its_own_permutation(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en", "hi"], rows=400)
    config = load_config(_config({"shuffled": {"languages": ["en", "hi"], "shuffle_labels": True, "shuffle_draws": 3}}))
    assert [a for a in config["train"]["arms"] if a.startswith("shuffled")] == ["shuffled_0", "shuffled_1", "shuffled_2"]
    labels = []
    for arm in ("shuffled_0", "shuffled_1", "shuffled_2"):
        info = build_arm_dataset(dataset_settings(config, arm, TABLE), shards, tmp_path / f"{arm}.parquet",
                                 tmp_path / f"{arm}.json", table=TABLE)
        assert info["family"] == "shuffled" and info["label_shuffle"] is True
        rows = pd.read_parquet(tmp_path / f"{arm}.parquet")
        labels.append(rows[rows["split"] == "train"].sort_values(["lang", "id"])["label"].tolist())
    # three different permutations of one label multiset: every pair differs (0 vs 2 included)
    assert all(labels[i] != labels[j] for i, j in ((0, 1), (0, 2), (1, 2)))
    assert sorted(labels[0]) == sorted(labels[1]) == sorted(labels[2])
    with pytest.raises(ConfigError, match="shuffle_draws"):
        load_config(_config({"bad": {"languages": ["en"], "shuffle_draws": 2}}))


# --- 4. equal budget ---------------------------------------------------------------------------------


def test_equal_budget_gives_every_arm_the_same_rows_and_steps(toy_shards, tmp_path: Path) -> None:
    langs = ["en", "ru", "zh", "hi", "cs", "sw", "tl"]
    shards = toy_shards(langs, rows=500)
    config = load_config(_config({"english": {"languages": ["en"]}, "multi": {"languages": langs},
                                  "multi_alldata": {"languages": langs, "budget": False}},
                                 budget={"examples": 200, "steps": 30}))
    out = {}
    for arm in ("english", "multi", "multi_alldata"):
        info = build_arm_dataset(dataset_settings(config, arm, TABLE), shards, tmp_path / f"{arm}.parquet",
                                 tmp_path / f"{arm}.json", table=TABLE)
        rows = pd.read_parquet(tmp_path / f"{arm}.parquet")
        out[arm] = (info, rows[rows["split"] == "train"])
    (e_info, english), (m_info, multi), (_, alldata) = out["english"], out["multi"], out["multi_alldata"]
    assert len(english) == len(multi) == 200 and len(alldata) > 200  # the all-data variant keeps its rows
    assert e_info["budget"] == m_info["budget"] == {"examples": 200, "steps": 30}
    assert multi["id"].is_unique  # no source row in two languages of one arm
    sizes = multi.groupby("lang").size()
    assert set(sizes.index) == set(langs) and sizes.max() - sizes.min() <= 1  # spread evenly
    assert set(multi["id"]) == set(english["id"])  # the same source rows, shown in other languages
    assert english["label"].value_counts().to_dict() == multi["label"].value_counts().to_dict()
    steps = {job_settings(config, arm, "base", 0)["optim"]["max_steps"] for arm in ("english", "multi")}
    assert steps == {30} and job_settings(config, "multi_alldata", "base", 0)["optim"]["max_steps"] \
        == config["train"]["optim"]["max_steps"] != 30  # no budget: the config's own steps


def test_a_budget_larger_than_the_corpus_is_refused_naming_the_arm(toy_shards, tmp_path: Path) -> None:
    shards = toy_shards(["en"], rows=100)
    config = load_config(_config({"english": {"languages": ["en"]}}, budget={"examples": 500}))
    with pytest.raises(ValueError, match=r"arm 'english': train\.budget\.examples = 500 but its languages hold only 80"):
        build_arm_dataset(dataset_settings(config, "english", TABLE), shards, tmp_path / "d.parquet",
                          tmp_path / "d.json", table=TABLE)
    with pytest.raises(ConfigError, match=r"train\.arms\.english\.budget: set, but there is no train\.budget"):
        load_config(_config({"english": {"languages": ["en"], "budget": False}}))


def test_the_shuffled_model_card_says_it_is_a_null_control() -> None:
    from crest.train.card import model_card

    config = load_config(_config({"shuffled": {"languages": ["en"], "shuffle_labels": True}}))
    settings = job_settings(config, "shuffled", "base", 0)
    summary = {"step": 24, "total_steps": 24, "world_size": 1, "precision": "fp32", "samples_seen": 768,
               "best_step": 24, "stopped_early": False}
    card = model_card(settings, summary, {"languages": ["en"], "label_shuffle": True})
    assert "a null control" in card and "label_shuffle: true" in card
    assert "null control" not in model_card(settings, summary, {"languages": ["en"], "label_shuffle": False})


def test_the_paper_config_lists_five_tier_matched_draws_and_no_evaluation_language(tmp_path: Path, capsys) -> None:
    anchors = tmp_path / "anchors.tsv"  # a fixed stand-in for the paper run's kmeans anchors
    anchors.write_text("language\n" + "\n".join(["en", "ru", "zh", "vi", "fi", "ar", "cs", "hi", "ta", "sw", "tl"]) + "\n")
    main(["train", "arms", "--configfile", str(REPO_ROOT / "config/config.yaml"), "--anchors", f"kmeans={anchors}"])
    out = capsys.readouterr().out.splitlines()
    paper = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())["languages"]["groups"]
    evaluation = set(paper["unseen_hrl"]) | set(paper["ood_lrl"])
    rows = {line.split()[0]: line.split() for line in out[out.index(next(x for x in out if x.startswith("arm "))) + 1:]}
    crest_tiers = rows["crest"][3]
    assert [a for a in rows if a.startswith("random")] == [f"random_{i}" for i in range(5)]
    assert {rows[f"random_{i}"][3] for i in range(5)} == {crest_tiers} and crest_tiers == "5/3/3"
    assert len({tuple(rows[f"random_{i}"][4:]) for i in range(5)}) == 5
    for arm, cells in rows.items():
        langs = set(cells[4:]) if "/" in cells[3] else set()
        assert not langs & evaluation or (arm == "paper13" and langs & evaluation == {"de", "es"}), arm


def test_a_draws_data_at_job_time_is_the_draw_crest_train_arms_shows(toy_shards, tmp_path: Path) -> None:
    config = load_config(_draw_config())
    anchors = tmp_path / "anchors.tsv"
    anchors.write_text("language\n" + "\n".join(CREST) + "\n")
    expected = arm_languages("random_3", config["train"]["arms"], _ctx(config, anchors={"kmeans": CREST}))
    settings = json.loads(json.dumps(dataset_settings(config, "random_3", TABLE)))  # as the rule passes it
    shards = toy_shards(sorted(set(TRANSLATED) | {"en"}), rows=100)
    info = build_arm_dataset(settings, shards, tmp_path / "d.parquet", tmp_path / "d.json",
                             anchors={"kmeans": anchors}, table=TABLE)
    assert info["languages"] == expected and (info["family"], info["draw"]) == ("random", 3)
    assert info["eval_languages_trained"] == [] and set(info["tiers"]) == set(expected)


def test_a_study_adds_its_own_unseen_languages_with_eval_languages() -> None:
    config = _config({"indic": {"languages": ["hi", "ta"]}}, eval_languages=["ood_lrl", "ta"])
    with pytest.raises(ConfigError, match=r"arm 'indic' would train on ta"):
        load_config(config)
    ok = load_config(_config({"indic": {"languages": ["hi", "de"]}}, eval_languages=["ood_lrl", "ta"]))
    assert "de" not in _ctx(ok).evaluation  # unseen_hrl is no longer named: de may train
    with pytest.raises(ConfigError, match=r"train\.eval_languages: 'indic_unseen' is neither a group"):
        load_config(_config({"e": {"languages": ["en"]}}, eval_languages=["indic_unseen"]))
