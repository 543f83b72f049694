"""Glue the Snakemake rule files share (kept here so the rules stay declarative)."""

from __future__ import annotations

import os
import sys


def put_own_bin_first() -> None:
    """Make the `crest` CLI installed beside the running Snakemake the one rules find, also when
    snakemake is started as .venv/bin/snakemake without activating the venv. Jobs run with
    --use-conda still put their own environment first."""
    own = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [own]:
        os.environ["PATH"] = os.pathsep.join([own, path])
