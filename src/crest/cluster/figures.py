"""Figures of the language map, sized for one paper column (3.4 in wide), PNG (300 dpi) + PDF.

    map_pca, map_umap   languages in 2-D coloured by cluster, language codes as labels (anchors
                        bold with a black-edged star), labels nudged apart greedily
    dendrogram          Ward linkage of the language means, leaves coloured by the method's clusters
    k_curve             silhouette and Davies-Bouldin over k, the chosen k marked
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

COLUMN_IN = 3.4
FONT = 6.0
LABEL_FONT = 5.0


def _plt():
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "axes.labelsize": FONT,
                         "xtick.labelsize": FONT - 0.5, "ytick.labelsize": FONT - 0.5, "legend.fontsize": FONT - 0.5,
                         "pdf.fonttype": 42, "ps.fonttype": 42, "axes.linewidth": 0.5,
                         "font.family": "DejaVu Sans"})
    return plt


def cluster_colors(n: int) -> list:
    plt = _plt()
    if n <= 10:
        cmap = plt.get_cmap("tab10")
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = plt.get_cmap("tab20")
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))
        return [cmap(order[i]) for i in range(n)]
    cmap = plt.get_cmap("hsv")
    return [cmap(i / n) for i in range(n)]


def save(fig, stem: str | Path) -> list[Path]:
    from crest.io import atomic_path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, kw in (("png", {"dpi": 300}), ("pdf", {})):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", pad_inches=0.02, **kw)
        paths.append(path)
    return paths


def _place_labels(ax, xy: np.ndarray, texts: Sequence[str], bold: Sequence[bool], colors: Sequence) -> None:
    """Put each label next to its point: of 8 directions x 3 distances, the spot that overlaps
    least with labels already placed, with points and with the axes' edge (greedy, deterministic,
    in display coordinates); a label set off further than the first ring gets a thin leader line."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pts = ax.transData.transform(xy)
    scale = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    dirs = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1.4, 0), (-1.4, 0), (0, 1.4), (0, -1.4)]
    aligns = [("left", "bottom"), ("left", "top"), ("right", "bottom"), ("right", "top"),
              ("left", "center"), ("right", "center"), ("center", "bottom"), ("center", "top")]
    rings = (2.2, 5.0, 8.5)
    placed: list[tuple[float, float, float, float]] = []
    dot = 2.2 * scale
    point_boxes = [(x - dot, y - dot, x + dot, y + dot) for x, y in pts]

    def overlap(a, b) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return max(w, 0.0) * max(h, 0.0)

    def outside(box) -> float:
        w, h = box[2] - box[0], box[3] - box[1]
        inside = overlap(box, (frame.x0, frame.y0, frame.x1, frame.y1))
        return w * h - inside

    inverse = ax.transData.inverted()
    # crowded points first: they have the fewest free spots
    density = np.array([np.sum(np.hypot(*(pts - p).T) < 25 * scale) for p in pts])
    for i in np.argsort(-density, kind="stable"):
        best = None
        for ring_no, ring in enumerate(rings):
            for (dx, dy), (ha, va) in zip(dirs, aligns):
                x, y = inverse.transform((pts[i][0] + dx * ring * scale, pts[i][1] + dy * ring * scale))
                t = ax.text(x, y, texts[i], fontsize=LABEL_FONT, ha=ha, va=va, color=colors[i], zorder=4,
                            fontweight="bold" if bold[i] else "normal")
                bb = t.get_window_extent(renderer)
                box = (bb.x0, bb.y0, bb.x1, bb.y1)
                cost = (sum(overlap(box, p) for p in placed)
                        + sum(overlap(box, p) for j, p in enumerate(point_boxes) if j != i)
                        + 3 * outside(box) + ring_no * 2.0)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, t, box, ring_no)
                else:
                    t.remove()
            if best[0] <= ring_no * 2.0:  # nothing overlapped on this ring
                break
        cost, t, box, ring_no = best
        placed.append(box)
        if ring_no > 0:
            cx, cy = t.get_position()
            ax.plot([xy[i][0], cx], [xy[i][1], cy], lw=0.3, color=colors[i], alpha=0.6, zorder=1)


def compress_gaps(values: np.ndarray, factor: float = 3.0) -> tuple[np.ndarray, list[float]]:
    """Shrink the empty stretches of a 1-D layout: every gap between neighbouring values wider than
    `factor` x the 90th percentile of gaps is cut down to that width. Order is kept; returns the
    new values and the middles of the cut gaps (drawn as dotted breaks). For UMAP, whose
    distances between separate islands carry no meaning and would otherwise fill the figure."""
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    gaps = np.diff(sorted_v)
    if len(gaps) < 3 or not np.any(gaps > 0):
        return values.copy(), []
    cap = factor * np.percentile(gaps, 90)
    new_gaps = np.minimum(gaps, cap)
    new_sorted = np.concatenate([[sorted_v[0]], sorted_v[0] + np.cumsum(new_gaps)])
    out = np.empty_like(values, dtype=float)
    out[order] = new_sorted
    breaks = [float(new_sorted[i] + new_gaps[i] / 2) for i in np.flatnonzero(gaps > cap)]
    return out, breaks


def _darker(color, factor: float = 0.7):
    r, g, b, *_ = color
    return (r * factor, g * factor, b * factor, 1.0)


def language_map_figure(coords: pd.DataFrame, clusters: pd.DataFrame, anchors: Sequence[str], kind: str,
                        stem: str | Path, title: str, explained: Sequence[float] | None = None) -> list[Path]:
    """Scatter of the languages in 2-D (`kind` pca or umap) coloured by cluster."""
    plt = _plt()
    df = coords.merge(clusters[["language", "cluster"]], on="language", how="inner")
    xcol, ycol = f"{kind}1", f"{kind}2"
    k = int(df["cluster"].max()) + 1
    colors = cluster_colors(k)
    fig, ax = plt.subplots(figsize=(COLUMN_IN, COLUMN_IN * 0.86))
    xy = df[[xcol, ycol]].to_numpy().astype(float)
    breaks: tuple[list[float], list[float]] = ([], [])
    if kind == "umap":
        (xy[:, 0], bx), (xy[:, 1], by) = compress_gaps(xy[:, 0]), compress_gaps(xy[:, 1])
        breaks = (bx, by)
    is_anchor = df["language"].isin(set(anchors)).to_numpy()
    col = [colors[c] for c in df["cluster"]]
    ax.scatter(xy[~is_anchor, 0], xy[~is_anchor, 1], s=9, c=[c for c, a in zip(col, is_anchor) if not a],
               linewidths=0, zorder=2)
    if is_anchor.any():
        ax.scatter(xy[is_anchor, 0], xy[is_anchor, 1], s=34, marker="*",
                   c=[c for c, a in zip(col, is_anchor) if a], edgecolors="black", linewidths=0.4, zorder=3)
    pad = 0.06 * (xy.max(0) - xy.min(0) + 1e-9)
    ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
    ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
    for x in breaks[0]:
        ax.axvline(x, color="0.6", lw=0.5, ls=":", zorder=0)
    for y in breaks[1]:
        ax.axhline(y, color="0.6", lw=0.5, ls=":", zorder=0)
    _place_labels(ax, xy, df["language"].tolist(), is_anchor.tolist(), [_darker(c) for c in col])
    if kind == "pca" and explained is not None:
        ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
        ax.tick_params(length=2, width=0.4)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        cut = " (dotted: empty space cut out)" if breaks[0] or breaks[1] else ""
        ax.set_xlabel(f"{kind.upper()} 1{cut}")
        ax.set_ylabel(f"{kind.upper()} 2")
    ax.set_title(title, pad=3)
    if is_anchor.any():
        ax.scatter([], [], s=30, marker="*", c="white", edgecolors="black", linewidths=0.4, label="anchor (bold code)")
        ax.legend(loc="best", frameon=False, handletextpad=0.2, borderaxespad=0.2)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    fig.tight_layout(pad=0.2)
    paths = save(fig, stem)
    plt.close(fig)
    return paths


def dendrogram_figure(X: np.ndarray, langs: Sequence[str], clusters: pd.DataFrame, anchors: Sequence[str],
                      stem: str | Path, title: str) -> list[Path]:
    """Ward dendrogram (leaves left to right = top to bottom), leaf labels in cluster colours."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    plt = _plt()
    cluster_of = dict(zip(clusters["language"], clusters["cluster"].astype(int)))
    k = max(cluster_of.values()) + 1
    colors = cluster_colors(k)
    Z = linkage(X, method="ward")
    height = max(2.5, 0.062 * len(langs) + 0.5)
    fig, ax = plt.subplots(figsize=(COLUMN_IN, height))
    dendrogram(Z, labels=list(langs), orientation="left", leaf_font_size=LABEL_FONT + 0.5, ax=ax,
               color_threshold=0, above_threshold_color="0.35")
    for label in ax.get_yticklabels():
        code = label.get_text()
        label.set_color(_darker(colors[cluster_of[code]], 0.8))
        if code in set(anchors):
            label.set_fontweight("bold")
    for line in ax.collections:
        line.set_linewidth(0.5)
    ax.tick_params(axis="y", length=0, pad=1)
    ax.tick_params(axis="x", length=2, width=0.4)
    ax.set_xlabel("Ward linkage distance (leaf colour: cluster, bold: anchor)")
    ax.set_title(title, pad=3)
    for spine in ("top", "right", "left"):
        ax.spines[spine].set_visible(False)
    fig.tight_layout(pad=0.2)
    paths = save(fig, stem)
    plt.close(fig)
    return paths


def k_curve_figure(scores: pd.DataFrame, chosen: int, stem: str | Path, title: str,
                   best: dict[str, int] | None = None) -> list[Path]:
    """Silhouette (left axis, higher is better) and Davies-Bouldin (right, lower is better) over k."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(COLUMN_IN, COLUMN_IN * 0.55))
    c1, c2 = "#1f77b4", "#d62728"
    ax.plot(scores["k"], scores["silhouette"], "-o", color=c1, ms=2.5, lw=0.9, label="silhouette")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("mean silhouette (higher is better)", color=c1)
    ax.tick_params(axis="y", colors=c1, length=2, width=0.4)
    ax.tick_params(axis="x", length=2, width=0.4)
    ax2 = ax.twinx()
    ax2.plot(scores["k"], scores["davies_bouldin"], "-s", color=c2, ms=2.3, lw=0.9, label="Davies-Bouldin")
    ax2.set_ylabel("Davies-Bouldin (lower is better)", color=c2)
    ax2.tick_params(axis="y", colors=c2, length=2, width=0.4)
    ax.axvline(chosen, color="0.3", lw=0.7, ls="--", zorder=0)
    ax.annotate(f"chosen k = {chosen}", xy=(chosen, 0), xycoords=("data", "axes fraction"), xytext=(3, 3),
                textcoords="offset points", ha="left", va="bottom", fontsize=FONT - 0.5, color="0.2")
    if best:
        s_k, d_k = best.get("silhouette"), best.get("davies_bouldin")
        if s_k is not None:
            ax.plot([s_k], scores.loc[scores["k"] == s_k, "silhouette"], "o", mfc="none", mec=c1, ms=6, mew=0.8)
        if d_k is not None:
            ax2.plot([d_k], scores.loc[scores["k"] == d_k, "davies_bouldin"], "s", mfc="none", mec=c2, ms=6, mew=0.8)
    ax.set_xticks(scores["k"].tolist())
    ax.set_title(title, pad=3)
    ax.spines["top"].set_visible(False)
    ax2.spines["top"].set_visible(False)
    fig.tight_layout(pad=0.2)
    paths = save(fig, stem)
    plt.close(fig)
    return paths


def draw_maps(method_dir: str | Path, map_path: str | Path, means_path: str | Path, *, layer: int | None = None,
              center: bool = True, normalize: str = "l2", pca: int | None = None, seed: int = 13,
              label: str = "") -> list[Path]:
    """map_pca, map_umap (when the map has UMAP coordinates) and dendrogram of one method."""
    from crest.cluster.core import preprocess
    from crest.embed.run import read_language_means

    method_dir = Path(method_dir)
    fig_dir = method_dir / "figures"
    summary = json.loads((method_dir / "cluster.json").read_text(encoding="utf-8"))
    clusters = pd.read_csv(method_dir / "clusters.tsv", sep="\t", keep_default_na=False, dtype={"language": str})
    clusters["cluster"] = clusters["cluster"].astype(int)
    anchors = pd.read_csv(method_dir / "anchors.tsv", sep="\t", keep_default_na=False,
                          dtype={"language": str})["language"].tolist()
    coords = pd.read_parquet(map_path)
    meta = json.loads(Path(map_path).with_suffix(".json").read_text(encoding="utf-8"))
    head = f"{label}{summary['method']}, k = {summary['k']}, {summary['languages']} languages"
    paths = language_map_figure(coords, clusters, anchors, "pca", fig_dir / "map_pca", f"{head} (PCA)",
                                meta["pca_explained_variance"])
    if "umap1" in coords.columns:
        paths += language_map_figure(coords, clusters, anchors, "umap", fig_dir / "map_umap", f"{head} (UMAP)")
    langs, means, _ = read_language_means(means_path, layer)
    X = preprocess(means, center, normalize, pca, seed)
    paths += dendrogram_figure(X, langs, clusters, anchors, fig_dir / "dendrogram", f"{head}: Ward tree")
    return paths


def draw_k_curve(method_dir: str | Path, label: str = "") -> list[Path]:
    """k_curve of a method that scored k (kmeans, ward)."""
    method_dir = Path(method_dir)
    summary = json.loads((method_dir / "cluster.json").read_text(encoding="utf-8"))
    scores = pd.read_csv(method_dir / "k_selection.tsv", sep="\t")
    if scores.empty:
        raise ValueError(f"{method_dir}: no k was scored ({summary['method']} chooses its own number of clusters)")
    return k_curve_figure(scores, summary["k"], method_dir / "figures" / "k_curve",
                          f"{label}{summary['method']}: choosing k ({summary['k_select']})",
                          summary.get("k_by_criterion"))


def draw_typology(typology_dir: str | Path, embedding_map: str | Path, *, center: bool = True,
                  normalize: str = "l2", pca: int | None = None, seed: int = 13, label: str = "") -> list[Path]:
    """The typology map's own map_pca and dendrogram (its PCA in typology/map.parquet), and
    `embedding_map`: the embedding map's layout (UMAP when drawn, else PCA) coloured by typology
    cluster, typology anchors starred: where the two maps disagree, colours mix within an island."""
    from crest.cluster.run import language_map

    typology_dir = Path(typology_dir)
    vectors = typology_dir / "vectors.parquet"
    language_map(vectors, typology_dir / "map.parquet", center=center, normalize=normalize, pca=pca, seed=seed,
                 umap=False)
    paths = draw_maps(typology_dir, typology_dir / "map.parquet", vectors, center=center, normalize=normalize,
                      pca=pca, seed=seed, label="URIEL typology: ")
    clusters = pd.read_csv(typology_dir / "clusters.tsv", sep="\t", keep_default_na=False, dtype={"language": str})
    clusters["cluster"] = clusters["cluster"].astype(int)
    anchors = pd.read_csv(typology_dir / "anchors.tsv", sep="\t", keep_default_na=False,
                          dtype={"language": str})["language"].tolist()
    coords = pd.read_parquet(embedding_map)
    kind = "umap" if "umap1" in coords.columns else "pca"
    meta = json.loads(Path(embedding_map).with_suffix(".json").read_text(encoding="utf-8"))
    paths += language_map_figure(coords, clusters, anchors, kind, typology_dir / "figures" / "embedding_map",
                                 f"{label}embedding map ({kind.upper()}), colour: typology cluster",
                                 meta.get("pca_explained_variance"))
    return paths
