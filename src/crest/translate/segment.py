"""Sentence segmentation of long inputs and reassembly of their translations.

NLLB was trained on sentences and degrades past ~200 tokens, and CTranslate2 (like HF
`generate`) silently truncates an input longer than its `max_input_length`. So a text whose
token count exceeds `max_tokens` is split: into lines, each line into sentences, consecutive
sentences packed back together up to `max_tokens`; a sentence still too long is split at clause
punctuation, then between words, and a single "word" longer than the limit (a URL, a blob) into
pieces of characters. Nothing is dropped: joining the pieces of a text with single spaces gives
back the text up to whitespace. Short texts (the common case) pass through as one segment.

Pure Python; the token counter is passed in, so this module does not need the tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by whitespace, or right
# after a terminator of a script written without spaces between sentences (CJK full stops,
# Devanagari/Bengali dandas, Arabic/Urdu question mark and full stop, Ethiopic, Myanmar, Khmer).
_TERMINAL = r"[.!?…]+[\"'”’»)\]]*"
_NO_SPACE_TERMINAL = r"[。！？｡।॥؟۔።၊။។]+[\"'”’»)\]」』]*"
_SENTENCE_END = re.compile(rf"(?:{_TERMINAL}(?=\s)|{_NO_SPACE_TERMINAL})\s*")
_CLAUSE_END = re.compile(r"[,;:，；：、]\s*|\s[-–—]\s")
# Words whose trailing full stop does not end a sentence.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "eg", "ie", "inc", "ltd",
    "co", "corp", "no", "fig", "approx", "dept", "est", "gen", "gov", "lt", "col", "sgt", "capt", "mt",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k",
})

# Scripts written without spaces between words or sentences: reassembled translations of such
# a target are joined without a space.
NO_SPACE_SCRIPTS = frozenset({"Hans", "Hant", "Jpan"})


def split_sentences(text: str) -> list[str]:
    """Split one line of text into sentences (terminators kept, whitespace between them dropped)."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        piece = text[start:m.start() + len(m.group(0).rstrip())]
        if _ends_with_abbreviation(piece) and end < len(text):
            continue
        if piece.strip():
            out.append(piece.strip())
            start = end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _ends_with_abbreviation(piece: str) -> bool:
    if not piece.endswith("."):
        return False
    last = piece[:-1].rsplit(None, 1)[-1] if piece[:-1].strip() else ""
    last = last.lstrip("(\"'“‘«[")
    if len(last) == 1 and last.isalpha():  # an initial: "J. K. Rowling"
        return True
    return last.casefold() in ABBREVIATIONS


@dataclass
class Plan:
    """Segments to translate, and how to put each text back together.

    `layout[i]` is text i as a list of lines, each a list of indices into `segments`
    (an empty list is an empty line)."""

    segments: list[str] = field(default_factory=list)
    layout: list[list[list[int]]] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    """Index of the text each segment comes from."""
    whole: list[bool] = field(default_factory=list)
    """True where the segment is its whole text (its tokens can be reused)."""

    def segments_per_text(self) -> list[int]:
        return [sum(len(line) for line in lines) for lines in self.layout]


def plan_segments(texts: Sequence[str], count_tokens: Callable[[Sequence[str]], list[int]],
                  max_tokens: int, counts: Sequence[int] | None = None) -> Plan:
    """Cut `texts` into segments of at most `max_tokens` tokens (by `count_tokens`, which counts
    a list of strings at once; `counts` may give the texts' counts already). Texts within the
    limit stay whole."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    plan = Plan()
    if counts is None:
        counts = count_tokens(list(texts)) if texts else []
    for i, (text, n) in enumerate(zip(texts, counts)):
        if n <= max_tokens and "\n" not in text:
            plan.layout.append([[_add(plan, text, i, True)]])
            continue
        lines = []
        for line in text.split("\n"):
            pieces = _split_to_fit(line, count_tokens, max_tokens) if line.strip() else []
            lines.append([_add(plan, p, i, False) for p in pieces])
        plan.layout.append(lines)
    return plan


def _add(plan: Plan, segment: str, owner: int, whole: bool) -> int:
    plan.segments.append(segment)
    plan.owner.append(owner)
    plan.whole.append(whole)
    return len(plan.segments) - 1


def _split_to_fit(line: str, count_tokens, max_tokens: int) -> list[str]:
    line = line.strip()
    if count_tokens([line])[0] <= max_tokens:
        return [line]
    units: list[str] = []
    for sentence in split_sentences(line):
        units.extend(_fit_sentence(sentence, count_tokens, max_tokens))
    return _pack(units, count_tokens, max_tokens)


def _fit_sentence(sentence: str, count_tokens, max_tokens: int) -> list[str]:
    """A sentence as pieces of at most `max_tokens` tokens: whole, else clauses, else words,
    else characters."""
    if count_tokens([sentence])[0] <= max_tokens:
        return [sentence]
    clauses = _split_keep(sentence, _CLAUSE_END)
    if len(clauses) > 1:
        return [p for c in clauses for p in _fit_sentence(c, count_tokens, max_tokens)]
    words = sentence.split()
    if len(words) > 1:
        pieces: list[str] = []
        for w in words:
            pieces.extend(_fit_word(w, count_tokens, max_tokens))
        return _pack(pieces, count_tokens, max_tokens)
    return _fit_word(sentence, count_tokens, max_tokens)


def _split_keep(text: str, pattern: re.Pattern) -> list[str]:
    parts, start = [], 0
    for m in pattern.finditer(text):
        parts.append(text[start:m.end()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _fit_word(word: str, count_tokens, max_tokens: int) -> list[str]:
    if count_tokens([word])[0] <= max_tokens:
        return [word]
    # Binary search the longest prefix that fits, repeatedly: a word is rarely this long.
    pieces, rest = [], word
    while rest:
        lo, hi = 1, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count_tokens([rest[:mid]])[0] <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(rest[:lo])
        rest = rest[lo:]
    return pieces


def _pack(units: list[str], count_tokens, max_tokens: int) -> list[str]:
    """Join consecutive units with spaces while the result stays within `max_tokens`."""
    if not units:
        return []
    counts = count_tokens(units)
    out: list[str] = []
    current, current_n = units[0], counts[0]
    for unit, n in zip(units[1:], counts[1:]):
        if current_n + n <= max_tokens:
            joined = f"{current} {unit}"
            joined_n = count_tokens([joined])[0]  # boundary pieces may merge; count for real
            if joined_n <= max_tokens:
                current, current_n = joined, joined_n
                continue
        out.append(current)
        current, current_n = unit, n
    out.append(current)
    return out


def joiner_for(script: str) -> str:
    """How translated segments of one line are joined for a target written in `script`."""
    return "" if script in NO_SPACE_SCRIPTS else " "


def reassemble(translations: Sequence[str], layout: list[list[list[int]]], joiner: str = " ") -> list[str]:
    """Put translated segments back into texts, following `Plan.layout`."""
    out = []
    for lines in layout:
        out.append("\n".join(joiner.join(translations[i].strip() for i in line) for line in lines))
    return out
