"""Operating points per language: a threshold calibrated on each language's own validation rows.

One global threshold hides what a multilingual guard does per language (users of English-first
guards report a third of benign Hinglish requests blocked). `calibrate_languages` chooses, for
every language with at least `min_rows` rows of each class, the threshold that meets the same
target (recall or false-positive rate) on that language's rows, with `calibrate_threshold`;
languages with fewer rows keep the global threshold and are listed as such. The result goes into
crest_guard.json under "languages" (read by `Guard`, `OnnxGuard`, `crest classify --lang/--lang-field`
and `crest serve`'s "lang"/"langs"), and into the model card.

The language of a text is the caller's: nothing is detected (a language-ID package would be one
more model to trust and measure; the caller usually knows the locale of its user).
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
            skipped[lang] = f"{n_unsafe} unsafe and {n_safe} safe rows (< {min_rows} of each): global threshold"
            continue
        chosen[lang] = calibrate_threshold(probs[rows], labels[rows], target_recall=target_recall, target_fpr=target_fpr)
    return chosen, skipped


def calibrate_languages(model_dir: str | Path, probs: np.ndarray, labels: np.ndarray, langs: Sequence[str], *,
                        target_recall: float | None = None, target_fpr: float | None = None, min_rows: int = 20,
                        note: str = "") -> dict[str, Any]:
    """Calibrate per language and store the thresholds with the model (replacing earlier ones)."""
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    chosen, skipped = per_language(probs, labels, langs, target_recall=target_recall, target_fpr=target_fpr,
                                   min_rows=min_rows)
    model_dir = Path(model_dir)
    stored = load_guard_file(model_dir)
    stored["languages"] = chosen
    stored["language_calibration"] = {"min_rows_per_class": min_rows, "data": note, "fallback": skipped,
                                      **({"target_recall": target_recall} if target_recall is not None
                                         else {"target_fpr": target_fpr})}
    write_json(stored, model_dir / GUARD_FILE)
    write_card(model_dir / "README.md", chosen, skipped, stored.get("threshold"))
    return {"languages": {k: v["threshold"] for k, v in chosen.items()}, "fallback": skipped}


def write_card(card: Path, chosen: dict[str, Any], skipped: dict[str, str], global_threshold: float | None) -> None:
    lines = [CARD_START, "## Thresholds per language", "",
             f"The global threshold is `{global_threshold}`. Calibrated on each language's own rows (same target):", "",
             "| language | threshold | recall | FPR | rows | unsafe |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    for lang, r in chosen.items():
        lines.append(f"| {lang} | {r['threshold']:.6f} | {fmt(r['recall'])} | {fmt(r['fpr'])} | {r['n']} | {r['n_unsafe']} |")
    if skipped:
        lines += ["", "Global threshold (too few rows): " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    lines += ["", "A text uses its language's threshold when the caller gives its language; otherwise the global one.",
              CARD_END, ""]
    section = "\n".join(lines)
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    pattern = re.compile(re.escape(CARD_START) + ".*?" + re.escape(CARD_END) + "\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    write_text(text.lstrip("\n"), card)
