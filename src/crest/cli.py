"""The `crest` command line. Snakemake rules call these subcommands; so can a user."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from crest.schema import ConfigError


def _data_prepare(args: argparse.Namespace) -> None:
    from crest.data import load_registry, prepare_source

    registry = load_registry(args.registry)
    if args.source not in registry:
        raise ConfigError(f"unknown source {args.source!r} (registry: {', '.join(args.registry)})")
    stats = prepare_source(registry[args.source], args.out, cache_dir=args.cache_dir, validation=args.validation,
                           test=args.test, seed=args.seed, offline=args.offline)
    print(json.dumps({k: stats[k] for k in ("source", "rows_kept", "dropped", "labels")}))


def _data_corpus(args: argparse.Namespace) -> None:
    from crest.data import build_corpus

    stats = build_corpus(args.inputs, args.out)
    print(json.dumps({k: stats[k] for k in ("rows_kept", "dropped", "labels")}))


def _config_check(args: argparse.Namespace) -> None:
    from crest.config import load_config

    config = load_config(args.configfile)
    print(json.dumps(config, indent=2) if args.print else f"{args.configfile}: OK")


def _where(args: argparse.Namespace) -> None:
    from crest.config import load_config, run_dir

    config = load_config(args.configfile)
    root = run_dir(config)
    print(f"Outputs of run {config['run']!r}:")
    for label, sub in (("prepared sources", "data"), ("corpora", "data/corpora")):
        path = root / sub
        if path.exists():
            n = len(list(path.glob("*.parquet")))
            print(f"  {label:18s} {path}/ ({n} parquet files, each with a .stats.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crest", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data stage").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("prepare", help="load one registry source into the normalised parquet")
    p.add_argument("--registry", action="append", required=True, help="registry YAML (repeatable)")
    p.add_argument("--source", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cache-dir", default="results/cache/wheels")
    p.add_argument("--validation", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--offline", action="store_true")
    p.set_defaults(func=_data_prepare)
    p = data.add_parser("corpus", help="merge prepared sources, dropping texts seen in an earlier one")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("inputs", nargs="+", type=Path)
    p.set_defaults(func=_data_corpus)

    cfg = sub.add_parser("config", help="run configs").add_subparsers(dest="config_command", required=True)
    p = cfg.add_parser("check", help="validate a run config as the DAG build does")
    p.add_argument("configfile", type=Path)
    p.add_argument("--print", action="store_true", help="print the config with defaults filled in")
    p.set_defaults(func=_config_check)

    p = sub.add_parser("where", help="say where a run's outputs are")
    p.add_argument("--configfile", type=Path, required=True)
    p.set_defaults(func=_where)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"crest: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
