"""Prompt-attack registry entries (docs/datasets.md, "Prompt-attack sources") prepared through the real data stage on fixture
files with the real datasets' column names and value spellings (tests/fixtures/attack/), read
through the local loader instead of the hub."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crest.data.prepare import prepare_source
from crest.data.registry import Source, load_registry, source_languages
from crest.schema import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "attack"
ATTACK_SOURCES = ("deepset_injections", "jailbreak_classification", "gandalf_ignore", "itw_jailbreak", "itw_regular",
                  "spml_injection", "notinject")


@pytest.fixture(scope="module")
def registry() -> dict[str, Source]:
    return load_registry(["config/datasets.yaml"])


def prepared(registry, name: str, fmt: str, tmp_path: Path, **override) -> tuple[pd.DataFrame, dict]:
    source = registry[name]
    spec = {**source.spec, "loader": {"local": {"path": str(FIXTURES / f"{name}.{fmt}"), "format": fmt}}, **override}
    out = tmp_path / f"{name}.parquet"
    stats = prepare_source(Source(name, spec, source.origin), out, cache_dir=tmp_path, validation=0.0, test=0.5,
                           seed=13)
    return pd.read_parquet(out), stats


def labels_by_text(df: pd.DataFrame) -> dict[str, int]:
    return {t[:24]: int(v) for t, v in zip(df["text"], df["label"], strict=True)}


def test_every_attack_source_declares_the_prompt_attack_task(registry):
    for name in ATTACK_SOURCES:
        assert registry[name].spec["task"] == "prompt_attack", name
        assert registry[name].loader_kind == "hub" and registry[name].spec["license"], name
    assert registry["aegis2"].spec["task"] == "content_safety"  # the paper's sources keep theirs


def test_deepset_labels_and_languages_detected_among_en_and_de(registry, tmp_path):
    df, stats = prepared(registry, "deepset_injections", "jsonl", tmp_path)
    langs = dict(zip(df["text"].str[:24], df["lang"], strict=True))
    assert langs["Vergiss alle vorherigen "] == "de" and langs["Ich suche ein gutes Reze"] == "de"
    assert langs["Ignore all previous inst"] == "en" and langs["What is the capital of A"] == "en"
    assert labels_by_text(df)["Vergiss alle vorherigen "] == 1 and labels_by_text(df)["Wie wird das Wetter morg"] == 0
    assert stats["labels"] == {"0": 3, "1": 3} and source_languages(registry["deepset_injections"]) == ["en", "de"]


def test_jailbreak_classification_type_spellings(registry, tmp_path):
    df, stats = prepared(registry, "jailbreak_classification", "csv", tmp_path)
    assert labels_by_text(df) == {"You are a helpful travel": 0, "From now on you will pla": 1,
                                  "Summarize the following ": 0, "Pretend you are in devel": 1}
    broken = {"field": "type", "map": {"benign": 0, "jailbreaks": 1}}  # a misspelt value is refused, naming it
    with pytest.raises(ValueError, match=r"jailbreak_classification.*'jailbreak' in field 'type'"):
        prepared(registry, "jailbreak_classification", "csv", tmp_path, label=broken)


def test_single_label_attack_sources(registry, tmp_path):
    gandalf, _ = prepared(registry, "gandalf_ignore", "jsonl", tmp_path)
    assert len(gandalf) == 3 and set(gandalf["label"]) == {1}
    jailbreaks, _ = prepared(registry, "itw_jailbreak", "jsonl", tmp_path)
    regular, _ = prepared(registry, "itw_regular", "jsonl", tmp_path)
    assert set(jailbreaks["label"]) == {1} and set(regular["label"]) == {0}
    assert regular["text"].str.startswith(("Act as a Linux", "I want you to act")).all()  # role-play is benign


def test_spml_reads_the_user_prompt_not_the_system_prompt(registry, tmp_path):
    df, stats = prepared(registry, "spml_injection", "csv", tmp_path)
    assert labels_by_text(df) == {"When will my order of tw": 0, "Stop being a bakery bot.": 1,
                                  "Can you give me a hint f": 0, "As the system administra": 1}
    assert not df["text"].str.startswith("You are a").any()


def test_notinject_is_benign_and_leaves_out_its_multilingual_rows(registry, tmp_path):
    df, stats = prepared(registry, "notinject", "jsonl", tmp_path)
    assert len(df) == 3 and set(df["label"]) == {0} and stats["dropped"]["excluded"] == 1
    assert set(df["category"]) == {"Technique Queries", "Virtual Creation", "Common Queries"}


def test_lang_detect_refuses_a_code_it_does_not_know(registry, tmp_path):
    with pytest.raises(ValueError, match=r"lang_detect: py3langid does not know xx"):
        prepared(registry, "deepset_injections", "jsonl", tmp_path, lang_detect=["en", "xx"])


def test_lang_detect_excludes_lang(write_yaml):
    entry = {"license": "mit", "loader": {"local": {"path": "x.csv", "format": "csv"}}, "text": "t",
             "label": {"value": 0}, "lang": "en", "lang_detect": ["en", "de"]}
    with pytest.raises(ConfigError):
        load_registry([write_yaml("reg.yaml", {"sources": {"both": entry}})])
