"""A parallel corpus that ships with `babel`: CLDR's localised display names.

CLDR (the Unicode Common Locale Data Repository, Unicode licence) translates the same items into
every locale: the names of languages, territories, scripts and currencies, months and days,
exemplar cities of time zones, time-zone names and unit names. The same key (`territories:DE`)
has one string per language, so the strings form a parallel corpus of short texts, offline.

The registry declares it as `loader: {cldr: {kinds: [...], min_strings: 300}}`
(docs/registry.md); each record is {key, kind, text, lang, locale}. Rules:

- A language-table code maps to a babel locale (`LOCALES`; `zh` is `zh_Hans`, `sr` is Cyrillic
  `sr_Cyrl`, `no` is Bokmål `nb`, `tl` is `fil`, ...). The romanized rows (`*_rom`) and Zawgyi
  Burmese (`my_zaw`) have no CLDR data and are skipped.
- babel fills a locale's gaps from its parents and from `root`; a string equal to root's value for
  the same key was not localised (root holds codes, English city names, unit symbols) and is
  dropped, so every kept string was written for that language.
- A language with fewer than `min_strings` strings left is skipped (named in the provenance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from babel import Locale
from babel.core import get_cldr_version, get_global

from crest.data.rows import ORIGIN
from crest.languages import check_codes, load_languages

# Table code -> babel locale, where the code alone is not the locale CLDR files the language under.
LOCALES: dict[str, str] = {
    "zh": "zh_Hans", "zh_Hant": "zh_Hant", "sr": "sr_Cyrl", "no": "nb", "tl": "fil", "uz": "uz_Latn",
    "pa": "pa_Guru", "sd": "sd_Arab", "su": "su_Latn", "bs": "bs_Latn", "az": "az_Latn",
}
NO_CLDR: dict[str, str] = {
    "bn_rom": "romanized text has no CLDR locale", "hi_rom": "romanized text has no CLDR locale",
    "ta_rom": "romanized text has no CLDR locale", "te_rom": "romanized text has no CLDR locale",
    "ur_rom": "romanized text has no CLDR locale", "my_zaw": "Zawgyi is a font encoding, not a CLDR locale",
}
SCRIPT_ALIASES = {"Kore": "Hang"}  # CLDR writes Korean as Kore (Hangul + Han); the table says Hang


def _plain(value: Any) -> Any:
    """babel's LocaleDataDict (and nested ones) as plain dicts."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _leaves(tree: dict, prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _leaves(value, path)
        elif isinstance(value, str):
            yield path, value


def _calendar(attr: str) -> Callable[[Locale], dict]:
    return lambda loc: _plain(getattr(loc, attr)).get("format", {}).get("wide", {})


KINDS: dict[str, Callable[[Locale], dict]] = {
    "languages": lambda loc: _plain(loc.languages),
    "territories": lambda loc: _plain(loc.territories),
    "scripts": lambda loc: _plain(loc.scripts),
    "currencies": lambda loc: _plain(loc.currencies),
    "variants": lambda loc: _plain(loc.variants),
    "months": _calendar("months"),
    "days": _calendar("days"),
    "quarters": _calendar("quarters"),
    # exemplar city of each time zone (the other fields are zone names, covered by meta_zones)
    "time_zones": lambda loc: {tz: d["city"] for tz, d in _plain(loc.time_zones).items() if "city" in d},
    # long names of the metazones ("Central European Summer Time")
    "meta_zones": lambda loc: {mz: d["long"] for mz, d in _plain(loc.meta_zones).items() if "long" in d},
    # long display names of units ("kilometres per hour"); babel has no public accessor for the list
    "units": lambda loc: {u: d["long"] for u, d in _plain(loc._data.get("unit_display_names", {})).items()
                          if isinstance(d, dict) and "long" in d},
}


def babel_locale(code: str) -> str | None:
    """The babel locale of a language-table code, None where CLDR has none (`NO_CLDR`)."""
    if code in NO_CLDR:
        return None
    return LOCALES.get(code, code)


def locale_script(locale_id: str) -> str:
    """The script a babel locale is written in (explicit, else CLDR's likely subtags)."""
    script = Locale.parse(locale_id).script
    if not script:
        likely = get_global("likely_subtags").get(locale_id, "")
        parts = likely.split("_")
        script = parts[1] if len(parts) > 2 else ""
    return SCRIPT_ALIASES.get(script, script)


def locale_strings(locale_id: str, kinds: Iterable[str], root: dict[str, dict[str, str]] | None = None
                   ) -> dict[str, str]:
    """`{kind:path: text}` of one locale, strings equal to root's for the same key left out."""
    loc = Locale.parse(locale_id)
    root_loc = Locale("root")
    out: dict[str, str] = {}
    for kind in kinds:
        base = root[kind] if root is not None and kind in root else dict(_leaves(KINDS[kind](root_loc)))
        for path, text in _leaves(KINDS[kind](loc)):
            text = text.strip()
            if text and base.get(path) != text:
                out[f"{kind}:{path}"] = text
    return out


def load_cldr(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records {key, kind, text, lang, locale} for every language of the table (or `languages`)
    with at least `min_strings` localised strings, and the provenance."""
    kinds = spec["kinds"]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"cldr loader: unknown kind(s) {unknown} (known: {', '.join(KINDS)})")
    table = load_languages()
    codes = spec.get("languages") or list(table)
    check_codes(codes, table, "loader.cldr.languages")
    root_loc = Locale("root")
    root = {kind: dict(_leaves(KINDS[kind](root_loc))) for kind in kinds}
    origin = f"cldr:babel=={_babel_version()}:CLDR{get_cldr_version()}"
    records: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    locales: dict[str, str] = {}
    for code in codes:
        locale_id = babel_locale(code)
        if locale_id is None:
            skipped[code] = NO_CLDR[code]
            continue
        strings = locale_strings(locale_id, kinds, root)
        if len(strings) < spec["min_strings"]:
            skipped[code] = f"{len(strings)} strings < min_strings {spec['min_strings']}"
            continue
        locales[code] = locale_id
        counts[code] = len(strings)
        records.extend({"key": key, "kind": key.split(":", 1)[0], "text": text, "lang": code,
                        "locale": locale_id, ORIGIN: f"{origin}:{locale_id}"}
                       for key, text in strings.items())
    if not records:
        raise ValueError(f"cldr loader: no language has {spec['min_strings']} strings of kinds {kinds}")
    provenance = {"babel_version": _babel_version(), "cldr_version": get_cldr_version(), "kinds": kinds,
                  "min_strings": spec["min_strings"], "languages": len(counts), "locales": locales,
                  "strings": counts, "skipped": skipped}
    return records, provenance


def _babel_version() -> str:
    import babel

    return babel.__version__

