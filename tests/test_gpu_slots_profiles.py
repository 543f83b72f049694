"""The profiles with the GPU slots: under profiles/default, Snakemake runs GPU jobs concurrently on
GPUs of their own and never more at once than there are GPUs; profiles/slurm is accepted by the
pinned Snakemake and executor plugin, and every GPU job of the paper's DAG takes its GPUs through
`crest gpu-run` (without it, two local jobs would share GPU 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
import yaml

from crest.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "slurm"))
from joblog import parse_jobs  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Each job records the GPUs it got and when it ran.
GPU_JOBS = """
from crest.workflow import put_own_bin_first

put_own_bin_first()
GPUS = {"a": 1, "b": 1, "c": 2}


rule all:
    input: expand("{name}.json", name=GPUS)


rule job:
    output: "{name}.json"
    log: "{name}.log"
    resources: gpu=lambda wc: GPUS[wc.name]
    shell:
        "python -m crest.gpu_slots --gpus {resources.gpu} -- python -c "
        "'import json, os, sys, time; t0 = time.time(); time.sleep(0.6); "
        "json.dump([os.environ[\\"CUDA_VISIBLE_DEVICES\\"], t0, time.time()], open(sys.argv[1], \\"w\\"))' {output} 2> {log}"
"""


def test_default_profile_gives_gpu_jobs_gpus_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(GPU_JOBS)
    env = {"PATH": "/usr/bin:/bin", "CREST_GPU_DEVICES": "0,1", "CREST_GPU_LOCK_DIR": str(tmp_path / "locks")}
    # --cores 4: more cores than GPUs, so only the profile's `resources: gpu` (2 here) limits GPU jobs.
    res = subprocess.run([SNAKEMAKE, "--workflow-profile", str(REPO_ROOT / "profiles/default"), "--cores", "4"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    runs = []
    for name, n in {"a": 1, "b": 1, "c": 2}.items():
        devices, start, end = json.loads((tmp_path / f"{name}.json").read_text())
        assert len(devices.split(",")) == n
        # Snakemake never started a GPU job that would have had to wait for a GPU.
        assert "waiting" not in (tmp_path / f"{name}.log").read_text()
        runs.append((set(devices.split(",")), start, end))
    overlapping = [(a, b) for a, b in combinations(runs, 2) if a[1] < b[2] and b[1] < a[2]]
    assert overlapping, "no two GPU jobs ran at the same time"
    assert all(not a[0] & b[0] for a, b in overlapping)


def paper_targets() -> tuple[list[str], set[str]]:
    """Outputs that reach one job of every GPU rule of the paper's DAG (a model's evaluation, its
    training and the translate shards of its data; every baseline's evaluation; the language-map
    embedding), and those rules. The whole DAG takes minutes to dry-run (its final jobs name ~180k
    input files); these targets take seconds."""
    from crest.config import load_config, run_dir
    from crest.embed.config import embeddings_dir
    from crest.evaluate.workflow import EvalPlan
    from crest.train.plan import train_jobs

    config = load_config(REPO_ROOT / "config/config.yaml")
    jobs = train_jobs(config)
    arm, size, seed = next(j for j in jobs if j[0] != "english")  # an arm trained on translated data
    plan = EvalPlan(config, str(run_dir(config)), lambda: [{"arm": a, "size": z, "seed": s} for a, z, s in jobs])
    baselines = [name for name, _ in plan.scored_baselines()]
    targets = [f"{plan.model_out(arm, size, seed)}/{plan.sets[0].key}.parquet",
               *(f"{plan.baseline_out(name)}/{plan.baseline_sets(name)[0].key}.parquet" for name in baselines),
               f"{embeddings_dir(config, run_dir(config))}/embed.json"]
    return targets, {"translate_shard", "embed", "train_model", "eval_model", *(f"eval_baseline_{n}" for n in baselines)}


@pytest.mark.slow
def test_slurm_profile_is_valid_and_every_gpu_job_runs_through_gpu_run(tmp_path: Path) -> None:
    profile = REPO_ROOT / "profiles/slurm"
    targets, gpu_rules = paper_targets()
    res = subprocess.run([SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), *targets, "-n", "-p",
                          "--workflow-profile", str(profile), "--configfile", str(REPO_ROOT / "config/config.yaml")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs = [job for job in parse_jobs(res.stdout + res.stderr) if job.rule != "all"]
    assert jobs and all(job.resources.get("slurm_account") == "SET_ME_ACCOUNT" for job in jobs)
    # Every per-rule entry names a rule of the paper's DAG and reaches its jobs.
    per_rule = yaml.safe_load((profile / "config.yaml").read_text())["set-resources"]
    for rule, values in per_rule.items():
        rule_jobs = [job for job in jobs if job.rule == rule]
        assert rule_jobs, f"profiles/slurm set-resources names {rule!r}: no such job under the targets"
        assert all(job.resources[k] == str(v) for job in rule_jobs for k, v in values.items())
    assert {job.rule for job in jobs if int(job.resources.get("gpu", 0)) > 0} == gpu_rules  # each reached
    gpu_jobs = [job for job in jobs if int(job.resources.get("gpu", 0)) > 0]
    assert gpu_jobs, "the paper's DAG has no GPU job"
    for job in gpu_jobs:
        assert job.shell.startswith(f"crest gpu-run --gpus {job.resources['gpu']} -- "), (job.rule, job.shell)
        assert "cpus_per_gpu" in job.resources
