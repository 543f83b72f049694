"""`crest estimate`: the work and the GPU hours of a run, from the DAG's own job list, before submitting it.

    crest estimate --configfile config/config.yaml                       # rates: reference H100 figures
    crest estimate --configfile config/config.yaml --bench bench/results/2026-12-01-cuda.json
    crest estimate --configfile config/config.yaml --rows train=30000 eval=1500 harmbench=400

The job list is Snakemake's dry run (`snakemake -n` on the same config, so the counts are those of
`snakemake -n` by construction; the Job stats table is checked against the parsed jobs). Each job's
work is read from its shell command and inputs: translate shards (sentences; only the
CTranslate2 backend uses a GPU, Apertium and gloss shards are CPU), the embed job (texts), training
jobs (samples seen = budget examples x epochs), model evaluations (rows of every set scored).
Row counts come from files the run has already written (prepared data, shards, eval sets) or from
`--rows NAME=N` (NAME: a corpus, e.g. `train`, or a benchmark); what is known neither way is
reported as unknown, never guessed. GPU hours = work / measured rate, with the rate's origin
printed beside it: the suite's JSON (`--bench`, bench/suite.py) or, without it, the reference H100
figures of docs/performance.md, "Reference figures" (random weights of the real shapes; model loading excluded).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crest.paths import REPO_ROOT
from crest.schema import ConfigError

# Reference rates, one H100, random-weight models of the real shapes (docs/performance.md, "Reference figures").
REFERENCE = {
    "translate_beam1": (1032.0, "H100 reference: NLLB-600M CTranslate2 fp16 greedy, batch 256 (sentences/s)"),
    "translate_beam4": (191.0, "H100 reference: NLLB-600M CTranslate2 fp16 beam 4, batch 64 (sentences/s)"),
    "embed": (5419.0, "H100 reference: XLM-R Large fp16 forward, batch 256, length 128 (texts/s)"),
    "train_large": (1048.0, "H100 reference: XLM-R Large, token budget 16k, realistic lengths (samples/s)"),
    "train_base": (1843.0, "H100 reference: XLM-R Base, batch 64, length 128 (samples/s; no realistic-length "
                           "figure for Base)"),
    "evaluate_large": (5419.0, "H100 reference: XLM-R Large fp16 forward, batch 256 (rows/s)"),
    "evaluate_base": (5419.0, "H100 reference: XLM-R Large's forward rate, used for Base too (an upper bound "
                              "on Base's time)"),
    "evaluate_llm": (75.0, "H100 reference: Llama-3.1-8B-shaped LLM guard, batch 64 (rows/s)"),
}
GPU_RULES = {"translate_shard", "embed", "train_model", "eval_model"}


@dataclass
class Job:
    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    shell: str = ""


def dry_run(configfile: str | Path, cwd: Path = REPO_ROOT) -> str:
    """`snakemake -n` on the config, as text (the venv's snakemake, from the repository root)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(configfile)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ConfigError(f"snakemake -n --configfile {configfile} failed: " + " | ".join(tail))
    return proc.stdout + proc.stderr


def parse_jobs(text: str) -> list[Job]:
    """Jobs of a dry run's output: one per `rule NAME:` / `localrule NAME:` block."""
    jobs: list[Job] = []
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            jobs.append(Job(m.group(1)))
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1].wildcards = dict(kv.split("=", 1) for kv in line.removeprefix("    wildcards: ").split(", "))
        elif jobs and line.startswith("Shell command: ") and not jobs[-1].shell:
            jobs[-1].shell = line.removeprefix("Shell command: ")
    return jobs


def parse_stats(text: str) -> dict[str, int]:
    """The `Job stats` table of a dry run: {rule: count} (`total` excluded)."""
    counts: dict[str, int] = {}
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Job stats:"), None)
    if start is None:
        return counts
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def rule_stages(rules_dir: Path = REPO_ROOT / "workflow" / "rules") -> dict[str, str]:
    """{rule: stage}: a rule's stage is the rules file that defines it (translate.smk -> translate)."""
    out = {}
    for path in sorted(rules_dir.glob("*.smk")):
        for m in re.finditer(r"^\s*(?:local)?rule (\w+):", path.read_text(encoding="utf-8"), re.M):
            out[m.group(1)] = path.stem
    return out


def parquet_rows(path: str | Path) -> int | None:
    import pyarrow.parquet as pq

    path = REPO_ROOT / path if not Path(path).is_absolute() else Path(path)
    return pq.ParquetFile(path).metadata.num_rows if path.is_file() else None


def per_language_rows(path: str | Path, cap: int | None) -> int | None:
    """Rows the embed stage takes from a (multilingual) parquet: at most `cap` per language."""
    import pandas as pd

    path = REPO_ROOT / path if not Path(path).is_absolute() else Path(path)
    if not path.is_file():
        return None
    if cap is None:
        return parquet_rows(path)
    counts = pd.read_parquet(path, columns=["lang"])["lang"].value_counts()
    return int(counts.clip(upper=cap).sum())


def _args(shell: str) -> list[str]:
    cmd = shell.split(" > ")[0]
    return shlex.split(cmd)


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def _settings(args: list[str]) -> dict[str, Any]:
    raw = _opt(args, "--settings")
    return json.loads(raw) if raw else {}


def job_work(job: Job, rows: dict[str, int], run_dir: Path) -> tuple[int | None, str]:
    """(work units, rate key) of a GPU-capable job; work None = unknown; rate key '' = runs on CPU."""
    args = _args(job.shell)
    if job.rule == "translate_shard":
        s = _settings(args)
        n = parquet_rows(_opt(args, "--rows") or "") if _opt(args, "--rows") else None
        n = n if n is not None else rows.get(job.wildcards.get("corpus", ""))
        gpu = s.get("backend", "ctranslate2") == "ctranslate2" and s.get("device") != "cpu"
        return n, (f"translate_beam{1 if int(s.get('beam_size', 4)) == 1 else 4}" if gpu else "")
    if job.rule == "embed":
        files = [a for a in args[3:] if a.endswith(".parquet") and not a.startswith("-")]
        cap = int(_opt(args, "--max-per-language") or 0) or None
        total = 0
        for f in files:
            n = per_language_rows(f, cap)
            corpus = re.search(r"translated/([^/]+)/", f)
            n = n if n is not None else rows.get(corpus.group(1) if corpus else Path(f).stem)
            if n is None:
                return None, "embed"
            total += min(n, cap) if cap and corpus else n
        return (total if files else None), ("" if _opt(args, "--device") == "cpu" else "embed")
    if job.rule == "train_model":
        s = _settings(args)
        budget, epochs = s.get("budget"), int(s.get("optim", {}).get("epochs", 1))
        if isinstance(budget, dict) and budget.get("examples"):
            n = int(budget["examples"]) * epochs
        else:
            data = parquet_rows(_opt(args, "--data") or "")
            n = data * epochs if data is not None else None
        return n, ("" if s.get("device") == "cpu" else f"train_{job.wildcards.get('size', 'large')}")
    if job.rule == "eval_model":
        s = _settings(args)
        sets = [a for a in args[args.index("--threads") + 2:]] if "--threads" in args else []
        total = 0
        for name in sets:
            bench, _, lang = name.partition("/")
            n = parquet_rows(run_dir / "eval" / "sets" / bench / f"{lang}.parquet")
            n = n if n is not None else rows.get(bench)
            if n is None:
                return None, "evaluate_" + job.wildcards.get("size", "large")
            total += n
        return total, ("" if s.get("device") == "cpu" else "evaluate_" + job.wildcards.get("size", "large"))
    return None, ""


def bench_rates(path: Path) -> dict[str, tuple[float, str]]:
    """Rates measured by bench/suite.py (its JSON), keyed as REFERENCE; only the parts it ran."""
    data = json.loads(path.read_text(encoding="utf-8"))
    parts, where = data.get("parts", {}), data.get("environment", {}).get("gpu") or data["environment"]["device"]
    out: dict[str, tuple[float, str]] = {}
    tr = parts.get("translate", {})
    for r in tr.get("results", []):
        if r["mode"] == "stage":
            out[f"translate_beam{r['beam']}"] = (r["sentences_per_s"], f"{path.name}: {where}, {tr['shape']} stage")
    em = parts.get("embed", {})
    if "crest_per_s" in em:
        out["embed"] = (em["crest_per_s"], f"{path.name}: {where}, {em['shape']} Encoder.encode")
    trn = parts.get("train", {})
    if "token-budget" in trn.get("strategies", {}):
        rate = trn["strategies"]["token-budget"]["samples_per_s"]
        out[f"train_{trn['shape']}"] = (rate, f"{path.name}: {where}, {trn['shape']} token budget")
    for name, r in parts.get("latency", {}).get("results", {}).items():
        m = re.match(r"xlmr-(base|large) eager", name)
        if m and "batch64_per_s" in r:
            out[f"evaluate_{m.group(1)}"] = (r["batch64_per_s"], f"{path.name}: {where}, {name} batch 64")
        if name.startswith("llm-guard llama-3.1-8b") and "batch64_per_s" in r:
            out["evaluate_llm"] = (r["batch64_per_s"], f"{path.name}: {where}, {name} batch 64")
    return out


def estimate(configfile: str | Path, bench: Path | None = None, rows: dict[str, int] | None = None,
             dry_run_text: str | None = None) -> dict[str, Any]:
    """Per-stage job counts, work and GPU hours of the run `configfile` describes."""
    from crest.config import load_config, run_dir

    config = load_config(configfile)
    root = REPO_ROOT / run_dir(config) if not Path(run_dir(config)).is_absolute() else Path(run_dir(config))
    rows = dict(rows or {})
    for corpus in (config.get("data", {}).get("corpora") or {}):
        n = parquet_rows(root / "data" / "corpora" / f"{corpus}.parquet")
        if n is not None:
            rows.setdefault(corpus, n)
    text = dry_run_text if dry_run_text is not None else dry_run(configfile)
    jobs, stats = parse_jobs(text), parse_stats(text)
    counted = Counter(j.rule for j in jobs)
    if stats and dict(counted) != stats:
        raise ConfigError(f"estimate: the dry run's Job stats {stats} disagree with its job list {dict(counted)}")
    rates = dict(REFERENCE)
    if bench:
        rates.update(bench_rates(bench))
    stages = rule_stages()
    table: dict[str, dict[str, Any]] = {}
    for job in jobs:
        stage = stages.get(job.rule) or ("evaluate" if job.rule.startswith("eval_") else "other")
        t = table.setdefault(stage, {"jobs": 0, "gpu_jobs": 0, "work": 0, "unknown_jobs": 0, "gpu_hours": 0.0,
                                     "units": Counter(), "rates": {}})
        t["jobs"] += 1
        if job.rule in GPU_RULES:
            work, key = job_work(job, rows, root)
            unit = {"translate_shard": "sentences to translate", "embed": "texts to embed",
                    "train_model": "training samples", "eval_model": "evaluation rows"}[job.rule]
            if work is None:
                t["unknown_jobs"] += 1
                continue
            t["units"][unit] += work
            if key:
                t["gpu_jobs"] += 1
                rate, label = rates[key]
                t["gpu_hours"] += work / rate / 3600
                t["rates"][key] = f"{rate:g}/s ({label})"
        elif job.rule.startswith("eval_baseline_"):
            t["gpu_jobs"] += 1
            t["rates"]["baselines"] = "LLM baselines: rows unknown until the eval sets exist (rate " \
                                      f"{rates['evaluate_llm'][0]:g}/s, {rates['evaluate_llm'][1]})"
    for t in table.values():
        t["units"] = dict(t["units"])
        t["gpu_hours"] = round(t["gpu_hours"], 3)
        del t["work"]
    return {"configfile": str(configfile), "run": config["run"], "jobs": len(jobs), "rules": dict(counted),
            "rows_known": rows, "stages": table,
            "gpu_hours_total": round(sum(t["gpu_hours"] for t in table.values()), 3),
            "unknown_jobs": sum(t["unknown_jobs"] for t in table.values()),
            "rates_from": str(bench) if bench else "reference H100 figures (docs/performance.md)"}


def format_estimate(est: dict[str, Any]) -> str:
    lines = [f"run {est['run']} ({est['configfile']}): {est['jobs']} jobs (snakemake -n); rates from "
             f"{est['rates_from']}", "",
             f"{'stage':<10} {'jobs':>6} {'GPU jobs':>8} {'GPU hours':>10}  work"]
    for stage, t in est["stages"].items():
        work = "; ".join(f"{v:,} {k}" for k, v in t["units"].items())
        if t["unknown_jobs"]:
            work += ("; " if work else "") + f"{t['unknown_jobs']} jobs of unknown size (pass --rows)"
        lines.append(f"{stage:<10} {t['jobs']:>6} {t['gpu_jobs']:>8} {t['gpu_hours']:>10.2f}  {work}")
    lines.append(f"{'total':<10} {est['jobs']:>6} {'':>8} {est['gpu_hours_total']:>10.2f}"
                 + (f"  (+ {est['unknown_jobs']} GPU jobs of unknown size)" if est["unknown_jobs"] else ""))
    lines += ["", "rates:"] + sorted({f"  {k}: {v}" for t in est["stages"].values() for k, v in t["rates"].items()})
    if est["rows_known"]:
        lines.append("rows: " + ", ".join(f"{k}={v:,}" for k, v in est["rows_known"].items()))
    return "\n".join(lines)


def _rows_arg(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, sep, n = v.partition("=")
        if not sep or not n.isdigit():
            raise ConfigError(f"--rows: expected NAME=N (a corpus or benchmark and its row count), got {v!r}")
        out[name] = int(n)
    return out


def _cli(args: argparse.Namespace) -> None:
    if args.bench and not args.bench.is_file():
        raise ConfigError(f"--bench: no such file {args.bench}")
    text = args.dry_run.read_text(encoding="utf-8") if args.dry_run else None
    est = estimate(args.configfile, args.bench, _rows_arg(args.rows), dry_run_text=text)
    print(format_estimate(est))
    if args.json:
        from crest.io import write_json

        write_json(est, args.json)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="jobs, work and GPU hours of a run, from its DAG and measured rates",
                       description=__doc__.splitlines()[0])
    p.add_argument("--configfile", type=Path, required=True)
    p.add_argument("--bench", type=Path, default=None, help="a bench/suite.py JSON (default: reference H100 rates)")
    p.add_argument("--rows", nargs="+", default=[], metavar="NAME=N",
                   help="row counts of corpora or benchmarks the run has not written yet")
    p.add_argument("--json", type=Path, default=None, help="also write the estimate as JSON")
    p.add_argument("--dry-run", type=Path, default=None,
                   help="a saved `snakemake -n --configfile X` output to read instead of running it")
    p.set_defaults(func=_cli)
