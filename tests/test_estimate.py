"""crest estimate: the dry run's job list parsed, each GPU job's work and hours, counts equal to
`snakemake -n`'s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crest import estimate as est
from crest.paths import REPO_ROOT

SETTINGS = {"backend": "ctranslate2", "beam_size": 1, "device": "auto"}
DRY_RUN = f"""Building DAG of jobs...

[Tue Dec  1 22:06:08 2026]
rule translate_shard:
    input: results/x/translated/train/source/rows.parquet
    output: results/x/translated/train/raw/de.parquet
    wildcards: corpus=train, lang=de
    resources: tmpdir=/tmp, gpu=1
Shell command: crest gpu-run --gpus 1 -- crest translate shard --rows results/x/none.parquet --lang de --settings '{json.dumps(SETTINGS)}' > log 2>&1

[Tue Dec  1 22:06:08 2026]
rule translate_shard:
    wildcards: corpus=train, lang=ca
Shell command: crest translate shard --rows results/x/none.parquet --lang ca --settings '{json.dumps(dict(SETTINGS, backend="apertium"))}' > log 2>&1

[Tue Dec  1 22:06:08 2026]
rule train_model:
    wildcards: arm=english, size=large, seed=0
Shell command: crest train run --data results/x/none.parquet --settings '{{"budget": {{"examples": 1257600}}, "optim": {{"epochs": 3}}, "device": "auto"}}' > log 2>&1

[Tue Dec  1 22:06:08 2026]
localrule all:
    jobid: 0
Job stats:
job                count
---------------  -------
translate_shard        2
train_model            1
all                    1
total                  4

This was a dry-run (flag -n).
"""


def test_parse_jobs_and_stats_agree() -> None:
    jobs = est.parse_jobs(DRY_RUN)
    assert [j.rule for j in jobs] == ["translate_shard", "translate_shard", "train_model", "all"]
    assert jobs[0].wildcards == {"corpus": "train", "lang": "de"} and "--lang de" in jobs[0].shell
    assert est.parse_stats(DRY_RUN) == {"translate_shard": 2, "train_model": 1, "all": 1}


# An hour of work at each reference rate (hours are rounded to 3 decimals: the work must be large
# enough that another rate gives other hours)
HOUR_OF_GREEDY_NLLB = 1032 * 3600   # sentences at 1,032/s
HOUR_OF_LARGE_TRAINING = 1048 * 3600  # samples at 1,048/s: 1,257,600 examples x 3 epochs


def test_work_and_gpu_hours_from_reference_rates() -> None:
    result = est.estimate(REPO_ROOT / "config" / "demo.yaml", rows={"train": HOUR_OF_GREEDY_NLLB}, dry_run_text=DRY_RUN)
    translate, train = result["stages"]["translate"], result["stages"]["train"]
    # both shards are sentences to translate; only the CTranslate2 one is GPU time (Apertium is CPU)
    assert translate["units"] == {"sentences to translate": 2 * HOUR_OF_GREEDY_NLLB} and translate["gpu_jobs"] == 1
    assert translate["gpu_hours"] == 1.0
    assert train["units"] == {"training samples": HOUR_OF_LARGE_TRAINING}
    assert train["gpu_hours"] == 1.0 and result["gpu_hours_total"] == 2.0
    assert result["jobs"] == 4 and "reference H100" in result["rates_from"]
    assert "reference" in est.format_estimate(result)


def test_unknown_rows_are_reported_not_guessed() -> None:
    result = est.estimate(REPO_ROOT / "config" / "demo.yaml", rows={}, dry_run_text=DRY_RUN)
    assert result["stages"]["translate"]["unknown_jobs"] == 2 and result["unknown_jobs"] == 2
    assert "unknown size" in est.format_estimate(result)


def test_bench_rates_replace_the_reference(tmp_path: Path) -> None:
    bench = {"environment": {"device": "cuda", "gpu": "NVIDIA H100"},
             "parts": {"translate": {"shape": "nllb-600m", "results": [
                 {"mode": "stage", "beam": 1, "sentences_per_s": 516.0}]}}}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bench))
    result = est.estimate(REPO_ROOT / "config" / "demo.yaml", bench=path, rows={"train": HOUR_OF_GREEDY_NLLB},
                          dry_run_text=DRY_RUN)
    assert result["stages"]["translate"]["gpu_hours"] == 2.0  # half the reference rate: twice its hour
    assert result["stages"]["train"]["gpu_hours"] == 1.0      # no training part in the bench: the reference
    assert "b.json" in result["stages"]["translate"]["rates"]["translate_beam1"]
    assert "H100 reference" in result["stages"]["train"]["rates"]["train_large"]


BASELINE_DRY_RUN = """rule eval_baseline_llamaguard:
    wildcards: run=x
Shell command: crest gpu-run --gpus 1 -- crest evaluate baseline --name llamaguard > log 2>&1

rule eval_model:
    wildcards: arm=english, size=large, seed=0
Shell command: crest evaluate model --settings '{}' --threads 2 nosuch/xx > log 2>&1
"""


def test_baseline_rules_named_in_code_count_as_evaluate() -> None:
    """eval_baseline_<name> rules are made in a loop (`name:`), so no `rule eval_baseline_...:` line in
    evaluate.smk names them; they are evaluate jobs all the same, never 'other'."""
    assert "eval_baseline_llamaguard" not in est.rule_stages() and est.rule_stages()["eval_model"] == "evaluate"
    result = est.estimate(REPO_ROOT / "config" / "demo.yaml", rows={}, dry_run_text=BASELINE_DRY_RUN)
    assert set(result["stages"]) == {"evaluate"}
    evaluate = result["stages"]["evaluate"]
    assert evaluate["jobs"] == 2 and evaluate["gpu_jobs"] == 1 and evaluate["unknown_jobs"] == 1
    assert "LLM baselines" in evaluate["rates"]["baselines"]


def test_rows_argument_errors_name_the_value() -> None:
    with pytest.raises(est.ConfigError, match="train:30"):
        est._rows_arg(["train:30"])


@pytest.mark.slow
def test_job_counts_match_snakemake_dry_run(tmp_path: Path) -> None:
    """On the demo config under a fresh run name (nothing built yet, so the DAG is whole and no
    running demo changes it between the two dry runs)."""
    config = yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text())
    config["run"] = "estimate-test"
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "estimate.json"
    subprocess.run([sys.executable, "-m", "crest", "estimate", "--configfile", str(path), "--json", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    quiet = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(path)],
                           cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    assert result["rules"] == est.parse_stats(quiet.stdout + quiet.stderr)
    assert result["jobs"] == sum(result["rules"].values()) == sum(s["jobs"] for s in result["stages"].values())
