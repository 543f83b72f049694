"""The training rules for real: Snakemake builds an anchor arm from translated shards and an anchors
file (the upstream stages' contracts, written here) with a tiny encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crest.paths import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.slow
def test_rules_train_an_anchor_arm(tmp_path: Path, tiny_encoder: Path, toy_shards, local_source) -> None:
    registry = {"sources": {"toy": local_source("prompt,label\nhello,safe\nbomb,unsafe\n")}}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(registry))
    config = {
        "run": "t", "offline": True, "languages": {"groups": {"train": ["en", "de", "hi"]}},
        "data": {"registry": [str(tmp_path / "reg.yaml")], "sources": ["toy"], "corpora": {"toy": ["toy"]}},
        "translate": {"corpora": ["toy"], "languages": ["de", "hi", "zh"]},
        "models": {"encoders": {"tiny": str(tiny_encoder)}, "translator": "tiny-nllb"},
        "train": {"corpus": "toy", "sizes": ["tiny"],
                  "arms": {"crest": {"languages": {"anchors": "kmeans", "untranslated": "skip"}},
                           "english": {"languages": ["en"]}},
                  "optim": {"lr": 1e-2, "max_steps": 4, "eval_every": 2, "save_every": 2, "batch_tokens": 512,
                            "log_every": 2},
                  "threads": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    toy_shards(["en", "de", "hi", "zh"], folder=tmp_path / "results/t/translated/toy", rows=100)
    anchors = tmp_path / "results/t/clusters/kmeans/anchors.tsv"
    anchors.parent.mkdir(parents=True)
    anchors.write_text("language\tcluster\tscore\treason\nhi\t0\t0.9\thigh\nja\t1\t0.8\thigh\nde\t2\t0.7\thigh\n")

    targets = ["results/t/models/crest/tiny/seed0"]
    # Only the training rules may run: the shards and the anchors file stand for the upstream stages.
    res = subprocess.run([SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), "--cores", "2", "--configfile",
                          str(tmp_path / "c.yaml"), "--allowed-rules", "train_dataset", "train_model", "all",
                          "--", *targets],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text() for p in (tmp_path / "results/t/logs/train").rglob("*.log"))
    assert res.returncode == 0, res.stderr[-3000:] + logs[-3000:]

    crest = json.loads((tmp_path / "results/t/train/crest/data.json").read_text())
    assert crest["languages"] == ["hi", "de"] and crest["anchors"]["kmeans"]["not_translated"] == ["ja"]
    model = tmp_path / "results/t/models/crest/tiny/seed0"
    provenance = json.loads((model / "provenance.json").read_text())
    assert provenance["languages"] == ["hi", "de"] and provenance["translator_is_random"]
    assert provenance["anchors"]["kmeans"]["sha256"] and (model / "model.safetensors").is_file()
    assert not list((tmp_path / "results/t/train/crest/tiny/seed0").glob("checkpoint-*"))
    # the threshold was calibrated on the arm's validation split (train.calibrate's default) and stated
    calibration = json.loads((model / "crest_guard.json").read_text())["calibration"]
    assert calibration["target_recall"] == 0.95 and calibration["recall"] >= 0.95
    assert "## Decision threshold" in (model / "README.md").read_text()
