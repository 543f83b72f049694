"""Comparable averages from per-row predictions (issue 11 item 2; docs/evaluate.md "Parallel rows").

A table averages (benchmark, language) sets. Two languages are comparable only on the same
prompts, and QC keeps different rows per language, so every table is computed on *parallel rows*:

- per benchmark whose languages are translations of one set of prompts (`parallel`: a translated
  corpus, MultiJail), the row ids present in every (model, seed, language) set of that benchmark
  the table uses (a row missing in one language is dropped from all); per *native* benchmark (PTP,
  RTP-LX, XSafety...: each language its own prompts, so no id is in two languages) the ids present
  in every (model, seed) set of each language: the same rows for every model and seed, and a cell
  averaging its languages compares languages on different prompts (the tables mark it);
- per cell, the benchmarks present in every language of the cell (a benchmark missing in one of
  its languages is left out of that cell);
- the metric of each (model, seed, benchmark, language) on those rows, averaged over benchmarks
  per language, then over languages (equal weight per language), then over seeds (and over the
  draws of a family).

What was left out is counted (`Parallel.dropped_rows`, the cells' `left_out`) and printed under
the table. `predictions.parquet` (eval/, built by `crest evaluate summary`) holds every scored row:
model, seed (-1 for baselines), benchmark, lang, id, label, prob_unsafe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crest.io import write_parquet

UNIT = ["model", "seed", "benchmark", "lang"]
COUNTS = ["tp", "fp", "fn", "tn"]
RANKING = ("auprc", "auroc")
NEEDS_BOTH = {"f1", "precision", "accuracy", "auprc", "auroc"}  # meaningless on a single-class set


def predictions_path(metrics_path: str | Path) -> Path:
    p = Path(metrics_path)
    return p.with_name(p.name.removesuffix(".metrics.json") + ".parquet")


def seed_key(seed: pd.Series) -> pd.Series:
    """Seeds as ints, -1 for a baseline (which has none)."""
    return pd.to_numeric(seed, errors="coerce").fillna(-1).astype(int)


def collect_predictions(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every scored row of every ok set in `metrics` (eval/metrics.csv), one frame."""
    frames = []
    for r in metrics[metrics["status"] == "ok"].itertuples():
        d = pd.read_parquet(predictions_path(r.metrics_path), columns=["id", "label", "prob_unsafe"])
        seed = -1 if pd.isna(r.seed) else int(r.seed)
        frames.append(d.assign(model=r.model, seed=seed, benchmark=r.benchmark, lang=r.lang))
    cols = [*UNIT, "id", "label", "prob_unsafe"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float32" if c == "prob_unsafe" else "object") for c in cols})
    df = pd.concat(frames, ignore_index=True)[cols]
    df["id"] = df["id"].astype(str)
    for c in ("model", "benchmark", "lang"):
        df[c] = df[c].astype("category")
    return df


def write_predictions(df: pd.DataFrame, out: str | Path) -> None:
    write_parquet(df, out)


def read_predictions(path: str | Path | None) -> pd.DataFrame | None:
    if not path or not Path(path).is_file():
        return None
    df = pd.read_parquet(path)
    df["id"] = df["id"].astype(str)
    for c in ("model", "benchmark", "lang"):
        df[c] = df[c].astype(str)
    return df


def parallel_languages(kind: str, spec: dict) -> bool:
    """Whether a benchmark's languages are translations of one set of prompts sharing ids: its
    `parallel` setting, else true for a translated corpus, false for sources (a native benchmark:
    PTP, RTP-LX, XSafety... each language its own prompts) and generated code-switched pairs (each
    pair its own sample)."""
    value = spec.get("parallel")
    return bool(value) if value is not None else kind == "corpus"


def scope_name(benchmark: str, lang: str, parallel: bool) -> str:
    """What ids are intersected over: a parallel benchmark across all its languages, a native one
    within each language (across models and seeds only)."""
    return benchmark if parallel else f"{benchmark} [{lang}]"


@dataclass
class Parallel:
    """Confusion counts per (model, seed, benchmark, lang) on the table's parallel rows, at the
    reported threshold and (`*_cal`) at each model's calibrated one. `kept_ids` / `dropped_ids`
    per scope (scope_name: a parallel benchmark, or a native benchmark's language); `native`: the
    native benchmarks (their languages are compared on different prompts)."""
    counts: pd.DataFrame
    kept_ids: dict[str, int] = field(default_factory=dict)
    dropped_ids: dict[str, int] = field(default_factory=dict)
    native: dict[str, list[str]] = field(default_factory=dict)


def _scopes(frame: pd.DataFrame) -> pd.Series:
    parallel = frame["parallel"].astype(bool) if "parallel" in frame else pd.Series(True, index=frame.index)
    return pd.Series([scope_name(b, lang, par) for b, lang, par in zip(frame["benchmark"], frame["lang"], parallel)],
                     index=frame.index, dtype=object)


def parallel_rows(preds: pd.DataFrame, keys: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """The rows of `preds` in the sets `keys` names (model, seed, benchmark, lang, any extra
    columns joined on; `parallel`: the benchmark's languages share prompts, default true), keeping
    per scope only the ids present in every one of its sets: a parallel benchmark's ids in every
    (model, seed, language), a native benchmark's ids in every (model, seed) of each language.
    Returns (rows with a `scope` column, kept ids per scope, dropped ids per scope)."""
    keys = keys.astype({"model": str, "benchmark": str, "lang": str}).drop_duplicates(UNIT)
    keys = keys.assign(scope=_scopes(keys))
    sub = preds[preds["benchmark"].isin(set(keys["benchmark"])) & preds["model"].isin(set(keys["model"]))]
    strings = {c: str for c in ("model", "benchmark", "lang") if sub[c].dtype != object}
    p = (sub.astype(strings) if strings else sub).merge(keys, on=UNIT, how="inner")  # ids are unique within a set
    if p.empty:
        return p, {}, {}
    units = keys.groupby("scope").size()  # sets per scope: an id must be in all of them
    present = p.groupby(["scope", "id"]).size()
    full = present[present.to_numpy() == units.reindex(present.index.get_level_values(0)).to_numpy()]
    kept = p.set_index(["scope", "id"]).index.isin(full.index)
    all_ids = present.groupby(level=0).size()
    kept_ids = full.groupby(level=0).size().reindex(all_ids.index, fill_value=0)
    return (p[kept], {str(k): int(v) for k, v in kept_ids.items()},
            {str(k): int(all_ids[k] - kept_ids[k]) for k in all_ids.index})


def native_languages(keys: pd.DataFrame) -> dict[str, list[str]]:
    """Native benchmarks of `keys` (parallel false) and their languages."""
    if "parallel" not in keys:
        return {}
    nat = keys[~keys["parallel"].astype(bool)]
    return {str(b): sorted({str(x) for x in g["lang"]}) for b, g in nat.groupby("benchmark", sort=True)}


def parallel_counts(preds: pd.DataFrame, sets: pd.DataFrame, ranking: bool = False) -> Parallel:
    """`sets`: the table's ok rows of metrics.csv (model, seed, benchmark, lang, threshold,
    threshold_cal). Ids are intersected per benchmark over every set of it in `sets`."""
    extra = ["parallel"] if "parallel" in sets else []
    keys = sets.assign(seed=seed_key(sets["seed"]))[[*UNIT, "threshold", "threshold_cal", *extra]].drop_duplicates(UNIT)
    p, kept_ids, dropped_ids = parallel_rows(preds, keys)
    groups = p.groupby(UNIT, sort=False)
    code = groups.ngroup().to_numpy()
    counts = groups.size().reset_index()[UNIT]  # one row per set, in ngroup order
    label = p["label"].to_numpy() == 1
    prob = p["prob_unsafe"].to_numpy()
    size = len(counts)
    for suffix, col in (("", "threshold"), ("_cal", "threshold_cal")):
        thr = p[col].to_numpy(dtype=float)
        flagged = prob >= thr
        for name, hit in (("tp", flagged & label), ("fp", flagged & ~label), ("fn", ~flagged & label),
                          ("tn", ~flagged & ~label)):
            counts[f"{name}{suffix}"] = np.bincount(code, weights=hit, minlength=size).astype(np.int64)
    counts["valid_cal"] = np.bincount(code, weights=np.isnan(p["threshold_cal"].to_numpy(dtype=float)),
                                      minlength=size) == 0
    if ranking:
        from sklearn.metrics import average_precision_score, roc_auc_score

        def rank(g: pd.DataFrame) -> pd.Series:
            y = g["label"].to_numpy()
            both = 0 < y.sum() < len(y)
            return pd.Series({"auprc": average_precision_score(y, g["prob_unsafe"]) if both else np.nan,
                              "auroc": roc_auc_score(y, g["prob_unsafe"]) if both else np.nan})

        r = p.groupby(UNIT, sort=False)[["label", "prob_unsafe"]].apply(rank).reset_index()
        counts = counts.merge(r, on=UNIT, how="left")
    return Parallel(counts, kept_ids, dropped_ids, native_languages(keys))


def metric_from_counts(counts: pd.DataFrame, value: str, calibrated: bool = False) -> pd.Series:
    """`value` per row of a counts frame (NaN where undefined)."""
    if value in RANKING:
        return counts[value].astype(float)
    s = "_cal" if calibrated else ""
    tp, fp, fn, tn = (counts[f"{c}{s}"].astype(float) for c in COUNTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = {"f1": 2 * tp / (2 * tp + fp + fn), "precision": tp / (tp + fp), "recall": tp / (tp + fn),
             "accuracy": (tp + tn) / (tp + fp + fn + tn), "fpr": fp / (fp + tn)}[value]
    v = v.where(tp + fn > 0) if value in ("f1", "recall") else v
    if calibrated:
        v = v.where(counts["valid_cal"].astype(bool))
    return v.replace([np.inf, -np.inf], np.nan)


def usable_classes(value: str, classes: Sequence[str]) -> set[str]:
    """Which set classes a cell of `value` averages. With any mixed set: mixed sets, plus the
    single-class sets the metric is meant for (recall: all-unsafe, FPR: all-safe). A cell of
    single-class sets only keeps them (F1 of an all-unsafe set is marked in the table)."""
    present = set(classes)
    if "mixed" in present:
        return {"mixed"} | ({"all_unsafe"} if value == "recall" else {"all_safe"} if value == "fpr" else set())
    return present


Key = tuple  # (model, seed, benchmark, lang)


def set_values(rows: pd.DataFrame, value: str, parallel: Parallel | None, calibrated: bool) -> dict[Key, float]:
    """`value` of every (model, seed, benchmark, lang) set: on the parallel rows when predictions
    are there, else the set's own metric over all its rows (metrics.csv). NaN where undefined."""
    if parallel is not None:
        c = parallel.counts
        v = metric_from_counts(c, value, calibrated).to_numpy(dtype=float)
        return dict(zip(zip(c["model"], c["seed"], c["benchmark"], c["lang"]), v))
    col = f"{value}_cal" if calibrated and f"{value}_cal" in rows else value
    keys = zip(rows["model"].astype(str), seed_key(rows["seed"]), rows["benchmark"].astype(str), rows["lang"].astype(str))
    return dict(zip(keys, pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float)))


def parallel_benchmarks(keys: Sequence[Key]) -> tuple[list[Key], list[str]]:
    """Keep the sets of benchmarks present in every language of `keys`; the others are returned as
    'benchmark (in i of n languages)' for the note under the table."""
    langs = {k[3] for k in keys}
    per: dict[str, set[str]] = {}
    for k in keys:
        per.setdefault(k[2], set()).add(k[3])
    dropped = [f"{b} (in {len(ls)} of {len(langs)} languages)" for b, ls in per.items() if ls != langs]
    return [k for k in keys if per[k[2]] == langs], dropped


def average(values: Sequence[tuple[Key, float]]) -> list[float]:
    """One value per (model, seed): the mean over benchmarks per language, then over languages
    (equal weight), undefined (NaN) sets skipped."""
    per_lang: dict[tuple, list[float]] = {}
    for (model, seed, _, lang), v in values:
        if not np.isnan(v):
            per_lang.setdefault((model, seed, lang), []).append(v)
    per_seed: dict[tuple, list[float]] = {}
    for (model, seed, _), vs in per_lang.items():
        per_seed.setdefault((model, seed), []).append(float(np.mean(vs)))
    return [float(np.mean(vs)) for vs in per_seed.values()]
