"""Comparable averages from per-row predictions (docs/evaluate.md, "Parallel rows").

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

from crest.evaluate.predictions import Predictions, as_predictions, write_predictions_from_metrics
from crest.evaluate.predictions import read_predictions as _read_predictions
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
    """Every scored row of every ok set in `metrics` (eval/metrics.csv), one frame (small runs and
    tests; `crest evaluate summary` streams them to disk with write_predictions_from_metrics)."""
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


def write_collected_predictions(metrics: pd.DataFrame, out: str | Path) -> int:
    """collect_predictions(metrics) written to `out`, one set at a time (the paper's 55M rows never
    sit in memory at once). Returns the rows written."""
    return write_predictions_from_metrics(metrics, out, predictions_path)


def read_predictions(path: str | Path | None) -> Predictions | None:
    """predictions.parquet held by set, ids as sorted codes (crest.evaluate.predictions)."""
    return _read_predictions(path)


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


@dataclass
class ScopeRows:
    """The parallel rows of one scope: `keys` (its rows of the keys frame that have predictions),
    per kept row its position in the Predictions arrays (`pos`, in file order within each set) and
    which of `keys` it belongs to (`local`, 0..len(keys)-1)."""
    scope: str
    keys: pd.DataFrame
    pos: np.ndarray
    local: np.ndarray


def parallel_scopes(preds: Predictions | pd.DataFrame, keys: pd.DataFrame
                    ) -> tuple[list[ScopeRows], dict[str, int], dict[str, int]]:
    """The rows of `preds` in the sets `keys` names (model, seed, benchmark, lang, any extra
    columns; `parallel`: the benchmark's languages share prompts, default true), keeping per scope
    only the ids present in every one of its sets: a parallel benchmark's ids in every (model, seed,
    language), a native benchmark's ids in every (model, seed) of each language (a set of `keys`
    without predictions leaves no id in every set of its scope). One id count per scope over the
    sets' id codes. Returns (rows per scope, kept ids per scope, dropped ids per scope)."""
    preds = as_predictions(preds)
    keys = keys.astype({"model": str, "benchmark": str, "lang": str}).drop_duplicates(UNIT)
    keys = keys.assign(scope=_scopes(keys)).reset_index(drop=True)
    keys["_set"] = [preds.index.get((m, int(s), b, lang), -1)
                    for m, s, b, lang in zip(keys["model"], keys["seed"], keys["benchmark"], keys["lang"])]
    n_ids = len(preds.ids)
    out, kept_ids, dropped_ids = [], {}, {}
    for scope, g in keys.groupby("scope", sort=True):
        have = g[g["_set"].to_numpy() >= 0]
        if have.empty:
            continue
        sets = have["_set"].to_numpy()
        starts, stops = preds.start[sets], preds.stop[sets]
        lengths = stops - starts
        if not lengths.sum():
            continue
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        pos = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)
        local = np.repeat(np.arange(len(sets), dtype=np.int32), lengths)
        codes = preds.id_code[pos]
        present = np.bincount(codes, minlength=n_ids)  # ids are unique within a set
        full = present == len(g)
        n_all, n_kept = int(np.count_nonzero(present)), int(np.count_nonzero(full))
        kept_ids[str(scope)], dropped_ids[str(scope)] = n_kept, n_all - n_kept
        keep = full[codes]
        out.append(ScopeRows(str(scope), have.drop(columns="_set").reset_index(drop=True), pos[keep], local[keep]))
    return out, kept_ids, dropped_ids


def native_languages(keys: pd.DataFrame) -> dict[str, list[str]]:
    """Native benchmarks of `keys` (parallel false) and their languages."""
    if "parallel" not in keys:
        return {}
    nat = keys[~keys["parallel"].astype(bool)]
    return {str(b): sorted({str(x) for x in g["lang"]}) for b, g in nat.groupby("benchmark", sort=True)}


def ranking_metrics(local: np.ndarray, label: np.ndarray, prob: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(AUPRC, AUROC) of each of `size` sets (rows tagged by `local`), all sets at once; NaN for a
    single-class set. AUROC: the Mann-Whitney statistic with ties counted half (= sklearn's
    roc_auc_score); AUPRC: sklearn's average_precision_score (precision at each distinct score,
    weighted by the recall it adds)."""
    y = label == 1
    s = prob.astype(np.float64)
    n_pos = np.bincount(local, weights=y, minlength=size)
    n = np.bincount(local, minlength=size).astype(float)
    n_neg = n - n_pos
    both = (n_pos > 0) & (n_neg > 0)
    # AUROC: average ranks within each set
    order = np.lexsort((s, local))
    ls, ss, ys = local[order], s[order], y[order]
    start = np.r_[0, np.cumsum(np.bincount(local, minlength=size))[:-1]]
    idx = np.arange(len(ls))
    new = np.r_[True, (ls[1:] != ls[:-1]) | (ss[1:] != ss[:-1])]
    group = np.cumsum(new) - 1
    g_first = idx[new]
    g_last = np.r_[g_first[1:], len(ls)] - 1
    rank = (g_first[group] + g_last[group]) / 2.0 - start[ls] + 1
    r_pos = np.bincount(ls, weights=rank * ys, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = np.where(both, (r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), np.nan)
    # AUPRC: descending scores, one point per distinct score
    order = np.lexsort((-s, local))
    ls, ss, ys = local[order], s[order], y[order].astype(float)
    cum = np.cumsum(ys)
    before = np.r_[0.0, cum][start]  # positives before each set
    end = np.r_[(ls[1:] != ls[:-1]) | (ss[1:] != ss[:-1]), True]
    tps = cum[end] - before[ls[end]]
    seen = idx[end] - start[ls[end]] + 1
    prev = np.r_[0.0, tps[:-1]]
    first_point = np.r_[True, ls[end][1:] != ls[end][:-1]]
    prev[first_point] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = (tps - prev) / n_pos[ls[end]] * (tps / seen)
        auprc = np.where(both, np.bincount(ls[end], weights=gain, minlength=size), np.nan)
    return auprc, auroc


def parallel_counts(preds: Predictions | pd.DataFrame, sets: pd.DataFrame, ranking: bool = False) -> Parallel:
    """`sets`: the table's ok rows of metrics.csv (model, seed, benchmark, lang, threshold,
    threshold_cal). Ids are intersected per benchmark over every set of it in `sets`."""
    preds = as_predictions(preds)
    extra = ["parallel"] if "parallel" in sets else []
    keys = sets.assign(seed=seed_key(sets["seed"]))[[*UNIT, "threshold", "threshold_cal", *extra]].drop_duplicates(UNIT)
    scopes, kept_ids, dropped_ids = parallel_scopes(preds, keys)
    frames = []
    for sc in scopes:
        size = len(sc.keys)
        label = preds.label[sc.pos] == 1
        prob = preds.prob[sc.pos].astype(np.float64)
        counts = sc.keys[UNIT].copy()
        for suffix, col in (("", "threshold"), ("_cal", "threshold_cal")):
            thr = sc.keys[col].to_numpy(dtype=float)[sc.local]
            flagged = prob >= thr
            for name, hit in (("tp", flagged & label), ("fp", flagged & ~label), ("fn", ~flagged & label),
                              ("tn", ~flagged & ~label)):
                counts[f"{name}{suffix}"] = np.bincount(sc.local, weights=hit, minlength=size).astype(np.int64)
        counts["valid_cal"] = ~np.isnan(sc.keys["threshold_cal"].to_numpy(dtype=float))
        if ranking:
            counts["auprc"], counts["auroc"] = ranking_metrics(sc.local, preds.label[sc.pos], preds.prob[sc.pos], size)
        rows = np.bincount(sc.local, minlength=size)
        frames.append(counts[rows > 0])  # a set whose every row was dropped has no counts
    cols = [*UNIT, *(f"{c}{s}" for s in ("", "_cal") for c in COUNTS), "valid_cal", *(["auprc", "auroc"] if ranking else [])]
    counts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
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
