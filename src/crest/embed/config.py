"""The `embed` config section: what the rules need from it, and the checks its schema cannot make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crest.languages import Language, check_codes
from crest.models import BUILT_ENCODERS, encoder_dir, resolve_encoder
from crest.paths import resolve
from crest.schema import ConfigError


def embed_enabled(config: dict[str, Any]) -> bool:
    """The embed (and cluster) stages run when `embed.input` says what to embed."""
    return bool(config.get("embed", {}).get("input"))


def group_or_codes(value: str | list[str] | None, config: dict[str, Any]) -> list[str] | None:
    """A group name of languages.groups, or a list of codes, as a list (None stays None)."""
    if value is None or isinstance(value, list):
        return value
    return list(config["languages"]["groups"][value])


def embed_languages(config: dict[str, Any], table: dict[str, Language]) -> list[str] | None:
    """Languages to embed; None = every language of the input. A translated input with no list
    means every table language NLLB-200 can translate into."""
    section = config["embed"]
    langs = group_or_codes(section["languages"], config)
    if langs is None and "translated" in section["input"]:
        try:  # the languages the translation stage writes a shard for (its source language included)
            from crest.translate.plan import resolve_languages

            langs, _ = resolve_languages(config["translate"], config["languages"]["groups"], table)
        except (ImportError, KeyError):
            langs = [code for code, lang in table.items() if lang.nllb]
    return langs


def embed_inputs(config: dict[str, Any], run_dir: str | Path, table: dict[str, Language]) -> list[str]:
    """The parquet files the embed rule reads."""
    run_dir = Path(run_dir)
    spec = config["embed"]["input"]
    if "source" in spec:
        return [str(run_dir / "data" / f"{spec['source']}.parquet")]
    if "sources" in spec:
        return [str(run_dir / "data" / f"{s}.parquet") for s in spec["sources"]]
    if "corpus" in spec:
        return [str(run_dir / "data" / "corpora" / f"{spec['corpus']}.parquet")]
    langs = embed_languages(config, table) or []
    return [str(run_dir / "translated" / spec["translated"] / f"{lang}.parquet") for lang in langs]


def encoder_key(config: dict[str, Any]) -> str:
    return config["embed"]["encoder"]


def encoder_spec(config: dict[str, Any], run_dir: str | Path) -> str:
    """The encoder as `from_pretrained` takes it (a built model resolves under results/{run}/models/)."""
    return resolve_encoder(config["models"]["encoders"][encoder_key(config)], run_dir)


def encoder_build_files(config: dict[str, Any], run_dir: str | Path) -> list[str]:
    """Files the pipeline must build before the embed stage's encoder can be loaded."""
    return built_encoder_files(config["models"]["encoders"][encoder_key(config)], run_dir)


def embeddings_dir(config: dict[str, Any], run_dir: str | Path) -> Path:
    return Path(run_dir) / "embeddings" / config["embed"]["corpus"] / encoder_key(config)


def check_embed(config: dict[str, Any], table: dict[str, Language], origin: str = "config") -> None:
    """Raise ConfigError naming the key and value for what the schema cannot check."""
    if not embed_enabled(config):
        return
    section = config["embed"]
    encoders = config.get("models", {}).get("encoders", {})
    key = section["encoder"]
    if key not in encoders:
        raise ConfigError(f"{origin}: embed.encoder: {key!r} is not a key of models.encoders "
                          f"(keys: {', '.join(encoders) or 'none'})")
    spec = encoders[key]
    if config.get("offline") and spec not in BUILT_ENCODERS and not resolve(spec).exists():
        raise ConfigError(f"{origin}: embed.encoder: models.encoders.{key} = {spec!r} is neither a model crest "
                          f"builds ({', '.join(BUILT_ENCODERS)}) nor a local directory, and the config says "
                          f"offline: true")
    data = config["data"]
    inp = section["input"]
    for i, sid in enumerate(inp.get("sources", [inp["source"]] if "source" in inp else [])):
        if sid not in data["sources"]:
            where = f"embed.input.sources[{i}]" if "sources" in inp else "embed.input.source"
            raise ConfigError(f"{origin}: {where}: {sid!r} is not in data.sources")
    if "corpus" in inp and inp["corpus"] not in data.get("corpora", {}):
        raise ConfigError(f"{origin}: embed.input.corpus: {inp['corpus']!r} is not in data.corpora "
                          f"({', '.join(data.get('corpora', {})) or 'none'})")
    translate = config.get("translate", {})
    if "translated" in inp and "corpora" in translate and inp["translated"] not in translate["corpora"]:
        raise ConfigError(f"{origin}: embed.input.translated: {inp['translated']!r} is not in translate.corpora "
                          f"({', '.join(translate['corpora']) or 'none'})")
    check_language_list(section["languages"], config, table, "embed.languages", origin)


def check_language_list(value: Any, config: dict[str, Any], table: dict[str, Language], key: str,
                        origin: str) -> None:
    if value is None:
        return
    if isinstance(value, str):
        if value not in config["languages"]["groups"]:
            raise ConfigError(f"{origin}: {key}: {value!r} is not a group of languages.groups "
                              f"({', '.join(config['languages']['groups'])})")
        return
    try:
        check_codes(value, table, key)
    except ValueError as e:
        raise ConfigError(f"{origin}: {e}") from e


def embed_targets(config: dict[str, Any], run_dir: str | Path) -> list[str]:
    """What `rule all` needs from the embed stage ([] when it is off)."""
    return [str(embeddings_dir(config, run_dir) / "language_means.parquet")] if embed_enabled(config) else []


def built_encoder_files(spec: str, run_dir: str | Path) -> list[str]:
    """Files a rule waits for before loading the models.encoders value `spec` ([] for hub ids, dirs)."""
    return [str(encoder_dir(run_dir, spec) / "model.safetensors")] if spec in BUILT_ENCODERS else []
