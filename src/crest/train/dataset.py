"""One arm's training data: its languages' translated shards -> one parquet (train + validation rows)
and a provenance record. Every check runs here, before any model is loaded: a missing shard, a
label outside {0, 1}, an arm without languages or rows stop the job with the file and value named.

Rows come from the data stage's splits (`split` is per source row, so the same in every language):
train rows train, validation rows drive early stopping, test rows are left to evaluation.
Sampling is label-stratified and seeded: the source ids are ranked once by a seeded random key and
every language takes its first rows of each label in that ranking, so `parallel` arms hold the same
source rows in every language. Validation rows per language are capped the same way: the
validation set is stratified by language and label.

Under `train.budget` (equal-budget comparisons) an arm trains on exactly `budget.examples` rows
whatever its languages: the same label-stratified ranking of source ids is walked and each id is
given to one language (disjoint ids, quotas as even as the division allows), so arms differ only
in which languages the same source rows are shown in. A `shuffle_labels` arm (the null control)
permutes the train labels (seeded; label counts kept); validation labels stay real.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.data.wheels import sha256_file
from crest.io import write_json, write_parquet
from crest.paths import display_path
from crest.train.arms import ArmContext, arm_languages, read_anchors

log = logging.getLogger(__name__)

COLUMNS = ["id", "text", "label", "lang", "split", "source", "category"]
SPLITS = ("train", "validation")


def shard_path(shard_dir: str | Path, lang: str) -> Path:
    return Path(shard_dir) / f"{lang}.parquet"


def read_shard(path: Path, lang: str) -> pd.DataFrame:
    """A translated shard's train and validation rows, checked: labels in {0, 1}, known splits."""
    df = pd.read_parquet(path)
    missing = [c for c in ("id", "text", "label", "split") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    labels = pd.to_numeric(df["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        row = df[bad].iloc[0]
        value = row["label"].item() if hasattr(row["label"], "item") else row["label"]
        raise ValueError(f"{path}: label {value!r} of row {row['id']!r} is outside {{0, 1}} "
                         f"({int(bad.sum())} such row(s)); labels are 1 = unsafe, 0 = safe")
    splits = set(df["split"].unique()) - {"train", "validation", "test"}
    if splits:
        raise ValueError(f"{path}: unknown split value(s) {sorted(splits)}")
    df = df.assign(label=labels.astype("int64"), lang=lang)
    for col in ("source", "category"):
        if col not in df.columns:
            df[col] = ""
    text = df["text"].fillna("").astype(str).str.strip()
    df = df[(text != "") & df["split"].isin(SPLITS)]
    return df[COLUMNS].reset_index(drop=True)


def _rank(ids: pd.Series, seed: int) -> pd.Series:
    """A seeded random rank per source id, the same whichever language the id is in."""
    key = [int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big") for i in ids]
    return pd.Series(key, index=ids.index)


def stratified_head(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most n rows, label proportions kept (largest remainder), lowest seeded rank first."""
    if n is None or len(df) <= n:
        return df
    counts = df["label"].value_counts()
    quota = (counts / len(df) * n).astype(float)
    take = np.floor(quota).astype(int)
    for label in (quota - take).sort_values(ascending=False).index[: n - int(take.sum())]:
        take[label] += 1
    ranked = df.assign(_rank=_rank(df["id"], seed)).sort_values("_rank")
    parts = [ranked[ranked["label"] == label].head(int(k)) for label, k in take.items()]
    return pd.concat(parts).drop(columns="_rank").sort_index()


def build_arm_dataset(settings: Mapping[str, Any], shard_dir: str | Path, out: str | Path, info_out: str | Path,
                      anchors: Mapping[str, str | Path] | None = None, table: Mapping[str, Any] | None = None) -> dict:
    """Write the arm's rows (COLUMNS) to `out` and its provenance to `info_out`; return the provenance.

    `settings` is `crest.train.plan.dataset_settings(...)`; `anchors` maps cluster methods to
    their anchors.tsv (needed by arms whose languages are anchors)."""
    from crest.languages import load_languages
    from crest.paths import resolve

    arm, arms, opts = settings["arm"], settings["arms"], settings["data"]
    anchors = dict(anchors or {})
    ctx = ArmContext(groups=settings["groups"], translated=settings["translated"],
                     table=table if table is not None else load_languages(resolve("config/languages.tsv")),
                     methods=settings.get("methods", []), anchors={m: read_anchors(p) for m, p in anchors.items()},
                     evaluation=frozenset(settings.get("evaluation", [])), source=settings.get("source", "en"),
                     backends=settings.get("backends", {}))
    languages = arm_languages(arm, arms, ctx)
    shard_dir = Path(shard_dir)
    missing = [lang for lang in languages if not shard_path(shard_dir, lang).is_file()]
    if missing:
        raise FileNotFoundError(f"arm {arm!r}: no translated shard for {', '.join(missing)} in {shard_dir}/ "
                                f"(expected {shard_path(shard_dir, missing[0]).name}, ...)")

    frames = {lang: read_shard(shard_path(shard_dir, lang), lang) for lang in languages}
    seed = opts["seed"]
    train = {lang: df[df["split"] == "train"] for lang, df in frames.items()}
    budget = settings.get("budget") or {}
    if budget.get("examples"):
        train = budget_rows(train, languages, budget["examples"], seed, arm)
    elif opts["id_sharing"] == "disjoint":
        ids = pd.Series(sorted(set().union(*(set(df["id"]) for df in train.values()))))
        order = ids.iloc[np.argsort(_rank(ids, seed).to_numpy(), kind="stable")].tolist()
        owner = {i: languages[k % len(languages)] for k, i in enumerate(order)}
        train = {lang: df[df["id"].map(owner) == lang] for lang, df in train.items()}
    cap = None if budget.get("examples") else opts["rows_per_language"]
    if opts["equalize"] and not budget.get("examples"):
        smallest = min(len(df) for df in train.values())
        cap = smallest if cap is None else min(cap, smallest)
    empty = [lang for lang, df in train.items() if df.empty]
    if empty:
        raise ValueError(f"arm {arm!r}: no train rows for {', '.join(empty)} in {shard_dir}/")
    parts = [stratified_head(train[lang], cap, seed) for lang in languages]
    parts += [stratified_head(frames[lang][frames[lang]["split"] == "validation"],
                              opts["validation_rows_per_language"], seed) for lang in languages]
    rows = pd.concat(parts, ignore_index=True)
    if settings.get("label_shuffle"):
        rows = shuffle_labels(rows, seed + (settings.get("shuffle_draw") or 0))  # one permutation per draw
    counts = rows.groupby(["split", "label"]).size()
    if "validation" not in counts.index.get_level_values(0):
        raise ValueError(f"arm {arm!r}: no validation rows in {shard_dir}/ for {', '.join(languages)} "
                         f"(early stopping needs them)")
    if counts["train"].size < 2:
        raise ValueError(f"arm {arm!r}: the train rows hold only label {counts['train'].index[0]}; "
                         f"a classifier needs both safe (0) and unsafe (1) rows")
    write_parquet(rows, out)

    info = {
        "arm": arm, "family": settings.get("family", arm), "draw": settings.get("draw"),
        "corpus": settings["corpus"], "languages": languages,
        "languages_spec": arms[arm]["languages"], "data": dict(opts), "budget": settings.get("budget"),
        "label_shuffle": bool(settings.get("label_shuffle")),
        **({"label_shuffle_splits": ["train", "validation"]} if settings.get("label_shuffle") else {}),
        "eval_languages_trained": [c for c in languages if c in ctx.evaluation],
        "tiers": {c: ctx.table[c].tier for c in languages},
        "backends": {c: ctx.backends.get(c, "source" if c == ctx.source else "") for c in languages},
        "rows": {split: int((rows["split"] == split).sum()) for split in SPLITS},
        "rows_per_language": _nested(rows.groupby(["lang", "split", "label"]).size()),
        "sources": {str(k): int(v) for k, v in rows[rows["split"] == "train"]["source"].value_counts().items()},
        # the class balance the head trains on, stated (docs/demo_corpus.md, "Label balance"): train rows per label and per source
        # and label; the corpus is balanced by per-source caps (registry max_rows), the loss by optim.imbalance
        "train_labels": {str(k): int(v) for k, v in rows[rows["split"] == "train"]["label"].value_counts().sort_index().items()},
        "sources_by_label": {f"{s}/{lab}": int(n) for (s, lab), n in
                             rows[rows["split"] == "train"].groupby(["source", "label"]).size().items()},
        "shards": {lang: _shard_record(shard_path(shard_dir, lang)) for lang in languages},
        "dataset_sha256": sha256_file(out),
    }
    info["anchors"] = {m: {"file": display_path(p), "sha256": sha256_file(p), "languages": ctx.anchors[m],
                           "not_translated": [c for c in ctx.anchors[m] if c not in ctx.translated]}
                       for m, p in anchors.items()}
    info["translator_is_random"] = any(s.get("translator_is_random") for s in info["shards"].values())
    write_json(info, info_out)
    log.info("arm %s: %d train / %d validation rows in %s", arm, info["rows"]["train"], info["rows"]["validation"],
             ", ".join(languages))
    return info


def budget_rows(train: Mapping[str, pd.DataFrame], languages: list[str], examples: int, seed: int,
                arm: str) -> dict[str, pd.DataFrame]:
    """Exactly `examples` train rows spread over `languages`, each source id in one language only.

    Source ids are walked in their seeded rank (the same walk for every arm); an id is taken while its
    label is under its share of `examples` (label proportions of all train ids, largest remainder) and
    goes to the language with the most quota left that has the id (quotas: examples // n, the first
    examples % n languages one more). English alone takes the first `examples` ids of the walk; an arm
    of 13 languages the same ids, dealt out over its languages."""
    label_of: dict[Any, int] = {}
    for lang in languages:
        for i, label in zip(train[lang]["id"], train[lang]["label"], strict=True):
            label_of.setdefault(i, int(label))
    ids = pd.Series(sorted(label_of))
    if len(ids) < examples:
        raise ValueError(f"arm {arm!r}: train.budget.examples = {examples} but its languages hold only {len(ids)} "
                         f"distinct train rows (disjoint ids need one source row per example)")
    order = ids.iloc[np.argsort(_rank(ids, seed).to_numpy(), kind="stable")].tolist()
    labels = pd.Series([label_of[i] for i in ids])
    share = labels.value_counts() / len(labels) * examples
    target = np.floor(share).astype(int)
    for label in (share - target).sort_values(ascending=False).index[: examples - int(target.sum())]:
        target[label] += 1
    quota = {lang: examples // len(languages) + (k < examples % len(languages)) for k, lang in enumerate(languages)}
    has = {lang: set(train[lang]["id"]) for lang in languages}
    owner: dict[Any, str] = {}
    taken = {int(label): 0 for label in target.index}
    for i in order:
        label = label_of[i]
        if taken[label] >= target[label]:
            continue
        open_ = [lang for lang in languages if quota[lang] and i in has[lang]]
        if not open_:
            continue
        lang = max(open_, key=lambda c: quota[c])  # ties: the first in arm order
        owner[i] = lang
        quota[lang] -= 1
        taken[label] += 1
        if len(owner) == examples:
            break
    if len(owner) < examples:
        raise ValueError(f"arm {arm!r}: could place only {len(owner)} of train.budget.examples = {examples} rows "
                         f"over {', '.join(languages)} (quota left: {quota}); lower the budget")
    return {lang: df[df["id"].map(owner) == lang] for lang, df in train.items()}


def shuffle_labels(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The null control: labels permuted within each split (train among the train rows, validation
    among the validation rows; seeded, so every split keeps its label counts exactly). Validation
    labels are permuted too, so that nothing a null's training job does with them (the logged
    metrics, the calibrated threshold) sees the real labels; its weights are the last step's
    (`crest.train.trainer.null_training`)."""
    rows = rows.copy()
    for k, split in enumerate(("train", "validation")):
        part = (rows["split"] == split).to_numpy()
        labels = rows.loc[part, "label"].to_numpy()
        rows.loc[part, "label"] = np.random.default_rng([seed, 0x5EED, k]).permutation(labels)
    return rows


def _nested(counts: pd.Series) -> dict:
    out: dict = {}
    for (lang, split, label), n in counts.items():
        out.setdefault(lang, {}).setdefault(split, {})[int(label)] = int(n)
    return out


def _shard_record(path: Path) -> dict[str, Any]:
    """A shard's hash and its translator, from the shard's own metadata or else its .qc.json."""
    from crest.translate.shard import shard_metadata

    meta = shard_metadata(path)
    qc = path.with_suffix(".qc.json")
    if not meta and qc.is_file():
        meta = json.loads(qc.read_text(encoding="utf-8"))
    return {"file": display_path(path), "sha256": sha256_file(path),
            "translator": meta.get("model"), "translator_is_random": bool(meta.get("translator_is_random", False))}


def check_dataset(rows: pd.DataFrame, where: str) -> None:
    """What training relies on, re-checked when the data file is read back."""
    missing = [c for c in ("id", "text", "label", "lang", "split") if c not in rows.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)}")
    bad = ~rows["label"].isin([0, 1])
    if bad.any():
        raise ValueError(f"{where}: label {rows['label'][bad].tolist()[0]!r} of row {rows['id'][bad].tolist()[0]!r} "
                         f"is outside {{0, 1}}")
    for split in SPLITS:
        if not (rows["split"] == split).any():
            raise ValueError(f"{where}: no {split} rows")
