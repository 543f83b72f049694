"""JSON-Schema validation with defaults filled in and errors that name the offending key."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml

from crest.paths import SCHEMA_DIR


class ConfigError(ValueError):
    """A config or registry file is wrong; the message names the file, key and value."""


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def _with_defaults(validator_class: type) -> type:
    """A validator that also writes each property's `default` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = _copy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


_Validator = _with_defaults(jsonschema.Draft202012Validator)


@functools.cache
def _registry() -> referencing.Registry:
    """Every schema file, addressable by its file name: a stage's config section lives in its own
    file (`translate.schema.yaml`) and the run schema refers to it with `$ref`."""
    resources = [(path.name, referencing.Resource.from_contents(load_schema(path.name),
                                                                 default_specification=referencing.jsonschema.DRAFT202012))
                 for path in sorted(SCHEMA_DIR.glob("*.schema.yaml"))]
    return referencing.Registry().with_resources(resources)


def key_path(path) -> str:
    """`data.split.validation` style path for an error location."""
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
        return f"unknown key(s) {', '.join(map(repr, extra))} at {where} (allowed: {allowed})"
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        return f"{where}: {best.message} (value {error.instance!r:.200})"
    return f"{where}: {error.message}"


def validate(instance: Any, schema_name: str, origin: str | Path) -> Any:
    """Validate `instance` in place (defaults filled) or raise ConfigError naming `origin`."""
    schema = load_schema(schema_name)
    validator = _Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_describe(e) for e in errors)
        raise ConfigError(f"{origin}: invalid ({schema_name}):\n  - {lines}")
    return instance


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; a parse error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {e}") from e
