"""The embedding stage's input: CLDR as a parallel registry source, multilingual parquet inputs,
parallel keys and the aligned selection of texts per language."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crest.data.cldr import KINDS, LOCALES, NO_CLDR, babel_locale, load_cldr, locale_script, locale_strings
from crest.data.registry import load_registry
from crest.embed.corpus import parallel_key, read_inputs, select_texts
from crest.languages import load_languages


def test_every_table_language_maps_to_a_cldr_locale_of_its_script() -> None:
    from babel import localedata

    table = load_languages()
    available = set(localedata.locale_identifiers())
    for code, lang in table.items():
        locale_id = babel_locale(code)
        if locale_id is None:
            assert code in NO_CLDR
            continue
        assert locale_id in available, (code, locale_id)
        assert locale_script(locale_id) == lang.script, (code, locale_id, lang.script)
    assert babel_locale("zh") == "zh_Hans" and babel_locale("sr") == "sr_Cyrl" and babel_locale("no") == "nb"
    assert set(LOCALES) <= set(table)


def test_cldr_strings_are_localised_and_keyed_alike() -> None:
    de = locale_strings("de", ["territories", "months", "time_zones", "units"])
    ru = locale_strings("ru", ["territories", "months", "time_zones", "units"])
    assert de["territories:DE"] == "Deutschland" and ru["territories:DE"] == "Германия"
    assert de["months:1"] == "Januar"
    assert "units:length-kilometer" in de and "units:length-kilometer" in ru
    # root's own strings (untranslated city names, codes) are dropped: en's cities are root's
    en = locale_strings("en", ["time_zones"])
    assert "time_zones:Europe/Paris" not in en


def test_load_cldr_records_and_skips(tmp_path: Path) -> None:
    records, prov = load_cldr({"kinds": ["territories", "months", "days"], "min_strings": 250,
                               "languages": ["de", "sr", "zh_Hant", "hi_rom", "sa"]})
    langs = {r["lang"] for r in records}
    assert langs == {"de", "sr", "zh_Hant"}
    assert set(prov["skipped"]) == {"hi_rom", "sa"} and "romanized" in prov["skipped"]["hi_rom"]
    assert prov["locales"]["sr"] == "sr_Cyrl"
    serbian = {r["key"]: r["text"] for r in records if r["lang"] == "sr"}
    assert serbian["territories:RS"] == "Србија"  # Cyrillic, as the table's sr row says
    with pytest.raises(ValueError, match="unknown kind"):
        load_cldr({"kinds": ["planets"], "min_strings": 1})
    with pytest.raises(ValueError, match="xx"):
        load_cldr({"kinds": ["days"], "min_strings": 1, "languages": ["de", "xx"]})
    assert set(KINDS) >= {"languages", "territories", "units"}


def test_cldr_source_prepares_a_parallel_parquet(tmp_path: Path, write_yaml) -> None:
    from crest.data.prepare import prepare_source

    reg = write_yaml("reg.yaml", {"sources": {"cldr": {
        "license": "unicode-3.0", "loader": {"cldr": {"kinds": ["territories", "months"], "min_strings": 100,
                                                      "languages": ["de", "nl", "af", "ru"]}},
        "text": "text", "label": {"value": 0}, "lang_field": "lang", "category_field": "kind",
        "id_field": ["key", "lang"]}}})
    source = load_registry([reg])["cldr"]
    stats = prepare_source(source, tmp_path / "cldr.parquet", cache_dir=tmp_path)
    df = pd.read_parquet(tmp_path / "cldr.parquet")
    assert set(df["lang"]) == {"de", "nl", "af", "ru"} and (df["label"] == 0).all()
    # the same string in two languages is kept in both (duplicates are looked for per language)
    europe = df[df["id"].str.startswith("cldr-territories:150-")].set_index("lang")["text"]
    assert europe["de"] == europe["nl"] == "Europa" and europe["ru"] == "Европа"
    assert stats["provenance"]["loader"] == "cldr" and stats["provenance"]["strings"]["de"] > 100
    assert parallel_key("cldr-territories:DE-de", "cldr", "de") == "territories:DE"


def _write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_read_inputs_multilingual_and_per_language(tmp_path: Path) -> None:
    multi = _write(tmp_path / "multi.parquet", [
        {"id": f"src-k{i}-{lang}", "text": f"{lang} {i}", "lang": lang, "source": "src"}
        for lang in ("de", "fr") for i in range(3)])
    df = read_inputs([multi])
    assert df["key"].tolist() == ["k0", "k1", "k2"] * 2
    # translated shards: one file per language, the English id kept, no lang suffix
    for lang in ("en", "sw"):
        _write(tmp_path / f"{lang}.parquet", [{"id": f"mj-{i:03d}", "text": f"{lang} text {i}", "source": "mj",
                                              "src_text": f"text {i}"} for i in range(4)])
    df = read_inputs([tmp_path / "en.parquet", tmp_path / "sw.parquet"])
    assert df["lang"].tolist() == ["en"] * 4 + ["sw"] * 4  # from the file names
    assert df.loc[df["lang"] == "sw", "key"].tolist() == ["000", "001", "002", "003"]
    with pytest.raises(FileNotFoundError):
        read_inputs([tmp_path / "nope.parquet"])
    _write(tmp_path / "bad.parquet", [{"prompt": "x"}])
    with pytest.raises(ValueError, match="no `text` column"):
        read_inputs([tmp_path / "bad.parquet"])


def _corpus() -> pd.DataFrame:
    rows = []
    for lang, keys in {"de": range(10), "fr": range(10), "sw": range(0, 10, 2), "yo": [0]}.items():
        rows += [{"id": f"s-{k}-{lang}", "text": f"{lang}{k}", "lang": lang, "key": f"k{k}", "source": "s"}
                 for k in keys]
    return pd.DataFrame(rows)


def test_select_aligned_takes_the_best_covered_keys() -> None:
    sel = select_texts(_corpus(), max_per_language=3, min_per_language=1, align=True, seed=1)
    by_lang = sel.rows.groupby("lang")["key"].apply(list).to_dict()
    # k0 is in all four languages, the even keys in three: the first 3 keys are k0 + two even keys
    assert by_lang["de"][0] == "k0" and set(by_lang["de"]) <= {"k0", "k2", "k4", "k6", "k8"}
    assert by_lang["de"] == by_lang["fr"] == by_lang["sw"]
    assert by_lang["yo"] == ["k0"]
    again = select_texts(_corpus(), max_per_language=3, min_per_language=1, align=True, seed=1)
    pd.testing.assert_frame_equal(sel.rows, again.rows)  # deterministic for a seed


def test_select_drops_thin_languages_or_refuses_requested_ones() -> None:
    sel = select_texts(_corpus(), min_per_language=2)
    assert "yo" not in set(sel.rows["lang"]) and "yo" in sel.dropped
    with pytest.raises(ValueError, match="'yo' has 1 texts"):
        select_texts(_corpus(), languages=["de", "yo"], min_per_language=2)
    with pytest.raises(ValueError, match="no texts for requested language"):
        select_texts(_corpus(), languages=["de", "ha"])
    unaligned = select_texts(_corpus(), max_per_language=2, align=False, seed=3)
    assert unaligned.rows.groupby("lang").size().max() == 2
