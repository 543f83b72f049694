"""Operating points per language: a threshold calibrated on each language's own validation rows.

One global threshold hides what a multilingual guard does per language (users of English-first
guards report a third of benign Hinglish requests blocked). `calibrate_languages` chooses, for
every language with at least `min_rows` rows of each class, the threshold that meets the same
target (recall or false-positive rate) on that language's rows, with `calibrate_threshold`. Given
the run's language map (clusters.tsv of the cluster stage), it does the same for each cluster on
the pooled rows of its languages, and keeps the map: a language without its own threshold (too few
rows, or none: a language the model never saw) is judged at its cluster's, else at the global one.
The result goes into crest_guard.json under "languages", "clusters" and "language_clusters" (read
by `Guard.thresholds`), and into the model card.

The language of a text is the caller's when given, else detected (crest.guard.langid).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crest.guard.calibrate import calibrate_threshold
from crest.guard.model import GUARD_FILE, load_guard_file, normalise_lang
from crest.io import write_json, write_text
from crest.paths import display_path

CARD_START, CARD_END = "<!-- crest:languages -->", "<!-- /crest:languages -->"


def per_language(probs: np.ndarray, labels: np.ndarray, langs: Sequence[str], *, target_recall: float | None = None,
                 target_fpr: float | None = None, min_rows: int = 20) -> tuple[dict[str, Any], dict[str, str]]:
    """({language: calibration} for languages with >= min_rows rows of each class, {language: why
    not} for the others)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    keys = np.array([normalise_lang(lang) for lang in langs])
    if not (len(keys) == len(probs) == len(labels)):
        raise ValueError(f"{len(probs)} scores, {len(labels)} labels, {len(keys)} languages: not one per row")
    chosen, skipped = {}, {}
    for lang in sorted(set(keys.tolist())):
        rows = keys == lang
        n_unsafe, n_safe = int(labels[rows].sum()), int((labels[rows] == 0).sum())
        if min(n_unsafe, n_safe) < min_rows:
            skipped[lang] = f"{n_unsafe} unsafe and {n_safe} safe rows (< {min_rows} of each): no threshold of its own"
            continue
        chosen[lang] = calibrate_threshold(probs[rows], labels[rows], target_recall=target_recall, target_fpr=target_fpr)
    return chosen, skipped


def read_language_map(path: str | Path) -> dict[str, str]:
    """{language: cluster} from a cluster stage's clusters.tsv; HDBSCAN's noise (cluster -1) is no
    cluster. Codes normalised as thresholds are keyed."""
    from crest.evaluate.roles import read_cluster_tsv

    return {normalise_lang(lang): str(c) for lang, c in read_cluster_tsv(path).items() if str(c) not in ("", "-1")}


def default_language_map(model_dir: str | Path) -> Path | None:
    """The language map of the run a pipeline model belongs to: `{run}/clusters/{method}/clusters.tsv`
    of the paper's method, k-means (the first of `cluster.methods` in both shipped configs), if
    the run wrote one."""
    from crest.guard.feedback import run_dir_of

    run = run_dir_of(model_dir)
    path = run / "clusters" / DEFAULT_MAP_METHOD / "clusters.tsv" if run is not None else None
    return path if path is not None and path.is_file() else None


DEFAULT_MAP_METHOD = "kmeans"


def per_cluster(probs: np.ndarray, labels: np.ndarray, langs: Sequence[str], language_map: dict[str, str], *,
                target_recall: float | None = None, target_fpr: float | None = None,
                min_rows: int = 20) -> tuple[dict[str, Any], dict[str, str]]:
    """`per_language` over clusters: each cluster's rows are those of its languages (a row whose
    language is not in the map belongs to none). Each calibration names the languages pooled."""
    keys = [normalise_lang(lang) for lang in langs]
    clusters = [language_map.get(k, "") for k in keys]
    chosen, skipped = per_language(probs, labels, clusters, target_recall=target_recall, target_fpr=target_fpr,
                                   min_rows=min_rows)
    for c in list(chosen) + list(skipped):
        if c == "":
            skipped.pop(c, None)
            continue
        pooled = sorted({k for k, kc in zip(keys, clusters, strict=True) if kc == c})
        if c in chosen:
            chosen[c]["languages"] = pooled
        else:
            skipped[c] = f"{skipped[c]} ({', '.join(pooled)})"
    return chosen, skipped


def calibrate_languages(model_dir: str | Path, probs: np.ndarray, labels: np.ndarray, langs: Sequence[str], *,
                        target_recall: float | None = None, target_fpr: float | None = None, min_rows: int = 20,
                        note: str = "", language_map: str | Path | None = None) -> dict[str, Any]:
    """Calibrate per language, and per cluster of `language_map` (a clusters.tsv) when given, and
    store the thresholds with the model (replacing earlier ones)."""
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    target = {"target_recall": target_recall, "target_fpr": target_fpr}
    chosen, skipped = per_language(probs, labels, langs, **target, min_rows=min_rows)
    clusters, cluster_skipped, mapping = {}, {}, {}
    if language_map is not None:
        mapping = read_language_map(language_map)
        clusters, cluster_skipped = per_cluster(probs, labels, langs, mapping, **target, min_rows=min_rows)
    model_dir = Path(model_dir)
    stored = load_guard_file(model_dir)
    stored["languages"] = chosen
    stored["clusters"] = clusters
    stored["language_clusters"] = mapping if clusters else {}  # a map without thresholds changes nothing
    stored["language_calibration"] = {"min_rows_per_class": min_rows, "data": note, "fallback": skipped,
                                      **({"target_recall": target_recall} if target_recall is not None
                                         else {"target_fpr": target_fpr}),
                                      "language_map": None if language_map is None else display_path(language_map),
                                      "cluster_fallback": cluster_skipped}
    write_json(stored, model_dir / GUARD_FILE)
    write_card(model_dir / "README.md", chosen, skipped, stored.get("threshold"), clusters, cluster_skipped,
               stored["language_calibration"]["language_map"])
    return {"languages": {k: v["threshold"] for k, v in chosen.items()}, "fallback": skipped,
            "clusters": {k: v["threshold"] for k, v in clusters.items()}, "cluster_fallback": cluster_skipped}


def write_card(card: Path, chosen: dict[str, Any], skipped: dict[str, str], global_threshold: float | None,
               clusters: dict[str, Any] | None = None, cluster_skipped: dict[str, str] | None = None,
               language_map: str | None = None) -> None:
    lines = [CARD_START, "## Thresholds per language", "",
             f"The global threshold is `{global_threshold}`. Calibrated on each language's own rows (same target):", "",
             "| language | threshold | recall | FPR | rows | unsafe |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    for lang, r in chosen.items():
        lines.append(f"| {lang} | {r['threshold']:.6f} | {fmt(r['recall'])} | {fmt(r['fpr'])} | {r['n']} | {r['n_unsafe']} |")
    if skipped:
        lines += ["", "No threshold of their own (too few rows): " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    if clusters or cluster_skipped:
        lines += ["", f"Per cluster of the language map `{language_map}` (the pooled rows of its languages):", "",
                  "| cluster | languages | threshold | recall | FPR | rows | unsafe |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for c, r in (clusters or {}).items():
            lines.append(f"| {c} | {', '.join(r['languages'])} | {r['threshold']:.6f} | {fmt(r['recall'])} | "
                         f"{fmt(r['fpr'])} | {r['n']} | {r['n_unsafe']} |")
        if cluster_skipped:
            lines += ["", "Clusters without a threshold: " + "; ".join(f"{k}: {v}" for k, v in cluster_skipped.items())]
    lines += ["", "A text is judged at its language's threshold, else at its cluster's (any language of the map, "
              "also one without validation rows), else at the global one. Its language is the caller's, or "
              "detected when the caller gives none.", CARD_END, ""]
    section = "\n".join(lines)
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    pattern = re.compile(re.escape(CARD_START) + ".*?" + re.escape(CARD_END) + "\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    write_text(text.lstrip("\n"), card)
