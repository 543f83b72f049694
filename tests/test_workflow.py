"""The Snakemake DAG: built from both shipped configs, refused for a bad one, and the data
rules run for real on a small local source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crest.paths import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def planned_jobs(stdout: str) -> dict[str, int]:
    """Job counts from `snakemake -n --quiet rules` (table rows `rule count`)."""
    counts = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_paper_dag_builds_offline(tmp_path: Path) -> None:
    """The paper config loads and its data stage resolves offline: each corpus is built once from a
    prepared file per source it names. Restricted to the corpora (as test_translate restricts itself to
    its stage): the whole paper DAG takes minutes to dry-run (its final jobs name ~180k input files);
    test_gpu_slots_profiles dry-runs one job of every GPU rule."""
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    corpora = config["data"]["corpora"]
    targets = [f"results/{config['run']}/data/corpora/{name}.parquet" for name in corpora]
    res = snakemake(*targets, "-n", "--quiet", "rules", "--configfile", str(REPO_ROOT / "config/config.yaml"),
                    cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    jobs = planned_jobs(res.stdout)
    assert jobs == {"prepare_source": len({s for sources in corpora.values() for s in sources}),
                    "build_corpus": len(corpora), "total": jobs["total"]}


def test_bad_config_stops_before_any_job(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())
    config["languages"]["groups"]["ood_lrl"].append("xx")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    res = snakemake("-n", "--configfile", str(path), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "languages.groups.ood_lrl" in out and "'xx'" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_data_rules_run_on_a_local_source(tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(
        f'{{"q": "request number {i} {"hack" if i % 3 else "bake"}", "y": "{"unsafe" if i % 3 else "safe"}"}}'
        for i in range(30)) + "\n")
    (tmp_path / "other.txt").write_text("request number 1 hack\nsomething new\n")
    registry = {"sources": {
        "toy": {"license": "t", "loader": {"local": {"path": str(data), "format": "jsonl"}}, "text": "q",
                "label": {"field": "y", "map": {"safe": 0, "unsafe": 1}}, "lang": "en"},
        "more": {"license": "t", "loader": {"local": {"path": str(tmp_path / "other.txt"), "format": "txt"}},
                 "text": "text", "label": {"value": 1}, "lang": "en"}}}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(registry))
    config = {"run": "t", "offline": True, "languages": {"groups": {"x": ["en"]}},
              "data": {"registry": [str(tmp_path / "reg.yaml")], "sources": ["toy", "more"],
                       "corpora": {"all": ["toy", "more"]}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    res = snakemake("--configfile", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    corpus = pd.read_parquet(tmp_path / "results/t/data/corpora/all.parquet")
    assert len(corpus) == 31 and set(corpus["source"]) == {"toy", "more"}
    rerun = snakemake("-n", "--configfile", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


def test_lint_is_clean() -> None:
    res = snakemake("--lint", "--configfile", str(REPO_ROOT / "config/demo.yaml"))
    assert res.returncode == 0, res.stdout + res.stderr
