"""The assertions of tests/slurm/run.sh, run after its snakemake calls (SLURM_CONF set).

1. Every job of the SLURM run went through sbatch: sacct holds exactly one COMPLETED record per
   job (named by the run's ID, commented rule + wildcards by the executor plugin), charged to the
   test account and partition, with the memory and time limit Snakemake gave that job. A run that
   bypassed SLURM has no run ID or no records, and fails here.
2. The SLURM run's outputs are byte-identical to the local run's.
3. The GPU probe (gpu=2) ran as one SLURM task holding 2 GPUs, and `crest gpu-run` handed the job
   both GPUs of its allocation.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from joblog import parse_jobs

FIELDS = ["JobIDRaw", "JobName", "Comment", "State", "ExitCode", "Account", "Partition", "ReqMem",
          "Timelimit", "AllocTRES"]


def fail(message: str) -> None:
    print(f"check: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def run_id(log: Path) -> str:
    found = re.findall(r"SLURM run ID: (\S+)", log.read_text())
    if len(found) != 1:
        fail(f"{log}: no SLURM run ID: snakemake did not run its jobs with the SLURM executor")
    return found[0]


def sacct(name: str) -> list[dict[str, str]]:
    start = f"{datetime.now() - timedelta(days=1):%Y-%m-%dT%H:%M}"
    out = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "--starttime", start, "--name", name,
                          "--format", ",".join(FIELDS)], check=True, capture_output=True, text=True).stdout
    return [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines() if line]


def timelimit(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def check_jobs(log: Path, account: str, partition: str) -> None:
    jobs = {job.slurm_comment: job.resources for job in parse_jobs(log.read_text())}
    if not jobs:
        fail(f"{log}: no jobs found in the log")
    records = sacct(run_id(log))
    by_comment = {r["Comment"]: r for r in records}
    if len(records) != len(jobs) or set(by_comment) != set(jobs):
        fail(f"sacct has {len(records)} records for {len(jobs)} jobs; "
             f"missing: {sorted(set(jobs) - set(by_comment))}, unexpected: {sorted(set(by_comment) - set(jobs))}")
    for comment, res in jobs.items():
        r = by_comment[comment]
        want = {"State": "COMPLETED", "ExitCode": "0:0", "Account": account, "Partition": partition,
                "ReqMem": f"{res['mem_mb']}M", "Timelimit": timelimit(int(res["runtime"]))}
        got = {k: r[k] for k in want}
        if got != want:
            fail(f"job {r['JobIDRaw']} ({comment}): sacct says {got}, expected {want}")
    print(f"check: {len(records)} jobs ran through sbatch, each COMPLETED with its rule's memory and time limit "
          f"(SLURM job ids {records[0]['JobIDRaw']}..{records[-1]['JobIDRaw']})")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_outputs(slurm: Path, local: Path) -> None:
    def files(root: Path) -> dict[str, str]:
        data = root / "results"
        return {str(p.relative_to(root)): digest(p) for p in sorted(data.glob("*/data/**/*")) if p.is_file()}

    a, b = files(slurm), files(local)
    if not a:
        fail(f"no outputs under {slurm}/results/*/data")
    if a.keys() != b.keys():
        fail(f"different outputs: only on SLURM {sorted(a.keys() - b.keys())}, only local {sorted(b.keys() - a.keys())}")
    differ = [k for k in a if a[k] != b[k]]
    if differ:
        fail(f"outputs differ between the SLURM and the local run: {differ}")
    print(f"check: {len(a)} output files byte-identical to the local run's")


def check_gpu_probe(log: Path, env_file: Path) -> None:
    records = sacct(run_id(log))
    if len(records) != 1 or records[0]["State"] != "COMPLETED" or "gres/gpu=2" not in records[0]["AllocTRES"]:
        fail(f"GPU probe: expected one COMPLETED job with gres/gpu=2, sacct says {records}")
    record = records[0]
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    if len(visible.split(",")) != 2 or env.get("SLURM_NTASKS") != "1":
        fail(f"GPU probe: expected one task seeing 2 GPUs, got SLURM_NTASKS={env.get('SLURM_NTASKS')}, "
             f"CUDA_VISIBLE_DEVICES={visible!r}")
    print(f"check: gpu=2 job ran as one task holding 2 GPUs (CUDA_VISIBLE_DEVICES={visible}, {record['AllocTRES']})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="check", required=True)
    c = sub.add_parser("jobs", help="1: the run's jobs went through sbatch")
    c.add_argument("--log", type=Path, required=True, help="snakemake's output")
    c.add_argument("--account", required=True)
    c.add_argument("--partition", required=True)
    c = sub.add_parser("outputs", help="2: same files as the local run")
    c.add_argument("slurm", type=Path, help="working directory of the SLURM run")
    c.add_argument("local", type=Path, help="working directory of the local run")
    c = sub.add_parser("gpu-probe", help="3: a gpu=2 job is one task holding 2 GPUs")
    c.add_argument("--log", type=Path, required=True, help="snakemake's output")
    c.add_argument("--env", type=Path, required=True, help="the probe's output")
    args = p.parse_args()
    if args.check == "jobs":
        check_jobs(args.log, args.account, args.partition)
    elif args.check == "outputs":
        check_outputs(args.slurm, args.local)
    else:
        check_gpu_probe(args.log, args.env)


if __name__ == "__main__":
    main()
