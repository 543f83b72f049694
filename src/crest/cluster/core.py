"""Clustering of language means: preprocessing, k selection, three methods, stability.

Every function is deterministic for a seed. Cluster ids are canonical: clusters are numbered by
size (largest first), ties broken by the position of their first language in the input order,
so the same partition always gets the same ids whatever the method's internal labels were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METHODS = ("kmeans", "ward", "hdbscan")
K_METHODS = ("kmeans", "ward")  # methods that take k
CRITERIA = ("silhouette", "davies_bouldin", "calinski_harabasz")


def preprocess(X: np.ndarray, center: bool = True, normalize: str = "l2", pca: int | None = None,
               seed: int = 0) -> np.ndarray:
    """Language means -> the space clustering works in.

    center: subtract the mean over languages (the part every language shares);
    normalize: `l2` (unit rows: Euclidean distance becomes a function of cosine), `standardize`
    (z-score per dimension) or `none`; pca: keep that many principal components (after the above)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"cluster: need a 2-D array of at least 2 language means, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("cluster: language means contain NaN or infinite values")
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    if normalize == "l2":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.where(norms > 0, norms, 1.0)
    elif normalize == "standardize":
        sd = X.std(axis=0, keepdims=True)
        X = (X - X.mean(axis=0, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    elif normalize != "none":
        raise ValueError(f"cluster: normalize must be l2, standardize or none, not {normalize!r}")
    if pca:
        from sklearn.decomposition import PCA

        n = min(pca, X.shape[0], X.shape[1])
        X = PCA(n_components=n, random_state=seed).fit_transform(X)
    return X


def canonical(labels: Sequence[int]) -> np.ndarray:
    """Relabel clusters 0..k-1 by size (desc), ties by first occurrence; noise (-1) stays -1."""
    labels = np.asarray(labels)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c != -1]
    first = {c: int(np.argmax(labels == c)) for c in ids}
    order = sorted(ids, key=lambda c: (-(labels == c).sum(), first[c]))
    mapping = {c: i for i, c in enumerate(order)}
    mapping[-1] = -1
    return np.array([mapping[c] for c in labels.tolist()], dtype=np.int64)


def check_k(k: int, n: int) -> None:
    if k < 2:
        raise ValueError(f"cluster: k must be at least 2, got {k}")
    if k > n:
        raise ValueError(f"cluster: k={k} is larger than the number of languages ({n})")


@dataclass
class HdbscanOptions:
    min_cluster_size: int = 3
    min_samples: int | None = None
    noise: str = "nearest"  # nearest | own


def fit_labels(X: np.ndarray, method: str, k: int | None = None, seed: int = 0, n_init: int = 20,
               hdbscan: HdbscanOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(canonical labels, noise mask). Only HDBSCAN marks noise; `noise=nearest` moves each noise
    language into the cluster with the nearest centroid, `own` gives it a singleton cluster."""
    n = len(X)
    noise = np.zeros(n, dtype=bool)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        check_k(k, n)
        labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(X)
    elif method == "ward":
        from sklearn.cluster import AgglomerativeClustering

        check_k(k, n)
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(X)
    elif method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        opts = hdbscan or HdbscanOptions()
        if opts.min_cluster_size > n:
            raise ValueError(f"cluster: hdbscan.min_cluster_size={opts.min_cluster_size} is larger than the "
                             f"number of languages ({n})")
        labels = HDBSCAN(min_cluster_size=opts.min_cluster_size, min_samples=opts.min_samples,
                         copy=True).fit_predict(X)
        noise = labels == -1
        labels = _resolve_noise(X, labels, opts.noise)
    else:
        raise ValueError(f"cluster: unknown method {method!r} (known: {', '.join(METHODS)})")
    return canonical(labels), noise


def _resolve_noise(X: np.ndarray, labels: np.ndarray, mode: str) -> np.ndarray:
    labels = labels.copy()
    noise = np.flatnonzero(labels == -1)
    if not len(noise):
        return labels
    clusters = sorted(set(labels.tolist()) - {-1})
    if mode == "own" or not clusters:
        start = max(clusters, default=-1) + 1
        labels[noise] = np.arange(start, start + len(noise))
        return labels
    if mode != "nearest":
        raise ValueError(f"cluster: hdbscan.noise must be nearest or own, not {mode!r}")
    cents = np.stack([X[labels == c].mean(axis=0) for c in clusters])
    dist = ((X[noise, None, :] - cents[None, :, :]) ** 2).sum(-1)
    labels[noise] = np.asarray(clusters)[dist.argmin(axis=1)]
    return labels


def score_k(X: np.ndarray, method: str, k_range: Sequence[int], seed: int = 0, n_init: int = 20) -> pd.DataFrame:
    """Silhouette (higher is better), Davies-Bouldin (lower), Calinski-Harabasz (higher) and, for
    KMeans, inertia, for every k in [k_min, k_max] that the number of languages allows (2..n-1)."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    n = len(X)
    lo, hi = int(k_range[0]), int(k_range[1])
    if lo > hi:
        raise ValueError(f"cluster: k_range [{lo}, {hi}] is empty")
    hi = min(hi, n - 1)
    if lo > hi:
        raise ValueError(f"cluster: k_range starts at {lo}, but {n} languages allow k up to {n - 1} "
                         f"(silhouette needs 2 <= k <= n - 1)")
    rows = []
    for k in range(lo, hi + 1):
        labels, _ = fit_labels(X, method, k=k, seed=seed, n_init=n_init)
        row = {"k": k, "silhouette": silhouette_score(X, labels), "davies_bouldin": davies_bouldin_score(X, labels),
               "calinski_harabasz": calinski_harabasz_score(X, labels),
               "smallest_cluster": int(np.bincount(labels).min())}
        if method == "kmeans":
            cents = np.stack([X[labels == c].mean(axis=0) for c in range(k)])
            row["inertia"] = float(((X - cents[labels]) ** 2).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def select_k(scores: pd.DataFrame, rule: str, k_fixed: int | None = None) -> tuple[int, dict[str, int]]:
    """The chosen k and every criterion's own choice (recorded whatever the rule)."""
    best = {
        "silhouette": int(scores.loc[scores["silhouette"].idxmax(), "k"]),
        "davies_bouldin": int(scores.loc[scores["davies_bouldin"].idxmin(), "k"]),
        "calinski_harabasz": int(scores.loc[scores["calinski_harabasz"].idxmax(), "k"]),
    }
    ranks = scores["silhouette"].rank(ascending=False) + scores["davies_bouldin"].rank(ascending=True)
    best["consensus"] = int(scores.loc[ranks.idxmin(), "k"])
    if rule == "fixed":
        if k_fixed is None:
            raise ValueError("cluster: k_select is fixed but k is not set")
        return int(k_fixed), best
    if rule not in best:
        raise ValueError(f"cluster: k_select must be fixed, silhouette, davies_bouldin or consensus, not {rule!r}")
    return best[rule], best


def centroid_distances(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each language's Euclidean distance to its cluster's centroid (in the preprocessed space)."""
    out = np.zeros(len(X))
    for c in np.unique(labels):
        idx = labels == c
        out[idx] = np.linalg.norm(X[idx] - X[idx].mean(axis=0), axis=1)
    return out


def silhouettes(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-language silhouette (0 for a language alone in its cluster, sklearn's convention);
    NaN when there is only one cluster or every language is alone."""
    from sklearn.metrics import silhouette_samples

    k = len(np.unique(labels))
    if k < 2 or k >= len(X):
        return np.full(len(X), np.nan)
    return silhouette_samples(X, labels)


def match_labels(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """`other` relabelled to agree best with `reference` (Hungarian matching on the contingency)."""
    from scipy.optimize import linear_sum_assignment

    ref_ids, oth_ids = np.unique(reference), np.unique(other)
    table = np.array([[np.sum((reference == r) & (other == o)) for o in oth_ids] for r in ref_ids])
    rows, cols = linear_sum_assignment(-table)
    mapping = {oth_ids[c]: ref_ids[r] for r, c in zip(rows, cols)}
    fresh = iter(range(int(max(ref_ids.max(), oth_ids.max())) + 1, 10**9))
    return np.array([mapping[o] if o in mapping else next(fresh) for o in other])


@dataclass
class Stability:
    ari: list[float]
    per_language: np.ndarray | None  # share of runs with the language in its matched reference cluster

    def summary(self) -> dict[str, Any]:
        if not self.ari:
            return {"runs": 0}
        a = np.asarray(self.ari)
        return {"runs": len(a), "mean_ari": round(float(a.mean()), 4), "std_ari": round(float(a.std()), 4),
                "min_ari": round(float(a.min()), 4)}


def _compare(reference: np.ndarray, runs: list[np.ndarray]) -> Stability:
    from sklearn.metrics import adjusted_rand_score

    if not runs:
        return Stability([], None)
    same = np.zeros(len(reference))
    aris = []
    for labels in runs:
        aris.append(float(adjusted_rand_score(reference, labels)))
        same += match_labels(reference, labels) == reference
    return Stability(aris, same / len(runs))


def seed_stability(X: np.ndarray, reference: np.ndarray, fit: Callable[[np.ndarray, int], np.ndarray],
                   seeds: Sequence[int]) -> Stability:
    """ARI of the clustering re-run with other seeds against the reference partition."""
    return _compare(reference, [fit(X, s) for s in seeds])


def bootstrap_stability(texts: dict[str, np.ndarray], langs: Sequence[str], reference: np.ndarray,
                        transform: Callable[[np.ndarray], np.ndarray], fit: Callable[[np.ndarray, int], np.ndarray],
                        n: int, seed: int, keys: dict[str, np.ndarray] | None = None) -> Stability:
    """Resample each language's texts with replacement `n` times, recompute the means, redo the
    preprocessing and the clustering, and compare with the reference partition.

    With `keys` ({lang: parallel key per row}), the same items are drawn for every language (a
    resample of the parallel keys), so the means stay comparable across languages."""
    rng = np.random.default_rng(seed)
    runs = []
    universe = np.unique(np.concatenate([keys[lang] for lang in langs])) if keys else None
    for b in range(n):
        means = []
        if universe is not None:
            drawn = rng.choice(universe, size=len(universe), replace=True)
            counts = pd.Series(drawn).value_counts()
        for lang in langs:
            E = texts[lang]
            if universe is not None:
                weights = pd.Series(keys[lang]).map(counts).fillna(0).to_numpy()
                if weights.sum() == 0:
                    weights = np.ones(len(E))
                means.append((E * weights[:, None]).sum(0) / weights.sum())
            else:
                idx = rng.integers(0, len(E), size=len(E))
                means.append(E[idx].mean(0))
        runs.append(fit(transform(np.stack(means)), seed + 1000 + b))
    return _compare(reference, runs)
