"""Normalise text, drop empties and duplicates (counting each reason), and split by label."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}
_SPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Unicode NFC and collapsed whitespace: the form every later stage sees."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def fold_words(text: str) -> str:
    """Compatibility-folded, case-folded words joined by single spaces (punctuation removed)."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def dedup_key(text: str) -> str:
    """Near-duplicate key: compatibility-folded, case-folded, punctuation and spaces removed."""
    return fold_words(text).replace(" ", "")


def clean_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """Normalise `text`; drop empty rows, exact and normalised duplicates (first kept), and every
    copy of a text that occurs with both labels (its label is unknowable)."""
    dropped: Counter = Counter()
    df = df.assign(text=df["text"].map(normalise_text))
    empty = df["text"].eq("")
    dropped["empty"] = int(empty.sum())
    df = df[~empty]

    keys = df["text"].map(dedup_key)
    conflicting = df.groupby(keys)["label"].transform("nunique").gt(1)
    dropped["label_conflict"] = int(conflicting.sum())
    df, keys = df[~conflicting], keys[~conflicting]

    exact = df["text"].duplicated(keep="first")
    dropped["duplicate_exact"] = int(exact.sum())
    df, keys = df[~exact], keys[~exact]

    near = keys.duplicated(keep="first")
    dropped["duplicate_normalised"] = int(near.sum())
    return df[~near].reset_index(drop=True), dropped


def assign_splits(df: pd.DataFrame, validation: float, test: float, seed: int) -> pd.DataFrame:
    """Keep a source's own train/validation/test split; otherwise split stratified by label,
    deterministically for a seed (each label's rows are shuffled and cut by the fractions)."""
    if validation + test >= 1:
        raise ValueError(f"split fractions validation={validation} + test={test} leave no training data")
    own = df["split"].notna()
    if own.all():
        unknown = sorted(set(df["split"]) - set(SPLIT_ALIASES))
        if unknown:
            raise ValueError(f"source split(s) {unknown} are not train/validation/test; "
                             f"rename them with a loader.hub.splits mapping")
        return df.assign(split=df["split"].map(SPLIT_ALIASES))
    if own.any():
        raise ValueError("some rows carry a source split and some do not")
    rng = np.random.default_rng(seed)
    split = np.empty(len(df), dtype=object)
    for label in sorted(df["label"].unique()):
        idx = np.flatnonzero(df["label"].to_numpy() == label)
        idx = idx[rng.permutation(len(idx))]
        n_test, n_val = round(len(idx) * test), round(len(idx) * validation)
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "validation"
        split[idx[n_test + n_val:]] = "train"
    return df.assign(split=split)
