"""The `deploy` config section and rule: validated when the DAG is built (unknown keys, models the
run does not train, unknown gate benchmarks are refused, naming the key), and the rule exports a
tiny trained model with the quality gate, as the paper run ships its guards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import toy_rows
from crest.config import load_config
from crest.guard.deploy import deploy_dir, deploy_dirs
from crest.paths import REPO_ROOT
from crest.schema import ConfigError

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def demo() -> dict:
    return yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())


def test_deploy_section_is_validated_and_filled() -> None:
    config = demo()
    config["deploy"] = {"models": [{"arm": "english", "size": "base"}], "gate": {"benchmarks": ["heldout"]}}
    out = load_config(config)
    assert out["deploy"]["models"] == [{"arm": "english", "size": "base", "seed": 0, "precision": "fp32",
                                        "int8_method": "dynamic"}]
    assert out["deploy"]["gate"] == {"benchmarks": ["heldout"], "max_rows": None}
    assert deploy_dirs("results/demo", out) == ["results/demo/deploy/english/base/seed0"]
    config = demo()
    config.pop("deploy", None)
    assert load_config(config)["deploy"] == {"models": [], "gate": {"benchmarks": [], "max_rows": None}}


@pytest.mark.parametrize("section, message", [
    ({"models": [{"arm": "crest", "size": "base", "int8": True}]},
     r"unknown key\(s\) 'int8' at deploy\.models\[0\] \(allowed: arm, int8_method, precision, seed, size\)"),
    ({"model": []}, r"unknown key\(s\) 'model' at deploy \(allowed: gate, models\)"),
    ({"models": [], "gate": {"max_auroc_drop": 0.05}}, r"unknown key\(s\) 'max_auroc_drop' at deploy\.gate"),
    ({"models": [{"arm": "crest", "size": "base", "precision": "int4"}]}, r"deploy\.models\[0\]\.precision: 'int4'"),
    ({"models": [{"arm": "crest", "size": "base", "seed": 7}]},
     r"deploy\.models\[0\]: crest/base/seed7 is not a model this config trains"),
    ({"models": [{"arm": "crest", "size": "large"}]}, r"deploy\.models\[0\]: crest/large/seed0 is not a model"),
    ({"models": [{"arm": "crest", "size": "base"}, {"arm": "crest", "size": "base", "precision": "int8"}]},
     r"deploy\.models\[1\]: crest/base/seed0 is already listed at deploy\.models\[0\]"),
    ({"gate": {"benchmarks": ["heldot"]}}, r"deploy\.gate\.benchmarks\[0\]: 'heldot' is not an evaluate\.benchmarks"),
])
def test_bad_deploy_section_is_refused(section: dict, message: str) -> None:
    config = demo()
    config["deploy"] = section
    with pytest.raises(ConfigError, match=message):
        load_config(config)


@pytest.mark.slow
def test_bad_deploy_key_stops_the_dag_build(tmp_path: Path) -> None:
    """At DAG build, before any job: one clear line, exit status non-zero, no traceback."""
    config = demo()
    config["deploy"] = {"models": [{"arm": "crest", "size": "base", "precison": "int8"}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    res = subprocess.run([SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), "-n", "--configfile", str(path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "unknown key(s) 'precison' at deploy.models[0]" in out and "Traceback" not in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_deploy_rule_exports_a_trained_model(tmp_path: Path, tiny_encoder: Path, trained_guard: Path,
                                              local_source) -> None:
    """Only the deploy rule runs: a trained tiny guard and its arm's data set stand for the training
    stage. The export passes the gate on the validation split and is written where the config says."""
    registry = {"sources": {"toy": local_source("prompt,label\nhello,safe\nbomb,unsafe\n")}}
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(registry))
    config = {
        "run": "t", "offline": True, "languages": {"groups": {"train": ["en", "de"]}},
        "data": {"registry": [str(tmp_path / "reg.yaml")], "sources": ["toy"], "corpora": {"toy": ["toy"]}},
        "translate": {"corpora": ["toy"], "languages": ["de"]},
        "models": {"encoders": {"tiny": str(tiny_encoder)}, "translator": "tiny-nllb"},
        "train": {"corpus": "toy", "sizes": ["tiny"], "arms": {"english": {"languages": ["en"]}}},
        "deploy": {"models": [{"arm": "english", "size": "tiny", "precision": "int8", "int8_method": "blockwise"}]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    data = tmp_path / "results/t/train/english/data.parquet"
    data.parent.mkdir(parents=True)
    rows = toy_rows(240, seed=1)
    rows["split"] = ["validation"] * 200 + ["train"] * 40
    rows.to_parquet(data, index=False)
    (data.parent / "data.json").write_text("{}")
    model = tmp_path / "results/t/models/english/tiny/seed0"
    shutil.copytree(trained_guard, model)
    for path in [data, data.parent / "data.json"]:  # older than the model, as the training stage leaves them
        os.utime(path, (1, 1))
    for path in [model, *model.rglob("*")]:  # newer than the encoder it was trained from
        os.utime(path)

    target = deploy_dir("results/t", "english", "tiny", 0)
    res = subprocess.run([SNAKEMAKE, "-s", str(REPO_ROOT / "Snakefile"), "--cores", "1", "--configfile",
                          str(tmp_path / "c.yaml"), "--allowed-rules", "deploy", "--", target],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    log = tmp_path / "results/t/logs/deploy/english/tiny_seed0.log"
    assert res.returncode == 0, res.stderr[-3000:] + (log.read_text()[-3000:] if log.is_file() else "")
    out = tmp_path / target
    assert (out / "model.onnx").is_file() and (out / "model.int8.onnx").is_file()
    gate = json.loads((out / "crest_guard.json").read_text())["onnx"]["gate"]
    assert gate["passed"] and gate["rows"] == 200 and gate["data"].startswith("validation split of data.parquet")
    assert gate["int8"]["agreement"] >= 0.99 and gate["fp32"]["max_abs_diff"] <= 1e-4
    assert gate["int8_method"] == "blockwise"
    assert "## ONNX export" in (out / "README.md").read_text()


def test_gate_rows_take_one_split_plus_every_heldout_row(tmp_path: Path) -> None:
    """What the rule passes: the validation split of the arm's data set, and all rows of evaluation sets
    (which carry their own `split` values)."""
    import pandas as pd

    from crest.guard.onnx_export import read_gate_rows

    data = tmp_path / "data.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 1], "split": ["validation", "train", "validation"],
                  "lang": "en"}).to_parquet(data)
    sets = tmp_path / "heldout"
    sets.mkdir()
    pd.DataFrame({"text": ["d", "e"], "label": [1, 0], "split": ["test", "test"], "lang": "de"}).to_parquet(sets / "de.parquet")
    texts, labels, langs, note = read_gate_rows([data], "validation", heldout=[sets / "de.parquet"])
    assert texts == ["a", "c", "d", "e"] and labels.tolist() == [0, 1, 1, 0] and langs == ["en", "en", "de", "de"]
    assert note == "validation split of data.parquet + every row of 1 held-out file(s) (heldout)"
    pd.DataFrame({"prompt": ["x"], "label": [1]}).to_parquet(sets / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet: no column\(s\) text"):
        read_gate_rows([data], "validation", heldout=[sets / "bad.parquet"])
