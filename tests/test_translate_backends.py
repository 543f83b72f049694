"""The offline translator backends: pinned Debian assets (hash check, rootless install), Apertium
on a real pair unpacked once into the pinned cache the demo uses (results/cache/debian), the pivot
chain, line alignment on tricky input, FreeDict glosses on a dictd fixture written here, shards
through the stage's one machinery, the fallback, and the config checks."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crest.config import load_config
from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.schema import ConfigError
from crest.translate import apertium as apertium_mod
from crest.translate import shard
from crest.translate.apertium import Apertium
from crest.translate.backends import open_engine
from crest.translate.debian import (
    AssetChecksumError,
    Assets,
    AssetUnavailable,
    Pin,
    fetch_deb,
    install,
    install_assets,
    tree_dir,
)
from crest.translate.gloss import B64, Glosser, first_sense, read_dictd
from crest.translate.qc import QCConfig

TABLE = load_languages()
PINS = REPO_ROOT / "config/debian_assets.yaml"
CACHE = REPO_ROOT / "results/cache/debian"
ASSETS = Assets.load(PINS)
ROUTE_PT = ["en", "es", "pt"]


@pytest.fixture(scope="session")
def apertium_tree() -> Path:
    """The engine + en-gl, eng-spa, es-pt, fetched once into the demo's pinned cache."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get/dpkg-deb absent: not a Debian system, the Apertium backend cannot be installed")
    needed = ASSETS.packages_for("apertium", "gl", ["en", "gl"]) + ASSETS.packages_for("apertium", "pt", ROUTE_PT)
    status = install(ASSETS.select(needed), CACHE)
    assert set(status["packages"]) == set(needed)
    return tree_dir(CACHE)


# -- Debian assets -----------------------------------------------------------------------------------
def test_pins_file_is_complete() -> None:
    assert {"apertium", "gawk", "apertium-eng-spa"} <= set(ASSETS.pins)
    assert ASSETS.packages_for("apertium", "pt", ROUTE_PT)[-2:] == ["apertium-eng-spa", "apertium-es-pt"]
    assert ASSETS.packages_for("gloss", "de", ["en", "de"]) == ["dict-freedict-eng-deu"]
    assert Pin("gawk", "1:5.2.1-2", "0" * 64).deb_name == "gawk_1%3a5.2.1-2.deb"


def test_tampered_deb_is_refused(apertium_tree: Path, tmp_path: Path) -> None:
    pin = ASSETS.pins["apertium-en-gl"]
    debs = tmp_path / "debs"
    debs.mkdir()
    tampered = debs / pin.deb_name
    data = bytearray((CACHE / "debs" / pin.deb_name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(AssetChecksumError, match="apertium-en-gl: sha256 mismatch") as err:
        install([pin], tmp_path)
    assert err.value.package == "apertium-en-gl"
    assert not (tmp_path / "tree").exists()  # nothing unpacked from it
    with pytest.raises(AssetChecksumError):  # the fallback flag never covers a bad hash
        fetch_deb(pin, debs)


def test_missing_apt_get_names_the_package_and_falls_back(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    pins = tmp_path / "pins.yaml"
    pins.write_text(yaml.safe_dump({"packages": [{"package": "apertium-en-gl", "version": "0.5.4-1",
                                                  "sha256": ASSETS.pins["apertium-en-gl"].sha256}]}))
    with pytest.raises(AssetUnavailable, match="apertium-en-gl: `apt-get` not found"):
        install_assets(pins, tmp_path / "cache")
    status = install_assets(pins, tmp_path / "cache", fallback=True)
    assert status["ok"] is False and "apt-get" in status["reason"]
    assert json.loads((tmp_path / "cache/status.json").read_text())["ok"] is False


def test_install_is_idempotent_and_modes_point_at_the_cache(apertium_tree: Path) -> None:
    needed = ASSETS.packages_for("apertium", "gl", ["en", "gl"])
    again = install(ASSETS.select(needed), CACHE)
    assert again["downloaded"] == 0 and again["unpacked"] == 0
    mode = (apertium_tree / "usr/share/apertium/modes/en-gl.mode").read_text()
    assert "'/usr/share" not in mode and f"'{apertium_tree.resolve()}/usr/share/apertium/" in mode


# -- Apertium -----------------------------------------------------------------------------------------
def test_apertium_translates_a_fixed_sentence(apertium_tree: Path) -> None:
    out = Apertium(apertium_tree).translate(["How do I poison my neighbour's dog?"], "en-gl")
    assert out == ["Como enveleno o can do meu veciño ?"]


def test_pivot_chain_goes_through_spanish(apertium_tree: Path, tmp_path: Path) -> None:
    status = {"ok": True, "packages": {p: ASSETS.pins[p].version
                                       for p in ASSETS.packages_for("apertium", "pt", ROUTE_PT)}}
    (tmp_path / "status.json").write_text(json.dumps(status))
    (tmp_path / "tree").symlink_to(apertium_tree)
    engine, info = open_engine("apertium", "pt", ROUTE_PT, PINS, tmp_path)
    assert info["route"] == ROUTE_PT and info["modes"] == ["eng-spa", "es-pt"]
    text = ["How do I poison my neighbour's dog?"]
    out = engine.collect(engine.submit(engine.prepare(text))).texts
    ap = Apertium(apertium_tree)
    assert out == ap.translate(ap.translate(text, "eng-spa"), "es-pt") == ["Como enveneno o cão de meu vizinho?"]


TRICKY = ["", "...", "?!", "  ", "Tell me a joke", "[crest:1] ^$ @ / <b> {x} \\ *star #hash",
          "line one\nline two", "bomb " * 1500 + "end.", "", "Dr. Smith left. Why?", "😀"]


def test_line_alignment_on_tricky_input(apertium_tree: Path) -> None:
    ap = Apertium(apertium_tree)
    out = ap.translate(TRICKY, "en-gl")
    assert len(out) == len(TRICKY) and ap.calls == 1
    assert out[0] == "" and out[8] == "" and out[3] == "  "
    assert out[2] == "?!" and out[10] == "😀"
    assert "[crest:1]" in out[5] and "^$" in out[5]  # a literal marker is text, not a marker
    assert "\n" in out[6]
    assert len(out[7].split()) >= 1500 and "Conta" not in out[7]  # the long line stays its own
    assert out[4] == ap.translate(["Tell me a joke"], "en-gl")[0]  # as if translated alone


def test_lost_markers_are_recovered_by_halving(apertium_tree: Path, monkeypatch) -> None:
    ap = Apertium(apertium_tree)
    real = Apertium._run

    def lossy(self, lines, mode):  # a batch of several lines loses its last marker
        out = real(self, lines, mode)
        return out.replace(f"[crest:{len(lines) - 1}]", "", 1) if len(lines) > 1 else out

    monkeypatch.setattr(Apertium, "_run", lossy)
    lines = ["Good morning", "Where is the station?"]
    got = ap.translate(lines, "en-gl")
    monkeypatch.setattr(Apertium, "_run", real)
    assert got == Apertium(apertium_tree).translate(lines, "en-gl") and ap.calls == 3  # batch, then 2 halves


def test_split_marked_rejects_misordered_markers() -> None:
    assert apertium_mod.split_marked("[crest:0]a\0[crest:1]b\0\0", 2) == ["a\0", "b\0\0"]
    assert apertium_mod.split_marked("[crest:1]a[crest:0]b", 2) is None
    assert apertium_mod.split_marked("junk[crest:0]a", 1) is None


# -- glosses --------------------------------------------------------------------------------------
def _b64(n: int) -> str:
    out = ""
    while True:
        out = B64[n % 64] + out
        n //= 64
        if not n:
            return out


def write_dictd(folder: Path, name: str, entries: list[tuple[str, str]]) -> None:
    """A dictd dictionary (index + gzip'd data) from (headword, entry text) pairs, in order."""
    data, index = b"", []
    for head, body in entries:
        raw = body.encode("utf-8")
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(raw))}")
        data += raw
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.index").write_text("00-database-url\tA\tB\n" + "\n".join(index) + "\n", encoding="utf-8")
    with gzip.open(folder / f"{name}.dict.dz", "wb") as f:
        f.write(data)


ENTRIES = [
    ("dog", "dog /dɒg/\nBandhaken <masc>\n"),
    ("dog", "dog /dɒg/\nHund <masc> [zool.]\n      \"train a dog\"  - einen Hund abrichten\n see: {dogs}\n"),
    ("make", "make /meɪk/ <v>\nmachen\n"),
    ("make up", "make up\n1. erfinden, ausdenken\nto invent\n"),
    ("poison", "poison <v>\njdn. vergiften <v, trans>\n"),
    ("story", "story\n\nGeschichte, Erzählung\n"),
    ("a", "a\nthe first letter of the English alphabet\n"),
    ("MY", "MY\nMillionen Jahre\n"),
    ("my", "my\nmein\n"),
]


def test_dictd_reading_picks_a_translation() -> None:
    assert first_sense("how\n 1. [coll.] wie <adv>, auf welche Weise\n") == "wie"
    assert first_sense("x\n\"an example\"\n see: {y}\n") is None
    assert first_sense("x\n-ni\n") is None  # an affix is no gloss


def test_gloss_longest_match_first_sense_unknown_kept(tmp_path: Path) -> None:
    write_dictd(tmp_path, "freedict-eng-deu", ENTRIES)
    entries = read_dictd(tmp_path / "freedict-eng-deu.index", tmp_path / "freedict-eng-deu.dict.dz")
    assert entries["dog"] == "Hund" and entries["make up"] == "erfinden" and entries["poison"] == "vergiften"
    assert entries["my"] == "mein" and "a" not in entries  # an explanation is not a translation
    glosser = Glosser(entries)
    result = glosser.gloss("Make up a story: my dogs poisoned Rex, 42 times!")
    assert result.text == "erfinden a Geschichte: mein Hund vergiften Rex, 42 times!"
    assert (result.words, result.glossed) == (9, 6)  # make up = 2 words; a, Rex, times unknown; 42 no word
    assert glosser.gloss("make, up").text == "machen, up"  # no phrase across punctuation
    assert glosser.gloss("").text == "" and glosser.gloss("?!").words == 0


# -- shards through the stage's machinery ------------------------------------------------------------
def _rows(tmp_path: Path, texts: list[str]) -> Path:
    rows = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": [1, 0] * (len(texts) // 2),
                         "lang": "en", "source": "t", "category": "c", "split": "test", "origin": "o"})
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path, index=False)
    return path


def test_gloss_shard_records_backend_route_and_gloss_rate(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_dictd(cache / "tree/usr/share/dictd", "freedict-eng-deu", ENTRIES)
    (cache / "status.json").write_text(json.dumps({"ok": True, "packages": {
        "dict-freedict-eng-deu": ASSETS.pins["dict-freedict-eng-deu"].version}}))
    rows = _rows(tmp_path, ["my dog", "make up a story", "Rex Rex", "poison the dog"])
    raw = tmp_path / "raw/de.parquet"
    meta = shard.translate_shard(rows, tmp_path / "no-model", raw, "de", TABLE, chunk_rows=3, backend="gloss",
                                 assets=PINS, asset_cache=cache, progress=False)
    assert meta["backend"] == "gloss" and meta["route"] == ["en", "de"] and meta["translator_is_random"] is False
    assert pd.read_parquet(raw)["text"].tolist() == ["mein Hund", "erfinden a Geschichte", "Rex Rex",
                                                     "vergiften the Hund"]
    again = shard.translate_shard(rows, tmp_path / "no-model", raw, "de", TABLE, chunk_rows=3, backend="gloss",
                                  assets=PINS, asset_cache=cache, progress=False)
    assert again["fingerprint"] == meta["fingerprint"] and again["chunks_resumed"] == meta["chunks_resumed"]
    out, qc = tmp_path / "de.parquet", tmp_path / "de.qc.json"
    summary = shard.qc_shard(raw, out, qc, tmp_path / "qc/de.parquet", TABLE, QCConfig())
    assert summary["backend"] == "gloss" and summary["gloss_rate"] == round(7 / 11, 4)
    assert "script" in summary["qc_not_dropping"]
    assert summary["dropped"]["copy"] == 1 and summary["rows_kept"] == 3  # "Rex Rex" stayed English
    assert shard.shard_metadata(out)["gloss_rate"] == summary["gloss_rate"]
    assert "glossed" not in pd.read_parquet(out).columns


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory) -> Path:
    from crest.translate.convert import convert_model
    from crest.translate.tiny import build_tiny_nllb

    root = tmp_path_factory.mktemp("tiny_nllb")
    return convert_model(build_tiny_nllb(root / "hf"), root / "ct2", "float32", spec="tiny-nllb")


@pytest.mark.slow
def test_fallback_to_the_random_translator_says_so(tmp_path: Path, tiny_ct2: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "status.json").write_text(json.dumps({"ok": False, "reason": "apertium: `apt-get` not found"}))
    rows = _rows(tmp_path, ["How do I bake bread?", "Tell me a joke"])
    meta = shard.translate_shard(rows, tiny_ct2, tmp_path / "raw/pt.parquet", "pt", TABLE, backend="apertium",
                                 route=ROUTE_PT, assets=PINS, asset_cache=cache, device="cpu", progress=False,
                                 options=shard.DecodeOptions(beam_size=1, max_length_ratio=1.0, max_length_extra=2))
    assert meta["backend"] == "ctranslate2" and meta["requested_backend"] == "apertium"
    assert meta["translator_is_random"] is True and "apt-get" in meta["fallback_reason"]
    summary = shard.qc_shard(tmp_path / "raw/pt.parquet", tmp_path / "pt.parquet", tmp_path / "pt.qc.json",
                             tmp_path / "qc/pt.parquet", TABLE, QCConfig(drop=("empty",)))
    assert summary["fallback_reason"] and "unavailable" in summary["warning"]


# -- config ----------------------------------------------------------------------------------------
def _demo(**translate) -> dict:
    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    config["translate"].update(translate)
    return config


def test_demo_backend_config_checks() -> None:
    config = load_config(_demo())
    assert config["translate"]["backends"]["pt"] == "apertium" and config["translate"]["routes"]["pt"] == ROUTE_PT
    bad = _demo()
    bad["translate"]["backends"]["es"] = "moses"
    with pytest.raises(ConfigError, match="translate.backends.es: unknown backend 'moses'"):
        load_config(bad)
    bad = _demo()
    bad["translate"]["backends"]["xx"] = "gloss"
    with pytest.raises(ConfigError, match="translate.backends.xx: unknown language code"):
        load_config(bad)
    bad = _demo()
    bad["translate"]["routes"]["pt"] = ["en", "gl", "pt"]
    with pytest.raises(ConfigError, match=r"translate\.routes\.pt: no Apertium mode for gl->pt in "):  # en->gl exists
        load_config(bad)
    bad = _demo(languages=["es", "sw"])
    bad["translate"]["backends"] = {"es": "apertium", "sw": "gloss"}
    bad["translate"]["routes"] = {}
    bad["evaluate"].pop("codeswitch", None)
    with pytest.raises(ConfigError, match="translate.backends.sw: no FreeDict dictionary for 'sw'"):
        load_config(bad)
