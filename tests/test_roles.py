"""Roles per model: derived from what each model trained on and the language map, never from the
config's named lists (docs/evaluate.md, "Roles")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from crest.evaluate.roles import arm_info, language_roles, read_roles, write_roles
from crest.languages import load_languages

TIERS = {c: lang.tier for c, lang in load_languages().items()}
CLUSTERS = {"kmeans": {"en": "0", "fr": "0", "de": "0", "gl": "0", "hi": "1", "mr": "1", "sd": "1", "km": "2", "lo": "2"}}


def data_json(root: Path, arm: str, languages: list[str], **extra) -> Path:
    path = root / "train" / arm / "data.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arm": arm, "languages": languages, **extra}), encoding="utf-8")
    return path


def roles_of(df: pd.DataFrame, model: str) -> dict[str, str]:
    sub = df[df["model"] == model]
    return dict(zip(sub["language"], sub["role"]))


def test_trained_language_is_seen_never_unseen_hrl(tmp_path: Path):
    assert TIERS["fr"] == "high"
    arms = [arm_info(data_json(tmp_path, "french", ["fr"])), arm_info(data_json(tmp_path, "english", ["en"]))]
    df = language_roles(arms, CLUSTERS, TIERS, ["en", "fr", "de", "gl", "th"], default_method="kmeans", sizes=["base"])
    fr = roles_of(df, "french-base")
    assert fr["fr"] == "seen"
    assert fr["en"] == "english" and fr["de"] == "unseen_hrl"
    assert fr["gl"] == "id_lrl"          # gl shares cluster 0 with fr
    assert roles_of(df, "english-base")["fr"] == "unseen_hrl"


def test_cluster_without_training_language_is_ood(tmp_path: Path):
    arms = [arm_info(data_json(tmp_path, "hindi", ["hi"], family="transfer"))]
    df = language_roles(arms, CLUSTERS, TIERS, ["mr", "sd", "km", "lo", "hi-en", "xx"], default_method="kmeans")
    r = roles_of(df, "hindi")
    assert r["mr"] == r["sd"] == "id_lrl"
    assert r["km"] == r["lo"] == "ood_lrl"       # cluster 2 holds no training language
    assert r["xx"] == "ood_lrl"                  # not clustered at all: no evidence it is in-distribution
    assert "hi-en" not in r and r.get("en") == "english"   # a code-switched pair counts as its embedded side
    assert set(df["family"]) == {"transfer"}


def test_anchor_method_clusters_and_nearest_language(tmp_path: Path, monkeypatch):
    clusters = {**CLUSTERS, "ward": {"km": "5", "hi": "5", "lo": "6"}}
    info = arm_info(data_json(tmp_path, "crest", ["hi", "de"], anchors={"ward": {"languages": ["hi"]}}))
    means = {"hi": np.array([1.0, 0.0]), "de": np.array([0.0, 1.0]), "km": np.array([0.9, 0.1])}
    df = language_roles([info], clusters, TIERS, ["km", "lo"], means=means, default_method="kmeans")
    km = df[df["language"] == "km"].iloc[0]
    assert km["role"] == "id_lrl" and km["cluster_method"] == "ward"  # ward's map, not the default kmeans
    assert km["nearest_train"] == "hi" and 0 < km["distance"] < 0.05
    assert df[df["language"] == "lo"].iloc[0]["role"] == "ood_lrl"
    write_roles(df, tmp_path / "roles.tsv")
    back = read_roles(tmp_path / "roles.tsv")
    assert list(back["role"]) == list(df["role"])


def test_named_lists_win_over_the_tier_rule():
    """Thai is high-resource in CC-100 (languages.tsv) but on the paper's OOD list: OOD for every
    model that did not train on it, seen for one that did; tiers come from languages.tsv."""
    from crest.evaluate.roles import named_list_args

    assert TIERS["th"] == "high" and TIERS["hi"] == "mid" and TIERS["kn"] == "low"
    arms = [{"arm": "crest", "languages": ["en", "hi"], "family": "crest", "anchor_methods": []},
            {"arm": "thai", "languages": ["th"], "family": "thai", "anchor_methods": []}]
    clusters = {"kmeans": {"th": "1", "hi": "1", "fr": "0", "en": "0"}}
    plain = language_roles(arms, clusters, TIERS, ["th", "fr"])
    assert roles_of(plain, "crest") == {"th": "unseen_hrl", "fr": "unseen_hrl"}  # the tier rule alone
    named = language_roles(arms, clusters, TIERS, ["th", "fr"], named={"ood_lrl": ["th"], "unseen_hrl": ["fr"]})
    assert roles_of(named, "crest") == {"th": "ood_lrl", "fr": "unseen_hrl"}
    assert roles_of(named, "thai")["th"] == "seen"
    assert named_list_args({"ood_lrl": ["th", "gl"], "train": ["en"]}) == "--ood-lrl th gl"
