"""Does the label-shuffled null control come out at chance? (`eval/null_control.tsv`)

An arm trained with `shuffle_labels` (data.json `label_shuffle: true`) has seen no label signal, so
its AUROC must sit near 0.5 on every set with both classes; if it does not, something leaks
(labels through ids or sources, evaluation rows in training, a bug in the shuffle). One draw is not
enough to say so: a head trained on permuted labels is a random direction in a feature space where
the classes differ, and on its own it can rank a set well or badly (0.33-0.67 in the demo); only
the mean over draws (`shuffle_draws`, and seeds) is centred on 0.5. Per family of shuffled arms,
per (benchmark, language) with both classes, and pooled per benchmark (each draw's mean over
languages first, the parallel rows being the same prompts):

    draws, mean, sd, min, max of AUROC over the draws (x seeds)
    p        one-sample t-test of the draws' AUROC against 0.5 (two-sided; n/a for one draw)
    lo, hi   the 95% t-interval of the mean AUROC over draws
    at_chance  an equivalence test: the whole interval lies within NULL_BAND (0.40-0.60). A
             t-test that fails to reject 0.5 is not evidence of chance: with three draws its 95%
             interval spans ~[0.375, 0.685], so a moderate leak at 0.65 passed; one draw is never
             at chance (no interval). The demo needs >= 10 draws for the band to be reachable.

`crest evaluate null` warns when a pooled row is not at chance; the `null_control` table shows them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.io import read_tsv, write_tsv

NULL_BAND = (0.4, 0.6)
"""The mean AUROC a null control must stay within (the demo's acceptance band: docs/evaluate.md, "The null control check")."""
COLUMNS = ["family", "benchmark", "lang", "draws", "n", "mean", "sd", "min", "max", "lo", "hi", "p", "band_lo",
           "band_hi", "at_chance", "models"]
LEVEL = 0.95
POOLED = "all"


def shuffled_arms(info_paths: Sequence[str | Path]) -> dict[str, str]:
    """arm -> family of every arm whose data.json says its train labels were shuffled."""
    out = {}
    for path in info_paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("label_shuffle"):
            arm = str(doc.get("arm") or Path(path).parent.name)
            out[arm] = str(doc.get("family") or arm)
    return out


def _row(family: str, benchmark: str, lang: str, values: np.ndarray, n: int, models: list[str]) -> dict[str, Any]:
    from scipy.stats import t, ttest_1samp

    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    p = float(ttest_1samp(values, 0.5).pvalue) if len(values) > 1 and sd > 0 else float("nan")
    half = float(t.ppf(0.5 + LEVEL / 2, len(values) - 1) * sd / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    lo, hi = mean - half, mean + half
    return {"family": family, "benchmark": benchmark, "lang": lang, "draws": len(values), "n": n, "mean": mean,
            "sd": sd, "min": float(values.min()), "max": float(values.max()), "lo": lo, "hi": hi, "p": p,
            "band_lo": NULL_BAND[0], "band_hi": NULL_BAND[1],
            "at_chance": bool(len(values) > 1 and NULL_BAND[0] <= lo and hi <= NULL_BAND[1]),
            "models": " ".join(sorted(set(models)))}


def null_control(metrics: pd.DataFrame, shuffled: dict[str, str]) -> pd.DataFrame:
    """The table of the module docstring from eval/metrics.csv rows and `shuffled_arms`."""
    ok = metrics[metrics["arm"].isin(list(shuffled)) & (metrics["status"] == "ok")
                 & (metrics["n_unsafe"] > 0) & (metrics["n_safe"] > 0) & metrics["auroc"].notna()]
    ok = ok.assign(family=ok["arm"].map(shuffled), draw=ok["model"] + "/" + ok["seed"].astype(str))
    rows = []
    for (family, benchmark), part in ok.groupby(["family", "benchmark"], sort=True):
        per_draw = part.groupby("draw")["auroc"].mean()  # each draw's mean over the benchmark's languages
        rows.append(_row(family, benchmark, POOLED, per_draw.to_numpy(float), int(part["n"].max()),
                         part["model"].tolist()))
        for lang, cell in part.groupby("lang", sort=False):
            rows.append(_row(family, benchmark, str(lang), cell["auroc"].to_numpy(float), int(cell["n"].max()),
                             cell["model"].tolist()))
    return pd.DataFrame(rows, columns=COLUMNS)


write_null_control = write_tsv
read_null_control = read_tsv


def null_control_table(df: pd.DataFrame):
    """The `null_control` table (crest.evaluate.tables writers): the pooled row of each benchmark,
    then its languages."""
    from crest.evaluate.tables import Cell, Table, TableSpec

    spec = TableSpec(id="null_control", title="Label-shuffled null control: AUROC x 100 over its draws",
                     rows={"named": {"x": {}}}, columns={"named": {"x": {}}}, best="none",
                     caption=f"Arms trained on permuted labels (label_shuffle): their AUROC must sit near 50. "
                             f"Mean over draws and seeds with its {LEVEL:.0%} t-interval; at chance = the whole "
                             f"interval within {NULL_BAND[0] * 100:.0f}-{NULL_BAND[1] * 100:.0f} (an equivalence "
                             f"test; one draw never is); p: t-test of the draws against 50. `all`: each draw's "
                             f"mean over the benchmark's languages first.")
    cols = ["mean", "95% interval", "sd", "min", "max", "draws", "p", "at chance"]
    labels, cells = [], []
    for r in df.itertuples():
        labels.append(f"{r.family} · {r.benchmark} · {r.lang}")
        num = Cell.number  # shown x spec.scale
        interval = (f"[{r.lo * 100:.1f}, {r.hi * 100:.1f}]" if pd.notna(getattr(r, "lo", np.nan))
                    and pd.notna(getattr(r, "hi", np.nan)) else "n/a")
        cells.append([num(r.mean), Cell(text=interval), num(r.sd), num(r.min), num(r.max), Cell(text=str(r.draws)),
                      Cell(text=f"{r.p:.3f}" if pd.notna(r.p) else "n/a"),
                      Cell(text="yes" if r.at_chance in (True, "True", "true") else "**no**")])
    table = Table(spec, labels, cols, cells, [], operating_point="threshold_free", file_id="null_control",
                  value_note="AUROC x 100")
    table.spec = TableSpec(**{**spec.__dict__, "row_header": "Family · benchmark · language"})
    if df.empty:
        table.empty_reason = "no arm of this run trains on shuffled labels (shuffle_labels)"
    return table
