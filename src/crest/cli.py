"""The `crest` command line. Snakemake rules call these subcommands; so can a user.

Each stage registers its own subcommands (a `register(subparsers)` function in its `cli` module,
listed in STAGE_CLIS), so the stages stay independent."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from crest.schema import ConfigError

STAGE_CLIS = (
    "crest.data.cli",
    "crest.translate.cli",
    "crest.embed.cli",
    "crest.cluster.cli",
    "crest.train.cli",
    "crest.evaluate.cli",
    "crest.guard.cli",
    "crest.gpu_slots",
    "crest.estimate",
    "crest.hub_cli",
    "crest.rehearsal.cli",
)


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
    from crest.evaluate.plan import where_lines

    for line in where_lines(config):
        print(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crest", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in STAGE_CLIS:
        importlib.import_module(module).register(sub)

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
    except ConfigError as e:  # its message lists every invalid key, one per line
        print(f"crest: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # bad input (files, models, values): one line, no traceback
        if args.verbose:
            logging.exception("details")
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"crest: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
