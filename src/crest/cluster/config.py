"""The `cluster` config section: what the rules need from it, and the checks its schema cannot make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crest.embed.config import check_language_list, embed_enabled, group_or_codes
from crest.heldout import trainable_candidates
from crest.languages import Language
from crest.schema import ConfigError

K_METHODS = ("kmeans", "ward")
TYPOLOGY = "typology"
"""The typology map's directory under clusters/ and the anchor source `languages: {anchors: typology}`."""
TYPOLOGY_FIGURES = ("map_pca", "dendrogram", "embedding_map")


def map_figures(config: dict[str, Any]) -> list[str]:
    """Figure names every method draws (the k curve is extra, for kmeans and ward)."""
    return ["map_pca", "dendrogram"] + (["map_umap"] if config["cluster"]["umap"]["enabled"] else [])


def cluster_methods(config: dict[str, Any]) -> list[str]:
    return list(config["cluster"]["methods"]) if embed_enabled(config) else []


def typology_enabled(config: dict[str, Any]) -> bool:
    return embed_enabled(config) and bool(config.get("cluster", {}).get("typology", {}).get("enabled", True))


def anchor_sources(config: dict[str, Any]) -> list[str]:
    """Where anchors come from: cluster.methods (the first is the primary one), then the typology
    map when it is on. The names of `languages: {anchors: NAME}` and of clusters/NAME/anchors.tsv."""
    return list(config.get("cluster", {}).get("methods", [])) + ([TYPOLOGY] if typology_enabled(config) else [])


def typology_targets(run_dir: str | Path) -> list[str]:
    base = f"{run_dir}/clusters/{TYPOLOGY}"
    return [f"{base}/clusters.tsv", f"{base}/anchors.tsv", f"{run_dir}/clusters/agreement.md"] + [
        f"{base}/figures/{name}.{ext}" for name in TYPOLOGY_FIGURES for ext in ("png", "pdf")]


def cluster_targets(config: dict[str, Any], run_dir: str | Path) -> list[str]:
    """What `rule all` needs from the cluster stage ([] when the embed stage is off)."""
    out = []
    for method in cluster_methods(config):
        base = f"{run_dir}/clusters/{method}"
        names = map_figures(config) + (["k_curve"] if method in K_METHODS else [])
        out += [f"{base}/clusters.tsv", f"{base}/anchors.tsv"]
        out += [f"{base}/figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]
    if typology_enabled(config):
        out += typology_targets(run_dir)
    return out


def anchors_path(config: dict[str, Any], run_dir: str | Path) -> str | None:
    """The primary method's anchors.tsv (column `language`): the crest arm's training languages."""
    methods = cluster_methods(config)
    return f"{run_dir}/clusters/{methods[0]}/anchors.tsv" if methods else None


def fixed_anchor_list(config: dict[str, Any]) -> tuple[list[str], str]:
    """The fixed / reference anchors (the paper's 13 by default) and the name to report them by."""
    value = config["cluster"]["anchors"]["fixed"]
    return list(group_or_codes(value, config) or []), value if isinstance(value, str) else "fixed"


def anchor_candidates(config: dict[str, Any], table: dict[str, Language]) -> list[str] | None:
    """Languages that may be anchors (null = all): `translate` = the translation stage's languages;
    never an evaluation language (crest.heldout.trainable_candidates, docs/train.md)."""
    value = config["cluster"]["anchors"]["candidates"]
    if value == "translate":
        from crest.translate.plan import resolve_languages

        langs, _ = resolve_languages(config["translate"], config["languages"]["groups"], table)
        return trainable_candidates(config, table, langs)
    return trainable_candidates(config, table, group_or_codes(value, config))


def check_cluster(config: dict[str, Any], table: dict[str, Language], origin: str = "config") -> None:
    """Checked only when the stage runs (embed.input set): the defaults name the group `train`."""
    if not embed_enabled(config):
        return
    section = config["cluster"]
    lo, hi = section["k_range"]
    if lo > hi:
        raise ConfigError(f"{origin}: cluster.k_range: [{lo}, {hi}] is empty (smallest k first)")
    if section["k_select"] == "fixed" and section["k"] is None:
        raise ConfigError(f"{origin}: cluster.k: null, but cluster.k_select is fixed (set k, or a criterion)")
    anchors = section["anchors"]
    check_language_list(anchors["fixed"], config, table, "cluster.anchors.fixed", origin)
    if anchors["candidates"] != "translate":
        check_language_list(anchors["candidates"], config, table, "cluster.anchors.candidates", origin)
    elif "translate" not in config:
        raise ConfigError(f"{origin}: cluster.anchors.candidates: 'translate' needs a translate section")
    fixed, _ = fixed_anchor_list(config)
    if anchors["mode"] == "fixed" and len(fixed) > anchors["budget"]:
        raise ConfigError(f"{origin}: cluster.anchors.fixed has {len(fixed)} languages, more than "
                          f"cluster.anchors.budget = {anchors['budget']}")
    if section["layer"] is not None and section["layer"] not in config["embed"]["layers"]:
        raise ConfigError(f"{origin}: cluster.layer: {section['layer']} is not one of embed.layers "
                          f"{config['embed']['layers']}")
