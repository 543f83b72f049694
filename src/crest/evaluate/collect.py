"""Every metrics json of a run into one long table (eval/metrics.csv): one row per (model, seed,
benchmark, language), with the language's groups (languages.groups), its cluster (when the
clustering stage ran), whether the number rests on a random-weight translator, the translation
backend of the set, whether its benchmark's languages share prompts (`parallel`: a translated
corpus, MultiJail; false for a native benchmark), the set's class (mixed | all_unsafe | all_safe)
and both operating points
(`*_cal`: at the model's calibrated threshold, a baseline's official rule)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crest.io import atomic_path

METRICS = ["f1", "precision", "recall", "accuracy", "auprc", "auroc", "fpr"]
POINT_METRICS = ["f1", "precision", "recall", "accuracy", "fpr"]  # what a threshold changes
CAL_METRICS = [f"{m}_cal" for m in POINT_METRICS]
COLUMNS = ["model", "model_kind", "arm", "size", "seed", "baseline", "benchmark", "title", "set", "group", "lang",
           "lang_groups", "cluster", "status", "reason", "n", "n_unsafe", "n_safe", *METRICS, "f1_lo", "f1_hi",
           "threshold", "oracle_threshold_on_this_set", "oracle_f1_on_this_set", "set_translator_is_random", "model_translator_is_random",
           "random_translator", "translation_backend", "in_distribution", "parallel", "note", "class_floor", "set_class", "threshold_cal",
           "threshold_cal_source", *CAL_METRICS, "model_revision", "metrics_path"]


def model_label(model: dict[str, Any]) -> str:
    """How a model is named in tables: `{arm}-{size}` (seeds averaged) or the baseline's title."""
    if model.get("kind") == "baseline":
        return model.get("title") or model["name"]
    return f"{model['arm']}-{model['size']}"


def read_clusters(path: str | Path | None) -> dict[str, str]:
    if not path or not Path(path).is_file():
        return {}
    df = pd.read_csv(path, sep="\t", dtype=str)
    if not {"language", "cluster"} <= set(df.columns):
        return {}
    return dict(zip(df["language"], df["cluster"]))


def lang_groups(lang: str, groups: dict[str, list[str]]) -> list[str]:
    """Groups of a language; a code-switched pair `a-b` belongs to the groups of its embedded side."""
    code = lang.split("-", 1)[1] if "-" in lang else lang
    return [g for g, codes in groups.items() if code in codes]


def set_class(n_unsafe: Any, n_safe: Any) -> str | None:
    """mixed | all_unsafe | all_safe (None for a missing set)."""
    if not n_unsafe and not n_safe:
        return None
    return "all_unsafe" if not n_safe else "all_safe" if not n_unsafe else "mixed"


def collect(paths: Sequence[str | Path], groups: dict[str, list[str]], clusters: dict[str, str] | None = None) -> pd.DataFrame:
    clusters = clusters or {}
    rows = []
    for path in paths:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        model = r["model"]
        ci = r.get("f1_ci") or {}
        best = r.get("oracle_f1_on_this_set") or {}
        lang = r["lang"]
        code = lang.split("-", 1)[1] if "-" in lang else lang
        row = {
            "model": model_label(model), "model_kind": model.get("kind", "trained"), "arm": model.get("arm"),
            "size": model.get("size"), "seed": model.get("seed"), "baseline": model.get("name"),
            "benchmark": r["benchmark"], "title": r.get("title") or r["benchmark"],
            "set": f"{r.get('title') or r['benchmark']} [{lang}]", "group": r["group"], "lang": lang,
            "lang_groups": ";".join(lang_groups(lang, groups)), "cluster": clusters.get(code),
            "status": r["status"], "reason": r.get("reason"), "n": r.get("n", 0), "n_unsafe": r.get("n_unsafe"),
            "n_safe": r.get("n_safe"), **{m: r.get(m) for m in METRICS}, "f1_lo": ci.get("lo"), "f1_hi": ci.get("hi"),
            "threshold": r.get("threshold"), "oracle_threshold_on_this_set": best.get("threshold"),
            "oracle_f1_on_this_set": best.get("f1"),
            "set_translator_is_random": bool(r.get("set_translator_is_random")),
            "model_translator_is_random": bool(model.get("translator_is_random")),
            "translation_backend": r.get("translation_backend") or "",
            "in_distribution": bool(r.get("in_distribution")),
            "parallel": bool(r.get("parallel", r.get("kind", "corpus") == "corpus")), "note": r.get("note") or "",
            "class_floor": r.get("class_floor"),
            "set_class": set_class(r.get("n_unsafe"), r.get("n_safe")),
            "model_revision": model.get("revision"),  # hub commit of the baseline, or of a trained model's encoder
            "metrics_path": str(path),
        }
        cal = (r.get("operating_points") or {}).get("calibrated") or {}
        row.update(threshold_cal=cal.get("threshold"), threshold_cal_source=cal.get("source"),
                   **{f"{m}_cal": cal.get(m) for m in POINT_METRICS})
        row["random_translator"] = row["set_translator_is_random"] or row["model_translator_is_random"]
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def write_metrics_csv(df: pd.DataFrame, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def read_metrics_csv(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"seed": "Int64", "lang_groups": str, "cluster": str, "arm": str, "size": str,
                                  "baseline": str, "reason": str, "lang": str, "translation_backend": str, "note": str,
                                  "set_class": str, "threshold_cal_source": str})
    for col in ("lang_groups", "cluster", "reason", "translation_backend", "set_class", "threshold_cal_source", "note"):
        if col not in df:
            df[col] = ""
        df[col] = df[col].fillna("")
    for col, default in (("in_distribution", False), ("parallel", True)):
        df[col] = df[col].fillna(default).astype(bool) if col in df else default
    return df
