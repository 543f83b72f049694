"""Code-switched evaluation sets built from our own translations, for any language pair.

A row of the matrix language (say English) and its translation into the embedded language (say
Hindi) are cut into aligned spans; a share `ratio` of the spans is replaced by the embedded side:

    "How do I pick a lock, and where can I buy the tools?"   (en)
    "मैं ताला कैसे खोलूं, और औज़ार कहाँ से खरीदूं?"               (hi)
    -> "How do I pick a lock, और औज़ार कहाँ से खरीदूं?"        (en-hi, ratio 0.5)

Span boundaries come from segmentation, coarsest first: sentences (crest.translate.segment), then
clauses (commas, semicolons, colons, dashes); a level is used when both sides cut into the same
number of spans (>= 2). Otherwise the matrix text is cut at clause boundaries, long clauses further
into runs of about `span_words` words, and each span is mapped onto the proportional stretch of the
embedded side (words, or characters for scripts written without spaces). That fallback is a
monotone length-proportional alignment, not a word aligner: spans may be cut mid-phrase on the
embedded side, which real code-switching rarely does. `alignment` records per row which level was
used, so a table can be restricted to the sentence/clause-aligned rows.

Which spans switch is drawn per row from a seed and the row id, so a set is reproducible and the
same rows switch the same spans for every model.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from crest.translate.segment import NO_SPACE_SCRIPTS, split_sentences

CLAUSE_END = re.compile(r"[,;:，；：、]\s*|\s[-–—]\s")
# Scripts written without spaces between words: proportional spans are cut in characters.
CHAR_SCRIPTS = NO_SPACE_SCRIPTS | {"Thai", "Laoo", "Khmr", "Mymr", "Tibt"}
UNITS = ("sentence", "clause")


@dataclass(frozen=True)
class Switched:
    text: str
    alignment: str
    """sentence | clause | proportional | none (nothing could be switched: a one-word text)"""
    spans: int
    switched: int
    switched_chars: float
    """Share of the output's characters (spaces excluded) that come from the embedded language."""


def split_clauses(text: str) -> list[str]:
    parts, start = [], 0
    for m in CLAUSE_END.finditer(text):
        parts.append(text[start:m.end()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _sentences(text: str) -> list[str]:
    return [s for line in text.split("\n") for s in split_sentences(line) if s.strip()]


def _clauses(text: str) -> list[str]:
    return [c for s in _sentences(text) for c in split_clauses(s)]


def _tokens(text: str, by_char: bool) -> list[str]:
    return [c for c in text if not c.isspace()] if by_char else text.split()


def _proportional(matrix: str, embedded: str, span_words: int, embedded_by_char: bool,
                  matrix_by_char: bool) -> tuple[list[str], list[str]]:
    """Matrix spans (clauses, long ones cut into runs of ~span_words tokens) and the embedded
    stretches covering the same share of the text."""
    spans: list[list[str]] = []
    for clause in _clauses(matrix) or [matrix]:
        toks = _tokens(clause, matrix_by_char)
        per = span_words * (3 if matrix_by_char else 1)
        n = max(1, round(len(toks) / per))
        for i in range(n):
            piece = toks[round(i * len(toks) / n):round((i + 1) * len(toks) / n)]
            if piece:
                spans.append(piece)
    total = sum(len(s) for s in spans)
    emb = _tokens(embedded, embedded_by_char)
    out_m, out_e, done = [], [], 0
    for s in spans:
        a, b = done / total, (done + len(s)) / total
        done += len(s)
        out_m.append(("" if matrix_by_char else " ").join(s))
        out_e.append(("" if embedded_by_char else " ").join(emb[round(a * len(emb)):round(b * len(emb))]))
    return out_m, out_e


def align_spans(matrix: str, embedded: str, *, matrix_script: str = "Latn", embedded_script: str = "Latn",
                span_words: int = 4, levels: Sequence[str] = UNITS) -> tuple[list[str], list[str], str]:
    """Aligned spans of a text and its translation, and the level they were aligned at."""
    for level in levels:
        cut = _sentences if level == "sentence" else _clauses
        m, e = cut(matrix), cut(embedded)
        if len(m) == len(e) >= 2:
            return m, e, level
    m, e = _proportional(matrix, embedded, span_words, embedded_script in CHAR_SCRIPTS,
                         matrix_script in CHAR_SCRIPTS)
    return m, e, "proportional" if len(m) >= 2 else "none"


def _rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _join(texts: Sequence[str]) -> str:
    """Spans joined by spaces, except between two characters of scripts written without spaces."""
    out = ""
    for text in texts:
        if not text:
            continue
        if out and not (_is_char(out[-1]) and _is_char(text[0])):
            out += " "
        out += text
    return out


def _is_char(ch: str) -> bool:
    """A character of a script written without spaces (Thai, Myanmar, CJK): no space around it."""
    o = ord(ch)
    return 0x0E00 <= o <= 0x0EFF or 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x1000 <= o <= 0x109F


def code_switch(matrix: str, embedded: str, ratio: float, *, seed: int = 13, key: str = "",
                matrix_script: str = "Latn", embedded_script: str = "Latn", span_words: int = 4,
                levels: Sequence[str] = UNITS) -> Switched:
    """Replace round(ratio x spans) spans of `matrix` by their aligned stretch of `embedded` (at
    least one and at most all but one when there are two spans or more and 0 < ratio < 1)."""
    if not 0 <= ratio <= 1:
        raise ValueError(f"code-switch ratio must lie in [0, 1], got {ratio}")
    m, e, level = align_spans(matrix, embedded, matrix_script=matrix_script, embedded_script=embedded_script,
                              span_words=span_words, levels=levels)
    n = len(m)
    if level == "none" or n < 2:
        return Switched(matrix, "none", n, 0, 0.0)
    k = round(ratio * n)
    if 0 < ratio < 1:
        k = min(max(k, 1), n - 1)
    chosen = {i for i in _rng(seed, key).sample(range(n), k) if e[i]}
    text = _join([e[i] if i in chosen else m[i] for i in range(n)])
    emb_chars = sum(len(re.sub(r"\s", "", e[i])) for i in chosen)
    all_chars = len(re.sub(r"\s", "", text)) or 1
    return Switched(text, level, n, len(chosen), round(emb_chars / all_chars, 4))


def code_switch_frame(matrix: pd.DataFrame, embedded: pd.DataFrame, *, ratio: float, seed: int,
                      matrix_lang: str, embedded_lang: str, matrix_script: str, embedded_script: str,
                      span_words: int = 4, levels: Sequence[str] = UNITS) -> pd.DataFrame:
    """Code-switched rows for the ids present in both shards (same corpus, different languages):
    the matrix shard's columns, `text` switched, `lang` = "mul", plus `cs_pair`, `alignment`,
    `spans`, `switched_spans`, `switched_chars`, `matrix_text`, `embedded_text`."""
    emb = embedded.set_index("id")["text"]
    rows = matrix[matrix["id"].isin(emb.index)].copy()
    out = []
    for rid, text in zip(rows["id"], rows["text"]):
        s = code_switch(text, emb[rid], ratio, seed=seed, key=f"{matrix_lang}-{embedded_lang}:{rid}",
                        matrix_script=matrix_script, embedded_script=embedded_script, span_words=span_words,
                        levels=levels)
        out.append((s.text, s.alignment, s.spans, s.switched, s.switched_chars, text, emb[rid]))
    cols = ["text", "alignment", "spans", "switched_spans", "switched_chars", "matrix_text", "embedded_text"]
    extra = pd.DataFrame(out, columns=cols, index=rows.index) if out else pd.DataFrame(columns=cols, index=rows.index)
    rows = rows.drop(columns=["text"]).join(extra)
    rows["lang"] = "mul"
    rows["cs_pair"] = f"{matrix_lang}-{embedded_lang}"
    return rows.reset_index(drop=True)


def summary(frame: pd.DataFrame) -> dict:
    """Counts of a code-switched set: rows per alignment level, mean switched share."""
    if frame.empty:
        return {"rows": 0}
    switched = frame[frame["switched_spans"] > 0]
    return {"rows": int(len(frame)), "alignment": {k: int(v) for k, v in frame["alignment"].value_counts().items()},
            "rows_unchanged": int((frame["switched_spans"] == 0).sum()),
            "mean_switched_chars": round(float(switched["switched_chars"].mean()), 4) if len(switched) else 0.0,
            "mean_spans": round(float(frame["spans"].mean()), 3) if math.isfinite(frame["spans"].mean()) else None}
