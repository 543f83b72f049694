"""Word-by-word glosses from a FreeDict English->X dictionary (dictd format): a pseudo-translation
for languages no offline MT reaches. Real words in the real script, English word order, one sense
per word; not a translation, and every table says so (docs/translate.md, "Backend and route": backend `gloss`).

dictd: `{name}.index` is text, one `headword TAB offset TAB length` line per entry (numbers in
dictd's base64), `{name}.dict.dz` is dictzip, i.e. gzip: read whole with `gzip`. A headword with
several entries takes its longest one (a lowercase headword first: `my` before `MY`) (FreeDict eng-deu orders a headword's entries by the German
word: `dog` comes first as "Bandhaken", its longest entry is "Hund"), and of that entry the first
sense: the first line after the headword line that is not an example, note or cross-reference,
up to its first comma, annotations (`<pos>`, `[domain]`, `(note)`) removed, kept only if it reads
as a translation (at most 3 words, not an affix or an exclamation; else the next entry).

Glossing: words (letters, inner apostrophes) are matched longest first against headwords of up to
`max_words` words ("make up", "in order to"), case-insensitively, then a single word through a
few English inflection rules (dogs -> dog, poisoned -> poison, making -> make); spaces,
punctuation, digits and unknown words are kept as they are. `gloss_rate` = glossed words / words.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64 = {c: i for i, c in enumerate(B64)}
WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SKIP_LINE = ('"', "see:", "synonym", "antonym", "note:", "example")
_ANNOTATION_RE = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")
_PLACEHOLDER_RE = re.compile(r"(?<!\w)(?:jdn|jdm|jds|jd|etw|sth|sb|so|sw)\.(?!\w)\s*", re.I)
_NUMBERING_RE = re.compile(r"^\s*(?:(?:\d+|[IVX]+)\.\s*)+")
MAX_SENSE_WORDS = 3
_STRESS_RE = re.compile(r"(?<=[\u0400-\u04ff])\u0301")  # Bulgarian stress marks (ку́че), not Latin accents


def b64_number(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 64 + _B64[ch]
    return n


def first_sense(entry: str) -> str | None:
    """The first translation of a dictd entry (see the module docstring), None if it has none."""
    for line in entry.split("\n")[1:]:
        text = line.strip()
        if not text or text.lower().startswith(_SKIP_LINE):
            continue
        # only the first content line: in several FreeDicts the next one is an English explanation
        text = _NUMBERING_RE.sub("", _PLACEHOLDER_RE.sub("", _ANNOTATION_RE.sub("", text)))
        text = unicodedata.normalize("NFC", _STRESS_RE.sub("", unicodedata.normalize("NFD", text)))
        sense = " ".join(re.split(r"[,;]", text)[0].split())
        sense = re.sub(r"\s+\d+\.?$", "", sense).strip(" .:")
        return sense if is_translation(sense) else None
    return None


def is_translation(sense: str) -> bool:
    """A sense that reads as a translation: letters, at most MAX_SENSE_WORDS words (longer is an
    explanation: "the ninth letter of the English alphabet"), not an affix ("-ni")."""
    letters = sum(c.isalpha() for c in sense)
    return letters >= 1 and len(sense.split()) <= MAX_SENSE_WORDS and not sense.startswith("-") \
        and not sense.endswith("-") and "!" not in sense


def read_dictd(index_path: str | Path, dict_path: str | Path, max_words: int = 4) -> dict[str, str]:
    """lowercased headword (at most `max_words` words) -> its gloss."""
    spans: dict[str, list[tuple[bool, int, int]]] = {}
    with open(index_path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
                continue
            key = " ".join(WORD_RE.findall(parts[0].lower()))
            if not key or key.count(" ") >= max_words or key != " ".join(parts[0].lower().split()).strip(" .!?"):
                continue
            # (headword not lowercase, -length): "my" before "MY" (million years), then the longest
            spans.setdefault(key, []).append((parts[0] != parts[0].lower(), -b64_number(parts[2]),
                                              b64_number(parts[1])))
    data = gzip.open(dict_path).read()
    out = {}
    for key, entries in spans.items():
        for _, neg_length, offset in sorted(entries, key=lambda e: e[:2]):
            sense = first_sense(data[offset:offset - neg_length].decode("utf-8", "replace"))
            if sense:
                out[key] = sense
                break
    return out


def inflections(word: str) -> Iterator[str]:
    """Dictionary forms an English word may come from, most likely first."""
    yield word
    if word.endswith(("'s", "’s")):
        yield word[:-2]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                         ("ing", "e"), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)] + repl
            yield stem
            if suffix in ("ed", "ing") and not repl and len(stem) > 3 and stem[-1] == stem[-2]:
                yield stem[:-1]  # stopped -> stop, running -> run


@dataclass
class GlossResult:
    text: str
    words: int
    glossed: int


class Glosser:
    """Glosses English text with one dictionary (headword -> gloss)."""

    def __init__(self, entries: dict[str, str], max_words: int = 4) -> None:
        self.entries = entries
        self.max_words = max(1, min(max_words, max((k.count(" ") + 1 for k in entries), default=1)))

    @classmethod
    def from_dictd(cls, directory: str | Path, name: str, max_words: int = 4) -> Glosser:
        directory = Path(directory)
        return cls(read_dictd(directory / f"{name}.index", directory / f"{name}.dict.dz", max_words), max_words)

    def _lookup(self, words: Sequence[str]) -> str | None:
        key = " ".join(w.lower() for w in words)
        if key in self.entries:
            return self.entries[key]
        if len(words) == 1:
            for form in inflections(key):
                if form in self.entries:
                    return self.entries[form]
        return None

    def gloss(self, text: str) -> GlossResult:
        words = list(WORD_RE.finditer(text))
        out: list[str] = []
        pos = i = glossed = 0
        while i < len(words):
            hit = None
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                span = words[i:i + n]
                # a phrase only over plain spaces (never across punctuation or a line break)
                if n > 1 and any(text[a.end():b.start()] != " " for a, b in zip(span, span[1:])):
                    continue
                sense = self._lookup([m.group(0) for m in span])
                if sense is not None:
                    hit = (n, sense)
                    break
            if hit is None:
                i += 1
                continue
            n, sense = hit
            out.append(text[pos:words[i].start()])
            out.append(sense)
            pos = words[i + n - 1].end()
            glossed += n
            i += n
        out.append(text[pos:])
        return GlossResult(text="".join(out), words=len(words), glossed=glossed)
