import json
from pathlib import Path

import pytest

from crest.io import atomic_path, write_json


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    write_json({"v": 1}, out)
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("killed")
    assert out.read_text(encoding="utf-8").strip() == '{\n  "v": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_creates_parent_dirs(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "x.json"
    write_json([1, 2], out)
    assert json.loads(out.read_text(encoding="utf-8")) == [1, 2]
    assert [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))] == ["a", "a/b", "a/b/x.json"]


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    """A result file must be readable by whoever may read the run's folder (mkstemp alone gives 0600)."""
    import os

    old = os.umask(0o022)
    try:
        write_json({"v": 1}, tmp_path / "a.json")
        os.umask(0o077)
        write_json({"v": 1}, tmp_path / "b.json")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600
