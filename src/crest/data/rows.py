"""Turn a source's raw records into rows (text, label, lang, category, id) as its spec says."""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any

from crest.data.registry import Source, map_key
from crest.schema import ConfigError

TRUTHY = {"1", "true", "yes", "y", "unsafe"}
MEMBER = "_member"  # the file a record came from (set by the loader)
SPLIT = "_split"  # the hub split a record came from (set by the loader)


class LabelError(ValueError):
    """A label value the source's mapping does not cover."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def get_field(record: dict[str, Any], field: str, where: str) -> Any:
    """A field by name, or by dotted path into nested objects."""
    if field in record:
        return record[field]
    node: Any = record
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = ", ".join(sorted(k for k in record if not k.startswith("_")))
            raise ConfigError(f"{where}: no field {field!r} (fields: {keys})")
        node = node[part]
    return node


def _where_ok(record: dict[str, Any], where_spec: dict[str, Any], where: str) -> bool:
    for field, wanted in where_spec.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if map_key(get_field(record, field, where)) not in {map_key(o) for o in options}:
            return False
    return True


def _text(record: dict[str, Any], fields: str | list[str], where: str) -> str:
    names = [fields] if isinstance(fields, str) else fields
    parts = []
    for name in names:
        value = get_field(record, name, where)
        if isinstance(value, list):  # e.g. a conversation's turns
            value = "\n".join(str(v) for v in value if not _missing(v))
        parts.append("" if _missing(value) else str(value))
    return "\n".join(p for p in parts if p)


def _label(record: dict[str, Any], rule: dict[str, Any], where: str) -> int:
    if "value" in rule:
        return int(rule["value"])
    if "any_of" in rule:
        return int(any(map_key(get_field(record, f, where)) in TRUTHY for f in rule["any_of"]))
    value = get_field(record, rule["field"], where)
    table = {map_key(k): v for k, v in rule["map"].items()}
    key = "" if _missing(value) else map_key(value)
    if key not in table:
        raise LabelError(f"{where}: label value {value!r} in field {rule['field']!r} is not in the "
                         f"source's label map (mapped values: {', '.join(sorted(table))})")
    return int(table[key])


def _lang(record: dict[str, Any], spec: dict[str, Any], where: str) -> str:
    if "lang" in spec:
        return spec["lang"]
    value = get_field(record, spec["lang_field"], where)
    if "lang_map" not in spec:
        return str(value).strip()
    table = {map_key(k): v for k, v in spec["lang_map"].items()}
    if map_key(value) not in table:
        raise ConfigError(f"{where}: language value {value!r} is not in lang_map")
    return table[map_key(value)]


def _category(record: dict[str, Any], spec: dict[str, Any], several_members: bool, where: str) -> str:
    if "category" in spec:
        return spec["category"]
    if "category_field" in spec:
        value = get_field(record, spec["category_field"], where)
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return "" if _missing(value) else str(value)
    if several_members and record.get(MEMBER):
        return PurePosixPath(record[MEMBER]).stem
    return ""


def records_to_rows(source: Source, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with id, text, label, lang, category, split (None where the source has no split)."""
    spec = source.spec
    several = len({r.get(MEMBER) for r in records}) > 1
    rows: list[dict[str, Any]] = []
    for n, record in enumerate(records, 1):
        where = f"source {source.id!r} ({record.get(MEMBER) or source.loader_kind}), record {n}"
        if "where" in spec and not _where_ok(record, spec["where"], where):
            continue
        base_id = f"{source.id}-{get_field(record, spec['id_field'], where)}" if "id_field" in spec \
            else f"{source.id}-{n:06d}"
        common = {
            "lang": _lang(record, spec, where),
            "source": source.id,
            "category": _category(record, spec, several, where),
            "split": record.get(SPLIT),
        }
        if "columns" in spec:
            for column, label in spec["columns"].items():
                text = _text(record, column, where)
                rows.append({"id": f"{base_id}-{column}", "text": text, "label": int(label), **common})
        else:
            rows.append({"id": base_id, "text": _text(record, spec["text"], where),
                         "label": _label(record, spec["label"], where), **common})
    return rows
