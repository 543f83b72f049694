"""Choose the decision threshold for a target recall or false-positive rate on held-out data,
and store it with the model (the model card says which and how it was chosen)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from crest.guard.model import GUARD_FILE, load_guard_file
from crest.io import write_json, write_text

CARD_START, CARD_END = "<!-- crest:threshold -->", "<!-- /crest:threshold -->"


def calibrate_threshold(probs: np.ndarray, labels: np.ndarray, *, target_recall: float | None = None,
                        target_fpr: float | None = None) -> dict[str, Any]:
    """The highest threshold whose recall (unsafe class) is >= target_recall, or the lowest whose
    false-positive rate is <= target_fpr. A text is flagged when prob_unsafe >= threshold."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    if (target_recall is None) == (target_fpr is None):
        raise ValueError("give exactly one of target_recall and target_fpr")
    if probs.shape != labels.shape or probs.size == 0:
        raise ValueError(f"need equally long, non-empty probs and labels (got {probs.shape} and {labels.shape})")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got {sorted(set(np.unique(labels)))}")
    pos, neg = np.sort(probs[labels == 1])[::-1], np.sort(probs[labels == 0])[::-1]
    if target_recall is not None:
        if not 0 < target_recall <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        if pos.size == 0:
            raise ValueError("cannot calibrate for recall: no unsafe (label 1) examples")
        threshold = float(pos[math.ceil(target_recall * pos.size) - 1])
        target = {"target_recall": target_recall}
    else:
        if not 0 <= target_fpr < 1:
            raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
        if neg.size == 0:
            raise ValueError("cannot calibrate for false-positive rate: no safe (label 0) examples")
        allowed = math.floor(target_fpr * neg.size)  # negatives that may score >= threshold
        threshold = float(np.nextafter(neg[allowed], np.inf)) if allowed < neg.size else 0.0
        target = {"target_fpr": target_fpr}
    flagged = probs >= threshold
    tp = int((flagged & (labels == 1)).sum())
    recall = tp / pos.size if pos.size else None
    fpr = int((flagged & (labels == 0)).sum()) / neg.size if neg.size else None
    return {"threshold": threshold, **target, "target": target_statement(target, int(pos.size), int(neg.size)),
            "holds": bool(recall >= target_recall) if target_recall is not None else bool(fpr <= target_fpr),
            "flags_everything": bool(flagged.all()),
            "recall": recall, "fpr": fpr,
            "precision": tp / int(flagged.sum()) if flagged.any() else None,
            "n": int(probs.size), "n_unsafe": int(pos.size), "n_safe": int(neg.size)}


def target_statement(target: dict[str, float], n_unsafe: int, n_safe: int) -> str:
    """What the threshold was chosen to hold, on which rows: a recall target is met on the unsafe rows
    (the lowest false-positive rate that keeps it), an FPR target on the safe (benign) rows."""
    if "target_recall" in target:
        return (f"recall >= {target['target_recall']} on the {n_unsafe} unsafe rows, at the lowest false-positive "
                f"rate on the {n_safe} safe rows")
    return f"false-positive rate <= {target['target_fpr']} on the {n_safe} safe rows, at the highest recall"


def save_threshold(model_dir: str | Path, result: dict[str, Any], data_note: str = "") -> None:
    """Store the threshold in crest_guard.json and state it in the model card (README.md)."""
    model_dir = Path(model_dir)
    stored = load_guard_file(model_dir)
    stored.update(threshold=result["threshold"], calibration={**result, "data": data_note})
    write_json(stored, model_dir / GUARD_FILE)
    target = result.get("target") or (f"recall >= {result['target_recall']}" if "target_recall" in result
                                      else f"false-positive rate <= {result['target_fpr']}")
    measured = ", ".join(f"{k} {result[k]:.4f}" for k in ("recall", "fpr", "precision") if result.get(k) is not None)
    warning = (" It flags every one of those rows: the scores do not separate the classes there, so this "
               "threshold is the flag-everything value." if result.get("flags_everything") else "")
    section = (f"{CARD_START}\n## Decision threshold\n\n`{result['threshold']:.6f}`: chosen for {target} of "
               f"{data_note or 'held-out data'} (n = {result['n']}, {result['n_unsafe']} unsafe); measured there: "
               f"{measured}.{warning} `crest.guard.Guard` uses it unless given another.\n{CARD_END}\n")
    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    pattern = re.compile(re.escape(CARD_START) + ".*?" + re.escape(CARD_END) + "\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    write_text(text.lstrip("\n"), card)


def calibrate_model(model_dir: str | Path, probs: np.ndarray, labels: np.ndarray, *, target_recall: float | None = None,
                    target_fpr: float | None = None, note: str = "") -> dict[str, Any]:
    """Calibrate on a model's scores of labelled rows and store the threshold with it (what `crest
    guard calibrate` and a training job's `train.calibrate` both do)."""
    result = calibrate_threshold(probs, labels, target_recall=target_recall, target_fpr=target_fpr)
    save_threshold(model_dir, result, note)
    return result
