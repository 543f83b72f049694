"""Paired bootstrap over prompts (docs/evaluate.md, "The significance test"): p < 0.05 when A is right on 90% of rows and B on
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
    assert csv.splitlines()[0] == "Group,A,B,metric,A value,B value,A - B,95% interval,p,p (Holm),rows,languages"
    assert "english,crest-base,random-base,f1," in csv
    assert "(threshold 0.5)" in to_markdown(table)
    # AUROC is tested beside F1 (threshold-free), and each row says on which languages
    free = sig[sig["operating_point"] == "threshold_free"].set_index(["group", "benchmark"])
    assert free.loc[("english", "all"), "metric"] == "auroc" and free.loc[("english", "all"), "diff"] > 0.3
    assert by.loc[("all", "tr"), "langs"] == "de en gl" and by.loc[("ood_lrl", "all"), "langs"] == "gl"
    # Holm over the table's family: never below the raw p, equal for the smallest when one test
    assert (sig["p_holm"] >= sig["p"] - 1e-12).all()
    assert "english,crest-base,random-base,auroc," in to_csv(significance_table(sig, "threshold_free"))


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
                         "benchmark": "all", "metric": "f1", "diff": 0.4, "p": 0.01, "p_holm": 0.02, "langs": "de",
                         "benchmarks": "tr"},
                        {"a": "crest-base", "b": "english-base", "operating_point": "calibrated", "group": "unseen_hrl",
                         "benchmark": "all", "metric": "f1", "diff": 0.1, "p": 0.3, "p_holm": 0.6, "langs": "de",
                         "benchmarks": "tr"}])
    spec = TableSpec(id="arms", title="Arms", rows={"by": "family_model"}, columns={"named": {"HRL": {"role": "unseen_hrl"}}},
                     significance=True)
    default = to_csv(build_table(df, spec, significance=sig)).splitlines()
    assert default[1:] == ["crest-base,90.0", "english-base,50.0▼"]
    assert to_csv(build_table(df, spec, significance=sig, calibrated=True)).splitlines()[2] == "english-base,50.0"


def test_holm_adjustment_known_values():
    from crest.evaluate.significance import holm

    adj = holm(pd.Series([0.01, 0.04, 0.03, np.nan]))
    assert adj.iloc[:3].tolist() == pytest.approx([0.03, 0.06, 0.06]) and np.isnan(adj.iloc[3])


def test_copies_of_a_language_of_a_parallel_benchmark_do_not_narrow_the_interval():
    """19 languages of one parallel benchmark are the same prompts: one draw of prompt ids for all
    of them, so 19 identical copies give exactly the interval of one (independent draws per
    language made it about sqrt(19) ~ 4x narrower)."""
    a, b = right_on(0.8, 30)[None], right_on(0.7, 31)[None]
    one = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": a, "b": b, "unit": "tr"}],
                           resamples=400)
    many = paired_bootstrap([{"lang": f"l{i}", "labels": LABELS, "metric": "f1", "a": a, "b": b, "unit": "tr"}
                             for i in range(19)], resamples=400)
    assert many["hi"] - many["lo"] == pytest.approx(one["hi"] - one["lo"], rel=1e-5) and many["p"] == pytest.approx(one["p"])
    independent = paired_bootstrap([{"lang": f"l{i}", "labels": LABELS, "metric": "f1", "a": a, "b": b}
                                    for i in range(19)], resamples=400)  # native sets: each its own draw
    assert independent["hi"] - independent["lo"] < (one["hi"] - one["lo"]) / 2.5


def test_draw_to_draw_spread_widens_the_interval():
    """Seeds and random draws are a level of the bootstrap: a family whose draws disagree (F1 from
    0.55 to 0.85) is less certain than one draw, which the old average over draws hid."""
    a = right_on(0.9, 40)[None]
    draws = np.vstack([right_on(share, 41 + i) for i, share in enumerate((0.5, 0.6, 0.8, 0.9, 0.7))])
    one = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": a, "b": draws[4:5]}], resamples=400)
    family = paired_bootstrap([{"lang": "de", "labels": LABELS, "metric": "f1", "a": a, "b": draws}], resamples=400)
    assert family["hi"] - family["lo"] > 1.3 * (one["hi"] - one["lo"])


def test_weighted_auroc_matches_sklearn_on_a_resample():
    from sklearn.metrics import roc_auc_score

    from crest.evaluate.significance import resample_weights, weighted_auroc

    rng = np.random.default_rng(0)
    scores = np.round(rng.random((2, N)), 1)  # ties
    w = resample_weights(N, 3, rng)
    got = weighted_auroc(w, LABELS, scores)
    for r in range(4):
        idx = np.repeat(np.arange(N), w[r].astype(int))
        for m in range(2):
            assert got[r, m] == pytest.approx(roc_auc_score(LABELS[idx], scores[m, idx]))


def test_a_mark_sits_only_on_a_tested_value():
    """The test runs on crest's languages of a role (ca cs eo gl); english-base's ID LRL cell
    averages its own (ca gl): that number was not tested, so it carries no mark, while random-base,
    whose cell averages exactly the tested languages, keeps it. A raw p < 0.05 whose Holm-adjusted
    p is not gives no mark."""
    from crest.evaluate.tables import TableSpec, build_table

    rows, roles = [], []
    own = {"crest": ["ca", "cs", "eo", "gl"], "english": ["ca", "gl"], "random_0": ["ca", "cs", "eo", "gl"],
           "all": ["ca", "cs", "eo", "gl"]}
    for arm, langs in own.items():
        for lang in ("ca", "cs", "eo", "gl"):
            rows.append({"model": f"{arm}-base", "model_kind": "trained", "arm": arm, "size": "base", "seed": 0,
                         "baseline": "", "benchmark": "tr", "title": "tr", "set": f"tr [{lang}]", "group": "multilingual",
                         "lang": lang, "lang_groups": "", "cluster": "", "status": "ok", "reason": "", "f1": 0.7,
                         "random_translator": False, "set_class": "mixed", "in_distribution": False})
            roles.append({"model": f"{arm}-base", "language": lang, "role": "id_lrl" if lang in langs else "ood_lrl",
                          "family": arm.split("_")[0]})
    df = attach_roles(pd.DataFrame(rows), pd.DataFrame(roles))
    test = {"a": "crest-base", "operating_point": "default", "group": "id_lrl", "benchmark": "all", "metric": "f1",
            "diff": -0.05, "p": 0.01, "p_holm": 0.03, "langs": "ca cs eo gl", "benchmarks": "tr"}
    sig = pd.DataFrame([{**test, "b": "english-base"}, {**test, "b": "random-base"},
                        {**test, "b": "all-base", "p_holm": 0.2}])
    spec = TableSpec(id="roles", title="Roles", rows={"by": "family_model"}, columns={"named": {"ID LRL": {"role": "id_lrl"}}},
                     significance=True)
    got = dict(line.split(",") for line in to_csv(build_table(df, spec, significance=sig)).splitlines()[1:])
    assert got == {"crest-base": "70.0", "english-base": "70.0", "random-base": "70.0▲", "all-base": "70.0"}
