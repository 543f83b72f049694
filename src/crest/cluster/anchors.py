"""Anchor languages: 1-2 high-resource languages per cluster, 13 in all (the CREST recipe).

Score of a language (both parts in [0, 1]):

    size       = log(1 + CC-100 GiB) / log(1 + largest CC-100 GiB in the table)    (English = 1)
    centrality = 1 - distance to its cluster's centroid / largest such distance in the cluster
                 (1 for a language alone in its cluster)
    score      = size_weight * size + (1 - size_weight) * centrality

Picks (`pick_anchors`), deterministic, each with its reason:

1. Clusters are visited largest first (ties: lower cluster id). Each gets one anchor: its
   best-scoring language of at least `min_tier` (tiers: config/languages.tsv, from CC-100 size).
2. A cluster with no such language (a cluster of low-resource languages) follows `fallback`:
   `largest` takes its language with the most CC-100 data, whatever its tier, and says so in the
   reason (the paper's sw and tl are anchors of this kind); `none` leaves it without an anchor.
3. While budget remains, clusters get a further anchor, largest clusters first, one per cluster
   per round, up to `per_cluster`: the next best-scoring language of at least `min_tier`.
4. With more clusters than the budget, the largest clusters are covered and the rest are listed
   as uncovered (no error: HDBSCAN decides its own number of clusters).
5. Only `candidates` may be picked when a candidate list is given (the languages training data
   exists for, e.g. the translation stage's); a cluster without any is listed as uncovered.

`fixed_anchors` takes a given list instead (the paper's 13), scores each and names its cluster;
`agreement` compares two anchor lists over the clusters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crest.languages import Language

TIER_RANK = {"high": 2, "mid": 1, "low": 0}
ANCHOR_COLUMNS = ["language", "cluster", "score", "size_score", "centrality", "cc100_gib", "tier", "pick", "reason"]


@dataclass(frozen=True)
class AnchorRules:
    budget: int = 13
    per_cluster: int = 2
    min_tier: str = "high"
    fallback: str = "largest"  # largest | none
    size_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.budget < 1 or self.per_cluster < 1:
            raise ValueError(f"anchors: budget ({self.budget}) and per_cluster ({self.per_cluster}) must be >= 1")
        if self.min_tier not in TIER_RANK:
            raise ValueError(f"anchors: min_tier must be one of {list(TIER_RANK)}, not {self.min_tier!r}")
        if self.fallback not in ("largest", "none"):
            raise ValueError(f"anchors: fallback must be largest or none, not {self.fallback!r}")
        if not 0 <= self.size_weight <= 1:
            raise ValueError(f"anchors: size_weight must be in [0, 1], not {self.size_weight}")


def score_languages(clusters: pd.DataFrame, table: Mapping[str, Language], size_weight: float = 0.5) -> pd.DataFrame:
    """`clusters` (language, cluster, distance) with size_score, centrality, score, cc100_gib, tier."""
    unknown = sorted(set(clusters["language"]) - set(table))
    if unknown:
        raise ValueError(f"anchors: language(s) not in the language table: {', '.join(unknown)}")
    top = math.log1p(max(lang.cc100_gib for lang in table.values()))
    df = clusters[["language", "cluster", "distance"]].copy()
    df["cc100_gib"] = df["language"].map(lambda c: table[c].cc100_gib)
    df["tier"] = df["language"].map(lambda c: table[c].tier)
    df["size_score"] = df["cc100_gib"].map(lambda g: math.log1p(g) / top if top > 0 else 0.0)
    far = df.groupby("cluster")["distance"].transform("max")
    df["centrality"] = np.where(far > 0, 1 - df["distance"] / far.where(far > 0, 1), 1.0)
    df["score"] = size_weight * df["size_score"] + (1 - size_weight) * df["centrality"]
    return df


def _row(r: pd.Series, pick: int, reason: str) -> dict[str, Any]:
    return {"language": r["language"], "cluster": int(r["cluster"]), "score": round(float(r["score"]), 4),
            "size_score": round(float(r["size_score"]), 4), "centrality": round(float(r["centrality"]), 4),
            "cc100_gib": float(r["cc100_gib"]), "tier": r["tier"], "pick": pick, "reason": reason}


def pick_anchors(clusters: pd.DataFrame, table: Mapping[str, Language], rules: AnchorRules | None = None,
                 candidates: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(anchors.tsv rows, notes: uncovered clusters, budget used). See the module docstring.

    `candidates`: the languages that may be anchors at all (those with training data, e.g. the
    translation stage's languages); None = every clustered language. A cluster without a
    candidate stays uncovered."""
    rules = rules or AnchorRules()
    scored = score_languages(clusters, table, rules.size_weight)
    scored = scored.sort_values(["score", "cc100_gib", "language"], ascending=[False, False, True])
    sizes = scored.groupby("cluster").size()
    order = sorted(sizes.index, key=lambda c: (-sizes[c], c))
    if candidates is not None:
        scored = scored[scored["language"].isin(set(candidates))]
    eligible = scored[scored["tier"].map(TIER_RANK) >= TIER_RANK[rules.min_tier]]
    picks: list[dict[str, Any]] = []
    taken: set[str] = set()
    per: dict[int, int] = {c: 0 for c in order}
    uncovered: list[dict[str, Any]] = []

    for rank, c in enumerate(order, 1):
        members = scored[scored["cluster"] == c]
        if len(picks) >= rules.budget:
            uncovered.append({"cluster": int(c), "languages": int(sizes[c]), "why": "budget exhausted"})
            continue
        if members.empty:
            uncovered.append({"cluster": int(c), "languages": int(sizes[c]), "why": "no candidate language"})
            continue
        cands = eligible[eligible["cluster"] == c]
        n, tier = int(sizes[c]), rules.min_tier
        if len(cands):
            r = cands.iloc[0]
            reason = (f"first anchor of cluster {c} ({n} languages, size rank {rank}): best score among its "
                      f"{len(cands)} language(s) of tier >= {tier}")
        elif rules.fallback == "largest":
            r = members.sort_values(["cc100_gib", "score", "language"], ascending=[False, False, True]).iloc[0]
            reason = (f"cluster {c} ({n} languages) has no language of tier >= {tier}; fallback: its largest "
                      f"CC-100 language ({r['cc100_gib']:g} GiB, tier {r['tier']})")
        else:
            uncovered.append({"cluster": int(c), "languages": n, "why": f"no language of tier >= {tier}"})
            continue
        picks.append(_row(r, 1, reason))
        taken.add(r["language"])
        per[c] += 1

    round_no = 2
    while len(picks) < rules.budget and round_no <= rules.per_cluster:
        added = False
        for rank, c in enumerate(order, 1):
            if len(picks) >= rules.budget:
                break
            if per[c] != round_no - 1:
                continue
            cands = eligible[(eligible["cluster"] == c) & ~eligible["language"].isin(taken)]
            if not len(cands):
                continue
            r = cands.iloc[0]
            picks.append(_row(r, round_no, f"anchor {round_no} of cluster {c} ({int(sizes[c])} languages, size "
                                           f"rank {rank}): next best score of tier >= {rules.min_tier}; "
                                           f"budget left after it: {rules.budget - len(picks) - 1}"))
            taken.add(r["language"])
            per[c] += 1
            added = True
        if not added:
            break
        round_no += 1

    anchors = pd.DataFrame(picks, columns=ANCHOR_COLUMNS)
    notes = {"mode": "computed", "budget": rules.budget, "used": len(anchors), "per_cluster": rules.per_cluster,
             "min_tier": rules.min_tier, "fallback": rules.fallback, "size_weight": rules.size_weight,
             "candidates": None if candidates is None else list(candidates),
             "clusters": len(order), "uncovered": uncovered}
    return anchors, notes


def fixed_anchors(clusters: pd.DataFrame, table: Mapping[str, Language], codes: Sequence[str],
                  rules: AnchorRules | None = None,
                  origin: str = "fixed list") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The given anchors, scored, with their clusters; a code missing from the clustering is an error."""
    rules = rules or AnchorRules()
    missing = [c for c in codes if c not in set(clusters["language"])]
    if missing:
        raise ValueError(f"anchors: {origin} names language(s) that were not clustered: {', '.join(missing)}")
    if len(codes) > rules.budget:
        raise ValueError(f"anchors: {origin} has {len(codes)} languages, more than the budget {rules.budget}")
    scored = score_languages(clusters, table, rules.size_weight).set_index("language", drop=False)
    counts: dict[int, int] = {}
    rows = []
    for code in codes:
        r = scored.loc[code]
        counts[int(r["cluster"])] = counts.get(int(r["cluster"]), 0) + 1
        rows.append(_row(r, counts[int(r["cluster"])], f"{origin}"))
    anchors = pd.DataFrame(rows, columns=ANCHOR_COLUMNS)
    over = {c: n for c, n in counts.items() if n > rules.per_cluster}
    covered = set(counts)
    uncovered = [{"cluster": int(c), "languages": int(n), "why": "no fixed anchor in it"}
                 for c, n in clusters.groupby("cluster").size().items() if c not in covered]
    notes = {"mode": "fixed", "origin": origin, "budget": rules.budget, "used": len(anchors),
             "clusters": int(clusters["cluster"].nunique()), "uncovered": uncovered,
             "over_per_cluster": {str(c): n for c, n in over.items()}}
    return anchors, notes


def agreement(clusters: pd.DataFrame, computed: Sequence[str], reference: Sequence[str],
              reference_name: str = "paper") -> dict[str, Any]:
    """How far two anchor lists agree: shared languages, Jaccard, and cluster by cluster which
    anchors each list puts there (a cluster covered by one list and not the other is the gap that
    matters for transfer)."""
    cluster_of = dict(zip(clusters["language"], clusters["cluster"].astype(int)))
    comp, ref = list(computed), [c for c in reference]
    both = [c for c in comp if c in ref]
    union = set(comp) | set(ref)
    per_cluster = []
    for c in sorted(set(cluster_of.values())):
        members = [lang for lang, k in cluster_of.items() if k == c]
        per_cluster.append({"cluster": c, "languages": len(members),
                            "computed": [x for x in comp if cluster_of.get(x) == c],
                            reference_name: [x for x in ref if cluster_of.get(x) == c]})
    covered_ref = {cluster_of[x] for x in ref if x in cluster_of}
    covered_comp = {cluster_of[x] for x in comp if x in cluster_of}
    return {
        "reference": reference_name, "computed_anchors": comp, "reference_anchors": ref,
        "shared": both, "only_computed": [c for c in comp if c not in ref],
        "only_reference": [c for c in ref if c not in comp],
        "reference_not_clustered": [c for c in ref if c not in cluster_of],
        "jaccard": round(len(both) / len(union), 4) if union else 1.0,
        "clusters": len(per_cluster), "clusters_covered_by_computed": len(covered_comp),
        "clusters_covered_by_reference": len(covered_ref),
        "clusters_without_reference_anchor": sorted(set(cluster_of.values()) - covered_ref),
        "per_cluster": per_cluster,
    }


def agreement_markdown(report: dict[str, Any], title: str | None = None, level: int = 1,
                       computed_name: str = "computed") -> str:
    """An `agreement` report as Markdown: the summary lines and the per-cluster table."""
    name = report["reference"]
    lines = [f"{'#' * level} {title or f'Anchors: {computed_name} vs {name}'}", "",
             f"- shared: {', '.join(report['shared']) or 'none'} ({len(report['shared'])} of "
             f"{len(report['computed_anchors'])} {computed_name}, {len(report['reference_anchors'])} {name})",
             f"- only {computed_name}: {', '.join(report['only_computed']) or 'none'}",
             f"- only {name}: {', '.join(report['only_reference']) or 'none'}",
             f"- Jaccard: {report['jaccard']}",
             f"- clusters covered: {computed_name} {report['clusters_covered_by_computed']}/{report['clusters']}, "
             f"{name} {report['clusters_covered_by_reference']}/{report['clusters']}"]
    if report["reference_not_clustered"]:
        lines.append(f"- {name} anchors absent from the clustering: {', '.join(report['reference_not_clustered'])}")
    lines += ["", f"| cluster | languages | {computed_name} | {name} |", "| --- | --- | --- | --- |"]
    for row in report["per_cluster"]:
        lines.append(f"| {row['cluster']} | {row['languages']} | {' '.join(row['computed']) or '-'} | "
                     f"{' '.join(row[name]) or '-'} |")
    return "\n".join(lines) + "\n"
