"""The language of a text when the caller gives none, for per-language thresholds.

py3langid (BSD-3, a maintained fork of langid.py: a byte n-gram naive Bayes model shipped inside
the wheel as a numpy archive, no pickle, no network), restricted to the languages of XLM-R's table
that it knows (90 of 100). Measured on the demo's translated safety rows (docs/guard.md,
"Operating points per language"): 97.6% right over 19 languages, 93% on texts under 40 characters,
and most errors land on a neighbour of the same language-map cluster (gl as pt, bg as ru, hi as
ne). A guess below MIN_CONFIDENCE is no language: the text is then judged at the global threshold.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

MIN_CONFIDENCE = 0.5  # normalised probability of the top language; below it, no language
MAX_CHARS = 2_000  # a text's first characters decide (cost is linear in length; more adds nothing)
_lock = threading.Lock()
_identifier: Any = None
_among: dict[tuple[str, ...], Any] = {}


def identifier() -> Any:
    """The py3langid model, loaded once per process (about 1.5 s)."""
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            from crest.languages import load_languages

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            ident.set_languages(sorted(set(load_languages()) & set(ident.labels)))
            _identifier = ident
        return _identifier


def detect_languages(texts: Sequence[str], min_confidence: float = MIN_CONFIDENCE) -> list[str | None]:
    """The most likely language of each text (from its first MAX_CHARS characters), or None when its
    probability is under `min_confidence` (or the text is blank)."""
    ident = identifier()
    out: list[str | None] = []
    for text in texts:
        lang, p = ident.classify(text[:MAX_CHARS]) if text.strip() else (None, 0.0)
        out.append(lang if p >= min_confidence else None)
    return out


def detect_among(texts: Sequence[str], codes: Sequence[str]) -> list[str]:
    """The most likely of `codes` for each text (a forced choice, no confidence floor): for a source
    known to mix these languages only (the data stage's `lang_detect`). A code py3langid does not
    know is refused, naming it; a blank text gets the first code."""
    key = tuple(codes)
    with _lock:
        ident = _among.get(key)
        if ident is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            unknown = [c for c in key if c not in ident.labels]
            if unknown:
                raise ValueError(f"lang_detect: py3langid does not know {', '.join(unknown)} "
                                 f"(it knows {len(ident.labels)} codes)")
            ident.set_languages(list(key))
            _among[key] = ident
    return [ident.classify(t[:MAX_CHARS])[0] if t.strip() else key[0] for t in texts]


def describe() -> dict[str, Any]:
    """What /v1/model says about detection."""
    from importlib.metadata import version

    return {"package": f"py3langid {version('py3langid')}", "min_confidence": MIN_CONFIDENCE,
            "max_chars": MAX_CHARS}
