from pathlib import Path

import pytest

from crest.data.registry import Source
from crest.data.rows import LabelError, records_to_rows
from crest.schema import ConfigError


def src(**spec) -> Source:
    base = {"license": "t", "loader": {"local": {"path": "x", "format": "jsonl"}}, "lang": "en"}
    return Source("toy", {**base, **spec}, Path("registry.yaml"))


def test_label_map_compares_values_as_text() -> None:
    s = src(text="t", label={"field": "y", "map": {"true": 1, "false": 0, "2": 1}})
    rows = records_to_rows(s, [{"t": "a", "y": True}, {"t": "b", "y": "False"}, {"t": "c", "y": 2.0}])
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert [r["id"] for r in rows] == ["toy-000001", "toy-000002", "toy-000003"]


def test_unmapped_label_names_source_record_and_value() -> None:
    s = src(text="t", label={"field": "y", "map": {"safe": 0, "unsafe": 1}})
    with pytest.raises(LabelError, match=r"source 'toy' .*record 2: label value 'maybe' in field 'y'"):
        records_to_rows(s, [{"t": "a", "y": "safe"}, {"t": "b", "y": "maybe"}])


def test_missing_label_value_is_an_error() -> None:
    s = src(text="t", label={"field": "y", "map": {"safe": 0}})
    with pytest.raises(LabelError, match="label value None"):
        records_to_rows(s, [{"t": "a", "y": None}])


def test_missing_field_lists_available_fields() -> None:
    s = src(text="prompt", label={"value": 1})
    with pytest.raises(ConfigError, match=r"no field 'prompt' \(fields: goal, target\)"):
        records_to_rows(s, [{"goal": "g", "target": "t"}])


def test_columns_make_one_row_per_column() -> None:
    s = src(columns={"harmful": 1, "benign": 0}, id_field="id")
    rows = records_to_rows(s, [{"id": 7, "harmful": "h", "benign": "b"}])
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [("toy-7-harmful", "h", 1), ("toy-7-benign", "b", 0)]


def test_where_filter_lang_map_category_and_dotted_fields() -> None:
    s = src(text=["q.title", "q.body"], label={"value": 1}, where={"kind": ["a", "b"]},
            lang=None, lang_field="language", lang_map={"English": "en", "Swahili": "sw"}, category_field="cat")
    del s.spec["lang"]
    records = [
        {"q": {"title": "T", "body": "B"}, "kind": "a", "language": "Swahili", "cat": ["x", "y"]},
        {"q": {"title": "T2", "body": ""}, "kind": "c", "language": "English", "cat": "z"},
    ]
    rows = records_to_rows(s, records)
    assert len(rows) == 1
    assert rows[0]["text"] == "T\nB" and rows[0]["lang"] == "sw" and rows[0]["category"] == "x,y"


def test_any_of_flags() -> None:
    s = src(text="t", label={"any_of": ["S", "H"]})
    rows = records_to_rows(s, [{"t": "a", "S": 0, "H": 1}, {"t": "b", "S": 0, "H": 0}, {"t": "c", "S": True, "H": None}])
    assert [r["label"] for r in rows] == [1, 0, 1]


def test_category_from_member_stem_when_several_members() -> None:
    s = src(text="t", label={"value": 1})
    rows = records_to_rows(s, [{"t": "a", "_member": "d/misinfo.jsonl"}, {"t": "b", "_member": "d/hate.jsonl"}])
    assert [r["category"] for r in rows] == ["misinfo", "hate"]
