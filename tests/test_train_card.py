"""The exported directory swap (crest.train.card.write_dir): a new directory replaces the old one
whole, and a job killed at any point leaves the old one or the new one, never half of one, with
`recover_dir` putting the old one back when the kill fell between the two renames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crest.train.card import recover_dir, write_dir


def fill(files: dict[str, str]):
    def write(tmp: Path) -> None:
        for name, text in files.items():
            (tmp / name).write_text(text)
    return write


def contents(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(d.iterdir())}


def test_write_dir_replaces_the_directory_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_dir(target, fill({"a.txt": "old", "stale.txt": "x"}))
    write_dir(target, fill({"a.txt": "new"}))
    assert contents(target) == {"a.txt": "new"}  # nothing of the old directory is left in it
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no .model.tmp, no .model.old


def test_a_failed_write_keeps_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_dir(target, fill({"a.txt": "old"}))

    def half(tmp: Path) -> None:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed"):
        write_dir(target, half)
    assert contents(target) == {"a.txt": "old"}
    write_dir(target, fill({"b.txt": "new"}))  # the next write clears the half-written temporary
    assert contents(target) == {"b.txt": "new"} and [p.name for p in tmp_path.iterdir()] == ["model"]


KILL_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from crest.train.card import write_dir

renames = []
real = Path.rename
def rename(self, dst):
    if renames:                 # the second rename (new directory into place): the process dies first
        os._exit(9)
    renames.append(self)
    return real(self, dst)
Path.rename = rename

def write(tmp):
    (tmp / "a.txt").write_text("new")
write_dir(Path(sys.argv[1]), write)
"""


def test_a_kill_between_the_renames_is_recovered(tmp_path: Path) -> None:
    """A real process exit after the old directory was moved aside and before the new one was moved in:
    the target is missing; recovery (what the trainer runs first) puts the old one back."""
    target = tmp_path / "model"
    write_dir(target, fill({"a.txt": "old"}))
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(target)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert not target.exists() and contents(tmp_path / ".model.old") == {"a.txt": "old"}
    recover_dir(target)
    assert contents(target) == {"a.txt": "old"} and not (tmp_path / ".model.old").exists()
    write_dir(target, fill({"a.txt": "new"}))
    assert contents(target) == {"a.txt": "new"} and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_kill_after_the_swap_keeps_the_new_directory(tmp_path: Path) -> None:
    """Killed after the new directory was moved in, before the old one was deleted: the new one stays."""
    target = tmp_path / "model"
    write_dir(target, fill({"a.txt": "new"}))
    (tmp_path / ".model.old").mkdir()
    (tmp_path / ".model.old" / "a.txt").write_text("old")
    recover_dir(target)
    assert contents(target) == {"a.txt": "new"} and [p.name for p in tmp_path.iterdir()] == ["model"]
    recover_dir(tmp_path / "never_written")  # nothing to recover: nothing happens
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
