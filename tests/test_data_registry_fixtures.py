"""Paper registry entries prepared on fixture files that have the real datasets' column names and
value spellings (tests/fixtures/), read through the local loader instead of the hub; and optional
sources: `missing` only when the data cannot be reached, a broken entry fails naming source,
field and value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crest.data.prepare import prepare_source
from crest.data.registry import Source, load_registry
from crest.evaluate.sets import prepare_optional
from crest.schema import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def registry() -> dict[str, Source]:
    return load_registry(["config/datasets.yaml"])


def on_fixture(source: Source, name: str, fmt: str, **override) -> Source:
    """The registry entry with its hub loader replaced by the local loader on a fixture file."""
    spec = {**source.spec, "loader": {"local": {"path": str(FIXTURES / name), "format": fmt}}, **override}
    return Source(source.id, spec, source.origin)


def prepared(source: Source, tmp_path: Path) -> tuple[pd.DataFrame, dict]:
    out = tmp_path / f"{source.id}.parquet"
    stats = prepare_source(source, out, cache_dir=tmp_path, validation=0.0, test=0.5, seed=13)
    return pd.read_parquet(out), stats


def test_rtp_lx_real_locale_spellings(registry, tmp_path: Path):
    df, stats = prepared(on_fixture(registry["rtp_lx"], "rtp_lx.jsonl", "jsonl"), tmp_path)
    by_text = dict(zip(df["text"], df["lang"], strict=True))
    assert by_text["Ти просто жалюгідний невдаха, і всі"] == "uk"          # Locale ''
    assert by_text["Wewe ni mjinga kabisa na kila mtu"] == "sw"            # Locale 'NA'
    assert by_text["Você é um completo imbecil e todo mundo"] == "pt"      # 'Pt-Br'
    assert by_text["Hoje fomos ao mercado comprar fruta e"] == "pt"        # 'PT'
    assert by_text["Du er en ynkelig taper og alle"] == "no"               # 'NO'
    assert by_text["Данас смо ишли у парк и"] == "sr"                      # 'SR'
    assert by_text["Ti si obična budala i svi to"] == "sr"                 # 'BCMS' (v1.0)
    # 'ZH' holds Simplified and Traditional rows alike: both are zh, no zh_Hant is claimed
    assert by_text["你真是個十足的白癡，所有人都"] == by_text["你真是个十足的白痴，所有人都"] == "zh"
    assert "zh_Hant" not in set(df["lang"]) and "zh_Hant" not in registry["rtp_lx"].spec["lang_map"].values()
    # label: mean Toxicity > 1 is unsafe (1.0 safe, 1.33.. unsafe)
    labels = dict(zip(df["text"], df["label"], strict=True))
    assert labels["Du er en ynkelig taper og alle"] == 1 and labels["Hoje fomos ao mercado comprar fruta e"] == 0
    assert stats["labels"] == {"0": 6, "1": 8}


def test_indicsafe_english_and_indic_sources(registry, tmp_path: Path):
    en, en_stats = prepared(on_fixture(registry["indicsafe_en"], "IndicSafe.csv", "csv"), tmp_path)
    # long format: each English prompt once per language (3) -> one row each; Tricky Ambiguous left out
    assert len(en) == 5 and set(en["lang"]) == {"en"}
    assert en_stats["dropped"]["excluded"] == 3 and en_stats["dropped"]["duplicate_exact"] == 10
    assert dict(zip(en["category"], en["label"], strict=True)) == {
        "Religious Hate or Provocation": 1, "Gender & Caste Discrimination": 1, "Health Misinformation": 1,
        "Harmless Control": 0, "Harmless Control Prompts": 0}

    indic, _ = prepared(on_fixture(registry["indicsafe"], "IndicSafe.csv", "csv"), tmp_path)
    assert indic["lang"].value_counts().to_dict() == {"hi": 5, "ta": 5, "bn": 5}
    assert not indic["text"].str.contains("Tricky|Diwali|[A-Za-z]{5}").any()  # the Indic text, not the English
    # the translations of one English prompt share its id (parallel rows), as does the English row
    per_id = indic.groupby("id")["lang"].nunique()
    assert len(per_id) == 5 and (per_id == 3).all()
    assert sorted(i.split("-", 1)[1] for i in en["id"]) == sorted(i.split("-", 1)[1] for i in per_id.index)
    assert (indic.groupby("id")["label"].nunique() == 1).all()


def test_polyglottoxicityprompts_label_rule(registry, tmp_path: Path):
    assert {f"ptp_{c}" for c in "ar cs de en es fr hi id it ja ko nl pl pt ru sv zh".split()} <= set(registry)
    assert registry["ptp_zh"].loader["config"] == "ptp-zh" and registry["ptp_zh"].spec["lang"] == "zh"
    df, _ = prepared(on_fixture(registry["ptp_en"], "ptp.jsonl", "jsonl"), tmp_path)
    labels = dict(zip(df["text"].str[:12], df["label"], strict=True))
    # Perspective toxicity > 0.5 is unsafe; exactly 0.5 is not
    assert labels == {"You are a wo": 1, "The committe": 0, "Shut up, you": 1, "Honestly the": 0, "That referee": 0}
    assert set(df["lang"]) == {"en"}


def test_aya_redteaming_and_xsafety(registry, tmp_path: Path):
    aya, _ = prepared(on_fixture(registry["aya_redteaming"], "aya_redteaming.jsonl", "jsonl"), tmp_path)
    assert sorted(aya["lang"]) == sorted(["en", "ar", "tl", "fr", "hi", "ru", "sr", "es"])
    assert set(aya["label"]) == {1} and "Discrimination & Injustice" in aya.loc[aya["lang"] == "sr", "category"].iat[0]
    xs, stats = prepared(on_fixture(registry["xsafety"], "xsafety.jsonl", "jsonl"), tmp_path)
    assert sorted(xs["lang"]) == ["en", "es", "fr", "zh"] and set(xs["label"]) == {1}
    assert stats["dropped"]["excluded"] == 1  # the commonsense row is not a harm probe


# -- optional sources: unavailable vs broken ---------------------------------------------------------
def test_optional_source_with_a_wrong_field_fails_naming_source_and_field(registry, tmp_path: Path):
    broken = on_fixture(registry["indicsafe_en"], "IndicSafe.csv", "csv", text="English")
    with pytest.raises(ConfigError, match=r"source 'indicsafe_en'.*no field 'English'"):
        prepare_optional(broken, tmp_path / "x.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                         offline=True)
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "x.stats.json").exists()


def test_optional_source_with_an_unmapped_value_fails_naming_it(registry, tmp_path: Path):
    label = {"field": "Category", "map": {"Harmless Control": 0}}
    broken = on_fixture(registry["indicsafe_en"], "IndicSafe.csv", "csv", label=label)
    with pytest.raises(ValueError, match=r"indicsafe_en.*'Religious Hate or Provocation' in field 'Category'"):
        prepare_optional(broken, tmp_path / "x.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                         offline=True)
    lang_map = {"Hindi": "hi"}
    broken = on_fixture(registry["indicsafe"], "IndicSafe.csv", "csv", lang_map=lang_map)
    with pytest.raises(ConfigError, match=r"indicsafe.*language value 'Tamil' in field 'Language'"):
        prepare_optional(broken, tmp_path / "y.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                         offline=True)


def test_optional_source_out_of_reach_is_missing(registry, tmp_path: Path):
    gone = on_fixture(registry["indicsafe_en"], "no_such_file.csv", "csv")  # a wrong path fails loudly
    with pytest.raises(ConfigError, match=r"local file .*no_such_file.csv not found.*wrong path"):
        prepare_optional(gone, tmp_path / "x.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                         offline=True)
    offline = prepare_optional(registry["indicsafe"], tmp_path / "y.parquet", cache_dir=tmp_path, validation=0.1,
                               test=0.1, seed=13, offline=True)
    assert offline["status"] == "missing" and "offline" in offline["reason"]
