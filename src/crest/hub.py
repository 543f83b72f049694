"""The one place that knows the Hugging Face Hub: every model, tokenizer and dataset a stage reads
by hub id is turned here into what `from_pretrained` / `load_dataset` is given (a local mirror
directory, or the id with its locked revision), and recorded for provenance.

Why one place: a paper run must read exactly the revisions in the lock (config/hub.lock.yaml), and a
cluster without internet must read the same files from a mirror filled once on a login node. The
mirror layout is what `hf download REPO [--repo-type dataset] --revision SHA --local-dir DIR`
produces, one folder per repository:

    {mirror}/models/{org}/{name}/      {mirror}/datasets/{org}/{name}/      {mirror}/MIRROR.json

MIRROR.json: {"repos": {"model:org/name": {"kind", "repo", "revision", "files": {relpath: sha256}}}}.

Settings reach every job process (locally and in each SLURM job, which re-executes the Snakefile)
as environment variables that workflow/rules/common.smk sets from the config's `hub` section
(`hub_env`): CREST_HUB_LOCK (lock file), CREST_HUB_MIRROR (mirror folder), CREST_HUB_ALLOW_UNPINNED.
With none set (a user calling `crest guard classify --model org/name`), a hub id loads as given.

The lock (`crest hub lock`, `resolve_lock`) and the prefetch (`crest hub fetch`, `fetch_mirror`)
talk to the hub through `huggingface_hub.HfApi` and `huggingface_hub.snapshot_download` only; the
tests replace those two with stubs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crest.io import write_json, write_text
from crest.paths import display_path, resolve
from crest.schema import ConfigError

KINDS = ("model", "dataset")
MIRROR_FILE = "MIRROR.json"
UNRESOLVED = "unresolved"

ENV_LOCK = "CREST_HUB_LOCK"
ENV_MIRROR = "CREST_HUB_MIRROR"
ENV_ALLOW_UNPINNED = "CREST_HUB_ALLOW_UNPINNED"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A hub id as the hub spells it: exactly `org/name`, no path syntax."""
SHA = re.compile(r"^[0-9a-f]{40}$")
LOCK_HEADER = ("# Hugging Face Hub revisions this project's runs read. Written by `crest hub lock --configfile {config}`;\n"
               "# never edit by hand. `unresolved`: not pinned yet (loading it is refused unless hub.allow_unpinned).\n")


class HubError(ConfigError):
    """The lock or the mirror forbids a load (not in the lock, unpinned, wrong revision in the mirror)."""


class MirrorMissing(FileNotFoundError):
    """A repository absent from the mirror: an access problem (an optional source becomes `missing`)."""


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


def repo_url(kind: str, repo: str) -> str:
    return f"https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{repo}"


def is_hub_id(spec: str | Path) -> bool:
    """True for `org/name` that is not an existing local path (a local directory always wins)."""
    return not isinstance(spec, Path) and bool(HUB_ID.match(str(spec))) and not Path(spec).exists()


# -- settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    lock: Path | None
    mirror: Path | None
    allow_unpinned: bool


def settings() -> Settings:
    """The hub settings of this process (environment variables, see the module docstring)."""
    lock, mirror = os.environ.get(ENV_LOCK, ""), os.environ.get(ENV_MIRROR, "")
    return Settings(Path(lock) if lock else None, Path(mirror) if mirror else None,
                    os.environ.get(ENV_ALLOW_UNPINNED, "0").lower() in ("1", "true", "yes"))


def hub_env(config: dict[str, Any]) -> dict[str, str]:
    """The environment variables that carry a config's `hub` section to every job (absolute paths:
    jobs may start elsewhere). A mirror also switches the hub off (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE)."""
    section = config.get("hub") or {}
    lock, mirror = section.get("lock"), section.get("mirror")
    env = {ENV_LOCK: str(resolve(lock)) if lock else "", ENV_MIRROR: str(resolve(mirror)) if mirror else "",
           ENV_ALLOW_UNPINNED: "1" if section.get("allow_unpinned") else "0"}
    if mirror:
        env.update(dict.fromkeys(OFFLINE_ENV, "1"))
    return env


def setup_run(config: dict[str, Any], configfile: str = "<config>") -> None:
    """At DAG build (workflow/rules/common.smk): put the hub settings into this process's
    environment, which every job inherits, and check the lock (`check_lock`)."""
    os.environ.update(hub_env(config))
    check_lock(config, configfile)


# -- the lock and the mirror index ------------------------------------------------------------------
@functools.cache
def _read_lock_cached(path: Path, mtime: float) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {e}") from e
    repos = doc.get("repos") if isinstance(doc, dict) else None
    if not isinstance(repos, list):
        raise ConfigError(f"{path}: not a hub lock (expected a `repos:` list; write it with `crest hub lock`)")
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(repos):
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS or not isinstance(entry.get("repo"), str):
            raise ConfigError(f"{path}: repos[{i}]: needs kind (model|dataset) and repo")
        revision = entry.get("revision")
        if revision != UNRESOLVED and not (isinstance(revision, str) and SHA.match(revision)):
            raise ConfigError(f"{path}: repos[{i}] ({entry['repo']}): revision {revision!r} is neither a 40-hex "
                              f"commit SHA nor {UNRESOLVED!r}")
        out[repo_key(entry["kind"], entry["repo"])] = entry
    return out


def read_lock(path: str | Path) -> dict[str, dict[str, Any]]:
    """Lock entries by repo_key; ConfigError naming the file when absent or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"hub lock {path} not found (write it with `crest hub lock --configfile <config>`)")
    return _read_lock_cached(path, path.stat().st_mtime)


def read_mirror(mirror: str | Path) -> dict[str, dict[str, Any]]:
    """MIRROR.json's entries by repo_key ({} when the mirror has none)."""
    path = Path(mirror) / MIRROR_FILE
    if not path.is_file():
        return {}
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ConfigError(f"{path}: not JSON: {e}") from e
    repos = doc.get("repos") if isinstance(doc, dict) else None
    if not isinstance(repos, dict):
        raise ConfigError(f"{path}: expected {{\"repos\": {{...}}}}")
    return repos


# -- loading through the seam -----------------------------------------------------------------------
def source(kind: str, repo: str | Path, revision: str | None = None) -> tuple[str, dict[str, Any]]:
    """What to load for `repo`, and the keyword arguments that go with it. A local path (or anything
    not `org/name`) passes through; with a mirror, the mirror's folder; else the id at its locked
    revision (`revision`, a config's own pin, is used only where the lock has none)."""
    if not is_hub_id(repo):
        return str(repo), {}
    repo = str(repo)
    s = settings()
    key = repo_key(kind, repo)
    pinned = None
    if s.lock:
        entry = read_lock(s.lock).get(key)
        if entry is None:
            raise HubError(f"{kind} {repo} is not in the hub lock {s.lock}: add it with "
                           f"`crest hub lock --configfile <your config>` on a machine with the hub")
        pinned = entry["revision"] if entry["revision"] != UNRESOLVED else None
        if pinned is None and not s.allow_unpinned:
            raise HubError(f"{kind} {repo} is unpinned in {s.lock} (revision {UNRESOLVED}): run `crest hub lock "
                           f"--configfile <your config>` on a connected machine to pin it, or set "
                           f"hub.allow_unpinned: true to load it unpinned")
    if s.mirror:
        folder = mirror_path(s.mirror, kind, repo)
        listed = read_mirror(s.mirror).get(key)
        if listed is None or not folder.is_dir():
            raise MirrorMissing(f"{kind} {repo} is not in the mirror {s.mirror} (expected {folder}, listed in "
                                f"{MIRROR_FILE}): fill it with `crest hub fetch --configfile <your config> "
                                f"--mirror {s.mirror}`")
        if pinned and listed.get("revision") != pinned:
            raise HubError(f"{kind} {repo}: the mirror {s.mirror} holds revision {listed.get('revision')}, the lock "
                           f"{s.lock} says {pinned}: refetch with `crest hub fetch`")
        return str(folder), {}
    rev = pinned or revision
    return repo, ({"revision": rev} if rev else {})


def model_source(repo: str | Path, revision: str | None = None) -> tuple[str, dict[str, Any]]:
    return source("model", repo, revision)


def from_pretrained(cls: Any, repo: str | Path, *, revision: str | None = None, **kwargs: Any) -> Any:
    """`cls.from_pretrained` (a transformers Auto class, tokenizer or config) through the seam."""
    where, extra = model_source(repo, revision)
    return cls.from_pretrained(where, **extra, **kwargs)


def load_dataset(repo: str, name: str | None, split: str, *, revision: str | None = None, **kwargs: Any) -> Any:
    """`datasets.load_dataset` through the seam (a mirror folder loads like the hub repository)."""
    import datasets

    where, extra = source("dataset", repo, revision)
    return datasets.load_dataset(where, name, split=split, revision=extra.get("revision"), **kwargs)


def provenance(kind: str, repo: str | Path, revision: str | None = None) -> dict[str, Any]:
    """{"repo", "revision", "from": hub | mirror | local} of what `source` loads (revision None: unpinned)."""
    if not is_hub_id(repo):
        return {"repo": display_path(repo) if Path(repo).exists() else str(repo), "revision": None, "from": "local"}
    repo = str(repo)
    s = settings()
    key = repo_key(kind, repo)
    if s.mirror:
        return {"repo": repo, "revision": read_mirror(s.mirror).get(key, {}).get("revision"), "from": "mirror"}
    entry = read_lock(s.lock).get(key, {}) if s.lock else {}
    pinned = entry.get("revision") if entry.get("revision") != UNRESOLVED else None
    return {"repo": repo, "revision": pinned or revision, "from": "hub"}


# -- what a config reads ----------------------------------------------------------------------------
def needed_repos(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every hub repository a (validated) config reads, one entry each: kind, repo, used_by (config
    keys), needed (false: only disabled baselines use it), optional (only optional benchmarks use it),
    licence (the registry's, for datasets) and revision (a pin the config itself gives, else None).
    An `offline: true` config reads no hub dataset (the data stage refuses them: optional ones become
    `missing`), so none is listed."""
    from crest.evaluate.plan import benchmark_registry
    from crest.models import BUILT_ENCODERS, BUILT_TRANSLATORS

    found: dict[str, dict[str, Any]] = {}

    def add(kind: str, repo: str, used_by: str, *, needed: bool = True, optional: bool = False,
            licence: str | None = None, revision: str | None = None) -> None:
        if not is_hub_id(repo):
            return
        entry = found.setdefault(repo_key(kind, repo), {"kind": kind, "repo": repo, "used_by": [], "needed": False,
                                                        "optional": True, "licence": None, "revision": None})
        if used_by not in entry["used_by"]:
            entry["used_by"].append(used_by)
        entry["needed"] |= needed
        entry["optional"] &= optional or not needed
        entry["licence"] = entry["licence"] or licence
        if revision and entry["revision"] not in (None, revision):
            raise ConfigError(f"{kind} {repo}: pinned to two revisions ({entry['revision']}, {revision}) by "
                              f"{', '.join(entry['used_by'])}")
        entry["revision"] = entry["revision"] or revision

    models = config.get("models", {})
    for size, spec in models.get("encoders", {}).items():
        if spec not in BUILT_ENCODERS:
            add("model", spec, f"models.encoders.{size}")
    if models.get("translator") and models["translator"] not in BUILT_TRANSLATORS:
        add("model", models["translator"], "models.translator")
    evaluate = config.get("evaluate", {})
    for name, spec in evaluate.get("baselines", {}).items():
        enabled = spec.get("enabled", True)
        add("model", spec["model"], f"evaluate.baselines.{name}", needed=enabled, revision=spec.get("revision"))
        if spec.get("tokenizer"):
            add("model", spec["tokenizer"], f"evaluate.baselines.{name}.tokenizer", needed=enabled)
    registry = benchmark_registry(config)

    def add_source(sid: str, used_by: str, optional: bool = False) -> None:
        src = registry.get(sid)
        if src is not None and src.loader_kind == "hub" and not config.get("offline"):  # offline: refused unread
            add("dataset", src.loader["id"], used_by, optional=optional, licence=src.spec.get("license"),
                revision=src.loader.get("revision"))

    for sid in config["data"]["sources"]:
        add_source(sid, f"data.sources.{sid}")
    for name, spec in evaluate.get("benchmarks", {}).items():
        for sid in spec.get("sources", []):
            add_source(sid, f"evaluate.benchmarks.{name}", optional=bool(spec.get("optional")))
    return sorted(found.values(), key=lambda e: (e["kind"], e["repo"].lower()))


def _lock_path(config: dict[str, Any]) -> Path | None:
    lock = (config.get("hub") or {}).get("lock")
    return resolve(lock) if lock else None


def check_lock(config: dict[str, Any], configfile: str = "<config>", warn: Callable[[str], None] | None = None,
               with_mirror: bool = True) -> list[str]:
    """The DAG-build check: every repo the run needs is in the lock (else ConfigError naming them and
    the command that adds them) and, with a mirror, in the mirror at the locked revision. Unpinned
    entries are named in one warning; returns them."""
    warn = warn or (lambda text: print(f"crest: warning: {text}", file=sys.stderr))
    needed = [e for e in needed_repos(config) if e["needed"]]
    path = _lock_path(config)
    if path is None:
        return []
    if not path.is_file():
        raise ConfigError(f"{configfile}: hub.lock: {display_path(path)} not found; write it with "
                          f"`crest hub lock --configfile {configfile}`")
    lock = read_lock(path)
    missing = [f"{e['kind']} {e['repo']}" for e in needed if repo_key(e["kind"], e["repo"]) not in lock]
    if missing:
        raise ConfigError(f"{configfile}: the hub lock {display_path(path)} lacks {len(missing)} repo(s) this run "
                          f"reads: {', '.join(missing)}; run `crest hub lock --configfile {configfile}`")
    unpinned = [e["repo"] for e in needed if lock[repo_key(e["kind"], e["repo"])]["revision"] == UNRESOLVED]
    mirror = (config.get("hub") or {}).get("mirror")
    if mirror and with_mirror:
        _check_mirror(needed, lock, resolve(mirror), configfile)
    if unpinned:
        allowed = (config.get("hub") or {}).get("allow_unpinned")
        warn(f"{len(unpinned)} hub repo(s) are unpinned in {display_path(path)} ({', '.join(unpinned)}); "
             + ("hub.allow_unpinned: true loads them unpinned. " if allowed else
                "jobs refuse to load them unless hub.allow_unpinned: true. ")
             + f"Pin them with `crest hub lock --configfile {configfile}` on a connected machine.")
    return unpinned


def _check_mirror(needed: list[dict[str, Any]], lock: dict[str, dict[str, Any]], mirror: Path, configfile: str) -> None:
    listed = read_mirror(mirror)
    absent, stale = [], []
    for e in needed:
        key = repo_key(e["kind"], e["repo"])
        have = listed.get(key)
        if have is None or not mirror_path(mirror, e["kind"], e["repo"]).is_dir():
            if not e["optional"]:  # an optional benchmark absent from the mirror becomes `missing`
                absent.append(f"{e['kind']} {e['repo']}")
        elif lock[key]["revision"] != UNRESOLVED and have.get("revision") != lock[key]["revision"]:
            stale.append(f"{e['kind']} {e['repo']} (mirror {have.get('revision')}, lock {lock[key]['revision']})")
    if absent or stale:
        parts = ([f"absent: {', '.join(absent)}"] if absent else []) + ([f"other revision: {', '.join(stale)}"]
                                                                       if stale else [])
        raise ConfigError(f"{configfile}: the hub mirror {mirror} does not match the run: {'; '.join(parts)}; run "
                          f"`crest hub fetch --configfile {configfile} --mirror {mirror}`")


# -- crest hub lock ---------------------------------------------------------------------------------
def _hf_api() -> Any:
    from huggingface_hub import HfApi

    return HfApi()


def _info(api: Any, kind: str, repo: str, revision: str | None) -> Any:
    call = api.model_info if kind == "model" else api.dataset_info
    return call(repo, revision=revision)


def _gated(info: Any) -> bool | str:
    gated = getattr(info, "gated", None)
    return "unknown" if gated is None else bool(gated)


def _card_licence(info: Any) -> str | None:
    card = getattr(info, "card_data", None)
    try:
        value = card.get("license") if card is not None else None
    except AttributeError:
        return None
    return value if isinstance(value, str) else None


def resolve_lock(config: dict[str, Any], say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Lock entries for every repo the config reads (disabled baselines included, flagged): the commit
    SHA the hub reports (at the config's own pin, if any), or `unresolved` with the reason said."""
    api = _hf_api()
    entries = []
    for need in needed_repos(config):
        kind, repo = need["kind"], need["repo"]
        entry: dict[str, Any] = {"kind": kind, "repo": repo, "revision": UNRESOLVED, "gated": "unknown",
                                 "licence": need["licence"], "used_by": need["used_by"]}
        try:
            info = _info(api, kind, repo, need["revision"])
            sha = getattr(info, "sha", None)
            if not (isinstance(sha, str) and SHA.match(sha)):
                raise ValueError(f"the hub reported no commit SHA ({sha!r})")
            entry.update(revision=sha, gated=_gated(info), licence=need["licence"] or _card_licence(info))
            say(f"{kind} {repo}: {sha}")
        except Exception as e:  # noqa: BLE001  (any failure leaves it unresolved, said, never guessed)
            say(f"{kind} {repo}: {UNRESOLVED} ({type(e).__name__}: {' '.join(str(e).split())[:200]})")
        if not need["needed"]:
            entry["disabled"] = True
        if need["optional"] and need["needed"]:
            entry["optional"] = True
        entries.append(entry)
    return entries


def write_lock(entries: list[dict[str, Any]], path: str | Path, configfile: str) -> None:
    """The lock file, atomically, with a header saying how it was written."""
    body = yaml.safe_dump({"repos": entries}, sort_keys=False, allow_unicode=True, width=120)
    write_text(LOCK_HEADER.format(config=configfile) + body, path)


# -- crest hub fetch --------------------------------------------------------------------------------
def access_problem(api: Any, kind: str, repo: str, revision: str | None) -> tuple[str | None, Any]:
    """(what stops this process from downloading `repo`, or None; the repo's info when readable)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    url = repo_url(kind, repo)
    try:
        api.auth_check(repo, repo_type=kind)
        return None, _info(api, kind, repo, revision)
    except GatedRepoError:
        return (f"{kind} {repo}: gated: accept its licence at {url} with your account, then log in here "
                f"with `hf auth login`"), None
    except RevisionNotFoundError:
        return f"{kind} {repo}: revision {revision} not found (rerun `crest hub lock`)", None
    except RepositoryNotFoundError:
        return f"{kind} {repo}: not found, or private to an account you are not logged in as ({url}; `hf auth login`)", None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return f"{kind} {repo}: unauthorised (HTTP {status}): `hf auth login` with a token that can read {url}", None
        return f"{kind} {repo}: the hub answered {' '.join(str(e).split())[:160]}", None
    except OSError as e:  # no connection
        return f"{kind} {repo}: unreachable ({type(e).__name__}: {' '.join(str(e).split())[:160]})", None


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (huggingface_hub's own .cache/ bookkeeping left out)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".cache/"):
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[rel] = digest.hexdigest()
    return out


def fetch_mirror(config: dict[str, Any], mirror: str | Path, configfile: str = "<config>",
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    """Check access to every locked repo the config needs and report every problem in one error
    before anything is downloaded; then download each at its locked revision into `mirror` and write
    MIRROR.json. Optional benchmarks' repos with problems are skipped (said); disabled baselines
    are not fetched."""
    from huggingface_hub import snapshot_download

    path = _lock_path(config)
    if path is None:
        raise ConfigError(f"{configfile}: hub.lock is null: `crest hub fetch` downloads the locked revisions; set "
                          f"hub.lock and run `crest hub lock --configfile {configfile}` first")
    check_lock(config, configfile, warn=lambda _text: None, with_mirror=False)  # every needed repo is locked
    lock = read_lock(path)
    allow = bool((config.get("hub") or {}).get("allow_unpinned"))
    wanted = [e for e in needed_repos(config) if e["needed"]]
    unpinned = [e["repo"] for e in wanted if lock[repo_key(e["kind"], e["repo"])]["revision"] == UNRESOLVED]
    if unpinned and not allow:
        raise ConfigError(f"{display_path(path)}: {len(unpinned)} repo(s) are unpinned ({', '.join(unpinned)}): run "
                          f"`crest hub lock --configfile {configfile}` here first (or set hub.allow_unpinned: true)")
    api = _hf_api()
    plan, problems, skipped = [], [], []
    for e in wanted:
        locked = lock[repo_key(e["kind"], e["repo"])]["revision"]
        problem, info = access_problem(api, e["kind"], e["repo"], None if locked == UNRESOLVED else locked)
        if problem is None:
            plan.append((e, locked if locked != UNRESOLVED else getattr(info, "sha", None)))
        elif e["optional"]:
            skipped.append(problem)
        else:
            problems.append(problem)
    for text in skipped:
        say(f"skipped (optional benchmark; its sets become `missing`): {text}")
    if problems:
        raise ConfigError(f"{len(problems)} of {len(wanted)} hub repo(s) cannot be downloaded; nothing was "
                          "downloaded:\n  - " + "\n  - ".join(problems))
    mirror = Path(mirror)
    index = read_mirror(mirror)
    for e, revision in plan:
        kind, repo = e["kind"], e["repo"]
        folder = mirror_path(mirror, kind, repo)
        say(f"{kind} {repo} @ {revision} -> {folder}")
        snapshot_download(repo, repo_type=kind, revision=revision, local_dir=folder)
        index[repo_key(kind, repo)] = {"kind": kind, "repo": repo, "revision": revision, "files": file_hashes(folder)}
        write_json({"repos": dict(sorted(index.items()))}, mirror / MIRROR_FILE)  # after each: a rerun resumes
    return {"mirror": str(mirror), "fetched": len(plan), "skipped": len(skipped)}
