"""Is crest better than english, random, all...? One bootstrap for every comparison, clustered by
prompt, with seeds and draws as a level and Holm-adjusted p (docs/evaluate.md,
"The significance test").

For a comparison A vs B on a group of (benchmark, language) sets, both models are scored on the
rows both share (crest.evaluate.aggregate.parallel_scopes, intersected once per comparison over every
set any of its groups uses). One resample draws:

- prompts: one multinomial weight vector per *resampling unit*, the same for A and B (paired).
  The unit is the benchmark for a parallel benchmark (its languages are translations of the same
  prompts, `parallel`: one draw of prompt ids applied to every language, so 19 copies of a language
  are as uncertain as one), the (benchmark, language) set for a native one;
- members: the seeds of A (and the seeds x draws of a family such as random_0..4: their data.json
  `family`) are drawn with replacement as a level, likewise B's, so the spread between seeds and
  draws widens the interval instead of being averaged away.

The statistic is the tables': a set's metric (F1 on mixed sets, recall on all-unsafe, FPR on
all-safe; AUROC, threshold-free, on mixed sets), the mean over benchmarks per language, then over
languages, per member, then the (weighted) mean over members.

    diff  = stat(A) - stat(B) on the observed rows and members
    95% interval: percentiles of the resampled differences
    p     = (1 + #{|d* - diff| >= |diff|}) / (1 + resamples)   two-sided, the bootstrap distribution
            centred on the observed difference (Efron & Tibshirani ch. 16); p = 1 when A and B agree
            on every row
    p_holm: Holm's step-down adjustment over the family of tests of one table (one operating
            point: every comparison, size, group and benchmark in it); marks use p_holm < 0.05

Groups: every role (crest.evaluate.roles) of A's languages, over the held-out multilingual
benchmarks (English over the English benchmarks; `in_distribution` ones only in their own rows); a
language B trained on is never counted as unseen for B, so it leaves every unseen group of that
comparison (counted in `left_out`). And every benchmark on its own (group `all`). Each row names
its languages and benchmarks (`langs`, `benchmarks`), so a table marks only a cell that averages
exactly those (crest.evaluate.tables).

Cost: weights are drawn once per resampling unit and comparison (not per set and group); the
counts of every language and member of a unit come from one (resamples x rows) @ (rows x sets)
product, cached across the groups that reuse a set.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba is a pinned dependency; the loop runs (slowly) without it
    njit, prange = None, range

from crest.evaluate.aggregate import UNIT, parallel_scopes, scope_name, seed_key
from crest.evaluate.predictions import Predictions, as_predictions
from crest.io import read_tsv, write_tsv

COLUMNS = ["a", "b", "operating_point", "group", "benchmark", "metric", "sets", "languages", "rows", "a_value",
           "b_value", "diff", "lo", "hi", "p", "p_holm", "resamples", "a_members", "b_members", "langs", "benchmarks",
           "left_out"]
CREST_VS = ("english", "random", "all", "shuffled", "typology")
TRANSFER_PAIRS = (("transfer_hi", "transfer_kn"), ("transfer_hi", "transfer_sd"), ("transfer_kn", "transfer_sd"),
                  ("transfer_hi_zh", "transfer_hi"), ("transfer_hi_zh", "transfer_zh"), ("transfer_hi", "transfer_zh"))
UNSEEN = {"unseen_hrl", "id_lrl", "ood_lrl"}
METRIC = {"mixed": "f1", "all_unsafe": "recall", "all_safe": "fpr"}
THRESHOLD_FREE = "threshold_free"
ALPHA = 0.05


def _rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator per resampling unit: the same draw for a unit whatever else the run holds."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + resamples, n) float32 counts: row 0 all ones (the observed sample), then per resample
    how often each of the n rows is drawn in n draws with replacement (one bincount, not a
    multinomial per row: the weights were half of the old test's time)."""
    w = np.ones((resamples + 1, n), dtype=np.float32)
    if resamples and n:
        picks = rng.integers(0, n, size=(resamples, n)) + np.arange(resamples)[:, None] * n
        w[1:] = np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n)
    return w


def _point_metric(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, metric: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "f1":
            return np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        if metric == "recall":
            return np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        return np.where(fp + tn > 0, fp / (fp + tn), np.nan)


def counts_metric(w: np.ndarray, labels: np.ndarray, flags: np.ndarray, metric: str) -> np.ndarray:
    """`metric` per resample (rows of `w`) and member (rows of `flags`, bool members x n):
    (resamples + 1, members), from two matrix products."""
    pos = labels.astype(bool)
    f = flags.astype(np.float32)
    tp = w @ (f * pos).T
    fp = w @ (f * ~pos).T
    n_pos = (w @ pos.astype(np.float32))[:, None]
    n_neg = (w @ (~pos).astype(np.float32))[:, None]
    return _point_metric(tp, fp, n_pos - tp, n_neg - fp, metric)


def weighted_auroc(w: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC per resample (rows of `w`) and member (rows of `scores`, members x n): the weighted
    Mann-Whitney statistic (ties count half). One sort per member, then one pass over the rows in
    score order per resample (a compiled loop, `_auroc_kernel`): each tie group adds its positive
    weight times (the negative weight below it + half its own). The weights are counts, so every
    sum is an exact integer (or half) in float64 and the result does not depend on summation order."""
    pos = np.ascontiguousarray(labels.astype(bool))
    out = np.full((w.shape[0], scores.shape[0]), np.nan)
    wf = np.ascontiguousarray(w, dtype=np.float32)
    for m, s in enumerate(scores):
        order = np.argsort(s, kind="stable")
        ss = s[order]
        new = np.r_[True, ss[1:] != ss[:-1]] if len(ss) else np.zeros(0, bool)
        out[:, m] = _auroc_kernel(wf, order.astype(np.int64), pos, new)
    return out


def _auroc_loop(w: np.ndarray, order: np.ndarray, pos: np.ndarray, new: np.ndarray) -> np.ndarray:
    out = np.empty(w.shape[0])
    for r in prange(w.shape[0]):
        below = 0.0
        num = 0.0
        w_pos = 0.0
        g_pos = 0.0
        g_neg = 0.0
        for k in range(order.shape[0]):
            if new[k] and k:
                num += g_pos * (below + g_neg / 2)
                below += g_neg
                g_pos = 0.0
                g_neg = 0.0
            i = order[k]
            x = float(w[r, i])
            if pos[i]:
                g_pos += x
                w_pos += x
            else:
                g_neg += x
        num += g_pos * (below + g_neg / 2)
        below += g_neg
        den = w_pos * below
        out[r] = num / den if den > 0 else np.nan
    return out


_auroc_kernel = njit(parallel=True, cache=True)(_auroc_loop) if njit is not None else _auroc_loop


def _set_metric(w: np.ndarray, s: dict[str, Any], side: str) -> np.ndarray:
    if s["metric"] == "auroc":
        return weighted_auroc(w, s["labels"], s[side])
    return counts_metric(w, s["labels"], s[side], s["metric"])


def _member_mean(per_member: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Weighted mean over members (columns) per resample, NaN members skipped."""
    ok = ~np.isnan(per_member)
    num = np.where(ok, per_member, 0.0) * v
    den = ok * v
    with np.errstate(invalid="ignore", divide="ignore"):
        return num.sum(1) / den.sum(1)


def _language_mean(stats: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """(resamples + 1, members): mean over a language's benchmarks, then over languages."""
    per_lang: dict[str, list[np.ndarray]] = {}
    for lang, x in stats:
        per_lang.setdefault(lang, []).append(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a language whose sets are all undefined
        return np.nanmean([np.nanmean(v, axis=0) for v in per_lang.values()], axis=0)


def bootstrap_summary(a: np.ndarray, b: np.ndarray, level: float) -> dict[str, Any]:
    """Observed values (row 0), interval and p of a - b from the resampled statistics."""
    d = a - b
    obs, boot = float(d[0]), d[1:][~np.isnan(d[1:])]
    alpha = (1 - level) / 2
    lo, hi = (float(x) for x in np.quantile(boot, [alpha, 1 - alpha])) if boot.size else (None, None)
    p = float((1 + np.sum(np.abs(boot - obs) >= abs(obs) - 1e-12)) / (1 + boot.size)) if boot.size else None
    return {"a_value": float(a[0]), "b_value": float(b[0]), "diff": obs, "lo": lo, "hi": hi, "p": p,
            "resamples": int(boot.size)}


def paired_bootstrap(sets: Sequence[dict[str, Any]], *, resamples: int = 1000, level: float = 0.95,
                     seed: int = 13) -> dict[str, Any]:
    """`sets`: one dict per (benchmark, lang) with `lang`, `labels` (n,), `a` and `b` (members x n:
    bool flags, or scores for `metric` auroc), `metric`, optionally `unit` (sets naming the same
    unit share one prompt draw: the languages of a parallel benchmark, same rows in the same
    order; default: each set its own). Row i of `a` is the same member (model, seed) in every set.
    Returns observed a/b values, diff, interval and p."""
    weights: dict[Any, np.ndarray] = {}
    a_stats, b_stats = [], []
    for i, s in enumerate(sets):
        unit = s.get("unit", ("set", i))
        n = len(s["labels"])
        if unit not in weights:
            weights[unit] = resample_weights(n, resamples, _rng(seed, *map(str, np.atleast_1d(unit))))
        if weights[unit].shape[1] != n:
            raise ValueError(f"sets of resampling unit {unit!r} differ in rows ({weights[unit].shape[1]} vs {n})")
        a_stats.append((s["lang"], _set_metric(weights[unit], s, "a")))
        b_stats.append((s["lang"], _set_metric(weights[unit], s, "b")))
    a, b = _language_mean(a_stats), _language_mean(b_stats)
    va = resample_weights(a.shape[1], resamples, _rng(seed, "members", "a"))
    vb = resample_weights(b.shape[1], resamples, _rng(seed, "members", "b"))
    return bootstrap_summary(_member_mean(a, va), _member_mean(b, vb), level)


def holm(p: pd.Series) -> pd.Series:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    out = pd.Series(np.nan, index=p.index, dtype=float)
    valid = p.dropna().astype(float).sort_values(kind="stable")
    m = len(valid)
    if m:
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * valid.to_numpy()))
        out.loc[valid.index] = adj
    return out


def comparisons(families: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(A, B) family pairs this run can answer: crest vs each control, each transfer study's pairs."""
    pairs = [("crest", f) for f in CREST_VS if "crest" in families and f in families]
    return pairs + [(a, b) for a, b in TRANSFER_PAIRS if a in families and b in families]


class Comparison:
    """The shared rows of A's and B's sets for one (A, B, size), arranged once: per set its
    labels and each member's scores and thresholds; per-set resampled statistics are cached, so
    the groups that reuse a set (its role, its benchmark) pay for it once."""

    def __init__(self, metrics: pd.DataFrame, preds: Predictions | pd.DataFrame, a_models: list[str], b_models: list[str],
                 pairs: pd.DataFrame, boot: dict[str, Any], weights: dict[tuple[str, int], np.ndarray] | None = None):
        preds = as_predictions(preds)
        self.resamples = int(boot.get("resamples", 1000))
        self.level = float(boot.get("level", 0.95))
        self.seed = int(boot.get("seed", 13))
        ok = metrics[(metrics["status"] == "ok") & metrics["model"].isin(a_models + b_models)]
        ok = ok.assign(seed=seed_key(ok["seed"])).merge(pairs, on=["benchmark", "lang"])
        extra = ["parallel"] if "parallel" in ok else []
        keys = ok[[*UNIT, "threshold", "threshold_cal", "set_class", *extra]]
        scopes, _, dropped = parallel_scopes(preds, keys)
        self.dropped = int(sum(dropped.values()))
        self.calibrated = not ok["threshold_cal"].isna().any()
        self.a_members = sorted({(m, int(s)) for m, s in zip(ok["model"], ok["seed"]) if m in a_models})
        self.b_members = sorted({(m, int(s)) for m, s in zip(ok["model"], ok["seed"]) if m in b_models})
        found: dict[tuple[str, str], dict[tuple[str, int], dict[str, Any]]] = {}
        meta: dict[tuple[tuple[str, str], tuple[str, int]], tuple[bool, str]] = {}
        for sc in scopes:  # each member's kept rows in id order (ids are coded in sorted order)
            order = np.lexsort((preds.id_code[sc.pos], sc.local))
            pos = sc.pos[order]
            bounds = np.searchsorted(sc.local[order], np.arange(len(sc.keys) + 1))
            par = sc.keys["parallel"].astype(bool).to_numpy() if "parallel" in sc.keys else np.ones(len(sc.keys), bool)
            for j, (m, sd, bench, lang, thr, thr_cal, cls) in enumerate(zip(
                    sc.keys["model"], sc.keys["seed"], sc.keys["benchmark"], sc.keys["lang"], sc.keys["threshold"],
                    sc.keys["threshold_cal"], sc.keys["set_class"])):
                rows = pos[bounds[j]:bounds[j + 1]]
                if not len(rows):
                    continue
                member = (str(m), int(sd))
                found.setdefault((str(bench), str(lang)), {})[member] = {
                    "prob": preds.prob[rows].astype(float), "label": preds.label[rows],
                    "threshold": float(thr), "threshold_cal": float(thr_cal)}
                meta[((str(bench), str(lang)), member)] = (bool(par[j]), cls)
        self.sets: dict[tuple[str, str], dict[str, Any]] = {}
        for (bench, lang) in sorted(found):
            by_member = dict(sorted(found[(bench, lang)].items()))
            if not any(m in by_member for m in self.a_members) or not any(m in by_member for m in self.b_members):
                continue
            first_member, first = next(iter(by_member.items()))
            parallel, cls = meta[((bench, lang), first_member)]
            self.sets[(bench, lang)] = {
                "lang": lang, "labels": first["label"], "unit": scope_name(bench, lang, parallel),
                "set_class": cls or "mixed", "members": by_member}
        self.units: dict[str, list[tuple[str, str]]] = {}
        for key, st in self.sets.items():
            self.units.setdefault(st["unit"], []).append(key)
        self.weights = weights if weights is not None else {}  # (unit, rows) -> weights, shared by comparisons
        self.cache: dict[tuple[str, str, str, str], np.ndarray] = {}

    def _side(self, members: list[tuple[str, int]], s: dict[str, Any], point: str) -> np.ndarray:
        """members x n: flags at the point's threshold, or scores (threshold-free); a member
        without this set is a row of NaN scores (its statistic is skipped)."""
        n = len(s["labels"])
        out = np.full((len(members), n), np.nan)
        for i, m in enumerate(members):
            r = s["members"].get(m)
            if r is not None:
                out[i] = r["prob"]
                if point != THRESHOLD_FREE:
                    out[i] = out[i] >= r["threshold" if point == "default" else "threshold_cal"]
        return out

    def _unit_weights(self, unit: str, n: int) -> np.ndarray:
        if (unit, n) not in self.weights:
            self.weights[(unit, n)] = resample_weights(n, self.resamples, _rng(self.seed, unit))
        return self.weights[(unit, n)]

    def _fill(self, keys: list[tuple[str, str]], point: str, metric: str) -> None:
        """Resampled statistics of every member on `keys` (sets of one unit with the same labels:
        the languages of a parallel benchmark): one weights matrix, one product for all of them."""
        labels = self.sets[keys[0]]["labels"]
        w = self._unit_weights(self.sets[keys[0]]["unit"], len(labels))
        x = np.vstack([self._side(members, self.sets[k], point) for k in keys
                       for members in (self.a_members, self.b_members)])
        missing = np.isnan(x).any(axis=1)
        if metric == "auroc":
            v = weighted_auroc(w, labels, np.nan_to_num(x))
        else:
            v = counts_metric(w, labels, np.nan_to_num(x).astype(bool), metric)
        v[:, missing] = np.nan
        width = len(self.a_members) + len(self.b_members)
        for i, k in enumerate(keys):
            self.cache[(*k, point, metric)] = v[:, i * width:(i + 1) * width]

    def stats(self, key: tuple[str, str], point: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Resampled statistic of A's and B's members on one set: two (resamples + 1, members)."""
        if (*key, point, metric) not in self.cache:
            labels = self.sets[key]["labels"]
            same = [k for k in self.units[self.sets[key]["unit"]]
                    if (*k, point, metric) not in self.cache and np.array_equal(self.sets[k]["labels"], labels)]
            self._fill(same if key in same else [key], point, metric)
        cached = self.cache[(*key, point, metric)]
        k = len(self.a_members)
        return cached[:, :k], cached[:, k:]

    def compare(self, keys: list[tuple[str, str]], point: str, metric: str | None) -> dict[str, Any] | None:
        """A vs B on these sets: `metric` for all of them (auroc, f1), or None: each set's own
        (METRIC by set class)."""
        keys = [k for k in keys if k in self.sets]
        if metric == "auroc":
            keys = [k for k in keys if self.sets[k]["set_class"] == "mixed"]
        if not keys:
            return None
        a_stats, b_stats = [], []
        for key in keys:
            a, b = self.stats(key, point, metric or METRIC[self.sets[key]["set_class"]])
            a_stats.append((key[1], a))
            b_stats.append((key[1], b))
        va = resample_weights(len(self.a_members), self.resamples, _rng(self.seed, "members", *map(str, self.a_members[:1])))
        vb = resample_weights(len(self.b_members), self.resamples, _rng(self.seed, "members", *map(str, self.b_members[:1])))
        res = bootstrap_summary(_member_mean(_language_mean(a_stats), va), _member_mean(_language_mean(b_stats), vb),
                                self.level)
        langs = sorted({k[1] for k in keys})
        return {**res, "sets": len(keys), "languages": len(langs),
                "rows": int(sum(len(self.sets[k]["labels"]) for k in keys)), "a_members": len(self.a_members),
                "b_members": len(self.b_members), "langs": " ".join(langs),
                "benchmarks": " ".join(sorted({k[0] for k in keys}))}


def significance(metrics: pd.DataFrame, preds: Predictions | pd.DataFrame, roles: pd.DataFrame, *,
                 boot: dict[str, Any] | None = None, pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Every comparison of `comparisons()` (or `pairs`), per size, per role group and per benchmark,
    at both operating points and threshold-free (AUROC); Holm-adjusted p per operating point.
    `metrics` has `role` and `family` (crest.evaluate.roles.attach_roles)."""
    boot = boot or {}
    preds = as_predictions(preds)
    trained = metrics[metrics["model_kind"] == "trained"]
    families: dict[str, list[str]] = {}
    for fam, model in zip(trained["family"].astype(str), trained["model"].astype(str)):
        families.setdefault(fam, [])
        if model not in families[fam]:
            families[fam].append(model)
    out = []
    weights: dict[tuple[str, int], np.ndarray] = {}  # one draw per resampling unit for every comparison
    for fa, fb in pairs if pairs is not None else comparisons(families):
        sizes = sorted({str(z) for z in trained[trained["family"] == fa]["size"]})
        for size in sizes:
            a_models = [m for m in families.get(fa, []) if m.endswith(f"-{size}")]
            b_models = [m for m in families.get(fb, []) if m.endswith(f"-{size}")]
            if not a_models or not b_models:
                continue
            a_rows = trained[trained["model"].isin(a_models) & (trained["status"] == "ok")]
            held_out = ~a_rows["in_distribution"].astype(bool) if "in_distribution" in a_rows else True
            b_seen = set(roles[roles["model"].isin(b_models) & (roles["role"] == "seen")]["language"]) if not roles.empty else set()
            groups: list[tuple[str, str, pd.DataFrame, str]] = []
            for role in ("english", "seen", "unseen_hrl", "id_lrl", "ood_lrl"):
                bench_group = "english" if role == "english" else "multilingual"
                sel = a_rows[(a_rows["role"] == role) & (a_rows["group"] == bench_group) & (a_rows["set_class"] == "mixed")
                             & held_out]
                left = sorted(set(sel["lang"]) & b_seen) if role in UNSEEN else []
                sel = sel[~sel["lang"].isin(left)]
                groups.append((role, "all", sel, f"languages B trained on: {' '.join(left)}" if left else ""))
            for bench, g in a_rows.groupby("benchmark", sort=False):
                groups.append(("all", str(bench), g, ""))
            used = pd.concat([sel for _, _, sel, _ in groups])[["benchmark", "lang"]].drop_duplicates()
            if used.empty:
                continue
            cmp = Comparison(metrics, preds, a_models, b_models,
                             used.astype(str), boot, weights)
            points = ["default", *(["calibrated"] if cmp.calibrated else []), THRESHOLD_FREE]
            for group, bench, sel, left in groups:
                keys = list(dict.fromkeys(zip(sel["benchmark"].astype(str), sel["lang"].astype(str))))
                for point in points:
                    metric = "auroc" if point == THRESHOLD_FREE else ("f1" if bench == "all" else None)
                    res = cmp.compare(keys, point, metric)
                    if res is None:
                        continue
                    shown = metric or METRIC[sel["set_class"].iloc[0] or "mixed"]
                    note = "; ".join(x for x in (left, f"{cmp.dropped} ids not in every set" if cmp.dropped else "") if x)
                    out.append({"a": f"{fa}-{size}", "b": f"{fb}-{size}", "operating_point": point, "group": group,
                                "benchmark": bench, "metric": shown, **res, "left_out": note})
    df = pd.DataFrame(out, columns=COLUMNS)
    if not df.empty:
        df["p_holm"] = pd.concat([holm(g["p"]) for _, g in df.groupby("operating_point", sort=False)]).reindex(df.index)
    return df


write_significance = write_tsv
read_significance = read_tsv


def _languages_text(langs: Any, n: Any) -> str:
    codes = str(langs).split() if isinstance(langs, str) else []
    if not codes:
        return str(n)
    return " ".join(codes) if len(codes) <= 8 else f"{' '.join(codes[:8])} … ({len(codes)})"


def significance_table(df: pd.DataFrame, operating_point: str = "default"):
    """The `significance` table (crest.evaluate.tables writers): one row per comparison and group,
    with both values on the rows, languages and benchmarks the two models share, the raw and the
    Holm-adjusted p (over this table's tests)."""
    from crest.evaluate.tables import Cell, Table, TableSpec

    free = operating_point == THRESHOLD_FREE
    spec = TableSpec(id="significance", title="Paired bootstrap over prompts: A - B" + (" in AUROC" if free else ""),
                     rows={"named": {"x": {}}}, columns={"named": {"x": {}}}, best="none",
                     caption="Both models on the same rows, languages and benchmarks (listed); one resample of "
                             "prompt ids per benchmark for every language of a parallel benchmark; seeds and random "
                             "draws resampled as a level; 95% percentile interval; two-sided p, and p adjusted by "
                             "Holm over every test of this table (marks in other tables use the adjusted p). Metric "
                             "x 100 (F1 on mixed sets, recall on all-unsafe, FPR on all-safe: lower is better; AUROC "
                             "threshold-free).")
    sub = df[df["operating_point"] == operating_point] if not df.empty else df
    cols = ["A", "B", "metric", "A value", "B value", "A - B", "95% interval", "p", "p (Holm)", "rows", "languages"]
    labels, cells = [], []
    for r in sub.itertuples():
        labels.append(f"{r.group}" + (f" · {r.benchmark}" if r.benchmark != "all" else ""))
        num = Cell.number
        ci = f"[{r.lo * 100:.1f}, {r.hi * 100:.1f}]" if pd.notna(r.lo) else "n/a"
        p_holm = getattr(r, "p_holm", np.nan)
        cells.append([Cell(text=r.a), Cell(text=r.b), Cell(text=r.metric), num(r.a_value), num(r.b_value), num(r.diff),
                      Cell(text=ci), Cell(text=f"{r.p:.3f}" if pd.notna(r.p) else "n/a"),
                      Cell(text=f"{p_holm:.3f}" if pd.notna(p_holm) else "n/a"), Cell(text=str(r.rows)),
                      Cell(text=_languages_text(getattr(r, "langs", ""), r.languages))])
    notes = [f"left out of {r.a} vs {r.b}, {r.group}" + (f" · {r.benchmark}" if r.benchmark != "all" else "")
             + f": {r.left_out}" for r in sub.itertuples() if isinstance(r.left_out, str) and r.left_out]
    suffix = {"calibrated": ".calibrated", THRESHOLD_FREE: ".auroc"}.get(operating_point, "")
    table = Table(spec, labels, cols, cells, notes, operating_point=operating_point, file_id="significance" + suffix,
                  value_note="values x 100 in the row's metric (F1, recall, or FPR where lower is better; AUROC)")
    table.spec = TableSpec(**{**spec.__dict__, "row_header": "Group"})
    if sub.empty:
        table.empty_reason = "no comparison this run can make (needs crest and a control arm, or a transfer study)"
    return table
