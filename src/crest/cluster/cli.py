"""`crest cluster ...`: clustering, anchors, map and figures (called by workflow/rules/cluster.smk)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="cluster language means, pick anchors, draw the language map")
    sub_c = cluster.add_subparsers(dest="cluster_command", required=True)
    p = sub_c.add_parser("run", help="cluster with one method: clusters.tsv, k_selection.tsv, stability.json")
    p.add_argument("--means", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--method", required=True, choices=["kmeans", "ward", "hdbscan"])
    p.add_argument("--options", default="{}", help="JSON of the cluster config section")
    p.set_defaults(func=_run)
    p = sub_c.add_parser("anchors", help="anchors.tsv from clusters.tsv")
    p.add_argument("--clusters", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--options", default="{}", help="JSON of cluster.anchors")
    p.add_argument("--fixed", nargs="*", default=None, help="the fixed / reference anchor list")
    p.add_argument("--fixed-name", default="paper")
    p.add_argument("--candidates", nargs="*", default=None, help="languages that may be anchors (default: all)")
    p.set_defaults(func=_anchors)
    p = sub_c.add_parser("map", help="2-D PCA + UMAP coordinates of the languages (map.parquet)")
    p.add_argument("--means", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--options", default="{}", help="JSON of the cluster config section")
    p.set_defaults(func=_map)
    p = sub_c.add_parser("typology", help="the typology map (URIEL) of the embedding map's languages, same k")
    p.add_argument("--means", required=True, type=Path, help="language_means.parquet (its languages)")
    p.add_argument("--reference-dir", required=True, type=Path, help="the embedding map's clusters/{method}")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--options", default="{}", help="JSON of the cluster config section (typology key included)")
    p.set_defaults(func=_typology)
    p = sub_c.add_parser("agreement", help="clusters/agreement.md: embedding map vs typology map (ARI, NMI, anchors)")
    p.add_argument("--reference-dir", required=True, type=Path, help="the embedding map's clusters/{method}")
    p.add_argument("--typology-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="agreement.md (agreement.json beside it)")
    p.set_defaults(func=_agreement)
    p = sub_c.add_parser("figures", help="language maps and dendrogram, or the k curve, of one method")
    p.add_argument("--what", choices=["maps", "k_curve", "typology"], default="maps")
    p.add_argument("--method-dir", required=True, type=Path)
    p.add_argument("--map", type=Path, help="map.parquet (maps; typology: the embedding map's)")
    p.add_argument("--means", type=Path, help="language_means.parquet (maps)")
    p.add_argument("--options", default="{}", help="JSON of the cluster config section")
    p.add_argument("--label", default="")
    p.set_defaults(func=_figures)


def options_from_config(section: dict) -> "ClusterOptions":  # noqa: F821
    from crest.cluster.core import HdbscanOptions
    from crest.cluster.run import ClusterOptions

    keys = ("layer", "center", "normalize", "pca", "k", "k_range", "k_select", "n_init", "seed")
    kwargs = {k: section[k] for k in keys if k in section}
    if "hdbscan" in section:
        kwargs["hdbscan"] = HdbscanOptions(**section["hdbscan"])
    stability = section.get("stability", {})
    kwargs.update({k: stability[k] for k in ("bootstrap", "seeds") if k in stability})
    return ClusterOptions(**kwargs)


def _run(args: argparse.Namespace) -> None:
    from crest.cluster.run import cluster_means

    summary = cluster_means(args.means, args.out_dir, args.method, options_from_config(json.loads(args.options)))
    print(json.dumps({k: summary[k] for k in ("method", "languages", "k", "mean_silhouette", "stability")}))


def _anchors(args: argparse.Namespace) -> None:
    from crest.cluster.anchors import AnchorRules
    from crest.cluster.run import choose_anchors

    opts = json.loads(args.options)
    rules = AnchorRules(**{k: opts[k] for k in ("budget", "per_cluster", "min_tier", "fallback", "size_weight")
                           if k in opts})
    out = choose_anchors(args.clusters, args.out_dir, rules, mode=opts.get("mode", "computed"), fixed=args.fixed,
                         fixed_name=args.fixed_name, candidates=args.candidates)
    print(json.dumps({"anchors": out["anchors"], "uncovered": out["uncovered"]}))


def _typology(args: argparse.Namespace) -> None:
    from crest.cluster.typology import build_typology_map

    section = json.loads(args.options)
    t = section.get("typology", {})
    kwargs = {k: t[k] for k in ("feature_sets", "knn_neighbors", "method") if k in t}
    report = build_typology_map(args.means, args.reference_dir, args.out_dir, options_from_config(section), **kwargs)
    print(json.dumps({k: report[k] for k in ("method", "k", "languages", "lacking", "features")}))


def _agreement(args: argparse.Namespace) -> None:
    from crest.cluster.agreement import write_agreement

    report = write_agreement(args.reference_dir, args.typology_dir, args.out)
    print(json.dumps({"partitions": report["partitions"], "anchors_jaccard": report["anchors"]["jaccard"]}))


def _map(args: argparse.Namespace) -> None:
    from crest.cluster.run import language_map

    o = json.loads(args.options)
    umap = o.get("umap", {})
    language_map(args.means, args.out, layer=o.get("layer"), center=o.get("center", True),
                 normalize=o.get("normalize", "l2"), pca=o.get("pca"), seed=o.get("seed", 13),
                 umap=umap.get("enabled", True), n_neighbors=umap.get("n_neighbors", 30),
                 min_dist=umap.get("min_dist", 0.8), spread=umap.get("spread", 1.5))


def _figures(args: argparse.Namespace) -> None:
    from crest.cluster.figures import draw_k_curve, draw_maps

    o = json.loads(args.options)
    style = {"center": o.get("center", True), "normalize": o.get("normalize", "l2"), "pca": o.get("pca"),
             "seed": o.get("seed", 13)}
    if args.what == "k_curve":
        paths = draw_k_curve(args.method_dir, label=args.label)
    elif args.what == "typology":
        from crest.cluster.figures import draw_typology

        if not args.map:
            raise ValueError("crest cluster figures --what typology needs --map (the embedding map's map.parquet)")
        paths = draw_typology(args.method_dir, args.map, label=args.label, **style)
    else:
        if not args.map or not args.means:
            raise ValueError("crest cluster figures --what maps needs --map and --means")
        paths = draw_maps(args.method_dir, args.map, args.means, layer=o.get("layer"), label=args.label, **style)
    print("\n".join(map(str, paths)))
