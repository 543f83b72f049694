"""Decontamination: evaluation rows that (nearly) repeat a training row are dropped and counted.

Every evaluation set is checked against the rows the training arms read: the train and
validation splits of the `train.corpus` shards (`translated/{corpus}/{lang}.parquet`), in the
set's own language, and in English for translated sets (their `src_text`, the English row they
were translated from; a code-switched row's `matrix_text` and `embedded_text` each in its own
language). Two tests, in order:

- exact: the same `crest.data.clean.dedup_key` (NFKC, case-folded, punctuation and spaces
  removed), the key the data stage already deduplicates sources and corpora by;
- near: character 5-gram MinHash (`datasketch`, 128 permutations) with an LSH index at Jaccard
  >= 0.8 over the same folded text with single spaces kept between words (`shingle_text`); a
  candidate counts when its estimated Jaccard reaches the threshold.

The clustering corpus (the texts that built the language map) trains no classifier: it sees texts
without labels and only picks languages. A set that reads the same sources as the clustering
corpus (MultiJail in the paper config builds the map and is a test set) is checked against it
too, but its overlapping rows are only counted (`cluster_overlap`), not dropped: dropping them
would remove the benchmark, and the tables say instead that the map was built from those prompts.

Counts go to the set's json (`contamination`) and, over all sets, to eval/contamination.tsv.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from crest.data.clean import dedup_key, fold_words
from crest.io import write_text

TRAINING_SPLITS = ("train", "validation")
"""Splits of a training shard the arms read (validation drives early stopping and calibration)."""
TSV_COLUMNS = ["benchmark", "lang", "rows_before", "exact_dropped", "near_dropped", "rows_after", "against",
               "cluster_overlap", "in_distribution"]


@dataclass(frozen=True)
class Settings:
    threshold: float = 0.8
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Settings:
        spec = spec or {}
        return cls(**{k: spec[k] for k in ("threshold", "ngram", "num_perm", "seed") if k in spec})


def shingle_text(text: str) -> str:
    """The text n-grams are taken from: `crest.data.clean.fold_words` (case, punctuation and
    spacing differences vanish; word boundaries stay, they carry information at 5 characters)."""
    return fold_words(str(text))


def shingles(text: str, n: int) -> list[bytes]:
    """Distinct character n-grams of the folded text (the whole text if shorter than n)."""
    t = shingle_text(text)
    grams = {t[i:i + n] for i in range(max(1, len(t) - n + 1))}
    return [g.encode("utf-8") for g in grams if g]


class TrainingIndex:
    """Exact keys and a MinHash LSH index over a collection of training texts."""

    def __init__(self, texts: Iterable[str], settings: Settings = Settings()) -> None:
        from datasketch import MinHash, MinHashLSH

        self.settings = settings
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        self.keys = {dedup_key(t) for t in texts}
        self.lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm)
        self._minhash = MinHash
        sigs = self._signatures(texts)
        self.signatures = sigs
        with self.lsh.insertion_session() as session:
            for i, sig in enumerate(sigs):
                session.insert(i, sig, check_duplication=False)
        self.size = len(texts)

    def _signatures(self, texts: Sequence[str]) -> list:
        s = self.settings
        return self._minhash.bulk([shingles(t, s.ngram) for t in texts], num_perm=s.num_perm, seed=s.seed)

    def match(self, texts: Sequence[str]) -> list[str | None]:
        """Per text: "exact", "near" or None."""
        result: list[str | None] = ["exact" if dedup_key(t) in self.keys else None for t in texts]
        todo = [i for i, r in enumerate(result) if r is None and texts[i].strip()]
        for i, sig in zip(todo, self._signatures([texts[i] for i in todo]) if todo else [], strict=True):
            if any(sig.jaccard(self.signatures[h]) >= self.settings.threshold for h in self.lsh.query(sig)):
                result[i] = "near"
        return result


def read_training_texts(path: str | Path, lang: str | None = None,
                        splits: Sequence[str] | None = TRAINING_SPLITS) -> list[str]:
    """Texts of a shard or corpus parquet: rows of `splits` (None: all), of `lang` when the file
    holds several languages."""
    df = pd.read_parquet(path)
    if splits is not None and "split" in df.columns:
        df = df[df["split"].isin(list(splits))]
    if lang is not None and "lang" in df.columns and df["lang"].nunique() > 1:
        df = df[df["lang"] == lang]
    return df["text"].dropna().astype(str).tolist()


def text_languages(df: pd.DataFrame, kind: str, lang: str, source_lang: str = "en") -> dict[str, str]:
    """Which column of a set's rows is checked in which language."""
    if kind == "codeswitch":
        matrix, embedded = lang.split("-", 1)
        return {"matrix_text": matrix, "embedded_text": embedded}
    columns = {"text": lang}
    if "src_text" in df.columns and lang != source_lang:
        columns["src_text"] = source_lang
    return columns


def decontaminate(df: pd.DataFrame, columns: Mapping[str, str], indexes: Mapping[str, TrainingIndex],
                  cluster: Mapping[str, TrainingIndex] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop rows whose text (in any checked column) repeats a training text; count exact and near
    drops separately (a row exact in one column and near in another counts as exact) and, against
    the clustering corpus, the rows that overlap it (kept)."""
    n = len(df)
    exact = pd.Series(False, index=df.index)
    near = pd.Series(False, index=df.index)
    against: list[str] = []
    for column, lang in columns.items():
        if column not in df.columns or lang not in indexes:
            continue
        against.append(f"{column}:{lang}")
        found = indexes[lang].match(df[column].fillna("").astype(str).tolist())
        exact |= pd.Series([f == "exact" for f in found], index=df.index)
        near |= pd.Series([f == "near" for f in found], index=df.index)
    near &= ~exact
    overlap = pd.Series(False, index=df.index)
    cluster_against: list[str] = []
    for column, lang in columns.items():
        if cluster and column in df.columns and lang in cluster:
            cluster_against.append(f"{column}:{lang}")
            found = cluster[lang].match(df[column].fillna("").astype(str).tolist())
            overlap |= pd.Series([f is not None for f in found], index=df.index)
    kept = df[~(exact | near)]
    counts = {"rows_before": n, "exact_dropped": int(exact.sum()), "near_dropped": int(near.sum()),
              "rows_after": int(len(kept)), "checked": against, "cluster_overlap": int((overlap & ~(exact | near)).sum()),
              "cluster_checked": cluster_against,
              "dropped_ids": df.loc[exact | near, "id"].astype(str).tolist()[:1000] if "id" in df.columns else []}
    return kept, counts


def check_set(df: pd.DataFrame, *, kind: str, lang: str, training: Mapping[str, str],
              cluster: Mapping[str, str] | None = None, settings: Settings = Settings(),
              source_lang: str = "en") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Decontaminate one set's rows against training files given per language ({lang: parquet});
    languages without a file are not checked (listed in `unchecked`)."""
    columns = text_languages(df, kind, lang, source_lang)
    needed = set(columns.values())
    indexes = {c: TrainingIndex(read_training_texts(training[c], c), settings) for c in needed if c in training}
    # the language map was built from every row of the clustering corpus, whatever its split
    cluster_indexes = {c: TrainingIndex(read_training_texts(cluster[c], c, splits=None), settings)
                       for c in needed if cluster and c in cluster}
    kept, counts = decontaminate(df, columns, indexes, cluster_indexes)
    counts.update(training={c: str(training[c]) for c in sorted(indexes)},
                  cluster={c: str(cluster[c]) for c in sorted(cluster_indexes)} if cluster_indexes else {},
                  unchecked=sorted(needed - set(indexes)), threshold=settings.threshold, ngram=settings.ngram,
                  num_perm=settings.num_perm)
    return kept, counts


def contamination_table(metas: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per set (the columns of docs/evaluate.md, "Decontamination") from the set jsons."""
    rows = []
    for meta in metas:
        c = meta.get("contamination") or {}
        rows.append({"benchmark": meta["benchmark"], "lang": meta["lang"],
                     "rows_before": c.get("rows_before", meta.get("n", 0)),
                     "exact_dropped": c.get("exact_dropped", 0), "near_dropped": c.get("near_dropped", 0),
                     "rows_after": c.get("rows_after", meta.get("n", 0)),
                     "against": ",".join(c.get("training", {}).values()) or "none",
                     "cluster_overlap": c.get("cluster_overlap", 0),
                     "in_distribution": bool(meta.get("in_distribution", False))})
    return pd.DataFrame(rows, columns=TSV_COLUMNS)


def write_contamination(set_jsons: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    import json

    metas = [json.loads(Path(p).read_text(encoding="utf-8")) for p in set_jsons]
    table = contamination_table(metas)
    write_text(table.to_csv(sep="\t", index=False), out)
    return table
