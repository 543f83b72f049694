"""Red-team feedback kept in an embedded SQLite database (`crest serve` `/v1/feedback`, `crest
feedback export`, the registry's `feedback` loader).

A person who thinks a guard got a prompt wrong sends the text, what each guard said (score,
threshold, verdict), the label they say is right, an optional note; the server adds the time and the
revisions of the models it serves. The database is written in WAL mode with `synchronous=FULL`:
an answer of 2xx means the row is committed to the write-ahead log and survives `kill -9` of the
server (tested). Every statement uses bound parameters; nothing a client sends is ever formatted
into SQL. A feedback id (the client's, else a new UUID) is unique, so a retried post is stored once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crest.io import atomic_path

LABELS = ("safe", "unsafe")
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    text    TEXT NOT NULL,
    label   TEXT NOT NULL CHECK (label IN ('safe', 'unsafe')),
    lang    TEXT,
    note    TEXT,
    scores  TEXT NOT NULL,
    models  TEXT NOT NULL,
    bytes   INTEGER NOT NULL
)
"""
COLUMNS = ("id", "created", "text", "label", "lang", "note", "scores", "models")


class FeedbackFull(Exception):
    """The database holds as much as it may (`max_rows` or `max_bytes`)."""


@dataclass
class FeedbackLimits:
    """Caps: per request (characters of the text and the note, bytes of the body) and in total."""

    max_text_chars: int = 20_000
    max_note_chars: int = 2_000
    max_body_bytes: int = 256 * 1024
    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024  # stored text, note and scores, summed

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if int(value) < 1:
                raise ValueError(f"feedback {name} must be at least 1, got {value}")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in WAL mode with FULL sync and a 10 s busy timeout (several servers or
    exporters may share the file); the table is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(SCHEMA)
    return con


class FeedbackStore:
    """One connection, used by one thread at a time (a lock); each insert is one IMMEDIATE
    transaction that checks the total caps before writing."""

    def __init__(self, path: str | Path, limits: FeedbackLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or FeedbackLimits()
        self.con = connect(self.path)
        self.lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> tuple[str, bool]:
        """Store one checked record; (its id, True when new, False when that id was stored before).
        FeedbackFull when the caps are reached."""
        fid = record.get("id") or uuid.uuid4().hex
        scores = json.dumps(record.get("scores") or [], ensure_ascii=False, allow_nan=False)
        models = json.dumps(record.get("models") or {}, ensure_ascii=False, allow_nan=False)
        note = record.get("note") or None
        size = len(record["text"].encode()) + len((note or "").encode()) + len(scores.encode()) + len(models.encode())
        created = record.get("created") or datetime.now(UTC).isoformat(timespec="milliseconds")
        with self.lock:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                if self.con.execute("SELECT 1 FROM feedback WHERE id = ?", (fid,)).fetchone():
                    self.con.execute("ROLLBACK")
                    return fid, False
                rows, stored = self.con.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM feedback").fetchone()
                if rows >= self.limits.max_rows or stored + size > self.limits.max_bytes:
                    self.con.execute("ROLLBACK")
                    raise FeedbackFull(f"the feedback database is full ({rows} rows, {stored} bytes; at most "
                                       f"{self.limits.max_rows} rows and {self.limits.max_bytes} bytes)")
                self.con.execute(
                    "INSERT INTO feedback (id, created, text, label, lang, note, scores, models, bytes) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (fid, created, record["text"], record["label"], record.get("lang"), note, scores, models, size))
                self.con.execute("COMMIT")
            except BaseException:
                if self.con.in_transaction:
                    self.con.execute("ROLLBACK")
                raise
        return fid, True

    def count(self) -> int:
        with self.lock:
            return self.con.execute("SELECT count(*) FROM feedback").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.con.close()


def read_feedback(path: str | Path) -> list[dict[str, Any]]:
    """Every stored record, oldest first, as the export writes them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no feedback database")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY seq").fetchall()
    finally:
        con.close()
    out = []
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        record["scores"] = json.loads(record["scores"])
        record["models"] = json.loads(record["models"])
        out.append(record)
    return out


def export_feedback(db: str | Path, out: str | Path) -> int:
    """Write the database as JSONL at `out` (atomically); the number of records."""
    records = read_feedback(db)
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"{out}: is a directory")
    with atomic_path(out) as tmp:
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(records)


def run_dir_of(model_dir: str | Path) -> Path | None:
    """The run directory a pipeline model lives in (`results/{run}/models/{arm}/{size}/seed{n}` ->
    `results/{run}`), or None for a model outside a run."""
    p = Path(model_dir).expanduser().resolve()
    for parent in p.parents:
        if parent.name == "models":
            return parent.parent
    return None


def default_db(model_dirs: list[str | Path]) -> Path | None:
    """`{run}/feedback/feedback.sqlite` for the run of the first model that is in one."""
    for m in model_dirs:
        run = run_dir_of(m)
        if run is not None:
            return run / "feedback" / "feedback.sqlite"
    return None
