from pathlib import Path

import pytest

from crest.data.registry import Source
from crest.data.rows import LabelError, records_to_rows
from crest.schema import ConfigError


def rows_of(source: Source, records: list[dict]) -> list[dict]:
    return records_to_rows(source, records)[0]


def src(**spec) -> Source:
    base = {"license": "t", "loader": {"local": {"path": "x", "format": "jsonl"}}, "lang": "en"}
    return Source("toy", {**base, **spec}, Path("registry.yaml"))


def test_label_map_compares_values_as_text() -> None:
    s = src(text="t", label={"field": "y", "map": {"true": 1, "false": 0, "2": 1}})
    rows = rows_of(s, [{"t": "a", "y": True}, {"t": "b", "y": "False"}, {"t": "c", "y": 2.0}])
    assert [r["label"] for r in rows] == [1, 0, 1]
    assert [r["id"] for r in rows] == ["toy-000001", "toy-000002", "toy-000003"]


def test_unmapped_label_names_source_record_and_value() -> None:
    s = src(text="t", label={"field": "y", "map": {"safe": 0, "unsafe": 1}})
    with pytest.raises(LabelError, match=r"source 'toy' .*record 2: label value 'maybe' in field 'y'"):
        rows_of(s, [{"t": "a", "y": "safe"}, {"t": "b", "y": "maybe"}])


def test_missing_label_value_is_an_error() -> None:
    s = src(text="t", label={"field": "y", "map": {"safe": 0}})
    with pytest.raises(LabelError, match="label value None"):
        rows_of(s, [{"t": "a", "y": None}])


def test_missing_field_lists_available_fields() -> None:
    s = src(text="prompt", label={"value": 1})
    with pytest.raises(ConfigError, match=r"no field 'prompt' \(fields: goal, target\)"):
        rows_of(s, [{"goal": "g", "target": "t"}])


def test_columns_make_one_row_per_column() -> None:
    s = src(columns={"harmful": 1, "benign": 0}, id_field="id")
    rows = rows_of(s, [{"id": 7, "harmful": "h", "benign": "b"}])
    assert [(r["id"], r["text"], r["label"]) for r in rows] == [("toy-7-harmful", "h", 1), ("toy-7-benign", "b", 0)]


def test_where_filter_lang_map_category_and_dotted_fields() -> None:
    s = src(text=["q.title", "q.body"], label={"value": 1}, where={"kind": ["a", "b"]},
            lang=None, lang_field="language", lang_map={"English": "en", "Swahili": "sw"}, category_field="cat")
    del s.spec["lang"]
    records = [
        {"q": {"title": "T", "body": "B"}, "kind": "a", "language": "Swahili", "cat": ["x", "y"]},
        {"q": {"title": "T2", "body": ""}, "kind": "c", "language": "English", "cat": "z"},
    ]
    rows = rows_of(s, records)
    assert len(rows) == 1
    assert rows[0]["text"] == "T\nB" and rows[0]["lang"] == "sw" and rows[0]["category"] == "x,y"


def test_any_of_flags() -> None:
    s = src(text="t", label={"any_of": ["S", "H"]})
    rows = rows_of(s, [{"t": "a", "S": 0, "H": 1}, {"t": "b", "S": 0, "H": 0}, {"t": "c", "S": True, "H": None}])
    assert [r["label"] for r in rows] == [1, 0, 1]


def test_category_from_member_stem_when_several_members() -> None:
    s = src(text="t", label={"value": 1})
    rows = rows_of(s, [{"t": "a", "_member": "d/misinfo.jsonl"}, {"t": "b", "_member": "d/hate.jsonl"}])
    assert [r["category"] for r in rows] == ["misinfo", "hate"]


def test_text_until_cuts_canned_answers_and_list_index_steps() -> None:
    s = src(columns={"harmful": 1, "benign": 0}, text_until="\n\n", category_field="cats.0")
    rows = rows_of(s, [{"harmful": "How to X?\n\nSure, step 1", "benign": "How to bake?", "cats": ["a", "b"]}])
    assert [r["text"] for r in rows] == ["How to X?", "How to bake?"]
    assert {r["category"] for r in rows} == {"a"}
    with pytest.raises(ConfigError, match="no field 'cats.5'"):
        rows_of(src(text="t", label={"value": 1}, category_field="cats.5"), [{"t": "x", "cats": ["a"]}])


def test_exclude_threshold_id_list_and_flags() -> None:
    s = src(text="t", label={"field": "tox", "threshold": {"gt": 1}}, exclude={"t": "REDACTED"},
            id_field=["id", "lang"], category_from_flags=["S", "H"])
    rows, skipped = records_to_rows(s, [{"t": "a", "tox": 1.0, "id": 3, "lang": "de", "S": 0, "H": 0},
                                        {"t": "REDACTED", "tox": 5, "id": 4, "lang": "de", "S": 1, "H": 0},
                                        {"t": "b", "tox": "1.25", "id": 3, "lang": "fr", "S": 1, "H": True}])
    assert [(r["id"], r["label"], r["category"]) for r in rows] == [("toy-3-de", 0, ""), ("toy-3-fr", 1, "S,H")]
    assert skipped == {"not_where": 0, "excluded": 1}
    with pytest.raises(LabelError, match=r"record 1: label value 'n/a' in field 'tox' is not a number \(.*gt 1\)"):
        records_to_rows(s, [{"t": "a", "tox": "n/a", "id": 1, "lang": "x", "S": 0, "H": 0}])


def test_category_from_a_dict_of_flags() -> None:
    s = src(text="t", label={"value": 1}, category_from_flags={"field": "cat"})
    assert rows_of(s, [{"t": "a", "cat": {"violence": True, "privacy": False, "fraud": True}}])[0]["category"] \
        == "violence,fraud"


def test_text_pattern_keeps_matching_texts_and_counts_the_rest() -> None:
    """PIQA goals: the how-to questions are kept, sentence fragments ("dresser") are not."""
    s = src(text="goal", label={"value": 0}, text_pattern=r"\?$")
    rows, skipped = records_to_rows(s, [{"goal": "How do you remove gum from hair?"}, {"goal": "dresser"},
                                        {"goal": "To cream butter and sugar together, you can"},
                                        {"goal": "How to brine a turkey?  "}])
    assert [r["text"] for r in rows] == ["How do you remove gum from hair?", "How to brine a turkey?  "]
    assert skipped["not_text_pattern"] == 2
