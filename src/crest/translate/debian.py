"""Pinned Debian packages installed without root: the offline translators' engines and data.

For each pin (package, version, sha256) of config/debian_assets.yaml: `apt-get download
PACKAGE=VERSION` (works unprivileged with the host's package lists), the .deb's sha256 checked,
`dpkg-deb -x` into one tree, and the Apertium `modes/*.mode` files, which name
`/usr/share/apertium/...`, rewritten to that tree. Layout under the cache root
(`translate.asset_cache`, default results/cache/debian):

    debs/{package}_{version}.deb     verified downloads (a cached file with another hash is an error)
    tree/usr/...                     the unpacked packages
    tree/.crest/unpacked/{package}   marker: the sha256 of the .deb unpacked there

Idempotent: a verified .deb is not downloaded again, an unpacked one (marker with its hash) not
unpacked again. A hash that differs is never a fallback (`AssetChecksumError`): the bytes are not
what was measured. A missing `apt-get`/`dpkg-deb` or a failed download is `AssetUnavailable`:
the pipeline records it and the translate jobs fall back (crest.translate.backends).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crest.data.wheels import sha256_file
from crest.schema import ConfigError, read_yaml

log = logging.getLogger(__name__)

_TAIL = 1500  # characters of a tool's stderr kept in an error message
APERTIUM_SHARE = "usr/share/apertium"
DICTD_SHARE = "usr/share/dictd"
_MODE_PATH_RE = re.compile(r"'[^']*/usr/share/apertium/")


class AssetError(ValueError):
    """A pinned Debian package could not be installed; the message names it."""

    def __init__(self, package: str, message: str) -> None:
        super().__init__(f"{package}: {message}")
        self.package = package


class AssetUnavailable(AssetError):
    """apt-get or dpkg-deb is missing, or the download failed: the translate stage may fall back."""


class AssetChecksumError(AssetError):
    """A .deb's sha256 is not the pinned one: never installed, never a fallback."""


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    sha256: str

    @property
    def deb_name(self) -> str:
        """The file name apt-get gives the download (an epoch's ':' spelled %3a), architecture cut."""
        return f"{self.package}_{self.version.replace(':', '%3a')}.deb"


@dataclass(frozen=True)
class Assets:
    """config/debian_assets.yaml: the pins, the Apertium engine packages, route hops -> modes and
    gloss languages -> FreeDict dictionaries."""

    pins: dict[str, Pin]
    engine: tuple[str, ...]
    modes: dict[str, dict[str, str]] = field(default_factory=dict)
    freedict: dict[str, dict[str, str]] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Assets:
        data = read_yaml(path)
        where = str(path)
        pins: dict[str, Pin] = {}
        for i, item in enumerate(data.get("packages") or []):
            missing = [k for k in ("package", "version", "sha256") if not item.get(k)]
            if missing:
                raise ConfigError(f"{where}: packages[{i}]: missing {', '.join(missing)}")
            if not re.fullmatch(r"[0-9a-f]{64}", str(item["sha256"])):
                raise ConfigError(f"{where}: packages[{i}] ({item['package']}): sha256 must be 64 hex digits")
            pins[item["package"]] = Pin(str(item["package"]), str(item["version"]), str(item["sha256"]))
        assets = cls(pins=pins, engine=tuple(data.get("apertium_engine") or ()),
                     modes=dict(data.get("apertium_modes") or {}), freedict=dict(data.get("freedict") or {}),
                     path=where)
        named = [("apertium_engine", p) for p in assets.engine]
        named += [(f"apertium_modes.{k}", v.get("package")) for k, v in assets.modes.items()]
        named += [(f"freedict.{k}", v.get("package")) for k, v in assets.freedict.items()]
        for key, package in named:
            if package not in pins:
                raise ConfigError(f"{where}: {key}: package {package!r} has no pin under packages")
        return assets

    def hop(self, src: str, tgt: str) -> dict[str, str] | None:
        return self.modes.get(f"{src}-{tgt}")

    def packages_for(self, backend: str, lang: str, route: Sequence[str]) -> list[str]:
        """The packages a (backend, language, route) needs."""
        if backend == "apertium":
            hops = [self.modes[f"{a}-{b}"]["package"] for a, b in zip(route, route[1:])]
            return [*self.engine, *dict.fromkeys(hops)]
        if backend == "gloss":
            return [self.freedict[lang]["package"]]
        return []

    def select(self, packages: Sequence[str]) -> list[Pin]:
        return [self.pins[p] for p in dict.fromkeys(packages)]


def tree_dir(root: str | Path) -> Path:
    return Path(root) / "tree"


def _require_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise AssetUnavailable(package, f"`{tool}` not found on PATH: the offline translators need a Debian-based "
                               "system (apt-get and dpkg-deb); without them these languages fall back")
    return path


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One installer at a time per cache (the demo and the tests share it)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checksum_error(pin: Pin, path: Path, actual: str) -> AssetChecksumError:
    return AssetChecksumError(pin.package, f"sha256 mismatch for {path} ({pin.package}={pin.version}): expected "
                              f"{pin.sha256}, got {actual}. Not installed. Delete the file if the pin is right, "
                              "or fix the pin in the assets file")


def fetch_deb(pin: Pin, debs: Path, apt_args: Sequence[str] = ()) -> Path:
    """The verified .deb of `pin` in `debs`, downloaded with apt-get if absent. A download lands in
    a temporary folder and is renamed into place only once its hash matches."""
    final = debs / pin.deb_name
    if final.is_file():
        actual = sha256_file(final)
        if actual != pin.sha256:
            raise _checksum_error(pin, final, actual)
        return final
    apt_get = _require_tool("apt-get", pin.package)
    debs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=debs))
    try:
        cmd = [apt_get, "download", "-q", *apt_args, f"{pin.package}={pin.version}"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        got = sorted(tmp.glob("*.deb"))
        if proc.returncode != 0 or len(got) != 1:
            tail = proc.stderr.strip()[-_TAIL:]
            hint = (" (no package lists? run `apt-get update` once)" if "Unable to locate" in tail
                    or "Can't select" in tail else "")
            raise AssetUnavailable(pin.package, f"`apt-get download {pin.package}={pin.version}` failed "
                                   f"(exit {proc.returncode}){hint}: {tail}")
        actual = sha256_file(got[0])
        if actual != pin.sha256:
            raise _checksum_error(pin, got[0], actual)
        os.replace(got[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unpack_deb(pin: Pin, deb: Path, tree: Path) -> bool:
    """`dpkg-deb -x` into `tree` unless the marker says this exact .deb is there; True if unpacked now."""
    marker = tree / ".crest" / "unpacked" / pin.package
    if marker.is_file() and marker.read_text().strip() == pin.sha256:
        return False
    dpkg_deb = _require_tool("dpkg-deb", pin.package)
    tree.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([dpkg_deb, "-x", str(deb), str(tree)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssetUnavailable(pin.package, f"`dpkg-deb -x {deb}` failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-_TAIL:]}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(pin.sha256 + "\n")
    return True


def rewrite_modes(tree: Path) -> int:
    """Point every Apertium mode file's quoted `/usr/share/apertium/...` paths (or a previous
    tree's) at `tree`; returns the number of files changed. Safe to repeat."""
    share = tree / APERTIUM_SHARE
    target = f"'{tree.resolve()}/{APERTIUM_SHARE}/"
    changed = 0
    for mode in sorted(share.rglob("*.mode")) if share.is_dir() else []:
        text = mode.read_text(encoding="utf-8")
        new = _MODE_PATH_RE.sub(lambda m: target, text)
        if new != text:
            mode.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def install(pins: Sequence[Pin], root: str | Path, apt_args: Sequence[str] = ()) -> dict[str, Any]:
    """Download, verify and unpack `pins` under `root` (see the module docstring). Raises
    AssetUnavailable / AssetChecksumError naming the package."""
    root = Path(root)
    tree = tree_dir(root)
    fetched = unpacked = 0
    with _locked(root):
        for pin in pins:
            before = (root / "debs" / pin.deb_name).is_file()
            deb = fetch_deb(pin, root / "debs", apt_args)
            fetched += not before
            unpacked += unpack_deb(pin, deb, tree)
        modes = rewrite_modes(tree)
    if fetched or unpacked:
        log.info("debian assets: %d downloaded, %d unpacked, %d mode files rewritten under %s", fetched, unpacked,
                 modes, tree)
    return {"root": str(root), "tree": str(tree), "packages": {p.package: p.version for p in pins},
            "downloaded": fetched, "unpacked": unpacked}


def tool_env(tree: str | Path) -> dict[str, str]:
    """The environment that runs the unpacked binaries: PATH and LD_LIBRARY_PATH to the tree first,
    a UTF-8 locale (Apertium's scripts refuse to run without one)."""
    tree = Path(tree).resolve()
    libdirs = [str(p) for p in sorted((tree / "usr" / "lib").glob("*-linux-gnu"))] + [str(tree / "usr" / "lib")]
    old_ld = os.environ.get("LD_LIBRARY_PATH")
    return {**os.environ, "PATH": f"{tree / 'usr' / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LD_LIBRARY_PATH": os.pathsep.join(libdirs + ([old_ld] if old_ld else [])),
            "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def install_assets(pins_path: str | Path, root: str | Path, fallback: bool = False) -> dict[str, Any]:
    """Install every pin of the assets file, check that Apertium runs, write `root/status.json`
    (what the translate jobs read). With `fallback`, an unavailable package or a host the binaries
    cannot run on is recorded there (`ok: false`, `reason`) instead of raised; a checksum mismatch
    always raises."""
    from crest.io import write_json
    from crest.translate.apertium import check_engine

    assets = Assets.load(pins_path)
    status: dict[str, Any] = {"ok": False, "pins": str(pins_path), "root": str(root), "tree": str(tree_dir(root))}
    try:
        status.update(install(list(assets.pins.values()), root), ok=True)
        if assets.engine and assets.modes:
            mode = next(iter(assets.modes.values()))["mode"]
            problem = check_engine(tree_dir(root), mode)
            if problem:
                raise AssetUnavailable(assets.engine[0], f"installed but does not run on this host: {problem}")
    except AssetUnavailable as e:
        if not fallback:
            raise
        status.update(ok=False, reason=str(e), packages={})
        log.warning("debian assets unavailable: %s", e)
    write_json(status, Path(root) / "status.json")
    return status
