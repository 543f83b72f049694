"""How far two language maps agree: the embedding map against the typology map.

`clusters/agreement.md` (and `.json`) answers "is it the embeddings, or just language families?":

1. the partitions: adjusted Rand index (ARI: 0 = chance level, 1 = the same partition) and
   normalised mutual information (NMI, arithmetic normalisation, scikit-learn's default) between
   the embedding map and the typology map, over the languages both have, for the combined
   typology vectors and for each feature set clustered alone (the same method and k);
2. the anchors: the primary method's (the crest arm's) against the typology map's, placed in the
   embedding map's clusters (`crest.cluster.anchors.agreement`);
3. the primary method's computed anchors against the fixed list (the paper's 13), as in its own
   agreement.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crest.cluster.anchors import agreement, agreement_markdown
from crest.io import write_json, write_text


def partition_agreement(a: Sequence[int], b: Sequence[int]) -> dict[str, float]:
    """ARI and NMI of two labelings of the same languages (label ids need not match)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if len(a) != len(b):
        raise ValueError(f"agreement: partitions of {len(a)} and {len(b)} languages")
    return {"ari": round(float(adjusted_rand_score(a, b)), 4), "nmi": round(float(normalized_mutual_info_score(a, b)), 4)}


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"language": str})


def map_agreement(reference_dir: str | Path, typology_dir: str | Path) -> dict[str, Any]:
    """The report of the module docstring, from the two maps' directories."""
    reference_dir, typology_dir = Path(reference_dir), Path(typology_dir)
    ref = json.loads((reference_dir / "cluster.json").read_text(encoding="utf-8"))
    typ = json.loads((typology_dir / "typology.json").read_text(encoding="utf-8"))
    emb = _tsv(reference_dir / "clusters.tsv").astype({"cluster": int})
    sets = _tsv(typology_dir / "feature_sets.tsv")
    cluster_of = dict(zip(emb["language"], emb["cluster"]))
    shared = [c for c in sets["language"] if c in cluster_of]
    sets = sets.set_index("language").loc[shared]
    truth = [cluster_of[c] for c in shared]
    rows = [{"vectors": col, **partition_agreement(truth, sets[col].astype(int).tolist()),
             "k": int(sets[col].nunique())} for col in sets.columns]
    crest = _tsv(reference_dir / "anchors.tsv")["language"].tolist()
    typology = _tsv(typology_dir / "anchors.tsv")["language"].tolist()
    anchors = agreement(emb, crest, typology, reference_name="typology")
    fixed = json.loads((reference_dir / "anchors.json").read_text(encoding="utf-8")).get("agreement")
    return {"reference_method": ref["method"], "reference_k": ref["k"], "reference_languages": ref["languages"],
            "typology_method": typ["method"], "typology_k": typ["k"], "feature_sets": typ["feature_sets"],
            "languages": len(shared), "uriel_lacks": typ["lacking"],
            "not_in_typology_map": sorted(set(cluster_of) - set(shared)),
            "partitions": rows, "anchors": anchors, "fixed": fixed}


def agreement_document(report: dict[str, Any]) -> str:
    method, k = report["reference_method"], report["reference_k"]
    lines = ["# Language maps: agreement", "",
             f"## Embedding map ({method}, k = {k}) vs typology map (URIEL)", "",
             f"- typology map: {' + '.join(report['feature_sets'])}, each set weighing the same; "
             f"{report['typology_method']} with the embedding map's k = {report['typology_k']}",
             f"- languages compared: {report['languages']} of the embedding map's {report['reference_languages']}"
             + (f" (URIEL lacks {', '.join(report['uriel_lacks'])})" if report["uriel_lacks"] else ""),
             "- ARI: adjusted Rand index (0 = chance, 1 = the same partition); NMI: normalised mutual information",
             "", "| typology vectors | ARI | NMI | clusters |", "| --- | --- | --- | --- |"]
    for row in report["partitions"]:
        name = f"combined ({' + '.join(report['feature_sets'])})" if row["vectors"] == "combined" else row["vectors"]
        lines.append(f"| {name} | {row['ari']:.3f} | {row['nmi']:.3f} | {row['k']} |")
    text = "\n".join(lines) + "\n\n"
    text += agreement_markdown(report["anchors"], title=f"Anchors: {method} (crest arm) vs typology map",
                               level=2, computed_name=method)
    if report["fixed"]:
        text += "\n" + agreement_markdown(report["fixed"], title=f"Anchors: {method} vs {report['fixed']['reference']}"
                                          " (fixed list)", level=2, computed_name=method)
    return text


def write_agreement(reference_dir: str | Path, typology_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """agreement.md and agreement.json (same stem) for the two maps."""
    report = map_agreement(reference_dir, typology_dir)
    write_json(report, Path(out).with_suffix(".json"))
    write_text(agreement_document(report), out)
    return report
