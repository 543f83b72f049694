"""Glue the Snakemake rule files share (kept here so the rules stay declarative and every rule file
imports the same helper instead of defining its own)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any


def put_own_bin_first() -> None:
    """Make the `crest` CLI installed beside the running Snakemake the one rules find, also when
    snakemake is started as .venv/bin/snakemake without activating the venv. Jobs run with
    --use-conda still put their own environment first."""
    own = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [own]:
        os.environ["PATH"] = os.pathsep.join([own, path])


def shell_json(obj: Any) -> str:
    """`obj` as one shell-quoted JSON word (a rule's --settings), keys sorted so the command, and
    with it Snakemake's rerun check, does not change with dict order."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def gpu_run(reserved: int, count: int | str = "{resources.gpu}", *, hide_when_none: bool = False) -> str:
    """The launch prefix of a job that reserves `reserved` GPUs (its `resources: gpu=`):
    `crest gpu-run --gpus N -- ` (crest.gpu_slots: on a workstation it locks N GPUs for the job and
    sets CUDA_VISIBLE_DEVICES, which Snakemake sets for no local job; in a SLURM job it hands out the
    job's own GPUs). `count` is the rule's `{resources.gpu}` placeholder, or the number itself where
    the prefix is passed as a param (no placeholder is filled there). A job that reserves none runs
    as it is (""), unless `hide_when_none`: then `--gpus 0` hides every GPU from it."""
    return f"crest gpu-run --gpus {count} -- " if reserved or hide_when_none else ""
