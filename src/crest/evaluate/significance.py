"""Is crest better than english, random, all...? A paired bootstrap over prompts (issue 11 item 5;
docs/evaluate.md "Significance").

For a comparison A vs B on a group of (benchmark, language) sets, both models are scored on the
same parallel rows (crest.evaluate.aggregate.parallel_rows). One resample draws, in every set, its
rows with replacement; the *same* draw is applied to A and B (paired), and to every seed of each and
every draw of a family (random_0..4: contract 2 `family`), whose statistics are averaged: seeds and
draws are combined, not picked. The statistic is the table's: a set's metric (F1 on mixed sets,
recall on all-unsafe, FPR on all-safe), the mean over benchmarks per language, then over languages.

    diff  = stat(A) - stat(B) on the observed rows
    95% interval: percentiles of the resampled differences
    p     = (1 + #{|d* - diff| >= |diff|}) / (1 + resamples)   two-sided, the bootstrap distribution
            centred on the observed difference (Efron & Tibshirani ch. 16); p = 1 when A and B agree
            on every row

Groups: every role (crest.evaluate.roles) of A's languages, over the held-out multilingual
benchmarks (English over the English benchmarks; `in_distribution` ones only in their own rows); a language B trained on is never counted as unseen for B, so
it leaves every unseen group of that comparison (counted in `left_out`). And every benchmark on
its own (group `all`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.evaluate.aggregate import UNIT, parallel_rows, seed_key
from crest.io import read_tsv, write_tsv

COLUMNS = ["a", "b", "operating_point", "group", "benchmark", "metric", "sets", "languages", "rows", "a_value",
           "b_value", "diff", "lo", "hi", "p", "resamples", "left_out"]
CREST_VS = ("english", "random", "all", "shuffled", "typology")
TRANSFER_PAIRS = (("transfer_hi", "transfer_kn"), ("transfer_hi", "transfer_sd"), ("transfer_kn", "transfer_sd"),
                  ("transfer_hi_zh", "transfer_hi"), ("transfer_hi_zh", "transfer_zh"), ("transfer_hi", "transfer_zh"))
UNSEEN = {"unseen_hrl", "id_lrl", "ood_lrl"}
METRIC = {"mixed": "f1", "all_unsafe": "recall", "all_safe": "fpr"}


def _metric(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray, metric: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "f1":
            return np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        if metric == "recall":
            return np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        return np.where(fp + tn > 0, fp / (fp + tn), np.nan)


def _set_stats(y: np.ndarray, flags: np.ndarray, weights: np.ndarray, metric: str) -> np.ndarray:
    """Per resample (rows of `weights`, counts per row of the set), the metric of every member
    (rows of `flags`) averaged over members: shape (resamples,)."""
    pos = y.astype(bool)
    tp = weights @ (flags & pos).T
    fp = weights @ (flags & ~pos).T
    fn = weights @ (~flags & pos).T
    tn = weights @ (~flags & ~pos).T
    return np.nanmean(_metric(tp, fp, fn, tn, metric), axis=1)


def paired_bootstrap(sets: Sequence[dict[str, Any]], *, resamples: int = 1000, level: float = 0.95,
                     seed: int = 13) -> dict[str, Any]:
    """`sets`: one dict per (benchmark, lang) with `lang`, `labels` (n,), `a` and `b` (members x n
    bool: flagged), `metric`. Returns observed a/b values, diff, interval and p."""
    rng = np.random.default_rng(seed)
    per_lang: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for s in sets:
        n = len(s["labels"])
        w = np.vstack([np.ones((1, n), dtype=np.int64), rng.multinomial(n, np.full(n, 1 / n), size=resamples)])
        per_lang.setdefault(s["lang"], []).append((_set_stats(s["labels"], s["a"], w, s["metric"]),
                                                   _set_stats(s["labels"], s["b"], w, s["metric"])))
    with np.errstate(invalid="ignore"):
        a = np.nanmean([np.nanmean([x for x, _ in v], axis=0) for v in per_lang.values()], axis=0)
        b = np.nanmean([np.nanmean([y for _, y in v], axis=0) for v in per_lang.values()], axis=0)
    d = a - b  # row 0: the observed rows
    obs, boot = float(d[0]), d[1:][~np.isnan(d[1:])]
    alpha = (1 - level) / 2
    lo, hi = (float(x) for x in np.quantile(boot, [alpha, 1 - alpha])) if boot.size else (None, None)
    p = float((1 + np.sum(np.abs(boot - obs) >= abs(obs) - 1e-12)) / (1 + boot.size)) if boot.size else None
    return {"a_value": float(a[0]), "b_value": float(b[0]), "diff": obs, "lo": lo, "hi": hi, "p": p,
            "resamples": int(boot.size)}


def comparisons(families: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(A, B) family pairs this run can answer: crest vs each control, each transfer study's pairs."""
    pairs = [("crest", f) for f in CREST_VS if "crest" in families and f in families]
    return pairs + [(a, b) for a, b in TRANSFER_PAIRS if a in families and b in families]


def _flags(by_member: dict[tuple[str, int], pd.DataFrame], members: list[tuple[str, int]], col: str) -> np.ndarray:
    return np.vstack([by_member[m]["prob_unsafe"].to_numpy() >= by_member[m][col].to_numpy(dtype=float)
                      for m in members])


def _compare(metrics: pd.DataFrame, preds: pd.DataFrame, a_models: list[str], b_models: list[str],
             sets: pd.DataFrame, boot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One comparison on the (benchmark, lang) pairs of `sets` (same pairs for A and B), at each
    operating point the models have (calibrated: only when every set has its threshold)."""
    pairs = sets[["benchmark", "lang"]].drop_duplicates()
    ok = metrics[(metrics["status"] == "ok") & metrics["model"].isin(a_models + b_models)]
    ok = ok.assign(seed=seed_key(ok["seed"])).merge(pairs, on=["benchmark", "lang"])
    keys = ok[[*UNIT, "threshold", "threshold_cal", "set_class", *(["parallel"] if "parallel" in ok else [])]]
    rows, _, dropped = parallel_rows(preds, keys)
    points = {"default": "threshold"} | ({} if ok["threshold_cal"].isna().any() else {"calibrated": "threshold_cal"})
    items: dict[str, list[dict[str, Any]]] = {p: [] for p in points}
    for (bench, lang), g in rows.groupby(["benchmark", "lang"], sort=True):
        by_member = {m: r.sort_values("id") for m, r in g.groupby(["model", "seed"], sort=False)}
        a = [m for m in by_member if m[0] in a_models]
        b = [m for m in by_member if m[0] in b_models]
        if not a or not b:
            continue
        first = by_member[a[0]]
        for point, col in points.items():
            items[point].append({"lang": lang, "labels": first["label"].to_numpy(),
                                 "metric": METRIC[first["set_class"].iloc[0] or "mixed"],
                                 "a": _flags(by_member, a, col), "b": _flags(by_member, b, col)})
    out = {}
    for point, its in items.items():
        if not its:
            continue
        res = paired_bootstrap(its, resamples=boot.get("resamples", 1000), level=boot.get("level", 0.95),
                               seed=boot.get("seed", 13))
        out[point] = {**res, "sets": len(its), "languages": len({i["lang"] for i in its}),
                      "rows": int(sum(len(i["labels"]) for i in its)), "dropped_ids": int(sum(dropped.values()))}
    return out


def significance(metrics: pd.DataFrame, preds: pd.DataFrame, roles: pd.DataFrame, *,
                 boot: dict[str, Any] | None = None, pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Every comparison of `comparisons()` (or `pairs`), per size, per role group and per benchmark,
    at both operating points. `metrics` has `role` and `family` (crest.evaluate.roles.attach_roles)."""
    boot = boot or {}
    trained = metrics[metrics["model_kind"] == "trained"]
    families: dict[str, list[str]] = {}
    for fam, model in zip(trained["family"].astype(str), trained["model"].astype(str)):
        families.setdefault(fam, [])
        if model not in families[fam]:
            families[fam].append(model)
    out = []
    for fa, fb in pairs if pairs is not None else comparisons(families):
        sizes = sorted({str(z) for z in trained[trained["family"] == fa]["size"]})
        for size in sizes:
            a_models = [m for m in families.get(fa, []) if m.endswith(f"-{size}")]
            b_models = [m for m in families.get(fb, []) if m.endswith(f"-{size}")]
            if not a_models or not b_models:
                continue
            a_rows = trained[trained["model"].isin(a_models) & (trained["status"] == "ok")]
            preds_ab = preds[preds["model"].isin(a_models + b_models)]
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
            for group, bench, sel, left in groups:
                if sel.empty:
                    continue
                for point, res in _compare(metrics, preds_ab, a_models, b_models, sel, boot).items():
                    metric = "f1" if bench == "all" else METRIC[sel["set_class"].iloc[0] or "mixed"]
                    dropped = res.pop("dropped_ids")
                    note = "; ".join(x for x in (left, f"{dropped} ids not in every set" if dropped else "") if x)
                    out.append({"a": f"{fa}-{size}", "b": f"{fb}-{size}", "operating_point": point, "group": group,
                                "benchmark": bench, "metric": metric, **res, "left_out": note})
    return pd.DataFrame(out, columns=COLUMNS)


write_significance = write_tsv
read_significance = read_tsv


def significance_table(df: pd.DataFrame, operating_point: str = "default"):
    """The `significance` table (crest.evaluate.tables writers): one row per comparison and group."""
    from crest.evaluate.tables import Cell, Table, TableSpec

    spec = TableSpec(id="significance", title="Paired bootstrap over prompts: A - B", rows={"named": {"x": {}}},
                     columns={"named": {"x": {}}}, best="none",
                     caption="Seeds and random draws combined; the same resampled rows for both models; "
                             "95% percentile interval; two-sided p. Metric x 100 (F1 on mixed sets, recall on "
                             "all-unsafe, FPR on all-safe: lower is better).")
    sub = df[df["operating_point"] == operating_point] if not df.empty else df
    cols = ["A", "B", "metric", "A value", "B value", "A - B", "95% interval", "p", "rows", "languages"]
    labels, cells = [], []
    for r in sub.itertuples():
        labels.append(f"{r.group}" + (f" · {r.benchmark}" if r.benchmark != "all" else ""))
        num = (lambda v: Cell(value=float(v)) if pd.notna(v) else Cell(status="undefined"))
        ci = f"[{r.lo * 100:.1f}, {r.hi * 100:.1f}]" if pd.notna(r.lo) else "n/a"
        cells.append([Cell(text=r.a), Cell(text=r.b), Cell(text=r.metric), num(r.a_value), num(r.b_value), num(r.diff),
                      Cell(text=ci), Cell(text=f"{r.p:.3f}" if pd.notna(r.p) else "n/a"), Cell(text=str(r.rows)),
                      Cell(text=str(r.languages))])
    notes = [f"left out of {r.a} vs {r.b}, {r.group}" + (f" · {r.benchmark}" if r.benchmark != "all" else "")
             + f": {r.left_out}" for r in sub.itertuples() if isinstance(r.left_out, str) and r.left_out]
    table = Table(spec, labels, cols, cells, notes, operating_point=operating_point,
                  file_id="significance" + (".calibrated" if operating_point == "calibrated" else ""),
                  value_note="values x 100 in the row's metric (F1, recall, or FPR where lower is better)")
    table.spec = TableSpec(**{**spec.__dict__, "row_header": "Group"})
    if sub.empty:
        table.empty_reason = "no comparison this run can make (needs crest and a control arm, or a transfer study)"
    return table
