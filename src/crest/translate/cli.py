"""`crest translate ...`: the translation stage's commands (called by workflow/rules/translate.smk).

    crest translate assets [--pins config/debian_assets.yaml] [--root results/cache/debian]   Debian assets
    crest translate build-tiny --out DIR                    the offline random-weight NLLB
    crest translate convert --model SPEC --out DIR          HF checkpoint -> CTranslate2
    crest translate rows --corpus C.parquet --out R.parquet the rows every language translates
    crest translate shard --rows R --model-dir M --lang fr --out raw/fr.parquet
    crest translate source --rows R --lang en --out en.parquet --qc en.qc.json
    crest translate qc --raw raw/fr.parquet --out fr.parquet --qc fr.qc.json --table qc/fr.parquet
    crest translate summary --out qc_summary.tsv *.qc.json
    crest translate text --model-dir M --tgt fr "some text" ...   translate strings (try a model)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crest.cliargs import json_object
from crest.paths import resolve


def _languages(args: argparse.Namespace):
    from crest.languages import load_languages

    return load_languages(resolve(args.languages))


def _build_tiny(args: argparse.Namespace) -> None:
    from crest.translate.tiny import build_tiny_nllb

    print(build_tiny_nllb(args.out, seed=args.seed))


def _convert(args: argparse.Namespace) -> None:
    from crest.translate.convert import convert_model

    print(convert_model(args.source or args.model, args.out, args.quantization, revision=args.revision,
                        spec=args.model))


def _rows(args: argparse.Namespace) -> None:
    from crest.translate.shard import prepare_rows

    stats = prepare_rows(args.corpus, args.out, args.source_lang, args.max_rows, args.seed)
    print(json.dumps({k: stats[k] for k in ("rows_in", "rows_selected", "rows_other_language", "labels")}))


def _shard(args: argparse.Namespace) -> None:
    from crest.translate.nllb import DecodeOptions
    from crest.translate.shard import translate_shard

    s = args.settings
    meta = translate_shard(
        args.rows, args.model_dir, args.out, args.lang, _languages(args), source_lang=s.get("source_lang", "en"),
        options=DecodeOptions.from_config(s), chunk_rows=s.get("chunk_rows", 2048), device=s.get("device", "auto"),
        device_index=s.get("device_index", [0]), compute_type=s.get("compute_type", "default"),
        threads=args.threads or s.get("threads", 0), inter_threads=s.get("inter_threads", 1), corpus=args.corpus,
        progress=not args.no_progress, backend=s.get("backend", "ctranslate2"), route=s.get("route"),
        assets=s.get("assets"), asset_cache=s.get("asset_cache"))
    print(json.dumps({k: meta.get(k) for k in ("corpus", "lang", "backend", "route", "translator_is_random",
                                              "fallback_reason", "chunks", "chunks_resumed", "throughput_this_run")}))


def _assets(args: argparse.Namespace) -> None:
    from crest.translate.debian import install_assets

    status = install_assets(args.pins, args.root, fallback=args.fallback)
    if status["ok"]:
        print(f"debian assets: {len(status['packages'])} packages ready under {status['tree']}")
    else:
        print(f"WARNING: debian assets unavailable: {status['reason']}; apertium and gloss languages will be "
              "translated by models.translator instead (see their shards' fallback_reason)")


def _source(args: argparse.Namespace) -> None:
    from crest.translate.shard import source_shard

    summary = source_shard(args.rows, args.out, args.qc, args.lang, corpus=args.corpus)
    print(json.dumps({k: summary[k] for k in ("lang", "rows_kept")}))


def _qc(args: argparse.Namespace) -> None:
    from crest.translate.qc import QCConfig
    from crest.translate.shard import qc_shard

    summary = qc_shard(args.raw, args.out, args.qc, args.table, _languages(args), QCConfig.from_config(args.settings))
    flagged = ", ".join(f"{k} {v}" for k, v in summary["flagged"].items())
    print(f"{summary['corpus']}:{summary['lang']}: {summary['rows_in']} rows, kept {summary['rows_kept']}, "
          f"dropped {summary['rows_dropped']} (flagged: {flagged})"
          + (" [random-weight translator: noise]" if summary.get("translator_is_random") else ""))


def _summary(args: argparse.Namespace) -> None:
    from crest.translate.shard import summarise_corpus

    print(summarise_corpus(args.inputs, args.out).to_string(index=False))


def _text(args: argparse.Namespace) -> None:
    from crest.languages import nllb_code
    from crest.translate.nllb import DecodeOptions, NllbTranslator

    table = _languages(args)
    translator = NllbTranslator(args.model_dir, device=args.device)
    out = translator.translate(args.texts, nllb_code(args.src, table), nllb_code(args.tgt, table),
                               DecodeOptions(beam_size=args.beam_size))
    for text in out.texts:
        print(text)


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("translate", help="translation stage (NLLB-200 via CTranslate2)").add_subparsers(
        dest="translate_command", required=True)

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = tr.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    def languages(p: argparse.ArgumentParser) -> None:
        p.add_argument("--languages", default="config/languages.tsv", help="the language table")

    p = add("build-tiny", "build the random-weight tiny NLLB (HF format) for offline runs", _build_tiny)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)

    p = add("convert", "convert a Hugging Face NLLB checkpoint to CTranslate2", _convert)
    p.add_argument("--model", required=True, help="hub id, local directory, or a built model name (tiny-nllb)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--quantization", default="float16")
    p.add_argument("--revision", default=None)
    p.add_argument("--source", default=None, help="convert this directory, recording --model as the name "
                   "(a built model such as tiny-nllb)")

    p = add("assets", "download, verify (sha256) and unpack the pinned Debian packages, no root needed", _assets)
    p.add_argument("--pins", default="config/debian_assets.yaml", type=Path)
    p.add_argument("--root", default="results/cache/debian", type=Path)
    p.add_argument("--fallback", action="store_true", help="a missing apt-get/dpkg-deb or a failed download is "
                   "recorded in ROOT/status.json (the translate jobs fall back) instead of an error; a sha256 "
                   "mismatch is always an error")

    p = add("rows", "select the source rows every language translates", _rows)
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--source-lang", default="en")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--seed", type=int, default=13)

    p = add("shard", "translate the rows into one language (resumable)", _shard)
    p.add_argument("--rows", required=True, type=Path)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--lang", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--corpus", default=None)
    p.add_argument("--settings", type=json_object, default={}, help="the translate config section as JSON")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    languages(p)

    p = add("source", "the source language's shard (rows as they are)", _source)
    p.add_argument("--rows", required=True, type=Path)
    p.add_argument("--lang", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--qc", required=True, type=Path)
    p.add_argument("--corpus", default=None)

    p = add("qc", "quality-check a raw shard and apply the drop policy", _qc)
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--qc", required=True, type=Path)
    p.add_argument("--table", required=True, type=Path)
    p.add_argument("--settings", type=json_object, default={}, help="the translate.qc config section as JSON")
    languages(p)

    p = add("summary", "one line per language from qc json files", _summary)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("inputs", nargs="+", type=Path)

    p = add("text", "translate strings with a converted model", _text)
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--src", default="en")
    p.add_argument("--tgt", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("texts", nargs="+")
    languages(p)
