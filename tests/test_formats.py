import pytest

from crest.data.formats import DataFormatError, parse_records


def test_csv_tsv_jsonl_json_txt() -> None:
    assert parse_records(b"a,b\n1,\"x, y\"\n", "csv", "f") == [{"a": "1", "b": "x, y"}]
    assert parse_records(b"a\tb\n1\t2\n", "tsv", "f") == [{"a": "1", "b": "2"}]
    assert parse_records(b'{"a": 1}\n\n{"a": 2}\n', "jsonl", "f") == [{"a": 1}, {"a": 2}]
    assert parse_records(b'{"data": {"items": [{"a": 1}, "plain"]}}', "json", "f", "data.items") == [
        {"a": 1}, {"text": "plain"}]
    assert parse_records(b"one\n\n two \n", "txt", "f") == [{"text": "one"}, {"text": " two "}]


def test_bom_is_dropped() -> None:
    assert parse_records("\ufeffa\n1\n".encode(), "csv", "f") == [{"a": "1"}]


def test_non_utf8_names_file_and_line() -> None:
    with pytest.raises(DataFormatError, match=r"prompts\.csv: not valid UTF-8 at byte \d+ \(line 3\)"):
        parse_records(b"a\nok\n\xff\xfe bad\n", "csv", "prompts.csv")


def test_bad_jsonl_line_is_named() -> None:
    with pytest.raises(DataFormatError, match=r"x\.jsonl: line 2: invalid JSON"):
        parse_records(b'{"a": 1}\n{"a": \n', "jsonl", "x.jsonl")


def test_json_records_path_errors() -> None:
    with pytest.raises(DataFormatError, match="missing 'items'"):
        parse_records(b'{"data": {}}', "json", "f.json", "data.items")
    with pytest.raises(DataFormatError, match="expected a list of records"):
        parse_records(b'{"a": 1}', "json", "f.json")


def test_csv_row_with_extra_fields() -> None:
    with pytest.raises(DataFormatError, match="line 3 has more fields"):
        parse_records(b"a,b\n1,2\n1,2,3\n", "csv", "f.csv")


def test_yaml_document_with_records_path() -> None:
    doc = b"name: seeds\nprompts:\n  - value: first\n  - value: second\n"
    assert parse_records(doc, "yaml", "s.prompt", "prompts") == [{"value": "first"}, {"value": "second"}]
    with pytest.raises(DataFormatError, match=r"s\.prompt: invalid YAML"):
        parse_records(b"a: [1,\n", "yaml", "s.prompt")
