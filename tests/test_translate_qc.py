"""Quality checks on crafted bad translations, the drop policy, and the shard-level QC step."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from crest.languages import load_languages
from crest.translate.qc import QCConfig, QCError, is_copy, loop_repeats, run_qc, script_fraction
from crest.translate.shard import qc_shard, shard_metadata, write_shard

GOOD = [("How do I bake bread at home?", "Comment faire du pain à la maison ?"),
        ("Tell me a joke about cats.", "Raconte-moi une blague sur les chats."),
        ("Where is the train station?", "Où est la gare ?"),
        ("Write a poem about the sea.", "Écris un poème sur la mer."),
        ("What is the capital of Peru?", "Quelle est la capitale du Pérou ?")]


def test_single_checks() -> None:
    assert loop_repeats("go go go go now") == (4, 1)
    assert loop_repeats("This is a normal sentence, really.")[0] == 1  # "is" inside "This" is no repeat
    assert loop_repeats("ЧЧЧЧЧЧЧЧЧ")[1] == 9 and loop_repeats("..... 1 1 1 1") == (1, 1)
    assert script_fraction("Привет мир", "Cyrl") == (1.0, 9)
    assert script_fraction("こんにちは世界", "Jpan")[0] == 1.0 and script_fraction("Hello", "Deva")[0] == 0.0
    assert is_copy("Hello, World!", "hello world") and not is_copy("Hi!", "hi")


def test_every_table_script_is_known() -> None:
    from crest.translate.qc import SCRIPT_NAMES

    assert {lang.script for lang in load_languages().values()} <= set(SCRIPT_NAMES)


def test_crafted_bad_outputs_are_flagged() -> None:
    bad = [("How do I make a cake for my friend?", ""),                                   # empty
           ("Please explain how vaccines work in the body.", "Vaccins."),                  # far too short
           ("Give me advice on saving money.", "Conseil conseil conseil conseil conseil sur l'argent"),  # loop
           ("How can I learn to play the guitar?", "How can I learn to play the guitar?"),   # copy
           ("What time does the museum open?", "Во сколько открывается музей?")]            # wrong script
    src, out = zip(*(GOOD + bad))
    ids = [f"r{i}" for i in range(len(src))]
    res = run_qc(ids, src, out, "Latn", QCConfig(max_drop_fraction=1.0), capped=[False] * 9 + [True])
    t = res.table.set_index("id")
    assert t.loc[[f"r{i}" for i in range(5)], "dropped"].sum() == 0  # good rows pass
    assert t.loc["r5", "reasons"] == "empty"
    assert t.loc["r6", "length_ratio"] and t.loc["r7", "loop"] and t.loc["r8", "copy"]
    assert t.loc["r9", "script"] and t.loc["r9", "length_cap"]
    assert res.summary["rows_dropped"] == 5 and res.summary["rows_kept"] == 5
    assert res.summary["flagged"] == {"empty": 1, "length_ratio": 1, "loop": 1, "length_cap": 1, "copy": 1, "script": 1}


def test_policy_drops_only_listed_checks_and_loops_in_the_source_pass() -> None:
    src = ["ha ha ha ha ha, very funny"] + [s for s, _ in GOOD]
    out = ["ha ha ha ha ha, très drôle"] + [o for _, o in GOOD]
    res = run_qc([str(i) for i in range(6)], src, out, "Latn", QCConfig(drop=("empty",)))
    assert not res.table["loop"].any() and res.summary["rows_dropped"] == 0
    with pytest.raises(ValueError, match="unknown check"):
        QCConfig(drop=("nonsense",))


def _raw_shard(path: Path, pairs, lang="fr", random=False) -> None:
    src, out = zip(*pairs)
    df = pd.DataFrame({"id": [f"x-{i}" for i in range(len(src))], "text": out, "label": [1] * len(src),
                       "lang": lang, "source": "toy", "category": "", "split": "train", "origin": "test",
                       "src_text": src, "segments": 1, "src_tokens": 10, "out_tokens": 10, "capped": False})
    write_shard(df, path, {"corpus": "toy", "lang": lang, "source_lang": "en", "translated": True,
                           "translator_is_random": random, "model": "m"})


def test_qc_shard_writes_kept_rows_table_and_counts(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "fr.parquet"
    _raw_shard(raw, GOOD + [("How can I learn to play the guitar?", "How can I learn to play the guitar?")],
               random=True)
    summary = qc_shard(raw, tmp_path / "fr.parquet", tmp_path / "fr.qc.json", tmp_path / "qc" / "fr.parquet",
                       load_languages(), QCConfig())
    shard = pd.read_parquet(tmp_path / "fr.parquet")
    assert list(shard.columns) == ["id", "text", "label", "lang", "source", "category", "split", "origin", "src_text"]
    assert list(shard["id"]) == [f"x-{i}" for i in range(5)]
    on_disk = json.loads((tmp_path / "fr.qc.json").read_text())
    assert on_disk["rows_dropped"] == 1 and on_disk["dropped"]["copy"] == 1 and on_disk["translator_is_random"]
    assert "noise" in on_disk["warning"] and on_disk["examples"]["copy"][0]["id"] == "x-5"
    assert shard_metadata(tmp_path / "fr.parquet")["translator_is_random"] is True
    assert len(pd.read_parquet(tmp_path / "qc" / "fr.parquet")) == 6
    assert summary["rows_kept"] == 5


def test_qc_shard_refuses_a_broken_translation(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "ru.parquet"
    _raw_shard(raw, [(s, o) for s, o in GOOD], lang="ru")  # French text labelled Russian: wrong script
    with pytest.raises(QCError, match=r"drop 5 of 5 rows .*script: 5"):
        qc_shard(raw, tmp_path / "ru.parquet", tmp_path / "ru.qc.json", tmp_path / "qc.parquet", load_languages())
    assert not (tmp_path / "ru.parquet").exists()
