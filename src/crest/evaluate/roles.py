"""The role of every evaluated language for every trained model, from what that model trained on
(its arm's `train/{arm}/data.json`) and the language map (`clusters.tsv` of the method its anchors
come from), never from the config's named lists:

    english     the language is `en` (whatever the model trained on)
    seen        the model trained on it
    (a language on the config's named list unseen_hrl or ood_lrl, not trained on, takes that role)
    unseen_hrl  not trained on, high-resource tier (crest.languages, read from languages.tsv)
    id_lrl      not trained on, not high-resource, its cluster holds one of the model's training languages
    ood_lrl     not trained on, not high-resource, no training language in its cluster (or not clustered)

    roles = language_roles(arms, clusters, tiers, languages, means)   # one row per (arm, language)
    write_roles(roles, "results/{run}/eval/roles.tsv")

Each row also names the nearest training language and its cosine distance between language-mean
embeddings (the embed stage's language_means.parquet), so a reader can see why a language is ID.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.io import atomic_path

ROLES = ("seen", "unseen_hrl", "id_lrl", "ood_lrl", "english")
NAMED_LISTS = ("unseen_hrl", "ood_lrl")
"""languages.groups whose members take that role when a model did not train on them."""
COLUMNS = ["model", "arm", "family", "language", "role", "tier", "cluster", "cluster_method", "nearest_train",
           "distance"]


def base_code(lang: str) -> str:
    """The language a set's code names: a code-switched pair `a-b` counts as its embedded side `b`."""
    return lang.split("-", 1)[1] if "-" in lang else lang


def arm_info(path: str | Path) -> dict[str, Any]:
    """What the roles need from a data.json (docs/train.md, "Outputs"): languages, family, the anchor method."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc.get("languages"), list):
        raise ValueError(f"{path}: no `languages` list (the languages the arm trained on)")
    arm = str(doc.get("arm") or Path(path).parent.name)
    family = doc.get("family") or (arm.rsplit("_", 1)[0] if re.fullmatch(r"random_\d+", arm) else arm)  # older files
    return {"arm": arm, "languages": [str(c) for c in doc["languages"]], "family": str(family),
            "anchor_methods": list(doc.get("anchors") or {})}


def named_list_args(groups: Mapping[str, Sequence[str]]) -> str:
    """`crest evaluate roles` options for the named lists of languages.groups (rule eval_roles)."""
    return " ".join(f"--{g.replace('_', '-')} {' '.join(groups[g])}" for g in NAMED_LISTS if groups.get(g))


def role_of(lang: str, trained: set[str], tier: str, cluster: str | None, clusters: Mapping[str, str],
            named: Mapping[str, str] | None = None) -> str:
    """One language's role for a model trained on `trained` (see the module docstring). `named`:
    language -> role from the config's named lists (languages.groups unseen_hrl / ood_lrl), which
    win over the tier and cluster rule where they speak (the paper calls Thai OOD although CC-100
    makes it high-resource)."""
    if lang == "en":
        return "english"
    if lang in trained:
        return "seen"
    if named and lang in named:
        return named[lang]
    if tier == "high":
        return "unseen_hrl"
    if cluster is not None and any(clusters.get(t) == cluster for t in trained):
        return "id_lrl"
    return "ood_lrl"


def _nearest(lang: str, trained: Sequence[str], means: Mapping[str, np.ndarray]) -> tuple[str | None, float | None]:
    """Nearest training language (other than `lang`) by cosine distance of language means."""
    if lang not in means:
        return None, None
    best: tuple[str | None, float | None] = (None, None)
    a = means[lang]
    for t in trained:
        if t == lang or t not in means:
            continue
        b = means[t]
        d = float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        if best[1] is None or d < best[1]:
            best = (t, d)
    return best


def language_roles(arms: Sequence[dict[str, Any]], clusters: Mapping[str, Mapping[str, str]], tiers: Mapping[str, str],
                   languages: Sequence[str], means: Mapping[str, np.ndarray] | None = None,
                   default_method: str | None = None, sizes: Sequence[str] = (),
                   named: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per (model, language). `arms`: arm_info() dicts; `clusters`: method -> {language:
    cluster}; an arm's clusters are those of its first anchor method, else `default_method` (the
    first of cluster.methods). `model` is `{arm}-{size}` per size (the tables' model label), or the
    arm when no sizes are given: every size of an arm trained on the same data. `named`: {role:
    languages} of the config's lists (NAMED_LISTS), which win over the tier rule for an untrained
    language."""
    means = means or {}
    by_lang = {lang: role for role in NAMED_LISTS for lang in (named or {}).get(role, [])}
    rows = []
    for info in arms:
        method = next((m for m in info["anchor_methods"] if m in clusters), default_method)
        lang_cluster = dict(clusters.get(method, {})) if method else {}
        trained = set(info["languages"])
        for lang in dict.fromkeys(base_code(c) for c in languages):
            cluster = lang_cluster.get(lang)
            nearest, dist = _nearest(lang, info["languages"], means)
            row = {"arm": info["arm"], "family": info["family"], "language": lang,
                   "role": role_of(lang, trained, tiers.get(lang, ""), cluster, lang_cluster, by_lang),
                   "tier": tiers.get(lang, ""), "cluster": cluster, "cluster_method": method if lang_cluster else None,
                   "nearest_train": nearest, "distance": dist}
            for model in [f"{info['arm']}-{s}" for s in sizes] or [info["arm"]]:
                rows.append({"model": model, **row})
    return pd.DataFrame(rows, columns=COLUMNS)


def read_cluster_tsv(path: str | Path) -> dict[str, str]:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if not {"language", "cluster"} <= set(df.columns):
        raise ValueError(f"{path}: expected columns `language` and `cluster`")
    return dict(zip(df["language"], df["cluster"]))


def read_means(path: str | Path | None) -> dict[str, np.ndarray]:
    if not path or not Path(path).is_file():
        return {}
    from crest.embed.run import read_language_means

    langs, X, _ = read_language_means(path)
    return dict(zip(langs, X))


def write_roles(df: pd.DataFrame, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_roles(path: str | Path | None) -> pd.DataFrame:
    """roles.tsv, or an empty frame with its columns (a run without trained models)."""
    if not path or not Path(path).is_file():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(path, sep="\t", dtype={"cluster": str, "language": str, "model": str}, keep_default_na=False)


def attach_roles(metrics: pd.DataFrame, roles: pd.DataFrame | None) -> pd.DataFrame:
    """metrics.csv rows with each set's `role` for its model and the model's `family` (from
    roles.tsv). A model without roles (a baseline: its training languages are not ours to know)
    gets `english` for English sets and no role elsewhere; its family is its own name.
    `family_model` is `{family}-{size}` (random_0..4-base -> random-base: tables average draws)."""
    df = metrics.copy()
    code = df["lang"].astype(str).map(base_code)
    role = pd.Series("", index=df.index, dtype=object).where(code != "en", "english")
    trained = df["model_kind"].astype(str) == "trained" if "model_kind" in df else pd.Series(True, index=df.index)
    family = df["model"].astype(str).where(~trained, df["arm"].astype(str))
    if roles is not None and not roles.empty:
        by_lang = {(m, lang): r for m, lang, r in zip(roles["model"].astype(str), roles["language"].astype(str), roles["role"])}
        fam = dict(zip(roles["model"].astype(str), roles["family"].astype(str)))
        role = pd.Series([by_lang.get((m, c), r) for m, c, r in zip(df["model"].astype(str), code, role)], index=df.index)
        family = pd.Series([fam.get(m, f) for m, f in zip(df["model"].astype(str), family)], index=df.index)
    df["role"], df["family"] = role, family
    if roles is not None and not roles.empty and "cluster_method" in roles:
        method = dict(zip(roles["model"].astype(str), roles["cluster_method"].fillna("").astype(str)))
        df["role_map"] = df["model"].astype(str).map(method).fillna("")
    else:
        df["role_map"] = ""
    df["family_model"] = df["model"].astype(str).where(~trained, family + "-" + df["size"].astype(str))
    return df
