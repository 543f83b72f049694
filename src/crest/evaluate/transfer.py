"""Does the language map predict transfer? (docs/evaluate.md, same title)

CREST's claim is geometric: a language near a training language in the encoder's space inherits
its safety signal. This module tests it at the level it is made, one (model, unseen language) at
a time, against the rival map (URIEL typology) and the usual rival predictors (script, data size):

    rows = transfer_rows(metrics, preds, models, maps, table)       # eval/transfer.tsv
    summary = transfer_summary(rows, boot)                           # eval/transfer.json
    tables = transfer_tables(summary)                                # transfer, transfer_fit, transfer_arms
    transfer_figure(rows, seen, summary, stem)                       # {paper}/figures/transfer_distance

**Rows.** For every trained model (label-shuffled null arms left out) and every evaluated language
it did not train on: its AUROC and its F1 at its calibrated threshold, on the parallel rows of the
translated benchmarks (`crest.evaluate.aggregate.parallel_counts`: the ids present in every
(model, seed, language) set; by default every parallel held-out benchmark with both classes in
two or more languages, `evaluate.transfer.benchmarks` to choose), averaged over benchmarks, then
seeds; the **drop** is the mean over the model's own evaluated training languages minus that
(positive = worse than at home). Predictors: cosine distance to the nearest training language in
the embedding map (language means after the cluster stage's preprocessing: the space its clusters
are fitted in), in the typology map (URIEL, combined vectors and each feature set alone, the same
preprocessing), same script as a training language, log10 CC-100 GiB and tier, same cluster as a
training language in each map.

**Correlations.** Spearman's rho of the drop with each predictor over the (model, language) rows,
with a percentile interval from a two-way bootstrap: languages and models are drawn with
replacement, and a row enters a resample once per (its language's draws x its model's draws).
Rows are first averaged per (model, language), so a language repeated in the input (19 copies)
is one unit and gives the interval of one. The embedding-minus-typology difference is computed
on the same resamples (the rows both maps have).

**Held-out prediction.** Leave one language out: a ridge regression (standardised features,
alpha 1) fitted on every other language's rows predicts the held-out language's drop for each
model, hence its AUROC (the model's seen mean minus the drop); its mean absolute error is set
against a baseline that predicts the training rows' mean drop, with a two-way bootstrap interval
of the difference. Feature sets: embedding distance, typology distance, both (the maps), and
both plus script, log size and same embedding cluster.

**Arms.** For the crest, typology and random families: the mean measured AUROC over each model's
unseen languages beside the mean predicted by the held-out fits, and the same over the languages
every one of these models leaves unseen (a like-for-like comparison of anchor choices).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METRICS = {"auroc": "AUROC", "f1_cal": "F1 (calibrated)"}
ARM_FAMILIES = ("crest", "typology", "random")
EMBEDDING = "embedding"
TYPOLOGY = "typology"
FITS: dict[str, list[str]] = {
    "mean": [],
    "embedding": ["dist_embedding"],
    "typology": ["dist_typology"],
    "maps": ["dist_embedding", "dist_typology"],
    "maps+": ["dist_embedding", "dist_typology", "same_script", "log_cc100", "same_cluster_embedding"],
}
FIT_LABELS = {"mean": "mean drop (baseline)", "embedding": "embedding distance", "typology": "typology distance",
              "maps": "both maps", "maps+": "both maps + script, size, cluster"}
ROW_COLUMNS = ["model", "arm", "family", "size", "language", "role", "tier", "cc100_gib", "log_cc100", "script",
               "same_script", "seeds", "benchmarks", "auroc", "auroc_seen", "drop_auroc", "f1_cal", "f1_cal_seen",
               "drop_f1_cal", "nearest_embedding", "dist_embedding", "same_cluster_embedding", "nearest_typology",
               "dist_typology", "same_cluster_typology", "gloss", "random_translator"]


class TransferError(ValueError):
    """Bad input to the transfer analysis (the message names the file and what is wrong)."""


# -- the maps ---------------------------------------------------------------------------------------
@dataclass
class LanguageMap:
    """Unit vectors of one map's languages (cosine distance = 1 - dot) and its clusters."""
    name: str
    langs: list[str]
    vectors: np.ndarray
    clusters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        X = np.asarray(self.vectors, dtype=np.float64)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        self.vectors = X / np.where(norms > 0, norms, 1.0)
        self.index = {c: i for i, c in enumerate(self.langs)}

    def nearest(self, lang: str, trained: Sequence[str]) -> tuple[str | None, float]:
        """The training language (other than `lang`) nearest to `lang` and its cosine distance."""
        if lang not in self.index:
            return None, math.nan
        others = [t for t in trained if t != lang and t in self.index]
        if not others:
            return None, math.nan
        d = 1.0 - self.vectors[[self.index[t] for t in others]] @ self.vectors[self.index[lang]]
        i = int(np.argmin(d))
        return others[i], float(max(d[i], 0.0))

    def same_cluster(self, lang: str, trained: Sequence[str]) -> float:
        if lang not in self.clusters:
            return math.nan
        return float(any(self.clusters.get(t) == self.clusters[lang] for t in trained if t != lang))


def preprocessed(X: np.ndarray, opts: Any) -> np.ndarray:
    """The cluster stage's space (crest.cluster.core.preprocess with the cluster section's center,
    normalize and pca), so a distance here is one in the map the clusters come from."""
    from crest.cluster.core import preprocess

    return preprocess(X, opts.center, opts.normalize, opts.pca, opts.seed)


def embedding_map(means_path: str | Path, opts: Any, clusters: Mapping[str, str] | None = None) -> LanguageMap:
    from crest.embed.run import read_language_means

    langs, X, _ = read_language_means(means_path, opts.layer)
    return LanguageMap(EMBEDDING, langs, preprocessed(X, opts), dict(clusters or {}))


def typology_maps(typology_dir: str | Path, opts: Any, feature_sets: Sequence[str] | None = None,
                  knn_neighbors: int | None = None) -> list[LanguageMap]:
    """The typology map (combined URIEL vectors, `vectors.parquet`) and one map per feature set of
    typology.json (`typology:{set}`, rebuilt from the URIEL databases of the pinned urielplus wheel:
    crest.cluster.typology.feature_block), each with the cluster stage's preprocessing."""
    import json

    from crest.cluster.typology import combine, feature_block
    from crest.embed.run import read_language_means

    d = Path(typology_dir)
    for name in ("vectors.parquet", "clusters.tsv", "typology.json"):
        if not (d / name).is_file():
            raise TransferError(f"{d}: no {name} (the typology map: rule typology_map)")
    from crest.evaluate.roles import read_cluster_tsv

    report = json.loads((d / "typology.json").read_text(encoding="utf-8"))
    clusters = read_cluster_tsv(d / "clusters.tsv")
    langs, X, _ = read_language_means(d / "vectors.parquet", 0)
    maps = [LanguageMap(TYPOLOGY, langs, preprocessed(X, opts), clusters)]
    codes = report.get("codes") or {}
    sets = list(report.get("feature_sets") or []) if feature_sets is None else list(feature_sets)
    missing = [c for c in langs if c not in codes or "uriel" not in codes[c]]
    if sets and missing:
        raise TransferError(f"{d / 'typology.json'}: no URIEL code for {', '.join(missing)} under `codes`")
    k = int(knn_neighbors or report.get("knn_neighbors") or 10)
    for name in sets:
        block = feature_block(name, [codes[c]["uriel"] for c in langs], k)
        maps.append(LanguageMap(f"{TYPOLOGY}:{name}", langs, preprocessed(combine([block]), opts)))
    return maps


# -- rows ---------------------------------------------------------------------------------------------
@dataclass
class ModelInfo:
    model: str  # {arm}-{size}, the tables' label
    arm: str
    family: str
    size: str
    trained: list[str]


def model_infos(metrics: pd.DataFrame, arms: Sequence[Mapping[str, Any]], shuffled: Sequence[str] = ()) -> list[ModelInfo]:
    """Every trained model of metrics.csv whose arm has a data.json (crest.evaluate.roles.arm_info),
    label-shuffled arms (the null control: no signal to transfer) left out."""
    by_arm = {a["arm"]: a for a in arms}
    out, seen = [], set()
    trained = metrics[metrics["model_kind"].astype(str) == "trained"]
    for model, arm, size in zip(trained["model"].astype(str), trained["arm"].astype(str), trained["size"].astype(str)):
        if model in seen or arm in shuffled:
            continue
        seen.add(model)
        if arm not in by_arm:
            raise TransferError(f"metrics: model {model} has no data.json among --info (arm {arm})")
        a = by_arm[arm]
        out.append(ModelInfo(model, arm, str(a["family"]), size, [str(c) for c in a["languages"]]))
    return out


def select_sets(metrics: pd.DataFrame, models: Sequence[str], benchmarks: Sequence[str] | None = None
                ) -> tuple[pd.DataFrame, list[str]]:
    """metrics.csv rows the drop is computed on, and notes on what was left out. Default: the ok,
    mixed (both classes) sets of parallel, held-out benchmarks scored in two or more languages
    (code-switched pairs left out); `benchmarks` names them instead. A benchmark that is not in
    every evaluated language of every model is left out (the drop compares languages on the same
    prompts)."""
    df = metrics[metrics["model"].astype(str).isin(set(models)) & (metrics["status"] == "ok")].copy()
    df = df[~df["lang"].astype(str).str.contains("-")]
    notes: list[str] = []
    if benchmarks:
        unknown = sorted(set(benchmarks) - set(metrics["benchmark"].astype(str)))
        if unknown:
            raise TransferError(f"evaluate.transfer.benchmarks: {', '.join(unknown)} not in metrics.csv "
                                f"(benchmarks: {', '.join(sorted(set(metrics['benchmark'].astype(str))))})")
        df = df[df["benchmark"].astype(str).isin(set(benchmarks))]
        not_parallel = sorted(set(df.loc[~df["parallel"].astype(bool), "benchmark"].astype(str)))
        if not_parallel:
            raise TransferError(f"evaluate.transfer.benchmarks: {', '.join(not_parallel)} is not parallel "
                                "(its languages are not translations of the same prompts)")
    else:
        df = df[df["parallel"].astype(bool) & ~df["in_distribution"].astype(bool)]
        langs = df.groupby("benchmark")["lang"].nunique()
        df = df[df["benchmark"].isin(langs[langs >= 2].index)]
    mixed = df["set_class"].fillna("").astype(str).isin(["mixed", ""])
    single = sorted(set(df.loc[~mixed, "benchmark"].astype(str)))
    if single:
        notes.append(f"single-class sets left out ({', '.join(single)}): AUROC needs both classes")
    df = df[mixed]
    pairs = set(zip(df["model"].astype(str), df["lang"].astype(str)))
    cover = {b: set(zip(g["model"].astype(str), g["lang"].astype(str))) for b, g in df.groupby("benchmark")}
    full = [b for b, c in cover.items() if c == pairs]
    if not full and cover:  # none is in every (model, language): the widest one, on the pairs it has
        full = [max(cover, key=lambda b: (len(cover[b]), b))]
        lost = sorted(pairs - cover[full[0]])
        notes.append(f"no benchmark is in every (model, language): {full[0]} only, without "
                     f"{len(lost)} (model, language) pairs it lacks")
        keep = cover[full[0]]
        df = df[[k in keep for k in zip(df["model"].astype(str), df["lang"].astype(str))]]
    for b in sorted(set(cover) - set(full)):
        notes.append(f"{b}: not scored with both classes in every (model, language), left out")
    return df[df["benchmark"].isin(full)], notes


def per_language_values(sets: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """(model, lang) -> auroc, f1_cal on the parallel rows: per (model, seed, benchmark, lang)
    set, the mean over benchmarks, then over seeds."""
    from crest.evaluate.aggregate import metric_from_counts, parallel_counts

    counts = parallel_counts(preds, sets, ranking=True).counts
    if counts.empty:
        return pd.DataFrame(columns=["model", "lang", "auroc", "f1_cal", "seeds", "benchmarks"])
    counts["f1_cal"] = metric_from_counts(counts, "f1", calibrated=True)
    per_seed = counts.groupby(["model", "seed", "lang"], as_index=False).agg(
        auroc=("auroc", "mean"), f1_cal=("f1_cal", "mean"), benchmarks=("benchmark", "nunique"))
    return per_seed.groupby(["model", "lang"], as_index=False).agg(
        auroc=("auroc", "mean"), f1_cal=("f1_cal", "mean"), seeds=("seed", "nunique"), benchmarks=("benchmarks", "max"))


def transfer_rows(metrics: pd.DataFrame, preds: pd.DataFrame, models: Sequence[ModelInfo],
                  maps: Sequence[LanguageMap], table: Mapping[str, Any], roles: pd.DataFrame | None = None,
                  benchmarks: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(one row per (model, unseen language): ROW_COLUMNS plus `dist_typology:{set}` per feature
    set; the per-language values of every model's training languages (the figure's reference
    points: model, language, auroc, drop_auroc); notes on what was left out)."""
    sets, notes = select_sets(metrics, [m.model for m in models], benchmarks)
    if sets.empty:
        return pd.DataFrame(columns=ROW_COLUMNS), pd.DataFrame(columns=["model", "language", "auroc", "drop_auroc"]), \
            notes + ["no parallel benchmark with both classes in two or more languages"]
    values = per_language_values(sets, preds)
    by_map = {m.name: m for m in maps}
    emb, typ = by_map.get(EMBEDDING), by_map.get(TYPOLOGY)
    set_maps = [m for m in maps if m.name.startswith(f"{TYPOLOGY}:")]
    role_of = {}
    if roles is not None and not roles.empty:
        role_of = {(str(m), str(c)): str(r) for m, c, r in zip(roles["model"], roles["language"], roles["role"])}
    flags = sets.assign(gloss=sets["translation_backend"].astype(str) == "gloss").groupby(["model", "lang"]).agg(
        gloss=("gloss", "any"), random=("random_translator", "any"))
    rows, seen_rows = [], []
    for m in models:
        mine = values[values["model"] == m.model].set_index("lang")
        home = [c for c in m.trained if c in mine.index]
        if not home:
            notes.append(f"{m.model}: none of its training languages ({', '.join(m.trained)}) was evaluated: no drop")
            continue
        ref = {k: float(mine.loc[home, k].mean()) for k in ("auroc", "f1_cal")}
        for c in home:
            seen_rows.append({"model": m.model, "family": m.family, "language": c, "auroc": mine.at[c, "auroc"],
                              "drop_auroc": ref["auroc"] - mine.at[c, "auroc"]})
        for lang, v in mine.iterrows():
            if lang in m.trained:
                continue
            lang_info = table.get(lang)
            script = getattr(lang_info, "script", "")
            gib = getattr(lang_info, "cc100_gib", math.nan)
            row = {"model": m.model, "arm": m.arm, "family": m.family, "size": m.size, "language": lang,
                   "role": role_of.get((m.model, lang), ""), "tier": getattr(lang_info, "tier", ""), "cc100_gib": gib,
                   "log_cc100": math.log10(gib) if gib and gib > 0 else math.nan, "script": script,
                   "same_script": float(any(getattr(table.get(t), "script", None) == script for t in m.trained))
                   if lang_info else math.nan,
                   "seeds": int(v["seeds"]), "benchmarks": int(v["benchmarks"]),
                   "auroc": v["auroc"], "auroc_seen": ref["auroc"], "drop_auroc": ref["auroc"] - v["auroc"],
                   "f1_cal": v["f1_cal"], "f1_cal_seen": ref["f1_cal"], "drop_f1_cal": ref["f1_cal"] - v["f1_cal"],
                   "gloss": bool(flags.at[(m.model, lang), "gloss"]),
                   "random_translator": bool(flags.at[(m.model, lang), "random"])}
            for prefix, mp in ((EMBEDDING, emb), (TYPOLOGY, typ)):
                nearest, dist = mp.nearest(lang, m.trained) if mp else (None, math.nan)
                row[f"nearest_{prefix}"], row[f"dist_{prefix}"] = nearest, dist
                row[f"same_cluster_{prefix}"] = mp.same_cluster(lang, m.trained) if mp else math.nan
            for mp in set_maps:
                row[f"dist_{mp.name}"] = mp.nearest(lang, m.trained)[1]
            rows.append(row)
    extra = [f"dist_{mp.name}" for mp in set_maps]
    out = pd.DataFrame(rows, columns=ROW_COLUMNS + extra)
    return out, pd.DataFrame(seen_rows, columns=["model", "family", "language", "auroc", "drop_auroc"]), notes


def write_rows(df: pd.DataFrame, out: str | Path) -> None:
    from crest.io import write_tsv

    write_tsv(df, out)


def read_rows(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"language": str, "model": str})
    missing = {"model", "language", "drop_auroc"} - set(df.columns)
    if missing:
        raise TransferError(f"{path}: missing columns {', '.join(sorted(missing))}")
    return df


# -- statistics ---------------------------------------------------------------------------------------
def units(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, language): numeric columns averaged (a language listed several times
    for a model is one observation), the rest taken from the first."""
    num = [c for c in rows.columns if c not in ("model", "language") and pd.api.types.is_numeric_dtype(rows[c])]
    other = [c for c in rows.columns if c not in num and c not in ("model", "language")]
    g = rows.groupby(["model", "language"], sort=False)
    out = g[num].mean() if num else g.size().to_frame("_n").drop(columns="_n")
    if other:
        out = out.join(g[other].first())
    return out.reset_index()


class TwoWayBootstrap:
    """Row multiplicities of resamples that draw languages and models with replacement: a row's
    weight is (draws of its language) x (draws of its model)."""

    def __init__(self, models: Sequence[str], languages: Sequence[str], resamples: int, seed: int) -> None:
        m_codes, m_uniq = pd.factorize(pd.Series(list(models), dtype=object))
        l_codes, l_uniq = pd.factorize(pd.Series(list(languages), dtype=object))
        rng = np.random.default_rng(seed)
        self.resamples = resamples

        def draws(n: int) -> np.ndarray:  # (resamples, n): how often each unit is drawn
            return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) if n else np.zeros((resamples, 0), int)

        m_draw, l_draw = draws(len(m_uniq)), draws(len(l_uniq))
        self.weights = (m_draw[:, m_codes] * l_draw[:, l_codes]).astype(np.int64)  # (resamples, rows)



def _weighted_ranks(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per resample (row of W), the rank every row of `x` would get if repeated W times: ties
    share the average rank (scipy's rankdata on the repeated sample); a row of weight 0 takes no
    room."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ties = len(starts) < len(x)
    GW = (np.add.reduceat(W[:, order], starts, axis=1) if ties else W[:, order]).astype(float)  # per distinct value
    rank = np.cumsum(GW, axis=1) - GW + (GW + 1) / 2
    out = np.empty(W.shape, dtype=float)
    out[:, order] = rank[:, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(x)]))] if ties else rank
    return out


def weighted_spearman(x: np.ndarray, y: np.ndarray, W: np.ndarray, ry: np.ndarray | None = None) -> np.ndarray:
    """Spearman's rho of each resample: rows of `x`, `y` repeated as often as W (resamples x rows)
    says, computed without repeating them (equal to spearman() on the repeated rows). NaN where
    fewer than 3 rows are drawn or one side is constant. `ry`: y's ranks under W, when known."""
    W = np.atleast_2d(W).astype(float)
    x, y = np.where(W.any(axis=0), x, 0.0), np.where(W.any(axis=0), y, 0.0)  # undrawn rows: any finite value
    rx = _weighted_ranks(x, W)
    ry = _weighted_ranks(y, W) if ry is None else ry
    n = W.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = (W * rx).sum(axis=1) / n, (W * ry).sum(axis=1) / n
        dx, dy = rx - mx[:, None], ry - my[:, None]
        cov, vx, vy = (W * dx * dy).sum(axis=1), (W * dx * dx).sum(axis=1), (W * dy * dy).sum(axis=1)
        rho = cov / np.sqrt(vx * vy)
    scale = np.maximum(n, 1.0) ** 2
    return np.where((n >= 3) & (vx > 1e-12 * scale) & (vy > 1e-12 * scale), np.clip(rho, -1, 1), np.nan)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of one sample (NaN below 3 rows or on a constant side)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return math.nan
    return float(weighted_spearman(x, y, np.ones((1, len(x))))[0])


def _interval(values: Sequence[float], level: float) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) < 10:
        return math.nan, math.nan, len(v)
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a)), len(v)


def predictor_columns(rows: pd.DataFrame) -> list[str]:
    """The predictors of the correlation table, distances first."""
    dists = [c for c in ("dist_embedding", "dist_typology") if c in rows]
    dists += sorted(c for c in rows.columns if c.startswith(f"dist_{TYPOLOGY}:"))
    others = [c for c in ("same_script", "log_cc100", "same_cluster_embedding", "same_cluster_typology") if c in rows]
    return dists + others


def correlations(rows: pd.DataFrame, boot: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Spearman rho of each metric's drop with each predictor, with its two-way bootstrap interval;
    the difference rho(embedding) - rho(each typology distance) on the same resamples and rows)."""
    boot = dict(boot or {})
    level, resamples, seed = float(boot.get("level", 0.95)), int(boot.get("resamples", 1000)), int(boot.get("seed", 13))
    u = units(rows)
    bs = TwoWayBootstrap(u["model"], u["language"], resamples, seed) if len(u) else None
    preds = predictor_columns(u)
    out, diffs = [], []
    cache: dict[tuple, np.ndarray] = {}

    def reps(col: str, y: np.ndarray, metric: str, ok: np.ndarray) -> np.ndarray:
        """Replicate rhos of `col` with y on the rows `ok` (cached: the Δ rows reuse them)."""
        if bs is None or ok.sum() < 3:
            return np.array([])
        key = (metric, col, ok.tobytes())
        if key not in cache:
            W = bs.weights * ok
            ykey = (metric, None, ok.tobytes())
            y0 = np.where(ok, y, 0.0)
            if ykey not in cache:
                cache[ykey] = _weighted_ranks(np.where(W.any(axis=0), y0, 0.0), W.astype(float))
            cache[key] = weighted_spearman(np.where(ok, u[col].to_numpy(float), 0.0), y0, W, ry=cache[ykey])
        return cache[key]

    for metric in METRICS:
        y = u.get(f"drop_{metric}", pd.Series(np.nan, index=u.index)).to_numpy(float)
        for p in preds:
            x = u[p].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            lo, hi, used = _interval(reps(p, y, metric, ok), level)
            out.append({"metric": metric, "predictor": p, "rho": spearman(x[ok], y[ok]), "lo": lo, "hi": hi,
                        "rows": int(ok.sum()), "languages": int(u.loc[ok, "language"].nunique()),
                        "models": int(u.loc[ok, "model"].nunique()), "resamples": used, "level": level})
        if "dist_embedding" not in u:
            continue
        e = u["dist_embedding"].to_numpy(float)
        for p in [c for c in preds if c.startswith(f"dist_{TYPOLOGY}")]:
            t = u[p].to_numpy(float)
            ok = np.isfinite(e) & np.isfinite(t) & np.isfinite(y)
            d = spearman(e[ok], y[ok]) - spearman(t[ok], y[ok])
            r_e, r_t = reps("dist_embedding", y, metric, ok), reps(p, y, metric, ok)
            lo, hi, used = _interval(r_e - r_t if len(r_e) else r_e, level)
            diffs.append({"metric": metric, "a": "dist_embedding", "b": p, "diff": d, "lo": lo, "hi": hi,
                          "rows": int(ok.sum()), "languages": int(u.loc[ok, "language"].nunique()),
                          "resamples": used, "level": level})
    return pd.DataFrame(out), pd.DataFrame(diffs, columns=["metric", "a", "b", "diff", "lo", "hi", "rows", "languages",
                                                          "resamples", "level"])


def _ridge_predict(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    if X_train.shape[1] == 0:
        return np.full(len(X_test), float(np.mean(y_train)))
    from sklearn.linear_model import Ridge

    mu, sd = X_train.mean(axis=0), X_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    model = Ridge(alpha=alpha).fit((X_train - mu) / sd, y_train)
    return model.predict((X_test - mu) / sd)


def leave_one_language_out(rows: pd.DataFrame, fits: Mapping[str, Sequence[str]] = FITS, alpha: float = 1.0
                           ) -> tuple[pd.DataFrame, list[str]]:
    """Held-out predictions of every (model, language) row's AUROC drop for each fit, each language's
    rows predicted from a fit on the other languages' rows. Rows lacking a feature of any fit are
    left out of all (every fit is scored on the same rows). Returns (rows with `pred_{fit}`
    columns, notes)."""
    u = units(rows)
    feats = sorted({f for fs in fits.values() for f in fs})
    usable = [f for f in feats if f in u and u[f].notna().any()]
    fits = {k: v for k, v in fits.items() if all(f in usable for f in v)}
    notes = [f"fit {k!r} left out: no values of {', '.join(f for f in fs if f not in usable)}"
             for k, fs in FITS.items() if k not in fits]
    ok = u["drop_auroc"].notna() & u[usable].notna().all(axis=1) if usable else u["drop_auroc"].notna()
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} rows without every feature left out of the fits")
    u = u[ok].reset_index(drop=True)
    langs = u["language"].to_numpy()
    y = u["drop_auroc"].to_numpy(float)
    for name, fs in fits.items():
        pred = np.full(len(u), np.nan)
        X = u[list(fs)].to_numpy(float) if fs else np.zeros((len(u), 0))
        for lang in pd.unique(langs):
            test = langs == lang
            if (~test).sum() < 2:
                continue
            pred[test] = _ridge_predict(X[~test], y[~test], X[test], alpha)
        u[f"pred_{name}"] = pred
        u[f"pred_auroc_{name}"] = u["auroc_seen"] - pred
    return u, notes


def fit_errors(held: pd.DataFrame, boot: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per fit: MAE and RMSE of the held-out AUROC, and its MAE minus the mean baseline's with a
    two-way bootstrap interval (negative: the fit beats predicting the mean)."""
    boot = dict(boot or {})
    level, resamples, seed = float(boot.get("level", 0.95)), int(boot.get("resamples", 1000)), int(boot.get("seed", 13))
    fits = [c.removeprefix("pred_auroc_") for c in held.columns if c.startswith("pred_auroc_")]
    if held.empty or "mean" not in fits:
        return pd.DataFrame(columns=["fit", "features", "mae", "rmse", "mae_minus_mean", "lo", "hi", "rows", "languages"])
    bs = TwoWayBootstrap(held["model"], held["language"], resamples, seed)
    y = held["auroc"].to_numpy(float)
    base = np.abs(held["pred_auroc_mean"].to_numpy(float) - y)
    out = []
    for fit in fits:
        err = held[f"pred_auroc_{fit}"].to_numpy(float) - y
        ok = np.isfinite(err) & np.isfinite(base)
        a = np.where(ok, np.abs(err), 0.0)
        base0 = np.where(ok, base, 0.0)
        W = bs.weights * ok
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = (W * (a - base0)).sum(axis=1) / W.sum(axis=1)
        lo, hi, _ = _interval(reps, level) if fit != "mean" else (math.nan, math.nan, 0)
        out.append({"fit": fit, "features": "+".join(FITS.get(fit, [])) or "-",
                    "mae": float(np.mean(a[ok])) if ok.any() else math.nan,
                    "rmse": float(np.sqrt(np.mean(err[ok] ** 2))) if ok.any() else math.nan,
                    "mae_minus_mean": float(np.mean(a[ok] - base[ok])) if ok.any() else math.nan, "lo": lo, "hi": hi,
                    "rows": int(ok.sum()), "languages": int(held.loc[ok, "language"].nunique())})
    return pd.DataFrame(out)


def coefficients(rows: pd.DataFrame, fit: str = "maps+", alpha: float = 1.0) -> dict[str, float]:
    """Standardised ridge coefficients of `fit` on every row (what the held-out fits look like)."""
    from sklearn.linear_model import Ridge

    u = units(rows)
    fs = [f for f in FITS[fit] if f in u]
    u = u.dropna(subset=["drop_auroc", *fs])
    if len(u) < 3 or len(fs) != len(FITS[fit]):
        return {}
    X = u[fs].to_numpy(float)
    sd = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    model = Ridge(alpha=alpha).fit(X, u["drop_auroc"].to_numpy(float))
    return {"intercept": float(model.intercept_), **{f: float(c) for f, c in zip(fs, model.coef_)}}


def arm_check(held: pd.DataFrame, families: Sequence[str] = ARM_FAMILIES) -> pd.DataFrame:
    """Per family (and size) of `families`: measured vs held-out-predicted mean AUROC over each
    model's unseen languages (mean over its models: the random draws), and over the languages
    every model of these families leaves unseen."""
    cols = ["family", "size", "scope", "models", "languages", "measured"] + [f"predicted_{f}" for f in FITS]
    sub = held[held["family"].isin(families)] if "family" in held else held.iloc[0:0]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    per_model = sub.groupby("model")["language"].apply(set)
    common = set.intersection(*per_model.tolist())
    fits = [c.removeprefix("pred_auroc_") for c in sub.columns if c.startswith("pred_auroc_")]
    out = []
    for (family, size), g in sub.groupby(["family", "size"], sort=False):
        for scope, part in (("own unseen", g), ("common unseen", g[g["language"].isin(common)])):
            if part.empty:
                continue
            per = part.groupby("model")[["auroc", *[f"pred_auroc_{f}" for f in fits]]].mean()
            row = {"family": family, "size": size, "scope": scope, "models": len(per),
                   "languages": int(part["language"].nunique()), "measured": float(per["auroc"].mean())}
            row.update({f"predicted_{f}": float(per[f"pred_auroc_{f}"].mean()) for f in fits})
            out.append(row)
    order = {f: i for i, f in enumerate(families)} | {"own unseen": 0, "common unseen": 1}
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values(["scope", "family"], key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def transfer_summary(rows: pd.DataFrame, boot: Mapping[str, Any] | None = None, notes: Sequence[str] = (),
                     maps: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything the tables and the figure report (eval/transfer.json)."""
    corr, diffs = correlations(rows, boot)
    held, fit_notes = leave_one_language_out(rows) if len(rows) else (rows.iloc[0:0], [])
    errors = fit_errors(held, boot) if len(held) else pd.DataFrame()
    arms = arm_check(held) if len(held) else pd.DataFrame()
    u = units(rows) if len(rows) else rows
    return {
        "rows": int(len(u)), "models": sorted(set(u["model"])) if len(u) else [],
        "languages": sorted(set(u["language"])) if len(u) else [],
        "gloss_languages": sorted(set(u.loc[u["gloss"].astype(bool), "language"])) if len(u) and "gloss" in u else [],
        "random_translator": bool(u["random_translator"].astype(bool).any()) if len(u) and "random_translator" in u else False,
        "maps": dict(maps or {}), "bootstrap": dict(boot or {}),
        "correlations": corr.to_dict(orient="records"), "differences": diffs.to_dict(orient="records"),
        "fits": errors.to_dict(orient="records") if len(errors) else [],
        "coefficients": coefficients(rows) if len(rows) else {},
        "arms": arms.to_dict(orient="records") if len(arms) else [],
        "notes": list(notes) + fit_notes,
    }


# -- tables ---------------------------------------------------------------------------------------------
def predictor_label(p: str) -> str:
    labels = {"dist_embedding": "embedding map: distance to nearest training language",
              "dist_typology": "typology map (URIEL, combined): distance", "same_script": "same script as a training language",
              "log_cc100": "log10 CC-100 GiB", "same_cluster_embedding": "same embedding cluster as a training language",
              "same_cluster_typology": "same typology cluster as a training language"}
    if p.startswith(f"dist_{TYPOLOGY}:"):
        return f"typology: {p.split(':', 1)[1]} alone: distance"
    return labels.get(p, p)


def _fmt(v: Any, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v) * scale:.{digits}f}"


def _ci(r: Mapping[str, Any], key: str, scale: float = 1.0, digits: int = 2) -> str:
    if r.get("lo") is None or not math.isfinite(float(r.get("lo", math.nan))):
        return f"{_fmt(r[key], scale, digits)} [n/a]"
    return f"{_fmt(r[key], scale, digits)} [{_fmt(r['lo'], scale, digits)}, {_fmt(r['hi'], scale, digits)}]"


def _caveat(summary: Mapping[str, Any]) -> list[str]:
    notes = []
    if summary.get("random_translator"):
        notes.append("* rests on the random-weight demo translator: translated-language numbers are noise.")
    if summary.get("gloss_languages"):
        notes.append(f"Glossed languages (word-by-word dictionary substitution, not translation): "
                     f"{', '.join(summary['gloss_languages'])}.")
    return notes + [str(n) for n in summary.get("notes", [])]


def transfer_tables(summary: Mapping[str, Any] | None):
    """The `transfer` (correlations), `transfer_fit` (held-out prediction) and `transfer_arms`
    (anchor choice vs the prediction) tables, in crest.evaluate.tables' Table form."""
    from crest.evaluate.tables import Cell, Table, TableSpec

    summary = summary or {}
    level = float((summary.get("bootstrap") or {}).get("level", 0.95))
    maps = summary.get("maps") or {}
    spec = TableSpec(id="transfer", row_header="Predictor",
                     title="Does the language map predict transfer? Spearman rho of the drop with each predictor",
                     rows={"named": {"x": {}}}, columns={"named": {"x": {}}}, best="none",
                     caption=("One observation per (model, unseen language): the drop is the model's mean over its own "
                              "training languages minus its value in the language (AUROC; F1 at the model's calibrated "
                              "threshold), on the parallel rows of the translated benchmarks. Spearman rho with a "
                              f"{level:.0%} interval from a bootstrap that resamples languages and models (not rows); "
                              "positive = the drop grows with the predictor. Δ rows: rho(embedding) minus rho(typology) "
                              "on the same resamples. " + "; ".join(f"{k}: {v}" for k, v in maps.items())))
    cols = [f"rho, {label} drop [{level:.0%} CI]" for label in METRICS.values()] + ["rows", "languages", "models"]
    corr = pd.DataFrame(summary.get("correlations") or [])
    diffs = pd.DataFrame(summary.get("differences") or [])
    labels, cells = [], []
    if not corr.empty:
        for p in dict.fromkeys(corr["predictor"]):
            by = {r["metric"]: r for r in corr[corr["predictor"] == p].to_dict(orient="records")}
            first = next(iter(by.values()))
            labels.append(predictor_label(p))
            cells.append([Cell(text=_ci(by[m], "rho")) if m in by else Cell(status="not_run") for m in METRICS]
                         + [Cell(text=str(first["rows"])), Cell(text=str(first["languages"])), Cell(text=str(first["models"]))])
    if not diffs.empty:
        for b in dict.fromkeys(diffs["b"]):
            by = {r["metric"]: r for r in diffs[diffs["b"] == b].to_dict(orient="records")}
            first = next(iter(by.values()))
            labels.append(f"Δ embedding − {predictor_label(b).removesuffix(': distance').removesuffix(' distance')}")
            cells.append([Cell(text=_ci({**by[m], "rho": by[m]["diff"]}, "rho")) if m in by else Cell(status="not_run")
                          for m in METRICS] + [Cell(text=str(first["rows"])), Cell(text=str(first["languages"])),
                                               Cell(text="")])
    t1 = Table(spec, labels, cols, cells, _caveat(summary), operating_point="threshold_free", file_id="transfer",
               value_note="Spearman rho [interval]")

    fspec = TableSpec(id="transfer_fit", row_header="Fit (features)",
                      title="Predicting an unseen language's AUROC: leave one language out",
                      rows={"named": {"x": {}}}, columns={"named": {"x": {}}}, best="none",
                      caption=("Each language's rows predicted by a ridge regression (standardised features, alpha 1) "
                               "fitted on every other language's rows: predicted AUROC = the model's seen mean minus the "
                               "predicted drop. Errors in AUROC points x 100 over the (model, language) rows; "
                               f"MAE − baseline with a {level:.0%} interval (languages and models resampled); "
                               "negative = better than predicting the mean drop."))
    fits = pd.DataFrame(summary.get("fits") or [])
    flabels, fcells = [], []
    for r in fits.to_dict(orient="records"):
        flabels.append(FIT_LABELS.get(r["fit"], r["fit"]))
        diff = "(baseline)" if r["fit"] == "mean" else _ci({**r, "v": r["mae_minus_mean"]}, "v", 100, 1)
        fcells.append([Cell(text=_fmt(r["mae"], 100, 1)), Cell(text=_fmt(r["rmse"], 100, 1)), Cell(text=diff),
                       Cell(text=str(r["rows"])), Cell(text=str(r["languages"]))])
    coef = summary.get("coefficients") or {}
    fnotes = (["Standardised coefficients of the last fit on every row (drop in AUROC per SD): "
               + ", ".join(f"{k} {v:+.3f}" for k, v in coef.items() if k != "intercept")] if coef else [])
    t2 = Table(fspec, flabels, ["MAE", "RMSE", f"MAE − baseline [{level:.0%} CI]", "rows", "languages"], fcells,
               fnotes + _caveat(summary), operating_point="threshold_free", file_id="transfer_fit",
               value_note="AUROC x 100")

    aspec = TableSpec(id="transfer_arms", row_header="Arm · languages",
                      title="Anchor choice against the prediction: mean AUROC over unseen languages",
                      rows={"named": {"x": {}}}, columns={"named": {"x": {}}}, best="none",
                      caption=("Measured mean AUROC x 100 over each model's unseen languages (random: mean over its "
                               "draws) beside the mean the leave-one-language-out fits predict; 'common unseen': only "
                               "the languages every model of these arms leaves unseen (the same languages for every arm)."))
    arms = pd.DataFrame(summary.get("arms") or [])
    alabels, acells = [], []
    acols = ["languages", "measured", *[f"predicted: {FIT_LABELS[f]}" for f in FITS]]
    for r in arms.to_dict(orient="records"):
        alabels.append(f"{r['family']}-{r['size']} · {r['scope']}")
        acells.append([Cell(text=str(r["languages"])), Cell(text=_fmt(r["measured"], 100, 1))]
                      + [Cell(text=_fmt(r.get(f"predicted_{f}"), 100, 1)) for f in FITS])
    t3 = Table(aspec, alabels, acols, acells, _caveat(summary), operating_point="threshold_free", file_id="transfer_arms",
               value_note="AUROC x 100")
    reason = (summary.get("notes") or ["no (model, unseen language) rows"])[-1] if not summary.get("rows") else None
    for t, empty in ((t1, corr.empty), (t2, fits.empty), (t3, arms.empty)):
        if empty:
            t.empty_reason = reason or ("no arm of the crest, typology or random families" if t is t3
                                        else "too few rows to compute")
    return [t1, t2, t3]


TABLE_IDS = ("transfer", "transfer_fit", "transfer_arms")


# -- figure -----------------------------------------------------------------------------------------------
def transfer_figure(rows: pd.DataFrame, seen: pd.DataFrame, summary: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Drop in AUROC against the distance to the nearest training language, one panel per map
    (embedding, typology), a point per (model, unseen language) coloured by arm family (hollow: a
    glossed language), each model's training languages at distance 0 (grey x: their own value
    against the model's seen mean), rho and its interval in each panel's title."""
    from crest.evaluate.figures import RANDOM_NOTE, _placeholder, _plt, save

    stem = Path(stem)
    panels = [(c, t) for c, t in (("dist_embedding", "Embedding map"), ("dist_typology", "Typology map (URIEL)"))
              if c in rows and rows[c].notna().any()]
    if rows.empty or not panels:
        return _placeholder(stem, "Transfer against distance", "no (model, unseen language) rows with a distance")
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8), squeeze=False, sharey=True)
    families = list(dict.fromkeys(rows["family"].astype(str)))
    cmap = plt.get_cmap("tab10")
    colours = {f: cmap(i % 10) for i, f in enumerate(families)}
    corr = {(r["metric"], r["predictor"]): r for r in summary.get("correlations") or []}
    maps = summary.get("maps") or {}
    for ax, (col, title) in zip(axes[0], panels):
        for fam in families:
            part = rows[(rows["family"].astype(str) == fam) & rows[col].notna()]
            gl = part["gloss"].astype(bool) if "gloss" in part else pd.Series(False, index=part.index)
            ax.scatter(part.loc[~gl, col], part.loc[~gl, "drop_auroc"] * 100, s=26, color=colours[fam], alpha=0.85,
                       label=fam, edgecolor="none")
            ax.scatter(part.loc[gl, col], part.loc[gl, "drop_auroc"] * 100, s=26, facecolor="none",
                       edgecolor=colours[fam], alpha=0.85, label=None)
        per_lang = rows[rows[col].notna()].groupby("language")[[col, "drop_auroc"]].mean()
        ax.scatter(per_lang[col], per_lang["drop_auroc"] * 100, marker="+", s=18, color="#222", lw=0.8,
                   label="per-language mean")
        for lang, r in per_lang.iterrows():
            ax.annotate(lang, (r[col], r["drop_auroc"] * 100), fontsize=7, color="#333", xytext=(3, 2),
                        textcoords="offset points")
        if len(seen):
            ax.scatter(np.zeros(len(seen)), seen["drop_auroc"] * 100, marker="x", s=22, color="#777",
                       label="training languages (distance 0)")
        ax.axhline(0, color="#bbb", lw=0.8, zorder=0)
        r = corr.get(("auroc", col))
        stat = f"\nSpearman rho {_ci(r, 'rho')}" if r else ""
        ax.set_title(f"{title}{stat}", fontsize=10)
        ax.set_xlabel(f"cosine distance to the nearest training language\n{maps.get(col.removeprefix('dist_'), '')}",
                      fontsize=8)
        ax.grid(alpha=0.25)
    axes[0][0].set_ylabel("AUROC drop x 100 (model's seen mean − language)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="#555"))
    labels.append("hollow: glossed language")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    sup = "Drop against distance to the nearest training language (one point per model x unseen language)"
    if summary.get("random_translator"):
        sup += f"\n{RANDOM_NOTE}"
    fig.suptitle(sup, fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def read_summary(path: str | Path | None) -> dict[str, Any] | None:
    import json

    if not path or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TransferError(f"{path}: not valid JSON: {e}") from e
