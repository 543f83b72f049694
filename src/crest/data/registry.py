"""The dataset registry: every source is declared in YAML (docs/registry.md), never in code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crest.paths import resolve
from crest.schema import ConfigError, read_yaml, validate


@dataclass(frozen=True)
class Source:
    """One registered source: its id, its spec (schema-validated, defaults filled) and its file."""

    id: str
    spec: dict[str, Any]
    origin: Path

    @property
    def loader_kind(self) -> str:
        return next(iter(self.spec["loader"]))

    @property
    def loader(self) -> dict[str, Any]:
        return self.spec["loader"][self.loader_kind]


def load_registry(paths: Iterable[str | Path]) -> dict[str, Source]:
    """Read registry files; a source id defined twice is an error naming both files."""
    sources: dict[str, Source] = {}
    for raw_path in paths:
        path = resolve(raw_path)
        doc = read_yaml(path)
        if isinstance(doc, dict) and isinstance(doc.get("sources"), dict):
            from crest.data.feedback import apply_defaults  # the feedback loader's fields, unless given

            doc["sources"] = {sid: apply_defaults(spec) for sid, spec in doc["sources"].items()}
        doc = validate(doc, "datasets.schema.yaml", path)
        for sid, spec in doc["sources"].items():
            if sid in sources:
                raise ConfigError(f"{path}: source {sid!r} is already defined in {sources[sid].origin}")
            _check_source(sid, spec, path)
            sources[sid] = Source(sid, spec, path)
    return sources


def get_source(paths: Iterable[str | Path], source_id: str) -> Source:
    """One source from registry files, or ConfigError naming the files searched."""
    paths = list(paths)
    registry = load_registry(paths)
    if source_id not in registry:
        raise ConfigError(f"unknown source {source_id!r} (registry: {', '.join(map(str, paths))})")
    return registry[source_id]


def map_key(value: Any) -> str:
    """Compare values as case-folded text: YAML `true`, JSON true and CSV "True" are one key."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def _check_source(sid: str, spec: dict[str, Any], path: Path) -> None:
    """Checks the schema cannot express."""
    label = spec.get("label", {})
    if "map" in label and "field" not in label:
        raise ConfigError(f"{path}: sources.{sid}.label.map needs label.field")
    keys: dict[str, Any] = {}
    for key, value in label.get("map", {}).items():
        folded = map_key(key)
        if keys.get(folded, value) != value:
            raise ConfigError(f"{path}: sources.{sid}.label.map maps {folded!r} to both 0 and 1")
        keys[folded] = value
    if "lang_map" in spec and "lang_field" not in spec:
        raise ConfigError(f"{path}: sources.{sid}.lang_map needs lang_field")
    if spec.get("records") and next(iter(spec["loader"].values())).get("format") not in (None, "json", "yaml"):
        raise ConfigError(f"{path}: sources.{sid}.records applies to the json and yaml formats only")


def source_languages(source: Source) -> list[str]:
    """Languages a source declares statically (a fixed `lang`, the values of `lang_map`, or the
    codes `lang_detect` chooses among)."""
    if "lang" in source.spec:
        return [source.spec["lang"]]
    if "lang_detect" in source.spec:
        return list(source.spec["lang_detect"])
    return sorted(set(source.spec.get("lang_map", {}).values()))
