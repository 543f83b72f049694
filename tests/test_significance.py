"""Paired bootstrap over prompts (issue 11 item 5): p < 0.05 when A is right on 90% of rows and B on
50%, p > 0.2 for two identical models; seeds and draws combined; a language B trained on leaves
B's unseen groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.evaluate.aggregate import collect_predictions
from crest.evaluate.collect import collect
from crest.evaluate.roles import attach_roles, language_roles
from crest.evaluate.significance import paired_bootstrap, significance, significance_table
from crest.evaluate.tables import to_csv, to_markdown
from crest.io import write_parquet
from crest.languages import load_languages

N = 200
LABELS = np.array([1, 0] * (N // 2))


def right_on(share: float, seed: int) -> np.ndarray:
    """Flags that are right on `share` of the rows (which rows: seeded)."""
    rng = np.random.default_rng(seed)
    right = np.zeros(N, dtype=bool)
    right[rng.choice(N, int(share * N), replace=False)] = True
    return np.where(right, LABELS == 1, LABELS == 0)


def test_ninety_percent_right_beats_fifty_percent():
    res = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": right_on(0.9, 1)[None],
                             "b": right_on(0.5, 2)[None]}], resamples=500)
    assert res["p"] < 0.05 and res["diff"] > 0.3 and res["lo"] > 0 and res["lo"] < res["diff"] < res["hi"]


def test_identical_models_are_not_significant():
    flags = right_on(0.7, 3)[None]
    res = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": flags, "b": flags.copy()}], resamples=500)
    assert res["p"] > 0.2 and res["diff"] == 0 and res["lo"] == res["hi"] == 0
    # two models of equal skill on different rows: no evidence either way
    res = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": right_on(0.7, 4)[None],
                             "b": right_on(0.7, 5)[None]}], resamples=500)
    assert res["p"] > 0.2 and res["lo"] < 0 < res["hi"]


def scored(root: Path, arm: str, seed: int, bench: str, lang: str, group: str, flags: np.ndarray) -> Path:
    out = root / arm / "base" / f"seed{seed}" / bench / f"{lang}.parquet"
    probs = np.where(flags, 0.9, 0.1)
    write_parquet(pd.DataFrame({"id": [str(i) for i in range(N)], "prob_unsafe": probs, "label": LABELS}), out)
    rec = {"model": {"kind": "trained", "arm": arm, "size": "base", "seed": seed}, "benchmark": bench, "lang": lang,
           "group": group, "status": "ok", "n": N, "n_unsafe": N // 2, "n_safe": N // 2, "threshold": 0.5,
           "operating_points": {"calibrated": {"threshold": 0.5, "source": "crest_guard.json"}}}
    path = out.with_name(f"{lang}.metrics.json")
    path.write_text(json.dumps(rec))
    return path


def test_crest_vs_controls_per_role_group_with_draws_combined(tmp_path: Path):
    files = []
    for seed in (0, 1):
        for lang in ("en", "de", "gl"):
            files.append(scored(tmp_path, "crest", seed, "tr", lang, "english" if lang == "en" else "multilingual",
                                right_on(0.9, 10 + seed)))
    for draw in (0, 1):
        for lang in ("en", "de", "gl"):
            files.append(scored(tmp_path, f"random_{draw}", 0, "tr", lang, "english" if lang == "en" else "multilingual",
                                right_on(0.5, 20 + draw)))
    metrics = collect(files, {}, {})
    preds = collect_predictions(metrics)
    tiers = {c: lang.tier for c, lang in load_languages().items()}
    arms = [{"arm": "crest", "languages": ["en"], "family": "crest", "anchor_methods": []},
            {"arm": "random_0", "languages": ["de"], "family": "random", "anchor_methods": []},
            {"arm": "random_1", "languages": ["en"], "family": "random", "anchor_methods": []}]
    roles = language_roles(arms, {}, tiers, ["en", "de", "gl"], sizes=["base"])
    df = attach_roles(metrics, roles)
    sig = significance(df, preds, roles, boot={"resamples": 300})
    assert set(sig["a"]) == {"crest-base"} and set(sig["b"]) == {"random-base"}   # draws combined into one family
    by = sig[sig["operating_point"] == "default"].set_index(["group", "benchmark"])
    assert by.loc[("english", "all"), "p"] < 0.05 and by.loc[("english", "all"), "diff"] > 0.3
    # de is unseen_hrl for crest but random_0 trained on it: it leaves the comparison (the group is empty)
    assert ("unseen_hrl", "all") not in by.index
    assert by.loc[("ood_lrl", "all"), "languages"] == 1 and by.loc[("all", "tr"), "languages"] == 3
    assert by.loc[("all", "tr"), "sets"] == 3
    from crest.evaluate.significance import read_significance, write_significance

    write_significance(sig, tmp_path / "significance.tsv")
    table = significance_table(read_significance(tmp_path / "significance.tsv"))
    assert "nan" not in to_markdown(table)
    csv = to_csv(table)
    assert csv.splitlines()[0] == "Group,A,B,metric,A value,B value,A - B,95% interval,p,rows,languages"
    assert "english,crest-base,random-base,f1," in csv
    assert "(threshold 0.5)" in to_markdown(table)


def test_arms_table_marks_come_from_the_significance_rows():
    from crest.evaluate.tables import TableSpec, build_table

    rows = []
    for arm, f1 in (("crest", 0.9), ("english", 0.5)):
        rows.append({"model": f"{arm}-base", "model_kind": "trained", "arm": arm, "size": "base", "seed": 0,
                     "baseline": "", "benchmark": "tr", "title": "tr", "set": "tr [de]", "group": "multilingual",
                     "lang": "de", "lang_groups": "", "cluster": "", "status": "ok", "reason": "", "f1": f1,
                     "random_translator": False, "set_class": "mixed", "in_distribution": False})
    df = attach_roles(pd.DataFrame(rows), pd.DataFrame({"model": ["crest-base", "english-base"], "language": ["de", "de"],
                                                        "role": ["unseen_hrl", "unseen_hrl"], "family": ["crest", "english"]}))
    sig = pd.DataFrame([{"a": "crest-base", "b": "english-base", "operating_point": "default", "group": "unseen_hrl",
                         "benchmark": "all", "diff": 0.4, "p": 0.01},
                        {"a": "crest-base", "b": "english-base", "operating_point": "calibrated", "group": "unseen_hrl",
                         "benchmark": "all", "diff": 0.1, "p": 0.3}])
    spec = TableSpec(id="arms", title="Arms", rows={"by": "family_model"}, columns={"named": {"HRL": {"role": "unseen_hrl"}}},
                     significance=True)
    default = to_csv(build_table(df, spec, significance=sig)).splitlines()
    assert default[1:] == ["crest-base,90.0", "english-base,50.0▼"]
    assert to_csv(build_table(df, spec, significance=sig, calibrated=True)).splitlines()[2] == "english-base,50.0"
