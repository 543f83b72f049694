"""The cluster stage's steps, each reading and writing files (called by `crest cluster ...`).

    cluster_means   language_means.parquet -> {method}/clusters.tsv, k_selection.tsv, stability.json,
                    cluster.json
    choose_anchors  clusters.tsv -> anchors.tsv, anchors.json (notes + agreement), agreement.md
    language_map    language_means.parquet -> map.parquet (2-D PCA and UMAP coordinates, shared by
                    every method)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.cluster.anchors import AnchorRules, agreement, agreement_markdown, fixed_anchors, pick_anchors
from crest.cluster.core import (
    CRITERIA,
    K_METHODS,
    HdbscanOptions,
    Stability,
    bootstrap_stability,
    centroid_distances,
    fit_labels,
    preprocess,
    score_k,
    seed_stability,
    select_k,
    silhouettes,
)
from crest.embed.run import read_language_means, read_rows, read_text_embeddings
from crest.io import atomic_path, write_json, write_text
from crest.languages import load_languages

log = logging.getLogger(__name__)


@dataclass
class ClusterOptions:
    layer: int | None = None
    center: bool = True
    normalize: str = "l2"
    pca: int | None = None
    k: int | None = 8
    k_range: Sequence[int] = (2, 15)
    k_select: str = "fixed"
    n_init: int = 20
    hdbscan: HdbscanOptions = field(default_factory=HdbscanOptions)
    bootstrap: int = 50
    seeds: int = 10
    seed: int = 13


def write_tsv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def cluster_means(means_path: str | Path, out_dir: str | Path, method: str, opts: ClusterOptions,
                  table_path: str | Path | None = None) -> dict[str, Any]:
    """Cluster the language means with one method; write clusters.tsv and the reports. Bootstrap
    stability resamples each language's texts (the same parallel items in every language)."""
    langs, means, layer = read_language_means(means_path, opts.layer)
    emb_dir = Path(means_path).parent

    def bootstrap(labels: np.ndarray, transform, fit) -> Stability:
        rows = read_rows(emb_dir)
        texts = read_text_embeddings(emb_dir, langs, layer)
        keys = {lang: rows.loc[rows["lang"] == lang, "key"].to_numpy() for lang in langs}
        shared = len(set.intersection(*(set(v) for v in keys.values()))) if keys else 0
        return bootstrap_stability(texts, langs, labels, transform, fit, opts.bootstrap, opts.seed,
                                   keys=keys if shared else None)

    return cluster_vectors(langs, means, out_dir, method, opts, source=str(means_path), layer=layer,
                           table_path=table_path, bootstrap=bootstrap)


def cluster_vectors(langs: Sequence[str], vectors: np.ndarray, out_dir: str | Path, method: str,
                    opts: ClusterOptions, *, source: str, layer: int | None = None,
                    table_path: str | Path | None = None,
                    bootstrap: Callable[..., Stability] | None = None) -> dict[str, Any]:
    """Cluster one vector per language (embedding means, typology vectors) and write clusters.tsv,
    k_selection.tsv, stability.json and cluster.json. `bootstrap(labels, transform, fit)` gives the
    resampling stability where the vectors have samples behind them."""
    out_dir = Path(out_dir)
    langs = list(langs)
    n = len(langs)
    if n < 3:
        raise ValueError(f"cluster: {n} language(s) in {source}; clustering needs at least 3")
    X = preprocess(vectors, opts.center, opts.normalize, opts.pca, opts.seed)

    scores, best, k = None, {}, None
    if method in K_METHODS:
        if opts.k_select == "fixed" and opts.k is not None and opts.k > n:
            raise ValueError(f"cluster: k={opts.k} is larger than the number of languages ({n})")
        scores = score_k(X, method, opts.k_range, opts.seed, opts.n_init)
        k, best = select_k(scores, opts.k_select, opts.k)

    def fit(data: np.ndarray, seed: int) -> np.ndarray:
        return fit_labels(data, method, k=k, seed=seed, n_init=opts.n_init, hdbscan=opts.hdbscan)[0]

    labels, noise = fit_labels(X, method, k=k, seed=opts.seed, n_init=opts.n_init, hdbscan=opts.hdbscan)
    k_found = int(len(np.unique(labels)))

    boot = None
    if opts.bootstrap and bootstrap is not None:
        boot = bootstrap(labels, lambda M: preprocess(M, opts.center, opts.normalize, opts.pca, opts.seed), fit)
    seeds = None
    if opts.seeds and method == "kmeans":
        seeds = seed_stability(X, labels, fit, [opts.seed + 1 + i for i in range(opts.seeds)])

    table = load_languages(table_path)
    df = pd.DataFrame({
        "language": langs, "cluster": labels, "distance": centroid_distances(X, labels),
        "silhouette": silhouettes(X, labels), "noise": noise,
        "stability_bootstrap": boot.per_language if boot and boot.per_language is not None else np.nan,
        "stability_seed": seeds.per_language if seeds and seeds.per_language is not None else np.nan,
        "name": [table[c].name if c in table else "" for c in langs],
        "tier": [table[c].tier if c in table else "" for c in langs],
        "cc100_gib": [table[c].cc100_gib if c in table else np.nan for c in langs],
        "script": [table[c].script if c in table else "" for c in langs],
    }).sort_values(["cluster", "distance"], kind="stable")
    out_dir.mkdir(parents=True, exist_ok=True)
    # hdbscan chooses its own number of clusters: an empty table with the same columns
    write_tsv(scores if scores is not None else pd.DataFrame(columns=["k", *CRITERIA, "smallest_cluster"]),
              out_dir / "k_selection.tsv")
    stability = {
        "bootstrap": boot.summary() if boot else {"runs": 0, **({} if bootstrap else {"note": "no samples to resample"})},
        "seeds": seeds.summary() if seeds else {"runs": 0, "note": "deterministic method" if method != "kmeans"
                                                 else "skipped"},
    }
    write_json(stability, out_dir / "stability.json")
    sil = df["silhouette"].mean()
    summary = {
        "method": method, "embeddings": source, "layer": layer, "languages": n, "k": k_found,
        "k_select": opts.k_select if method in K_METHODS else "hdbscan decides",
        "k_by_criterion": best, "k_range": list(opts.k_range) if method in K_METHODS else None,
        "noise_languages": [lang for lang, z in zip(langs, noise) if z],
        "mean_silhouette": None if np.isnan(sil) else round(float(sil), 4),
        "cluster_sizes": {int(c): int(s) for c, s in df.groupby("cluster").size().items()},
        "singletons": [r.language for r in df.itertuples() if (df["cluster"] == r.cluster).sum() == 1],
        "stability": stability,
        "options": {k_: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k_, v in asdict(opts).items()},
    }
    write_json(summary, out_dir / "cluster.json")
    write_tsv(df, out_dir / "clusters.tsv")
    log.info("%s: %d languages in %d clusters (silhouette %s); bootstrap %s", method, n, k_found,
             summary["mean_silhouette"], stability["bootstrap"])
    return summary


def choose_anchors(clusters_path: str | Path, out_dir: str | Path, rules: AnchorRules, mode: str = "computed",
                   fixed: Sequence[str] | None = None, fixed_name: str = "paper",
                   candidates: Sequence[str] | None = None, table_path: str | Path | None = None) -> dict[str, Any]:
    """anchors.tsv (the active mode's picks), anchors.json and agreement.md (computed vs fixed)."""
    out_dir = Path(out_dir)
    clusters = pd.read_csv(clusters_path, sep="\t", keep_default_na=False,
                           dtype={"language": str}).astype({"cluster": int, "distance": float})
    table = load_languages(table_path)
    computed, notes = pick_anchors(clusters, table, rules, candidates)
    report = None
    if fixed:
        report = agreement(clusters, computed["language"].tolist(), list(fixed), fixed_name)
    if mode == "fixed":
        if not fixed:
            raise ValueError("anchors: mode fixed needs a fixed list (cluster.anchors.fixed)")
        anchors, notes = fixed_anchors(clusters, table, fixed, rules, origin=f"fixed list ({fixed_name})")
        notes["computed_would_be"] = computed["language"].tolist()
    elif mode == "computed":
        anchors = computed
    else:
        raise ValueError(f"anchors: mode must be computed or fixed, not {mode!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({**notes, "anchors": anchors["language"].tolist(), "agreement": report}, out_dir / "anchors.json")
    write_text(agreement_markdown(report) if report else "# Anchors\n\nNo reference list to compare with.\n",
               out_dir / "agreement.md")
    write_tsv(anchors, out_dir / "anchors.tsv")
    log.info("anchors (%s): %s", mode, " ".join(anchors["language"]))
    return {**notes, "anchors": anchors["language"].tolist(), "agreement": report}


def language_map(means_path: str | Path, out: str | Path, *, layer: int | None = None, center: bool = True,
                 normalize: str = "l2", pca: int | None = None, seed: int = 13, umap: bool = True,
                 n_neighbors: int = 30, min_dist: float = 0.8, spread: float = 1.5) -> pd.DataFrame:
    """2-D coordinates of every language: PCA (first two components) and UMAP, in the space the
    clustering uses. Method-independent, so computed once."""
    from sklearn.decomposition import PCA

    langs, means, layer = read_language_means(means_path, layer)
    X = preprocess(means, center, normalize, pca, seed)
    pca2 = PCA(n_components=2, random_state=seed).fit(X)
    xy = pca2.transform(X)
    df = pd.DataFrame({"language": langs, "pca1": xy[:, 0], "pca2": xy[:, 1]})
    if umap and len(langs) >= 4:
        import warnings

        import umap as umap_lib
        from sklearn.neighbors import NearestNeighbors

        # The exact neighbours UMAP would compute itself for so few points, from sklearn: UMAP's own
        # path compiles numba kernels for ~15-20 s of a 25 s job, for 100 points.
        k = min(n_neighbors, len(langs) - 1)
        dists, idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X)
        reducer = umap_lib.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, spread=spread, random_state=seed,
                                n_jobs=1, precomputed_knn=(idx, dists, None))
        with warnings.catch_warnings():  # "no search index: transform() unavailable" (never called)
            warnings.simplefilter("ignore", UserWarning)
            uv = reducer.fit_transform(X)
        df["umap1"], df["umap2"] = uv[:, 0], uv[:, 1]
    with atomic_path(out) as tmp:
        df.attrs = {}
        df.to_parquet(tmp, index=False)
    write_json({"layer": layer, "pca_explained_variance": [round(float(v), 4) for v in pca2.explained_variance_ratio_],
                "umap": bool(umap and len(langs) >= 4), "n_neighbors": n_neighbors, "min_dist": min_dist,
                "spread": spread,
                "seed": seed}, Path(out).with_suffix(".json"))
    return df
