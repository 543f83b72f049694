"""crest.cluster: planted clusters are recovered exactly by every method, k selection finds the
planted k, results are deterministic, stability is measured, edge cases fail clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crest.cluster.anchors import AnchorRules
from crest.cluster.core import (
    HdbscanOptions,
    bootstrap_stability,
    canonical,
    fit_labels,
    match_labels,
    preprocess,
    score_k,
    select_k,
    silhouettes,
)
from crest.cluster.run import ClusterOptions, choose_anchors, cluster_means, language_map
from crest.config import load_config
from crest.paths import REPO_ROOT
from crest.schema import ConfigError

# Four planted groups of real language codes (so anchors can use the language table).
GROUPS = [["en", "de", "nl", "sv", "da", "af"], ["ru", "uk", "bg", "be", "mk"], ["hi", "mr", "ne", "bn"],
          ["sw", "ha", "so", "om", "xh"]]
LANGS = [code for group in GROUPS for code in group]
TRUTH = np.repeat(np.arange(len(GROUPS)), [len(g) for g in GROUPS])


def planted(dim: int = 24, spread: float = 0.15, seed: int = 0, n_texts: int = 0):
    """Language means around 4 well-separated centres (plus a large shared offset, as real means
    have), and optionally n_texts per-text vectors per language around each mean."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(GROUPS), dim)) * 3
    offset = rng.normal(size=dim) * 20
    means = offset + centres[TRUTH] + rng.normal(size=(len(LANGS), dim)) * spread
    texts = {lang: means[i] + rng.normal(size=(n_texts, dim)) * 0.5 for i, lang in enumerate(LANGS)} if n_texts else {}
    return means, texts


def same_partition(a, b) -> bool:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b) == 1.0


@pytest.mark.parametrize("method", ["kmeans", "ward", "hdbscan"])
def test_planted_clusters_recovered_exactly(method: str) -> None:
    X = preprocess(planted()[0])
    labels, noise = fit_labels(X, method, k=4, seed=0, hdbscan=HdbscanOptions(min_cluster_size=3))
    assert same_partition(labels, TRUTH) and not noise.any()
    assert labels.tolist() == canonical(TRUTH).tolist()  # canonical ids: by size, then first language


def test_k_selection_finds_the_planted_k() -> None:
    X = preprocess(planted()[0])
    for method in ("kmeans", "ward"):
        scores = score_k(X, method, (2, 8), seed=0)
        k, best = select_k(scores, "silhouette")
        assert k == 4 and best["davies_bouldin"] == 4 and best["consensus"] == 4
        assert select_k(scores, "fixed", 6)[0] == 6
    assert list(scores.columns[:4]) == ["k", "silhouette", "davies_bouldin", "calinski_harabasz"]
    # k beyond n - 1 is left out of the curve; a range that starts beyond it is an error
    assert score_k(X, "kmeans", (18, 40), seed=0)["k"].tolist() == [18, 19]
    with pytest.raises(ValueError, match="k_range starts at 25"):
        score_k(X, "kmeans", (25, 30))


def test_same_seed_same_clusters_and_other_seeds_agree() -> None:
    """One seed, one answer; on separated groups every other seed finds the same partition; and the
    seed reaches k-means (on noisy means with a single init, seeds do give different partitions)."""
    noisy = preprocess(planted(spread=0.8, seed=3)[0])
    a, _ = fit_labels(noisy, "kmeans", k=5, seed=7, n_init=3)
    b, _ = fit_labels(noisy, "kmeans", k=5, seed=7, n_init=3)
    assert a.tolist() == b.tolist()
    separated = preprocess(planted()[0])
    ref, _ = fit_labels(separated, "kmeans", k=4, seed=0, n_init=3)
    assert same_partition(ref, TRUTH)
    for seed in range(1, 6):
        assert same_partition(fit_labels(separated, "kmeans", k=4, seed=seed, n_init=3)[0], ref), seed
    single_init = {tuple(fit_labels(noisy, "kmeans", k=5, seed=seed, n_init=1)[0]) for seed in range(10)}
    assert len(single_init) > 1


def test_errors_for_impossible_requests() -> None:
    X = preprocess(planted()[0])
    with pytest.raises(ValueError, match="k=30 is larger than the number of languages"):
        fit_labels(X, "kmeans", k=30)
    with pytest.raises(ValueError, match="k must be at least 2"):
        fit_labels(X, "ward", k=1)
    with pytest.raises(ValueError, match="min_cluster_size=40"):
        fit_labels(X, "hdbscan", hdbscan=HdbscanOptions(min_cluster_size=40))
    with pytest.raises(ValueError, match="unknown method"):
        fit_labels(X, "dbscan", k=3)
    with pytest.raises(ValueError, match="at least 2 language means"):
        preprocess(np.ones((1, 5)))
    with pytest.raises(ValueError, match="NaN"):
        preprocess(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_singleton_cluster_and_hdbscan_noise() -> None:
    means, _ = planted()
    outlier = means.mean(0) + 40.0  # a language far from everyone
    X = preprocess(np.vstack([means, outlier]))
    labels, _ = fit_labels(X, "kmeans", k=5, seed=0)
    assert (labels == labels[-1]).sum() == 1  # the outlier alone
    assert silhouettes(X, labels)[-1] == 0.0  # sklearn's convention for a singleton
    near, noise = fit_labels(X, "hdbscan", hdbscan=HdbscanOptions(min_cluster_size=3, noise="nearest"))
    own, _ = fit_labels(X, "hdbscan", hdbscan=HdbscanOptions(min_cluster_size=3, noise="own"))
    assert noise[-1] and (near == near[-1]).sum() > 1 and (own == own[-1]).sum() == 1


def test_match_labels_and_bootstrap_stability() -> None:
    assert match_labels(np.array([0, 0, 1, 1, 2]), np.array([5, 5, 3, 3, 3])).tolist() == [0, 0, 1, 1, 1]
    means, texts = planted(n_texts=20)
    transform = lambda M: preprocess(M)  # noqa: E731
    ref = fit_labels(transform(means), "kmeans", k=4, seed=0)[0]
    fit = lambda X, s: fit_labels(X, "kmeans", k=4, seed=s, n_init=3)[0]  # noqa: E731
    stab = bootstrap_stability(texts, LANGS, ref, transform, fit, n=5, seed=0)
    assert stab.summary()["mean_ari"] == 1.0 and (stab.per_language == 1).all()
    keys = {lang: np.array([f"k{i}" for i in range(20)]) for lang in LANGS}
    stab = bootstrap_stability(texts, LANGS, ref, transform, fit, n=3, seed=0, keys=keys)
    assert stab.summary()["runs"] == 3 and stab.summary()["min_ari"] == 1.0


def write_embeddings(root: Path, n_texts: int = 12, seed: int = 0) -> Path:
    """An embeddings directory as the embed stage writes it, from planted data."""
    means, texts = planted(n_texts=n_texts, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, table = [], []
    for lang in LANGS:
        E = texts[lang].astype(np.float16)
        np.save(root / f"{lang}.npy", E)
        rows += [{"lang": lang, "row": i, "id": f"s-{i}-{lang}", "key": str(i), "n_tokens": 5, "text": "t"}
                 for i in range(n_texts)]
        table.append({"lang": lang, "layer": 12, "n_texts": n_texts,
                      "mean": E.astype(np.float32).mean(0).tolist()})
    pd.DataFrame(rows).to_parquet(root / "rows.parquet", index=False)
    (root / "embed.json").write_text(json.dumps({"primary_layer": 12, "num_layers": 12}))
    pd.DataFrame(table).to_parquet(root / "language_means.parquet", index=False)
    return root / "language_means.parquet"


def test_cluster_means_writes_reports_and_is_deterministic(tmp_path: Path) -> None:
    means_path = write_embeddings(tmp_path / "emb")
    opts = ClusterOptions(k_select="silhouette", k_range=(2, 8), bootstrap=4, seeds=3, n_init=4)
    summary = cluster_means(means_path, tmp_path / "kmeans", "kmeans", opts)
    assert summary["k"] == 4 and summary["k_by_criterion"]["silhouette"] == 4
    assert summary["stability"]["bootstrap"]["mean_ari"] == 1.0 and summary["stability"]["seeds"]["runs"] == 3
    clusters = pd.read_csv(tmp_path / "kmeans" / "clusters.tsv", sep="\t", keep_default_na=False)
    assert list(clusters.columns[:5]) == ["language", "cluster", "distance", "silhouette", "noise"]
    assert same_partition(clusters.set_index("language").loc[LANGS, "cluster"], TRUTH)
    assert (clusters["stability_bootstrap"] == 1).all()
    cluster_means(means_path, tmp_path / "again", "kmeans", opts)
    assert (tmp_path / "again" / "clusters.tsv").read_bytes() == (tmp_path / "kmeans" / "clusters.tsv").read_bytes()

    hd = cluster_means(means_path, tmp_path / "hdbscan", "hdbscan", ClusterOptions(bootstrap=2))
    assert hd["k"] == 4 and pd.read_csv(tmp_path / "hdbscan" / "k_selection.tsv", sep="\t").empty
    with pytest.raises(ValueError, match="k=30 is larger"):
        cluster_means(means_path, tmp_path / "x", "ward", ClusterOptions(k=30, bootstrap=0))


def test_anchors_and_figures_from_the_stage_files(tmp_path: Path) -> None:
    from crest.cluster.figures import draw_k_curve, draw_maps

    means_path = write_embeddings(tmp_path / "emb")
    method_dir = tmp_path / "ward"
    cluster_means(means_path, method_dir, "ward", ClusterOptions(k=4, k_range=(2, 6), bootstrap=0))
    out = choose_anchors(method_dir / "clusters.tsv", method_dir, AnchorRules(budget=6),
                         fixed=["en", "ru", "hi", "sw"], fixed_name="paper")
    anchors = pd.read_csv(method_dir / "anchors.tsv", sep="\t", keep_default_na=False)
    assert list(anchors.columns[:4]) == ["language", "cluster", "score", "size_score"]
    assert anchors["language"].tolist() == out["anchors"] and len(anchors) <= 6
    assert "| cluster | languages | computed | paper |" in (method_dir / "agreement.md").read_text()
    language_map(means_path, tmp_path / "map.parquet", umap=False)
    paths = draw_maps(method_dir, tmp_path / "map.parquet", means_path, label="test: ")
    paths += draw_k_curve(method_dir)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{n}.{e}" for n in ("map_pca", "dendrogram", "k_curve") for e in ("png", "pdf"))
    assert all(p.stat().st_size > 1000 for p in paths)


def _demo() -> dict:
    return yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda c: c["cluster"].update(k_range=[9, 3]), r"cluster\.k_range: \[9, 3\] is empty"),
    (lambda c: c["cluster"].update(k_select="fixed", k=None), r"cluster\.k: null"),
    (lambda c: c["cluster"]["anchors"].update(fixed="nogroup"), r"cluster\.anchors\.fixed: 'nogroup'"),
    (lambda c: c["cluster"]["anchors"].update(fixed=["en", "xx"]), r"cluster\.anchors\.fixed.*'xx'"),
    (lambda c: c["cluster"].update(layer=3), r"cluster\.layer: 3 is not one of embed\.layers"),
    (lambda c: c["cluster"].update(methods=["spectral"]), r"cluster\.methods"),
    (lambda c: c["cluster"]["anchors"].update(candidates=["en", "qq"]), r"cluster\.anchors\.candidates.*'qq'"),
    (lambda c: c["cluster"]["anchors"].update(mode="fixed", budget=5), r"13 languages, more than .*budget = 5"),
    (lambda c: c["cluster"]["typology"].update(feature_sets=["syntax_knn", "syntax_bogus"]),
     r"cluster\.typology\.feature_sets\[1\]: 'syntax_bogus' is not one of"),
    (lambda c: c["cluster"]["typology"].update(method="hdbscan"), r"cluster\.typology\.method"),
    (lambda c: c["cluster"]["typology"].update(weights=1), r"unknown key\(s\) 'weights' at cluster\.typology"),
])
def test_cluster_config_errors_name_the_key(change, message) -> None:
    """The shipped demo config with one mistake: refused with the key named."""
    config = copy.deepcopy(_demo())
    change(config)
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_rule_targets_and_candidates_from_the_demo_config() -> None:
    from crest.cluster.config import anchor_candidates, anchors_path, cluster_targets
    from crest.languages import load_languages

    config = load_config(_demo())
    targets = cluster_targets(config, "results/demo")
    assert "results/demo/clusters/kmeans/figures/k_curve.pdf" in targets
    assert "results/demo/clusters/hdbscan/figures/map_umap.png" in targets
    assert not any("hdbscan/figures/k_curve" in t for t in targets)
    assert anchors_path(config, "results/demo") == "results/demo/clusters/kmeans/anchors.tsv"
    from crest.translate.plan import resolve_languages

    table = load_languages()
    candidates = anchor_candidates(config, table)
    translated, _ = resolve_languages(config["translate"], config["languages"]["groups"], table)
    assert candidates[0] == "en" and len(candidates) >= 2 and set(candidates) <= set(translated)  # translated ...
    groups = config["languages"]["groups"]  # ... but never an evaluation language (docs/train.md, "The evaluation-language rule")
    assert set(candidates).isdisjoint(groups["unseen_hrl"] + groups["ood_lrl"]) and "th" not in candidates


@pytest.mark.slow
def test_umap_map_keeps_the_planted_groups_apart(tmp_path: Path) -> None:
    """The UMAP coordinates (from exact sklearn neighbours) are deterministic and keep each planted
    group closer to itself than to the others."""
    means_path = write_embeddings(tmp_path / "emb")
    a = language_map(means_path, tmp_path / "a.parquet", n_neighbors=5)
    b = language_map(means_path, tmp_path / "b.parquet", n_neighbors=5)
    uv = a[["umap1", "umap2"]].to_numpy()
    assert np.isfinite(uv).all() and np.array_equal(uv, b[["umap1", "umap2"]].to_numpy())
    d = np.linalg.norm(uv[:, None] - uv[None], axis=-1)
    same = np.equal.outer(TRUTH, TRUTH) & ~np.eye(len(TRUTH), dtype=bool)
    assert d[same].max() < d[~np.equal.outer(TRUTH, TRUTH)].min()
