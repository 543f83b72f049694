"""Run config: schema validation (defaults filled) plus the checks a schema cannot express:
language codes against the language table, source ids against the registry, local files."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from crest.cluster.config import check_cluster
from crest.data.audit import check_audit
from crest.data.registry import Source, load_registry, source_languages
from crest.embed.config import check_embed
from crest.evaluate.plan import check_evaluate
from crest.guard.deploy import check_deploy
from crest.languages import check_codes, load_languages
from crest.paths import resolve
from crest.paths import run_dir as run_dir  # the run directory, where callers of crest.config look
from crest.schema import ConfigError, read_yaml, validate
from crest.train.plan import check_train
from crest.translate.plan import check_translate


def load_config(config: dict[str, Any] | str | Path, origin: str | None = None) -> dict[str, Any]:
    """Validate a run config (a dict, or a YAML file) and return it with defaults filled in.

    Raises ConfigError naming the key and the value at fault, before any job runs."""
    if not isinstance(config, dict):
        origin = origin or str(config)
        config = read_yaml(config)
        if not isinstance(config, dict):
            raise ConfigError(f"{origin}: expected a mapping of config keys")
    origin = origin or "config"
    validate(config, "config.schema.yaml", origin)
    table_path = resolve(config["languages"]["table"])
    if not table_path.is_file():
        raise ConfigError(f"{origin}: languages.table: file {table_path} not found")
    table = load_languages(table_path)
    for group, codes in config["languages"]["groups"].items():
        _wrap(lambda: check_codes(codes, table, f"languages.groups.{group}"), origin)
    registry = load_run_registry(config, origin)
    _check_sources(config, registry, table, origin)
    check_audit(config, registry, origin)
    check_translate(config, table, origin)
    check_embed(config, table, origin)
    check_cluster(config, table, origin)
    check_train(config, table, origin)
    check_evaluate(config, table, origin)
    check_deploy(config, origin)
    return config


def _wrap(check, origin: str) -> None:
    try:
        check()
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"{origin}: {e}") from e


def load_run_registry(config: dict[str, Any], origin: str = "config") -> dict[str, Source]:
    for i, path in enumerate(config["data"]["registry"]):
        if not resolve(path).is_file():
            raise ConfigError(f"{origin}: data.registry[{i}]: registry file {path!r} not found")
    return load_registry(config["data"]["registry"])


def _unknown(kind: str, key: str, value: str, known: list[str], origin: str) -> ConfigError:
    close = difflib.get_close_matches(value, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"{origin}: {key}: unknown {kind} {value!r}{hint}")


def _check_sources(config: dict[str, Any], registry: dict[str, Source], table: dict, origin: str) -> None:
    data = config["data"]
    for i, sid in enumerate(data["sources"]):
        if sid not in registry:
            raise _unknown("source", f"data.sources[{i}]", sid, list(registry), origin)
        source = registry[sid]
        if source.loader_kind == "local" and not resolve(source.loader["path"]).is_file():
            raise ConfigError(f"{origin}: data.sources[{i}]: source {sid!r} reads {source.loader['path']!r}, "
                              f"which does not exist (registered in {source.origin})")
        if config["offline"] and source.loader_kind == "hub":
            raise ConfigError(f"{origin}: data.sources[{i}]: source {sid!r} needs the Hugging Face Hub "
                              f"but the config says offline: true")
        _wrap(lambda: check_codes(source_languages(source), table, f"language of source {sid!r}",
                                      allow_mixed=True), origin)
    _check_task(config, registry, origin)
    for name, members in data["corpora"].items():
        for i, sid in enumerate(members):
            if sid not in data["sources"]:
                raise _unknown("source (not in data.sources)", f"data.corpora.{name}[{i}]", sid,
                               data["sources"], origin)


def _check_task(config: dict[str, Any], registry: dict[str, Source], origin: str) -> None:
    """Every labelled source the run reads (data.sources, evaluate.benchmarks' sources) is of the
    run's task: a content-safety label and a prompt-attack label mean different things."""
    task = config["task"]
    named = [(f"data.sources[{i}]", sid) for i, sid in enumerate(config["data"]["sources"])]
    for name, bench in config.get("evaluate", {}).get("benchmarks", {}).items():
        named += [(f"evaluate.benchmarks.{name}.sources[{i}]", sid) for i, sid in enumerate(bench.get("sources", []))]
    if len(named) > len(config["data"]["sources"]):  # benchmark sources may come from evaluate.registry
        from crest.evaluate.plan import benchmark_registry

        registry = {**benchmark_registry(config), **registry}
    for key, sid in named:
        source = registry.get(sid)
        if source is None or source.spec.get("role") == "cluster":
            continue  # unknown ids are reported by their own checks; parallel text has no task
        if source.spec["task"] != task:
            raise ConfigError(f"{origin}: {key}: source {sid!r} is a {source.spec['task']} source ({source.origin}), "
                              f"but this run's task is {task} (config key `task`): one run, one task's sources")
