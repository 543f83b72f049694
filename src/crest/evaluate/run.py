"""Score one model on every evaluation set and write, per set, the predictions (id, prob_unsafe,
label, ...) and the metrics json. The model is loaded once per job: on a GPU, loading XLM-R Large
costs more than scoring a benchmark, so one job per (model, set) would spend most of its time
loading.

Every metrics file holds both operating points (`operating_points`): the run's threshold
(`evaluate.threshold`, 0.5) and the model's calibrated one (settings `calibrated`: [threshold,
source], read from the model's crest_guard.json by the CLI; a baseline's official decision rule).

A set whose json says `missing` gets an empty predictions file and a metrics json with
status `missing` and the reason: tables show that cell as missing, never as zero."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.evaluate.metrics import binary_metrics, default_thresholds
from crest.evaluate.sets import MISSING, OK, read_set
from crest.io import write_json, write_parquet

log = logging.getLogger(__name__)

PRED_COLUMNS = ["id", "prob_unsafe", "label", "lang", "source", "category"]
DEFAULT_SETTINGS = {"threshold": 0.5, "bootstrap": {"resamples": 1000, "level": 0.95, "seed": 13},
                    "sweep_step": 0.05, "curve_points": 200}


def metrics_path(pred: str | Path) -> Path:
    pred = Path(pred)
    return pred.with_name(pred.name.removesuffix(".parquet") + ".metrics.json")


def _find_key(obj: Any, key: str) -> list[Any]:
    if isinstance(obj, dict):
        found = [obj[key]] if key in obj else []
        for v in obj.values():
            found += _find_key(v, key)
        return found
    if isinstance(obj, list):
        return [x for v in obj for x in _find_key(v, key)]
    return []


SKIP_JSON = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "generation_config.json", "added_tokens.json", "trainer_state.json"}


def model_provenance(model_dir: str | Path) -> dict[str, Any]:
    """What the model directory says about its training data, loosely coupled to the training
    stage: every top-level json (weights and tokenizer configs aside) is searched for
    `translator_is_random`; any true means the model learnt from random-weight translations. The
    hub revision of the encoder it was fine-tuned from (provenance.json `encoder_hub`, crest.hub)
    is `revision`."""
    model_dir = Path(model_dir)
    found: list[Any] = []
    files = []
    revision = None
    for path in sorted(model_dir.glob("*.json")):
        if path.name in SKIP_JSON:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for read in _find_key(doc, "encoder_hub"):
            revision = revision or (read.get("revision") if isinstance(read, dict) else None)
        hits = _find_key(doc, "translator_is_random")
        if hits:
            files.append(path.name)
        found += hits
    return {"translator_is_random": any(bool(x) for x in found), "provenance_files": files, "revision": revision}


def evaluate_sets(scorer_factory: Callable[[], Any], set_paths: Sequence[str | Path], out_paths: Sequence[str | Path],
                  model: dict[str, Any], settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Score every set (`set_paths[i]` -> predictions `out_paths[i]` + its .metrics.json). The model
    is built by `scorer_factory()` on the first set that exists (never, if all are missing)."""
    s = {**DEFAULT_SETTINGS, **(settings or {})}
    boot = {**DEFAULT_SETTINGS["bootstrap"], **s.get("bootstrap", {})}
    thresholds = default_thresholds(s["sweep_step"])
    scorer = None
    results = []
    for set_path, out in zip(set_paths, out_paths, strict=True):
        df, meta = read_set(set_path)
        record: dict[str, Any] = {
            "model": model, "benchmark": meta["benchmark"], "lang": meta["lang"], "group": meta["group"],
            "title": meta.get("title"), "kind": meta["kind"], "set": str(set_path),
            "set_translator_is_random": bool(meta.get("translator_is_random")),
            "translation_backend": meta.get("translation_backend") or meta.get("backend"),
            "in_distribution": bool(meta.get("in_distribution")),
            "parallel": meta.get("parallel", meta["kind"] == "corpus"), "note": meta.get("note"),
            "class_floor": meta.get("class_floor"),
        }
        if meta["status"] != OK:
            write_parquet(pd.DataFrame({c: pd.Series(dtype="float32" if c == "prob_unsafe" else
                                                     ("int8" if c == "label" else "str")) for c in PRED_COLUMNS}), out)
            record.update(status=MISSING, reason=meta.get("reason"), n=0)
            write_json(record, metrics_path(out))
            results.append(record)
            log.info("%s/%s: missing (%s)", meta["benchmark"], meta["lang"], meta.get("reason"))
            continue
        if scorer is None:
            t0 = time.perf_counter()
            scorer = scorer_factory()
            log.info("model loaded in %.1f s", time.perf_counter() - t0)
        t0 = time.perf_counter()
        if meta["kind"] == "sources" and {"prompt", "response"} <= set(df.columns) \
                and getattr(scorer, "judges_responses", False):
            # a response-labelled source set: the judge sees the user/assistant conversation
            # (crest.evaluate.baselines). Only untranslated source sets: a translated set's text is the
            # translation, and English prompt/response columns carried along must not replace it.
            probs = np.asarray(scorer.score(df["prompt"].tolist(), responses=df["response"].tolist()), dtype=np.float32)
        else:
            probs = np.asarray(scorer.score(df["text"].tolist()), dtype=np.float32)
        seconds = time.perf_counter() - t0
        preds = pd.DataFrame({"id": df["id"], "prob_unsafe": probs, "label": df["label"].astype("int8"),
                              "lang": df["lang"], "source": df["source"], "category": df["category"]})
        calibrated = tuple(s["calibrated"]) if s.get("calibrated") else None
        metrics = binary_metrics(preds["label"].to_numpy(), probs, threshold=s["threshold"], calibrated=calibrated,
                                 bootstrap=boot["resamples"], level=boot["level"], seed=boot["seed"],
                                 thresholds=thresholds, curve_points=s["curve_points"],
                                 where=f"{meta['benchmark']}/{meta['lang']}")
        record.update(status=OK, reason=None, **metrics, seconds=round(seconds, 3),
                      texts_per_second=round(len(df) / seconds, 1) if seconds > 0 else None)
        if hasattr(scorer, "describe"):
            record["scorer"] = scorer.describe()
        write_parquet(preds, out)
        write_json(record, metrics_path(out))
        results.append(record)
        f1 = "undefined" if metrics["f1"] is None else f"{metrics['f1']:.4f}"
        log.info("%s/%s: n=%d F1=%s (%.0f texts/s)", meta["benchmark"], meta["lang"], len(df), f1,
                 len(df) / max(seconds, 1e-9))
    return results
