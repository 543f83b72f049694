"""`crest data ...`: the data stage's commands (called by workflow/rules/data.smk)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _prepare(args: argparse.Namespace) -> None:
    from crest.data import prepare_source
    from crest.data.registry import get_source

    stats = prepare_source(get_source(args.registry, args.source), args.out, cache_dir=args.cache_dir, validation=args.validation,
                           test=args.test, seed=args.seed, offline=args.offline)
    print(json.dumps({k: stats[k] for k in ("source", "rows_kept", "dropped", "labels")}))


def _corpus(args: argparse.Namespace) -> None:
    from crest.data import build_corpus

    stats = build_corpus(args.inputs, args.out, suspects=args.drop_suspects)
    print(json.dumps({k: stats[k] for k in ("rows_kept", "dropped", "labels")}))


def _audit(args: argparse.Namespace) -> None:
    from crest.data.audit import run_audit

    s = args.settings
    summary = run_audit(args.inputs, args.encoder, args.out_dir, folds=s["folds"], seed=s["seed"], C=s["C"],
                        top=s["top"], features=s["features"], threads=args.threads)
    print(json.dumps({k: summary[k] for k in ("rows", "suspected", "rate", "oos_auroc", "seconds")}))


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of preparing one registry source (also used by `crest evaluate source`)."""
    p.add_argument("--registry", action="append", required=True, help="registry YAML (repeatable)")
    p.add_argument("--source", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cache-dir", default="results/cache/wheels")
    p.add_argument("--validation", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--offline", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="data stage").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("prepare", help="load one registry source into the normalised parquet")
    add_source_arguments(p)
    p.set_defaults(func=_prepare)
    p = data.add_parser("corpus", help="merge prepared sources, dropping texts seen in an earlier one")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--drop-suspects", type=Path, default=None,
                   help="the label audit's suspects.tsv: drop those rows from the train split (data.audit.drop)")
    p.add_argument("inputs", nargs="+", type=Path)
    p.set_defaults(func=_corpus)
    p = data.add_parser("audit", help="likely label errors of every audited source (confident learning)")
    p.add_argument("--encoder", required=True, help="frozen encoder (a model folder or hub id)")
    p.add_argument("--settings", required=True, type=json.loads,
                   help="JSON: {folds, seed, C, top, features: {max_length, pad_to, batch_tokens, max_batch_size}}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("inputs", nargs="+", type=Path, help="prepared source parquets")
    p.set_defaults(func=_audit)
