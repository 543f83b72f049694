"""Docs and docstrings a reader can follow: they cite a doc section, never a tracker entry ("issue
11 item 2") or a file outside the repository (a design note beside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

from crest.paths import REPO_ROOT

TRACKER = re.compile(r"\b(issues?[- ]\d+|contract \d+)", re.IGNORECASE)
OUTSIDE = re.compile(r"\.\./shared/|\bDESIGN\.md\b")


def readable_files() -> list[Path]:
    files = [REPO_ROOT / "README.md"]
    for top, pattern in [("src", "*.py"), ("docs", "*.md"), ("workflow", "*.smk"), ("workflow", "*.yaml"),
                         ("tests", "*.py"), ("bench", "*.py"), ("bench", "*.md")]:
        files += sorted((REPO_ROOT / top).rglob(pattern))
    return files


def test_no_doc_cites_a_tracker_entry_or_a_file_outside_the_repository() -> None:
    files = readable_files()
    assert len(files) > 100
    found = [f"{f.relative_to(REPO_ROOT)}:{n}: {m.group(0)}" for f in files
             for n, line in enumerate(f.read_text().splitlines(), 1)
             for m in (TRACKER.search(line), OUTSIDE.search(line)) if m]
    assert not found, "cite the doc section instead:\n" + "\n".join(found)
