"""The evaluation stage in the DAG: the paper config enumerates every evaluation job, and the rules
run end to end (sets, a missing gated benchmark, scoring, tables, figures, QC, the HTML report)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crest.config import load_config
from crest.evaluate.workflow import EvalPlan
from crest.paths import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_paper_config_plans_every_evaluation_job():
    from crest.train.plan import train_jobs

    config = load_config(REPO_ROOT / "config/config.yaml")
    jobs = train_jobs(config)
    plan = EvalPlan(config, "results/paper", lambda: [{"arm": a, "size": z, "seed": s} for a, z, s in jobs])
    # every trained model (arms x {base, large} x 3 seeds; the 3 shuffled draws at 1 seed) is scored, once,
    # on every set
    assert len(plan.models) == len(jobs) == (len(config["train"]["arms"]) - 3) * 2 * 3 + 3 * 2
    keys = {s.key for s in plan.sets}
    groups = config["languages"]["groups"]
    grouped = {c for codes in groups.values() for c in codes}
    for lang in grouped | {"en"}:
        assert f"aegis2_translated/{lang}" in keys and f"benchmarks_translated/{lang}" in keys
    assert {"harmbench/en", "multijail/jv", "polyguardprompts/hi", "csrt/mul", "indicsafe/en",
            "cultural_kaleidoscope/en", "generated_cs/en-hi"} <= keys
    files = plan.metrics_files()
    enabled = [n for n, b in config["evaluate"]["baselines"].items() if b["enabled"]]
    assert sorted(plan.baselines) == sorted(enabled) and "qwen3guard_gen_8b" not in enabled  # off by default
    assert len(files) == len(set(files)) == (len(plan.models) + len(enabled)) * len(plan.sets)
    assert "results/paper/eval/transfer_hi_zh/large/seed2/multijail/ar.metrics.json" in files
    assert plan.paper == "paper" and "paper/tables/id_vs_ood.tex" in plan.outputs()
    assert plan.optional == ["aya_redteaming", "indicsafe_en", "indicsafe", "cultural_kaleidoscope"]
    # a set's inputs include the training shard it is decontaminated against (eval/contamination.tsv)
    assert plan.set_inputs("indicsafe", "en") == ["results/paper/eval/sources/indicsafe_en.parquet",
                                                  "results/paper/eval/sources/indicsafe_en.stats.json",
                                                  "results/paper/translated/train/en.parquet"]
    assert "results/paper/eval/contamination.tsv" in plan.outputs()


@pytest.mark.slow
def test_rules_run_end_to_end_with_a_missing_benchmark(tmp_path: Path):
    from crest.tiny import build_tiny_xlmr

    model = build_tiny_xlmr(tmp_path / "guard", num_labels=2)
    rows = [{"q": f"request {i} {'attack' if i % 2 else 'bake'}", "y": "unsafe" if i % 2 else "safe"} for i in range(40)]
    pd.DataFrame(rows).to_json(tmp_path / "toy.jsonl", orient="records", lines=True)
    registry = {"sources": {"toy": {"license": "t", "loader": {"local": {"path": str(tmp_path / "toy.jsonl"),
                                                                          "format": "jsonl"}},
                                    "text": "q", "label": {"field": "y", "map": {"safe": 0, "unsafe": 1}}, "lang": "en"}}}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(registry))
    config = {
        "run": "t", "offline": True, "languages": {"groups": {"train": ["en"], "ood_lrl": ["gl"]}},
        "data": {"registry": [str(tmp_path / "reg.yaml")], "sources": ["toy"]},
        "evaluate": {
            "device": "cpu", "bootstrap": {"resamples": 100}, "registry": [str(REPO_ROOT / "config/datasets.yaml")],
            "benchmarks": {"toy": {"group": "english", "sources": ["toy"], "split": None, "title": "Toy"},
                           "ck": {"group": "cultural", "sources": ["cultural_kaleidoscope"], "optional": True,
                                  "title": "CulturalKaleidoscope"}},
            "baselines": {"tiny": {"model": str(model), "family": "crest", "gpus": 0, "title": "tiny guard"}},
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    base = [SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), "--cores", "2", "--configfile", str(tmp_path / "c.yaml")]
    res = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    paper = tmp_path / "results/t/paper"
    metrics = pd.read_csv(tmp_path / "results/t/eval/metrics.csv")
    assert set(zip(metrics["benchmark"], metrics["status"])) == {("toy", "ok"), ("ck", "missing")}
    assert "offline" in metrics.loc[metrics["benchmark"] == "ck", "reason"].iloc[0]
    preds = pd.read_parquet(tmp_path / "results/t/eval/baselines/tiny/toy/en.parquet")
    assert len(preds) == 40 and list(preds.columns[:3]) == ["id", "prob_unsafe", "label"]
    cultural = (paper / "tables/codeswitch_cultural.csv").read_text()
    assert cultural.splitlines()[1] == "CulturalKaleidoscope [en],missing"
    english = (paper / "tables/english.csv").read_text().splitlines()
    assert english[0] == "Benchmark,tiny guard" and english[1].startswith("Toy,")
    for f in ("f1_by_language", "transfer_heatmap", "pr_curves"):
        assert (paper / f"figures/{f}.png").stat().st_size > 1000 and (paper / f"figures/{f}.pdf").is_file()
    assert not (paper / "figures/language_map.png").exists()  # no clustering stage in this config
    qc = pd.read_csv(paper / "qc/eval_sets.csv")
    assert dict(zip(qc["benchmark"], qc["status"])) == {"toy": "ok", "ck": "missing"}
    report = subprocess.run([*base, "--report", str(tmp_path / "report.html")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert all(c in html for c in ("1. Tables", "2. Figures", "3. QC and provenance"))
    for out in ("tables/english.csv", "tables/codeswitch_cultural.csv", "figures/f1_by_language.png",
                "figures/pr_curves.png", "qc/eval_sets.csv"):  # this run's own files, byte for byte
        data = base64.b64encode((paper / out).read_bytes()).decode()
        assert f";filename={Path(out).name};base64,{data}" in html, out
