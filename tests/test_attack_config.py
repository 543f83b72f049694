"""config/attack.yaml, the paper-shaped prompt-attack experiment (docs/tasks.md, "config/attack.yaml"): it validates and
builds its DAG; a content-safety source named in it is refused at DAG build, naming the source; its
hub lock holds every repo it reads."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from crest import hub
from crest.config import load_config
from crest.paths import REPO_ROOT
from crest.schema import ConfigError

ATTACK = REPO_ROOT / "config" / "attack.yaml"
PAPER = REPO_ROOT / "config" / "config.yaml"


@pytest.fixture(scope="module")
def attack_doc() -> dict:
    return yaml.safe_load(ATTACK.read_text())


def test_attack_config_is_the_paper_shape_on_attack_sources(attack_doc):
    config, paper = load_config(copy.deepcopy(attack_doc)), load_config(PAPER)
    assert config["task"] == "prompt_attack" and config["run"] == "attack" != paper["run"]
    for section in ("languages", "translate", "models", "embed", "cluster", "train"):
        assert config[section] == paper[section], section  # same languages, map, anchors and arms
    assert config["evaluate"]["tables"] == paper["evaluate"]["tables"]
    assert config["data"]["corpora"]["cluster"] == paper["data"]["corpora"]["cluster"]  # the same language map
    families = {b["model"]: (b["family"], b["positive_label"]) for b in config["evaluate"]["baselines"].values()}
    assert families == {"meta-llama/Llama-Prompt-Guard-2-86M": ("seqclass", "LABEL_1"),
                        "meta-llama/Llama-Prompt-Guard-2-22M": ("seqclass", "LABEL_1"),
                        "protectai/deberta-v3-base-prompt-injection-v2": ("seqclass", "INJECTION")}


def test_its_hub_lock_holds_every_repo_it_reads(attack_doc):
    config = load_config(copy.deepcopy(attack_doc))
    warned: list[str] = []
    unpinned = hub.check_lock(config, str(ATTACK), warn=warned.append)
    assert {"meta-llama/Llama-Prompt-Guard-2-86M", "leolee99/NotInject", "DAMO-NLP-SG/MultiJail"} <= set(unpinned)
    assert "config/attack.hub.lock.yaml" in warned[0]
    lock = hub.read_lock(REPO_ROOT / "config" / "attack.hub.lock.yaml")
    assert lock[hub.repo_key("dataset", "reshabhs/SPML_Chatbot_Prompt_Injection")]["licence"] == "mit"


@pytest.mark.parametrize("key", ["data", "benchmark"])
def test_a_content_safety_source_is_refused_naming_it(attack_doc, key):
    doc = copy.deepcopy(attack_doc)
    if key == "data":
        doc["data"]["sources"].append("aegis2")
        match = r"data.sources\[8\]: source 'aegis2' is a content_safety source .*this run's task is prompt_attack"
    else:
        doc["data"]["sources"].append("xstest")
        doc["evaluate"]["benchmarks"]["xstest"] = {"title": "XSTest", "group": "english", "sources": ["xstest"]}
        match = r"source 'xstest' is a content_safety source"
    with pytest.raises(ConfigError, match=match):
        load_config(doc)


def test_the_dag_builds_and_refuses_a_content_safety_source(attack_doc, tmp_path: Path):
    """`snakemake -n` on the attack config (restricted to its corpora: the whole DAG takes minutes,
    as the paper's does), and on a copy naming a content-safety source: refused before any job."""
    from test_workflow import planned_jobs, snakemake

    corpora = attack_doc["data"]["corpora"]
    targets = [f"results/attack/data/corpora/{name}.parquet" for name in corpora]
    res = snakemake(*targets, "-n", "--quiet", "rules", "--configfile", str(ATTACK), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert planned_jobs(res.stdout)["build_corpus"] == len(corpora)
    doc = copy.deepcopy(attack_doc)
    doc["data"]["sources"].append("harmbench_standard")
    doc["data"]["corpora"]["train"].append("harmbench_standard")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    res = snakemake("-n", "--configfile", str(bad), cwd=tmp_path)
    assert res.returncode != 0
    assert "source 'harmbench_standard' is a content_safety source" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()
