"""`crest hub lock` and `crest hub fetch`: pin every Hugging Face Hub repository a run reads, and
download the pinned revisions into a mirror for compute nodes without internet (crest.hub).

    crest hub lock  --configfile config/config.yaml                 # on a machine with the hub
    crest hub fetch --configfile config/config.yaml --mirror DIR    # on the login node
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crest.schema import ConfigError


def _lock(args: argparse.Namespace) -> None:
    from crest import hub
    from crest.config import load_config
    from crest.paths import display_path, resolve

    config = load_config(args.configfile)
    out = args.out or (config["hub"]["lock"] and resolve(config["hub"]["lock"]))
    if not out:
        raise ConfigError(f"{args.configfile}: hub.lock is null: set it (e.g. config/hub.lock.yaml) or pass --out")
    entries = hub.resolve_lock(config)
    hub.write_lock(entries, out, str(args.configfile))
    unresolved = sum(e["revision"] == hub.UNRESOLVED for e in entries)
    print(json.dumps({"lock": display_path(out), "repos": len(entries), "unresolved": unresolved}))


def _fetch(args: argparse.Namespace) -> None:
    from crest import hub
    from crest.config import load_config
    from crest.paths import resolve

    config = load_config(args.configfile)
    mirror = args.mirror or config["hub"]["mirror"]
    if not mirror:
        raise ConfigError(f"{args.configfile}: no mirror: pass --mirror DIR (or set hub.mirror)")
    print(json.dumps(hub.fetch_mirror(config, resolve(mirror), str(args.configfile))))


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("hub", help="pin and prefetch Hugging Face Hub repositories (docs/hub.md)")
    cmds = group.add_subparsers(dest="hub_command", required=True)
    p = cmds.add_parser("lock", help="resolve every repo a config reads to its commit SHA and write the lock")
    p.add_argument("--configfile", type=Path, required=True)
    p.add_argument("--out", type=Path, help="lock file to write (default: the config's hub.lock)")
    p.set_defaults(func=_lock)
    p = cmds.add_parser("fetch", help="check access to every locked repo, then download them into a mirror")
    p.add_argument("--configfile", type=Path, required=True)
    p.add_argument("--mirror", type=Path, help="mirror folder (default: the config's hub.mirror)")
    p.set_defaults(func=_fetch)
