"""Turn a source's raw records into rows (text, label, lang, category, id) as its spec says."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from pathlib import PurePosixPath
from typing import Any

from crest.data.registry import Source, map_key
from crest.schema import ConfigError

TRUTHY = {"1", "true", "yes", "y", "unsafe"}
MEMBER = "_member"  # the file a record came from (set by the loader)
SPLIT = "_split"  # the hub split a record came from (set by the loader)
ORIGIN = "_origin"  # where exactly the record came from: package==version:member, hub id/split, path


class LabelError(ValueError):
    """A label value the source's mapping does not cover."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def get_field(record: dict[str, Any], field: str, where: str) -> Any:
    """A field by name, or by dotted path into nested objects (an integer step indexes a list)."""
    if field in record:
        return record[field]
    node: Any = record
    for part in field.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            keys = ", ".join(sorted(k for k in record if not k.startswith("_")))
            raise ConfigError(f"{where}: no field {field!r} (fields: {keys})")
    return node


def _matches(record: dict[str, Any], match: dict[str, Any], where: str) -> bool:
    """True if every field equals (one of) the wanted value(s); used by `where` and `exclude`."""
    for field, wanted in match.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if map_key(get_field(record, field, where)) not in {map_key(o) for o in options}:
            return False
    return True


def _text(record: dict[str, Any], fields: str | list[str], where: str, until: str | None = None) -> str:
    names = [fields] if isinstance(fields, str) else fields
    parts = []
    for name in names:
        value = get_field(record, name, where)
        if isinstance(value, list):  # e.g. a conversation's turns
            value = "\n".join(str(v) for v in value if not _missing(v))
        parts.append("" if _missing(value) else str(value))
    text = "\n".join(p for p in parts if p)
    return text.split(until, 1)[0] if until else text


def _label(record: dict[str, Any], rule: dict[str, Any], where: str) -> int:
    if "value" in rule:
        return int(rule["value"])
    if "any_of" in rule:
        return int(any(map_key(get_field(record, f, where)) in TRUTHY for f in rule["any_of"]))
    value = get_field(record, rule["field"], where)
    if "threshold" in rule:
        return _threshold(value, rule, where)
    table = {map_key(k): v for k, v in rule["map"].items()}
    key = "" if _missing(value) else map_key(value)
    if key not in table:
        raise LabelError(f"{where}: label value {value!r} in field {rule['field']!r} is not in the "
                         f"source's label map (mapped values: {', '.join(sorted(table))})")
    return int(table[key])


_COMPARE = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}


def _threshold(value: Any, rule: dict[str, Any], where: str) -> int:
    (op, bound), = rule["threshold"].items()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number):
        raise LabelError(f"{where}: label value {value!r} in field {rule['field']!r} is not a number "
                         f"(the source's label rule is {op} {bound})")
    return int(_COMPARE[op](number, float(bound)))


def _lang(record: dict[str, Any], spec: dict[str, Any], where: str, text: str) -> str:
    if "lang" in spec:
        return spec["lang"]
    if "lang_detect" in spec:
        from crest.guard.langid import detect_among

        return detect_among([text], spec["lang_detect"])[0]
    value = get_field(record, spec["lang_field"], where)
    if "lang_map" not in spec:
        return str(value).strip()
    table = {map_key(k): v for k, v in spec["lang_map"].items()}
    if map_key(value) not in table:
        raise ConfigError(f"{where}: language value {value!r} in field {spec['lang_field']!r} is not in "
                          f"the source's lang_map (mapped values: {', '.join(repr(k) for k in sorted(table))})")
    return table[map_key(value)]


def _category(record: dict[str, Any], spec: dict[str, Any], several_members: bool, where: str) -> str:
    if "category" in spec:
        return spec["category"]
    if "category_field" in spec:
        value = get_field(record, spec["category_field"], where)
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return "" if _missing(value) else str(value)
    if "category_from_flags" in spec:
        flags = spec["category_from_flags"]
        if isinstance(flags, dict):
            table = get_field(record, flags["field"], where) or {}
            names = [k for k, v in table.items() if map_key(v) in TRUTHY]
        else:
            names = [f for f in flags if map_key(get_field(record, f, where)) in TRUTHY]
        return ",".join(names)
    if several_members and record.get(MEMBER):
        return PurePosixPath(record[MEMBER]).stem
    return ""


def _id(record: dict[str, Any], fields: str | list[str], where: str, digest: bool = False) -> str:
    names = [fields] if isinstance(fields, str) else fields
    value = "-".join(str(get_field(record, f, where)) for f in names)
    return hashlib.sha1(value.encode("utf-8")).hexdigest()[:16] if digest else value


def records_to_rows(source: Source, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter]:
    """Rows with id, text, label, lang, category, split (None where the source has no split),
    and how many records `where`, `exclude` and `text_pattern` left out. A row id is `{id_prefix}-{id_field}`
    (`id_prefix` defaults to the source id): sources that are columns of one parallel file
    (MultiJail's languages) name one prefix, so a prompt keeps its id in every language and a
    parallel benchmark can intersect ids across languages; ids stay unique within a language."""
    spec = source.spec
    skipped: Counter = Counter(not_where=0, excluded=0)
    pattern = re.compile(spec["text_pattern"]) if "text_pattern" in spec else None
    several = len({r.get(MEMBER) for r in records}) > 1
    rows: list[dict[str, Any]] = []
    for n, record in enumerate(records, 1):
        where = f"source {source.id!r} ({record.get(MEMBER) or source.loader_kind}), record {n}"
        if "where" in spec and not _matches(record, spec["where"], where):
            skipped["not_where"] += 1
            continue
        if "exclude" in spec and _matches(record, spec["exclude"], where):
            skipped["excluded"] += 1
            continue
        prefix = spec.get("id_prefix", source.id)
        base_id = f"{prefix}-{_id(record, spec['id_field'], where, spec.get('id_hash', False))}" if "id_field" in spec \
            else f"{prefix}-{n:06d}"
        common = {
            "source": source.id,
            "category": _category(record, spec, several, where),
            "split": record.get(SPLIT),
            "origin": record.get(ORIGIN, ""),
        }
        if "columns" in spec:
            for column, label in spec["columns"].items():
                text = _text(record, column, where, spec.get("text_until"))
                rows.append({"id": f"{base_id}-{column}", "text": text, "label": int(label),
                             "lang": _lang(record, spec, where, text), **common})
        else:
            text = _text(record, spec["text"], where, spec.get("text_until"))
            if pattern is not None and not pattern.search(text.strip()):
                skipped["not_text_pattern"] += 1
                continue
            rows.append({"id": base_id, "text": text,
                         "label": _label(record, spec["label"], where), "lang": _lang(record, spec, where, text),
                         **common,
                         **{turn: _text(record, field, where) for turn, field in spec.get("conversation", {}).items()}})
    return rows, skipped
