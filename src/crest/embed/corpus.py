"""The embedding stage's input: a multilingual corpus, {language: texts}, ideally parallel.

Accepted inputs (`read_inputs`):
- one multilingual parquet with a `lang` column (a prepared source such as the CLDR strings, or a
  data corpus), or
- several parquet files, one per language (the translation stage's
  `results/{run}/translated/{corpus}/{lang}.parquet`, or FLORES+ sources `flores_*`); a file
  without a `lang` column takes its language from its file name (`de.parquet`).

Each row gets a *parallel key*, shared by the translations of one item: its id without the
`{source}-` prefix and a `-{lang}` suffix (`cldr-territories:DE-de` -> `territories:DE`,
`flores_de-000017` -> `000017`, a translated row keeps its English id). `select_texts` uses the
keys to embed the same items in every language (`align`), so language means differ by language,
not by content.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def parallel_key(row_id: str, source: str, lang: str) -> str:
    key = row_id.removeprefix(f"{source}-") if source else row_id
    return key.removesuffix(f"-{lang}")


def read_inputs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Rows `id, text, lang, key` (+ `source` when present) of all inputs, in input order."""
    if not paths:
        raise ValueError("embed: no input files")
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"embed input {path} not found")
        df = pd.read_parquet(path)
        if "text" not in df.columns:
            raise ValueError(f"embed input {path}: no `text` column (columns: {', '.join(df.columns)})")
        if "lang" not in df.columns:
            df = df.assign(lang=path.name.removesuffix(".parquet"))
        if "id" not in df.columns:
            df = df.assign(id=[f"{path.stem}-{i:06d}" for i in range(len(df))])
        source = df["source"].astype(str) if "source" in df.columns else pd.Series("", index=df.index)
        keys = [parallel_key(str(i), s, str(lang)) for i, s, lang in zip(df["id"], source, df["lang"])]
        cols = {"id": df["id"].astype(str), "text": df["text"].astype(str), "lang": df["lang"].astype(str),
                "key": keys, "source": source}
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True)
    df = df[df["text"].str.strip().ne("")]
    return df.reset_index(drop=True)


@dataclass
class Selection:
    """The rows to embed and what was left out, for the stage's manifest."""

    rows: pd.DataFrame
    dropped: dict[str, str] = field(default_factory=dict)
    aligned: bool = False
    keys: int = 0


def _rank(keys: pd.Index, seed: int) -> pd.Series:
    """A deterministic pseudo-random order of keys for a seed (stable across runs and machines)."""
    return pd.Series([hashlib.sha1(f"{seed}:{k}".encode()).hexdigest() for k in keys], index=keys)


def select_texts(df: pd.DataFrame, *, languages: Sequence[str] | None = None, max_per_language: int | None = None,
                 min_per_language: int = 1, align: bool = True, seed: int = 13) -> Selection:
    """Rows to embed, per language.

    - `languages`: keep these (an explicitly requested language with no text is an error);
      None keeps every language of the input.
    - `align`: choose the same items in every language: keys ordered by how many languages have
      them (most first), ties in a seeded pseudo-random order; each language takes its rows
      among the first `max_per_language` keys. Without `align`, a seeded random sample.
    - A language left with fewer than `min_per_language` texts is dropped (named in `dropped`)
      when languages were not requested explicitly, an error otherwise.
    """
    dropped: dict[str, str] = {}
    if languages is not None:
        missing = [lang for lang in languages if lang not in set(df["lang"])]
        if missing:
            raise ValueError(f"embed: no texts for requested language(s) {', '.join(missing)} "
                             f"(the input has {df['lang'].nunique()} languages)")
        df = df[df["lang"].isin(languages)]
    df = df.drop_duplicates(["lang", "key"], keep="first")
    if align:
        coverage = df.groupby("key")["lang"].nunique()
        order = pd.DataFrame({"coverage": coverage, "tie": _rank(coverage.index, seed)})
        order = order.sort_values(["coverage", "tie"], ascending=[False, True])
        chosen = order.index if max_per_language is None else order.index[:max_per_language]
        rank = pd.Series(range(len(chosen)), index=chosen)
        df = df[df["key"].isin(chosen)].assign(_rank=lambda d: d["key"].map(rank))
        df = df.sort_values(["_rank"], kind="stable").drop(columns="_rank")
    elif max_per_language is not None:
        df = df.assign(_tie=_rank(pd.Index(df["id"]), seed).to_numpy()).sort_values("_tie", kind="stable")
        df = df.groupby("lang", sort=False).head(max_per_language).drop(columns="_tie")
    counts = df["lang"].value_counts()
    order_langs = list(dict.fromkeys(languages)) if languages is not None else list(dict.fromkeys(df["lang"]))
    for lang in order_langs:
        n = int(counts.get(lang, 0))
        if n < min_per_language:
            if languages is not None:
                raise ValueError(f"embed: language {lang!r} has {n} texts after selection, fewer than "
                                 f"min_texts_per_language={min_per_language}")
            dropped[lang] = f"{n} texts < min_texts_per_language {min_per_language}"
    df = df[~df["lang"].isin(dropped)]
    # group by language (first-seen order), items in key order within each language
    lang_order = {lang: i for i, lang in enumerate(dict.fromkeys(df["lang"]))}
    df = df.assign(_l=df["lang"].map(lang_order)).sort_values("_l", kind="stable").drop(columns="_l")
    if df.empty:
        raise ValueError("embed: no texts left to embed")
    if dropped:
        log.warning("embed: dropped %d language(s): %s", len(dropped), dropped)
    return Selection(df.reset_index(drop=True), dropped, align, int(df["key"].nunique()))
