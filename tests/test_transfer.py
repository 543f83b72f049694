"""Does the language map predict transfer? (docs/evaluate.md): a drop that is a monotone function of the
embedding distance and unrelated to typology gives an embedding interval above 0 and a typology
interval around it; the bootstrap's unit is the language (19 copies of one are one); on scored
sets the rows, the held-out fit, the tables and the figure come out of `crest evaluate transfer`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.evaluate.transfer import (
    TwoWayBootstrap,
    arm_check,
    correlations,
    leave_one_language_out,
    read_rows,
    read_summary,
    transfer_tables,
    units,
)
from crest.io import write_parquet

BOOT = {"resamples": 400, "level": 0.95, "seed": 13}


def synthetic_rows(models: int = 6, languages: int = 24, seed: int = 0) -> pd.DataFrame:
    """(model, unseen language) rows: the drop grows with the embedding distance (plus noise), the
    typology distance is drawn independently of both."""
    rng = np.random.default_rng(seed)
    rows = []
    lang_effect = rng.normal(0, 0.01, languages)
    for m in range(models):
        for i in range(languages):
            d = rng.uniform(0.05, 0.8)
            rows.append({"model": f"m{m}-base", "family": ["crest", "typology", "random"][m % 3], "size": "base",
                         "language": f"l{i:02d}", "dist_embedding": d, "dist_typology": rng.uniform(0.1, 0.9),
                         "drop_auroc": 0.25 * d ** 2 + lang_effect[i] + rng.normal(0, 0.01),
                         "drop_f1_cal": 0.3 * d + rng.normal(0, 0.03), "auroc_seen": 0.95})
    df = pd.DataFrame(rows)
    df["auroc"] = df["auroc_seen"] - df["drop_auroc"]
    return df


def _corr(df: pd.DataFrame, metric: str, predictor: str) -> dict:
    return df[(df["metric"] == metric) & (df["predictor"] == predictor)].iloc[0].to_dict()


def test_embedding_interval_excludes_zero_typology_interval_includes_it():
    corr, diffs = correlations(synthetic_rows(), BOOT)
    emb, typ = _corr(corr, "auroc", "dist_embedding"), _corr(corr, "auroc", "dist_typology")
    assert emb["rho"] > 0.6 and emb["lo"] > 0.3 and emb["lo"] < emb["rho"] < emb["hi"]
    assert typ["lo"] < 0 < typ["hi"] and abs(typ["rho"]) < 0.2
    assert emb["languages"] == 24 and emb["models"] == 6 and emb["rows"] == 144 and emb["resamples"] == 400
    d = diffs[(diffs["metric"] == "auroc") & (diffs["b"] == "dist_typology")].iloc[0]
    assert d["lo"] > 0 and math.isclose(d["diff"], emb["rho"] - typ["rho"])
    # the F1 drop (here linear in the distance) too
    assert _corr(corr, "f1_cal", "dist_embedding")["lo"] > 0


def test_nineteen_copies_of_one_language_do_not_narrow_the_interval():
    rows = synthetic_rows()
    copies = pd.concat([rows] + [rows[rows["language"] == "l03"]] * 19, ignore_index=True)
    assert len(copies) == len(rows) + 19 * 6
    base, _ = correlations(rows, BOOT)
    dup, _ = correlations(copies, BOOT)
    for p in ("dist_embedding", "dist_typology"):
        a, b = _corr(base, "auroc", p), _corr(dup, "auroc", p)
        assert (b["hi"] - b["lo"]) >= (a["hi"] - a["lo"]) - 1e-12
        assert b["rho"] == pytest.approx(a["rho"]) and b["rows"] == a["rows"] == 144 and b["languages"] == 24
    # whereas counting the copies as rows would narrow it: the unit is what keeps it wide
    naive = copies.assign(language=[f"{c}#{i}" for i, c in enumerate(copies["language"])])
    nv, _ = correlations(naive, BOOT)
    a, n = _corr(base, "auroc", "dist_typology"), _corr(nv, "auroc", "dist_typology")
    assert (n["hi"] - n["lo"]) < (a["hi"] - a["lo"])


def test_two_way_bootstrap_weights_are_language_draws_times_model_draws():
    bs = TwoWayBootstrap(["a", "a", "b", "b"], ["x", "y", "x", "y"], resamples=50, seed=1)
    w = bs.weights
    assert w.shape == (50, 4)
    # each resample draws 2 models and 2 languages: the weights sum to 2 x 2
    assert (w.sum(axis=1) == 4).all()
    # the weight of (a, x) times that of (b, y) equals that of (a, y) times (b, x): a product of margins
    assert (w[:, 0] * w[:, 3] == w[:, 1] * w[:, 2]).all()


def test_weighted_spearman_equals_spearman_on_the_repeated_rows():
    from scipy.stats import spearmanr

    from crest.evaluate.transfer import weighted_spearman

    rng = np.random.default_rng(4)
    x = np.round(rng.uniform(0, 1, 40), 1)           # ties
    y = (rng.uniform(size=40) > 0.5).astype(float)   # a binary side: heavy ties
    z = x + rng.normal(0, 0.3, 40)
    W = rng.integers(0, 4, size=(30, 40))
    for a, b in ((x, y), (x, z), (z, y)):
        got = weighted_spearman(a, b, W)
        for w, g in zip(W, got):
            i = np.repeat(np.arange(40), w)
            assert g == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-9)
    assert np.isnan(weighted_spearman(x, np.ones(40), W)).all()  # a constant side


def test_held_out_fit_beats_the_mean_and_the_arm_check_uses_it():
    rows = synthetic_rows(seed=2)
    held, notes = leave_one_language_out(rows)
    assert not notes or all("left out" in n for n in notes)
    from crest.evaluate.transfer import fit_errors

    errors = fit_errors(held, BOOT).set_index("fit")
    assert errors.loc["embedding", "mae"] < 0.7 * errors.loc["mean", "mae"]
    assert errors.loc["embedding", "hi"] < 0  # the improvement's interval excludes 0
    assert errors.loc["typology", "mae"] > 0.9 * errors.loc["mean", "mae"]
    arms = arm_check(held)
    assert set(arms["family"]) == {"crest", "typology", "random"}
    own = arms[arms["scope"] == "own unseen"].set_index("family")
    assert own.loc["random", "models"] == 2 and own.loc["crest", "languages"] == 24
    assert abs(own.loc["crest", "predicted_embedding"] - own.loc["crest", "measured"]) < 0.02


# -- end to end on scored sets ------------------------------------------------------------------------------
LANGS = ["en", "de", "nl", "es", "pt", "fr", "it", "ca", "hi", "ja", "fi", "tr"]
ARMS = {"crest": ["en", "de", "hi"], "english": ["en"], "typology": ["en", "es", "ja"], "random_0": ["en", "fi"],
        "shuffled_0": ["en", "de", "hi"]}
N = 120


def _vectors(seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.normal(size=16) for c in LANGS}


def _scored_run(root: Path) -> dict[str, Path]:
    """A run directory: data.json per arm, language means, clusters, a typology map, scored sets
    whose separation falls with the embedding distance to the arm's nearest training language."""
    from crest.cluster.typology import load_codes, write_vectors
    from crest.evaluate.aggregate import collect_predictions, write_predictions
    from crest.evaluate.collect import collect, write_metrics_csv

    vec = _vectors()
    X = np.stack([vec[c] for c in LANGS])
    Xc = X - X.mean(axis=0)
    Xc /= np.linalg.norm(Xc, axis=1, keepdims=True)
    unit = dict(zip(LANGS, Xc))
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * (N // 2))
    files = []
    for arm, trained in ARMS.items():
        info = root / "train" / arm / "data.json"
        info.parent.mkdir(parents=True, exist_ok=True)
        family = arm.rsplit("_", 1)[0] if arm[-1].isdigit() else arm
        info.write_text(json.dumps({"arm": arm, "family": family, "languages": trained, "anchors": {},
                                    "label_shuffle": arm.startswith("shuffled")}))
        for lang in LANGS:
            d = min(1 - float(unit[lang] @ unit[t]) for t in trained if t != lang) if lang not in trained else 0.0
            sep = 0.0 if arm.startswith("shuffled") else 3.0 * max(0.0, 1.2 - d)
            for bench, backend in (("heldout", "gloss" if lang in ("hi", "ja") else "apertium"),):
                out = root / "eval" / arm / "base" / "seed0" / bench / f"{lang}.parquet"
                score = 1 / (1 + np.exp(-(sep * (2 * labels - 1) + rng.normal(0, 1.0, N))))
                write_parquet(pd.DataFrame({"id": [str(i) for i in range(N)], "prob_unsafe": score, "label": labels}), out)
                rec = {"model": {"kind": "trained", "arm": arm, "size": "base", "seed": 0}, "benchmark": bench,
                       "lang": lang, "group": "multilingual", "status": "ok", "n": N, "n_unsafe": N // 2,
                       "n_safe": N // 2, "threshold": 0.5, "translation_backend": backend, "parallel": True,
                       "operating_points": {"calibrated": {"threshold": 0.4, "source": "crest_guard.json"}}}
                path = out.with_name(f"{lang}.metrics.json")
                path.write_text(json.dumps(rec))
                files.append(path)
    metrics = collect(files, {}, {})
    paths = {"metrics": root / "eval" / "metrics.csv", "preds": root / "eval" / "predictions.parquet"}
    write_metrics_csv(metrics, paths["metrics"])
    write_predictions(collect_predictions(metrics), paths["preds"])
    emb = root / "embeddings" / "language_means.parquet"
    write_parquet(pd.DataFrame({"lang": LANGS, "layer": 0, "n_texts": 10, "mean": [vec[c].tolist() for c in LANGS]}), emb)
    paths["means"] = emb
    (root / "clusters" / "kmeans").mkdir(parents=True)
    clusters = {"en": 0, "de": 0, "nl": 0, "es": 1, "pt": 1, "fr": 1, "it": 1, "ca": 1, "hi": 2, "ja": 3, "fi": 4, "tr": 4}
    pd.DataFrame({"language": LANGS, "cluster": [clusters[c] for c in LANGS]}).to_csv(
        root / "clusters" / "kmeans" / "clusters.tsv", sep="\t", index=False)
    paths["clusters"] = root / "clusters" / "kmeans" / "clusters.tsv"
    ty = root / "clusters" / "typology"
    ty.mkdir(parents=True)
    trng = np.random.default_rng(9)
    write_vectors(LANGS, trng.normal(size=(len(LANGS), 12)), ty / "vectors.parquet")
    pd.DataFrame({"language": LANGS, "cluster": [i % 3 for i in range(len(LANGS))]}).to_csv(ty / "clusters.tsv", sep="\t",
                                                                                             index=False)
    codes = load_codes()
    (ty / "typology.json").write_text(json.dumps({"feature_sets": ["fam"], "knn_neighbors": 10,
                                                  "codes": {c: {"uriel": codes[c].uriel} for c in LANGS}}))
    paths["typology"] = ty
    paths["info"] = [root / "train" / a / "data.json" for a in ARMS]
    return paths


def _run_cli(args: list[str]) -> int:
    from crest.cli import main

    return main(args)


@pytest.mark.slow
def test_transfer_end_to_end_rows_tables_figure(tmp_path: Path, capsys):
    p = _scored_run(tmp_path)
    out, summary, fig = tmp_path / "eval" / "transfer.tsv", tmp_path / "eval" / "transfer.json", tmp_path / "fig" / "transfer_distance"
    rc = _run_cli(["evaluate", "transfer", "--metrics", str(p["metrics"]), "--predictions", str(p["preds"]),
                   "--info", *map(str, p["info"]), "--means", str(p["means"]), "--clusters", str(p["clusters"]),
                   "--cluster-options", json.dumps({"center": True, "normalize": "l2"}), "--typology-dir", str(p["typology"]),
                   "--bootstrap", json.dumps({"resamples": 200, "seed": 1}), "--out", str(out), "--summary", str(summary),
                   "--figure", str(fig)])
    assert rc in (0, None)
    rows = read_rows(out)
    # one row per (model, unseen language); the null control is left out
    assert set(rows["model"]) == {"crest-base", "english-base", "typology-base", "random_0-base"}
    assert len(rows) == sum(len(LANGS) - len(t) for a, t in ARMS.items() if not a.startswith("shuffled"))
    assert not any((rows["model"] == "crest-base") & rows["language"].isin(ARMS["crest"]))
    # the drop is the model's own seen mean minus the language's value; the seen mean is over its training languages
    r = rows[(rows["model"] == "crest-base") & (rows["language"] == "tr")].iloc[0]
    assert r["drop_auroc"] == pytest.approx(r["auroc_seen"] - r["auroc"], abs=1e-5)
    from sklearn.metrics import roc_auc_score

    pr = pd.read_parquet(p["preds"]).astype({"model": str, "lang": str})
    crest_seen = np.mean([roc_auc_score(g["label"], g["prob_unsafe"]) for lang, g in
                          pr[(pr["model"] == "crest-base") & pr["lang"].isin(ARMS["crest"])].groupby("lang")])
    assert crest_seen > r["auroc"] + 0.02
    assert r["auroc_seen"] == pytest.approx(crest_seen, abs=1e-5)  # every id kept: the parallel rows are all rows
    # predictors: embedding distance in the centred map, nearest language, script, size, clusters, the typology sets
    assert r["nearest_embedding"] in ARMS["crest"] and 0 < r["dist_embedding"] < 2
    assert rows.loc[rows["language"] == "hi", "gloss"].astype(bool).all()
    en_rows = rows[rows["model"] == "english-base"]
    assert (en_rows["nearest_embedding"] == "en").all() and (en_rows["same_script"][en_rows["language"] == "de"] == 1).all()
    assert (en_rows.loc[en_rows["language"] == "hi", "same_script"] == 0).all()
    assert "dist_typology:fam" in rows and rows["dist_typology:fam"].notna().all()
    assert rows.loc[(rows["model"] == "crest-base") & (rows["language"] == "nl"), "same_cluster_embedding"].iloc[0] == 1
    s = read_summary(summary)
    emb = next(c for c in s["correlations"] if c["metric"] == "auroc" and c["predictor"] == "dist_embedding")
    assert emb["rho"] > 0.4 and emb["lo"] > 0   # built in: separation falls with the distance
    assert {a["family"] for a in s["arms"]} == {"crest", "typology", "random"}
    assert s["gloss_languages"] == ["hi", "ja"]
    assert fig.with_suffix(".png").stat().st_size > 10_000 and fig.with_suffix(".pdf").is_file()
    assert "rho(dist_embedding, AUROC drop)" in capsys.readouterr().out

    # the tables: through `crest evaluate tables --transfer`
    tables = transfer_tables(s)
    assert [t.file_id for t in tables] == ["transfer", "transfer_fit", "transfer_arms"]
    from crest.evaluate.tables import to_csv, to_latex, to_markdown

    md = to_markdown(tables[0])
    assert "embedding map: distance to nearest training language" in md and "Δ embedding − typology map" in md
    assert "nan" not in md and "Glossed languages" in md
    assert "both maps" in to_csv(tables[1]) and "\\toprule" in to_latex(tables[2])
    assert "crest-base · common unseen" in to_csv(tables[2])


def test_bad_input_exits_2_naming_the_file(tmp_path: Path, capsys):
    p = _scored_run(tmp_path)
    base = ["evaluate", "transfer", "--metrics", str(p["metrics"]), "--predictions", str(p["preds"]),
            "--info", *map(str, p["info"]), "--means", str(p["means"]), "--clusters", str(p["clusters"]),
            "--out", str(tmp_path / "t.tsv"), "--summary", str(tmp_path / "t.json")]
    assert _run_cli(base + ["--benchmarks", "nope"]) == 2
    err = capsys.readouterr().err
    assert "evaluate.transfer.benchmarks: nope not in metrics.csv" in err and "Traceback" not in err
    missing = [a if a != str(p["means"]) else str(tmp_path / "none.parquet") for a in base]
    assert _run_cli(missing) == 2
    assert "none.parquet does not exist" in capsys.readouterr().err
    assert _run_cli(base + ["--typology-dir", str(tmp_path)]) == 2
    assert "no vectors.parquet (the typology map" in capsys.readouterr().err
    assert not (tmp_path / "t.tsv").exists()


def test_units_average_repeated_rows():
    df = pd.DataFrame({"model": ["a", "a", "a"], "language": ["x", "x", "y"], "drop_auroc": [0.1, 0.3, 0.2],
                       "family": ["crest"] * 3, "gloss": [True, True, False]})
    u = units(df).set_index("language")
    assert u.loc["x", "drop_auroc"] == pytest.approx(0.2) and len(u) == 2 and bool(u.loc["x", "gloss"])


@pytest.mark.parametrize("path", ["config/demo.yaml", "config/config.yaml"])
def test_both_configs_plan_the_transfer_rule(path: str):
    from crest.config import load_config
    from crest.evaluate.workflow import EvalPlan
    from crest.paths import REPO_ROOT
    from crest.train.plan import train_jobs

    config = load_config(REPO_ROOT / path)
    run = f"results/{config['run']}"
    plan = EvalPlan(config, run, lambda: [{"arm": a, "size": z, "seed": s} for a, z, s in train_jobs(config)])
    t = plan.transfer
    assert t["inputs"]["clusters"] == f"{run}/clusters/{config['cluster']['methods'][0]}/clusters.tsv"
    assert t["inputs"]["typology"][0] == f"{run}/clusters/typology/vectors.parquet"
    outs = plan.outputs()
    assert f"{run}/eval/transfer.tsv" in outs and f"{plan.paper}/figures/transfer_distance.pdf" in outs
    assert {"transfer", "transfer_fit", "transfer_arms"} <= set(plan.table_ids())


def test_config_names_a_transfer_benchmark_that_is_not_one():
    import copy

    import yaml

    from crest.config import load_config
    from crest.paths import REPO_ROOT
    from crest.schema import ConfigError

    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    bad = copy.deepcopy(config)
    bad["evaluate"]["transfer"] = {"benchmarks": ["heldout", "nope"]}
    with pytest.raises(ConfigError, match=r"evaluate\.transfer\.benchmarks\[1\]: 'nope' is not a key of evaluate\.benchmarks"):
        load_config(bad)
    bad["evaluate"]["transfer"] = {"benchmarks": ["toxigen"]}
    with pytest.raises(ConfigError, match=r"evaluate\.transfer\.benchmarks\[0\]: 'toxigen' is not parallel"):
        load_config(bad)
    bad["evaluate"]["transfer"] = {"benchmarks": ["heldout", "sanity"], "enabled": True}
    assert load_config(bad)["evaluate"]["transfer"]["benchmarks"] == ["heldout", "sanity"]
    assert load_config(config)["evaluate"]["transfer"] == {"enabled": True, "benchmarks": None}
