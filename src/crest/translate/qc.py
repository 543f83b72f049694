"""Quality checks on translations, one row at a time, and the drop policy.

Checks (a row may fail several):

- `empty`: the translation is blank.
- `length_ratio`: output/source length in characters outside [length_ratio_min, length_ratio_max],
  or more than `length_ratio_relative` times away from the language's median ratio (scripts
  differ in characters per word, so the median is the yardstick): omissions and hallucinations.
- `loop`: a repeated n-gram loop: a unit of 1..`loop_max_ngram` words repeated `loop_repeats`
  times in a row, or a run of characters (no spaces, for scripts without them) repeated
  `loop_char_repeats` times, and more often than in the source.
- `length_cap`: decoding stopped at the length cap (a loop, or a cut translation).
- `copy`: the output equals the source (case, punctuation and spacing ignored): untranslated.
- `script`: fewer than `script_min_fraction` of the output's letters are in the target
  language's script (the language table's `script` column).

The policy drops rows failing any check listed in `drop`; the others are only flagged. A shard
losing more than `max_drop_fraction` of its rows is an error: the translation is broken, and a
silently emptied language would bias everything downstream.
"""

from __future__ import annotations

import functools
import re
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

CHECKS = ("empty", "length_ratio", "loop", "length_cap", "copy", "script")

# ISO 15924 code -> the first word(s) of Unicode character names in that script.
SCRIPT_NAMES: dict[str, tuple[str, ...]] = {
    "Latn": ("LATIN",), "Cyrl": ("CYRILLIC",), "Arab": ("ARABIC",), "Deva": ("DEVANAGARI",),
    "Beng": ("BENGALI",), "Ethi": ("ETHIOPIC",), "Grek": ("GREEK",), "Gujr": ("GUJARATI",),
    "Hebr": ("HEBREW",), "Armn": ("ARMENIAN",), "Geor": ("GEORGIAN",), "Khmr": ("KHMER",),
    "Knda": ("KANNADA",), "Laoo": ("LAO",), "Mlym": ("MALAYALAM",), "Mymr": ("MYANMAR",),
    "Orya": ("ORIYA",), "Guru": ("GURMUKHI",), "Sinh": ("SINHALA",), "Taml": ("TAMIL",),
    "Telu": ("TELUGU",), "Thai": ("THAI",), "Tibt": ("TIBETAN",), "Tfng": ("TIFINAGH",),
    "Hans": ("CJK",), "Hant": ("CJK",), "Hani": ("CJK",),
    "Jpan": ("CJK", "HIRAGANA", "KATAKANA"), "Hang": ("HANGUL", "CJK"),
}


@dataclass(frozen=True)
class QCConfig:
    """The `translate.qc` config section."""

    drop: tuple[str, ...] = CHECKS
    length_ratio_min: float = 0.1
    length_ratio_max: float = 8.0
    length_ratio_relative: float = 3.0
    loop_repeats: int = 4
    loop_max_ngram: int = 4
    loop_char_repeats: int = 8
    copy_min_chars: int = 5
    script_min_fraction: float = 0.5
    script_min_letters: int = 3
    max_drop_fraction: float = 0.5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.drop) - set(CHECKS))
        if unknown:
            raise ValueError(f"qc.drop: unknown check(s) {unknown}; known: {list(CHECKS)}")

    @classmethod
    def from_config(cls, section: dict) -> QCConfig:
        kw = {k: section[k] for k in cls.__dataclass_fields__ if k in section}
        if "drop" in kw:
            kw["drop"] = tuple(kw["drop"])
        return cls(**kw)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["drop"] = list(self.drop)
        return d


class QCError(ValueError):
    """Too many rows of a shard failed the checks the policy drops on."""


# -- single checks -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """The first word of a character's Unicode name (`LATIN`, `CJK`, `DEVANAGARI`), '' if none."""
    name = unicodedata.name(ch, "")
    for prefix in ("FULLWIDTH ", "HALFWIDTH "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.split(" ", 1)[0]


def script_fraction(text: str, script: str) -> tuple[float, int]:
    """(share of letters in `script`, number of letters). Unknown scripts count as matching."""
    names = SCRIPT_NAMES.get(script)
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not letters or names is None:
        return 1.0, len(letters)
    hits = sum(1 for c in letters if char_script(c) in names)
    return hits / len(letters), len(letters)


def _has_letter(s: str) -> bool:
    return any(c.isalpha() for c in s)


@functools.lru_cache(maxsize=32)
def _word_loop_re(max_ngram: int) -> re.Pattern:
    return re.compile(rf"(?<!\S)((?:\S+\s+){{1,{max_ngram}}}?)\1+")


_CHAR_LOOP_RE = re.compile(r"(\S{1,10}?)\1+")


def loop_repeats(text: str, max_ngram: int = 4) -> tuple[int, int]:
    """(most consecutive copies of a 1..max_ngram-word unit, most consecutive copies of a
    1..10-character run without spaces); units without a letter ("...", "1 1 1") do not count."""
    words = 1
    for m in _word_loop_re(max_ngram).finditer(text.strip() + " "):
        unit = m.group(1)
        if _has_letter(unit):
            words = max(words, len(m.group(0)) // len(unit))
    chars = 1
    for m in _CHAR_LOOP_RE.finditer(text):
        unit = m.group(1)
        if _has_letter(unit):
            chars = max(chars, len(m.group(0)) // len(unit))
    return words, chars


def _normalise(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def is_copy(source: str, output: str, min_chars: int = 5) -> bool:
    norm = _normalise(source)
    return len(norm) >= min_chars and norm == _normalise(output)


# -- a shard --------------------------------------------------------------------------------------
@dataclass
class QCResult:
    table: pd.DataFrame
    """One row per input row: id, measures, one bool column per check, dropped, reasons."""
    summary: dict = field(default_factory=dict)


def run_qc(ids: Sequence[str], sources: Sequence[str], outputs: Sequence[str], script: str,
           config: QCConfig, capped: Sequence[bool] | None = None, same_language: bool = False) -> QCResult:
    """Check every (source, output) pair of one target language and apply the drop policy."""
    n = len(ids)
    capped = list(capped) if capped is not None else [False] * n
    ratios = [len(o.strip()) / max(1, len(s.strip())) for s, o in zip(sources, outputs)]
    nonzero = [r for r in ratios if r > 0]
    median = statistics.median(nonzero) if nonzero else 1.0
    rows = []
    for i in range(n):
        src, out, ratio = sources[i], outputs[i], ratios[i]
        w_out, c_out = loop_repeats(out, config.loop_max_ngram)
        w_src, c_src = loop_repeats(src, config.loop_max_ngram)
        frac, letters = script_fraction(out, script)
        rel = ratio / median if median > 0 else 1.0
        flags = {
            "empty": not out.strip(),
            "length_ratio": bool(out.strip()) and (
                ratio < config.length_ratio_min or ratio > config.length_ratio_max
                or rel > config.length_ratio_relative or rel < 1 / config.length_ratio_relative),
            "loop": (w_out >= config.loop_repeats and w_out > w_src)
            or (c_out >= config.loop_char_repeats and c_out > c_src),
            "length_cap": bool(capped[i]),
            "copy": not same_language and is_copy(src, out, config.copy_min_chars),
            "script": letters >= config.script_min_letters and frac < config.script_min_fraction,
        }
        reasons = [c for c in CHECKS if flags[c]]
        dropped = any(flags[c] for c in config.drop)
        rows.append({"id": ids[i], "char_ratio": round(ratio, 4), "relative_ratio": round(rel, 4),
                     "loop_word_repeats": w_out, "loop_char_repeats": c_out,
                     "script_fraction": round(frac, 4), **flags, "dropped": dropped, "reasons": ",".join(reasons)})
    table = pd.DataFrame(rows, columns=["id", "char_ratio", "relative_ratio", "loop_word_repeats",
                                        "loop_char_repeats", "script_fraction", *CHECKS, "dropped", "reasons"])
    summary = summarise(table, config, median)
    return QCResult(table=table, summary=summary)


def summarise(table: pd.DataFrame, config: QCConfig, median_ratio: float) -> dict:
    n = len(table)
    dropped = table["dropped"] if n else pd.Series([], dtype=bool)
    ratios = table["char_ratio"] if n else pd.Series([], dtype=float)
    return {
        "rows_in": n,
        "rows_kept": int(n - dropped.sum()),
        "rows_dropped": int(dropped.sum()),
        "drop_fraction": round(float(dropped.mean()), 4) if n else 0.0,
        "flagged": {c: int(table[c].sum()) for c in CHECKS},
        "dropped": {c: int((table[c] & dropped).sum()) if c in config.drop else 0 for c in CHECKS},
        "length_ratio": {"median": round(median_ratio, 4),
                         "p05": round(float(ratios.quantile(0.05)), 4) if n else None,
                         "p95": round(float(ratios.quantile(0.95)), 4) if n else None},
        "script_fraction_mean": round(float(table["script_fraction"].mean()), 4) if n else None,
        "policy": config.as_dict(),
    }


def check_drop_fraction(summary: dict, config: QCConfig, where: str) -> None:
    if summary["rows_in"] and summary["drop_fraction"] > config.max_drop_fraction:
        worst = ", ".join(f"{c}: {k}" for c, k in summary["dropped"].items() if k)
        raise QCError(f"{where}: QC would drop {summary['rows_dropped']} of {summary['rows_in']} rows "
                      f"({summary['drop_fraction']:.0%} > max_drop_fraction {config.max_drop_fraction}); "
                      f"by check: {worst}. The translation looks broken; see the QC table, or raise "
                      "translate.qc.max_drop_fraction / narrow translate.qc.drop if this is expected")
