"""The one place that knows the Hugging Face Hub: every model, tokenizer and dataset a stage reads
by hub id is turned here into what `from_pretrained` / `load_dataset` is given (a local mirror
directory, or the id with its locked revision), and recorded for provenance.

Why one place: a paper run must read exactly the revisions in the lock (config/hub.lock.yaml), and a
cluster without internet must read the same files from a mirror filled once on a login node. The
mirror layout is what `hf download REPO [--repo-type dataset] --revision SHA --local-dir DIR`
produces, one folder per repository:

    {mirror}/models/{org}/{name}/      {mirror}/datasets/{org}/{name}/      {mirror}/MIRROR.json

MIRROR.json: {"repos": {"model:org/name": {"kind", "repo", "revision", "files": {relpath: sha256}}}}.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("model", "dataset")
MIRROR_FILE = "MIRROR.json"
UNRESOLVED = "unresolved"


def mirror_path(mirror: str | Path, kind: str, repo: str) -> Path:
    """The folder of one repository inside a mirror."""
    if kind not in KINDS:
        raise ValueError(f"unknown hub kind {kind!r} (known: {', '.join(KINDS)})")
    org, sep, name = repo.partition("/")
    if not sep or not org or not name or "/" in name:
        raise ValueError(f"{repo!r}: not a hub id of the form org/name")
    return Path(mirror) / f"{kind}s" / org / name


def repo_key(kind: str, repo: str) -> str:
    """The key of a repository in MIRROR.json and in the lock."""
    return f"{kind}:{repo}"
