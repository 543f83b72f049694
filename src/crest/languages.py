"""The language table: XLM-R's 100 CC-100 pretraining languages.

`config/languages.tsv` is the single source of truth for language codes in crest.
Every other config (training / evaluation language groups, dataset `lang` fields)
names languages by the `code` column of that table; `check_codes` validates such
lists and `nllb_code` maps a code to its NLLB-200 / FLORES-200 code.

See docs/languages.md for the columns, the sources of the numbers and what could
not be verified.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------
# Resource tiers
#
# A language's tier is a pure function of its CC-100 size in *English-equivalent*
# GiB: the `cc100_gib` column (XLM-R paper Table 6, UTF-8 bytes) divided by the
# language's `byte_premium` (UTF-8 bytes its translation of a text takes relative
# to English; FLORES-200, Arnett et al. 2024), with half-open intervals:
#
#     high :           content >= 20.0 GiB
#     mid  : 5.0 GiB <= content <  20.0 GiB
#     low  :           content <   5.0 GiB
#
# Bytes alone rank scripts of 2-3 bytes per character too high (Thai 71.7 GiB was
# 9th; as English-equivalent text it is 26.2 GiB, 23rd, next to Italian); the
# token column cannot rank Chinese, Japanese or Thai (its tokens are whitespace
# segments). 28 high, 13 mid, 59 low; docs/languages.md has the checks.
# ---------------------------------------------------------------------------
HIGH_MIN_GIB: float = 20.0
"""Smallest English-equivalent CC-100 size (GiB) of a `high` tier language."""
MID_MIN_GIB: float = 5.0
"""Smallest English-equivalent CC-100 size (GiB) of a `mid` tier language; below it is `low`."""
TIER_THRESHOLDS: dict[str, float] = {"high": HIGH_MIN_GIB, "mid": MID_MIN_GIB, "low": 0.0}
"""Tier -> inclusive lower bound in English-equivalent GiB, from the highest tier down."""
TIERS: tuple[str, ...] = tuple(TIER_THRESHOLDS)

MIXED: str = "mul"
"""Reserved code (ISO 639-2 "multiple languages") for code-switched rows: valid as a data row's
language, never a translation target or a group member."""

COLUMNS: tuple[str, ...] = ("code", "nllb", "name", "script", "cc100_gib", "cc100_tokens_m", "byte_premium", "tier",
                            "note")
"""The columns of `config/languages.tsv`, in order."""

CODE_RE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]+)?$")
NLLB_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
SCRIPT_RE = re.compile(r"^[A-Z][a-z]{3}$")


@dataclass(frozen=True)
class Language:
    """One row of the language table."""

    code: str
    """ISO 639-1 (639-3 where none), or `base_variant` (`hi_rom`, `my_zaw`, `zh_Hant`)."""
    nllb: str | None
    """NLLB-200 / FLORES-200 code (`fra_Latn`), None where NLLB-200 lacks it."""
    name: str
    script: str
    """ISO 15924 script code (`Latn`, `Cyrl`, `Hans`, ...)."""
    cc100_gib: float
    """CC-100 size in GiB (UTF-8 bytes) as in XLM-R (Conneau et al., 2020) Table 6."""
    cc100_tokens_m: float
    """CC-100 tokens in millions, XLM-R Table 6 (whitespace segments: meaningless for zh, ja, th)."""
    byte_premium: float
    """UTF-8 bytes of a text in this language relative to the same text in English (FLORES-200)."""
    tier: str
    """`high` / `mid` / `low`, always equal to `tier_for(content_gib)`."""
    note: str

    @property
    def content_gib(self) -> float:
        """CC-100 size as GiB of English-equivalent text: cc100_gib / byte_premium (what tiers use)."""
        return self.cc100_gib / self.byte_premium


def tier_for(gib: float) -> str:
    """Return the resource tier (`high`/`mid`/`low`) of an English-equivalent CC-100 size in GiB
    (`Language.content_gib`)."""
    if isinstance(gib, bool) or not isinstance(gib, (int, float)):
        raise TypeError(f"tier_for expects a number of GiB, got {gib!r}")
    if math.isnan(gib) or gib < 0:
        raise ValueError(f"tier_for expects a non-negative size in GiB, got {gib!r}")
    for tier, lower in TIER_THRESHOLDS.items():
        if gib >= lower:
            return tier
    raise AssertionError("unreachable: the last threshold is 0.0")  # pragma: no cover


def default_table_path() -> Path:
    """Return `config/languages.tsv` at the repository root (source checkout)."""
    return Path(__file__).resolve().parents[2] / "config" / "languages.tsv"


def _error(path: Path, line: int, column: str | None, message: str) -> ValueError:
    where = f"{path}:{line}" + (f" (column {column!r})" if column else "")
    return ValueError(f"{where}: {message}")


def load_languages(path: Path | str | None = None) -> dict[str, Language]:
    """Read and check the language table; return code -> Language in file order.

    Raises ValueError naming the file, the 1-based line and the column for:
    missing/extra columns, a row with the wrong number of fields, a malformed or
    duplicate code, a malformed NLLB code, a bad float, a tier that disagrees
    with `tier_for`, a script that is not a 4-letter ISO 15924 code, an empty name.
    """
    path = Path(path) if path is not None else default_table_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"language table not found: {path}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise _error(path, 1, None, f"empty file or empty header; expected columns {list(COLUMNS)}")

    header = lines[0].split("\t")
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if missing or extra or dupes:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        if dupes:
            parts.append(f"repeated column(s) {dupes}")
        raise _error(path, 1, None, "; ".join(parts) + f" (expected {list(COLUMNS)}, tab-separated)")

    table: dict[str, Language] = {}
    first_seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) != len(header):
            raise _error(path, lineno, None, f"expected {len(header)} tab-separated fields, got {len(fields)}")
        row = dict(zip(header, fields))

        code = row["code"].strip()
        if not CODE_RE.match(code):
            raise _error(path, lineno, "code", f"bad code {code!r}; expected {CODE_RE.pattern}")
        if code in first_seen:
            raise _error(path, lineno, "code", f"duplicate code {code!r} (first on line {first_seen[code]})")

        nllb = row["nllb"].strip() or None
        if nllb is not None and not NLLB_RE.match(nllb):
            raise _error(path, lineno, "nllb", f"bad NLLB code {nllb!r}; expected e.g. 'fra_Latn' or empty")

        name = row["name"].strip()
        if not name:
            raise _error(path, lineno, "name", "empty name")

        script = row["script"].strip()
        if not SCRIPT_RE.match(script):
            raise _error(path, lineno, "script", f"bad script {script!r}; expected a 4-letter ISO 15924 code like 'Latn'")

        gib = _number(row, "cc100_gib", path, lineno, "a finite non-negative size in GiB")
        tokens = _number(row, "cc100_tokens_m", path, lineno, "a finite non-negative token count (millions)")
        premium = _number(row, "byte_premium", path, lineno, "a positive byte premium (bytes relative to English)")
        if premium <= 0:
            raise _error(path, lineno, "byte_premium", f"expected a positive byte premium, got {premium:g}")

        tier = row["tier"].strip()
        expected = tier_for(gib / premium)
        if tier != expected:
            raise _error(
                path, lineno, "tier",
                f"tier {tier!r} disagrees with cc100_gib={gib:g} / byte_premium={premium:g} = {gib / premium:.1f} "
                f"English-equivalent GiB: expected {expected!r} (high >= {HIGH_MIN_GIB:g}, mid >= {MID_MIN_GIB:g}, else low)",
            )

        first_seen[code] = lineno
        table[code] = Language(code, nllb, name, script, gib, tokens, premium, tier, row["note"].strip())
    return table


def _number(row: Mapping[str, str], column: str, path: Path, lineno: int, what: str) -> float:
    raw = row[column].strip()
    try:
        value = float(raw)
    except ValueError:
        raise _error(path, lineno, column, f"not a number: {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise _error(path, lineno, column, f"expected {what}, got {raw!r}")
    return value


def check_codes(codes: Iterable[str], table: Mapping[str, Language], where: str,
                allow_mixed: bool = False) -> None:
    """Raise ValueError if any code is not in the table (`MIXED` passes if `allow_mixed`).

    `where` names the config key the codes came from (e.g. `languages.groups.ood`);
    the message lists the unknown codes, each with a suggestion where one is close
    (a table code, or the code whose NLLB code or name matches what was written).
    """
    if isinstance(codes, str):
        codes = [codes]
    unknown = [c for c in codes if c not in table and not (allow_mixed and c == MIXED)]
    if not unknown:
        return
    hints = []
    for bad in unknown:
        guess = _suggest(str(bad), table)
        hints.append(f"{bad!r} (did you mean {guess!r}?)" if guess else repr(bad))
    raise ValueError(
        f"{where}: unknown language code(s) {', '.join(hints)}; "
        f"codes must be in the `code` column of config/languages.tsv"
    )


def _suggest(bad: str, table: Mapping[str, Language]) -> str | None:
    folded = bad.strip().casefold()
    for lang in table.values():
        if folded in {lang.code.casefold(), (lang.nllb or "").casefold(), lang.name.casefold()}:
            return lang.code
    base, _, script = folded.replace("-", "_").partition("_")
    for lang in table.values():  # 'fra' -> 'fr', 'zh-Hant' -> 'zh_Hant', 'zh_Hans' -> 'zh'
        if lang.nllb and folded == lang.nllb.split("_")[0].casefold():
            return lang.code
        if folded.replace("-", "_") == lang.code.casefold():
            return lang.code
        if script and lang.code == base and lang.script.casefold() == script:
            return lang.code
    close = difflib.get_close_matches(bad, list(table), n=1, cutoff=0.5)
    return close[0] if close else None


def nllb_code(code: str, table: Mapping[str, Language]) -> str:
    """Return the NLLB-200 code of `code`; ValueError if unknown or NLLB-200 lacks it."""
    if code not in table:
        check_codes([code], table, where="nllb_code")
    lang = table[code]
    if lang.nllb is None:
        reason = f": {lang.note}" if lang.note else ""
        raise ValueError(f"language {code!r} ({lang.name}) has no NLLB-200 code{reason}")
    return lang.nllb
