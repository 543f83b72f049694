"""Evaluation sets: one parquet per (benchmark, language) with the rows every model is scored on,
and a json beside it saying whether the set exists (status `ok`) or not (`missing`, with the
reason: a gated source, no rows left after the split filter), how many rows of each label it has,
and whether its text rests on a random-weight translator.

A set that cannot be built is never an error here: it is a set with status `missing`, so the
rest of the DAG completes and the tables mark that cell as missing (never as zero)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crest.evaluate.aggregate import parallel_languages
from crest.io import write_json, write_parquet, write_text
from crest.schema import ConfigError

log = logging.getLogger(__name__)

SET_COLUMNS = ["id", "text", "label", "lang", "source", "category", "split"]
OK, MISSING = "ok", "missing"


def sample_path(parquet: str | Path) -> Path:
    """A code-switched set's inspection sample (20 rows, kept and dropped, with their alignment)."""
    parquet = Path(parquet)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".sample.tsv")


def meta_path(parquet: str | Path) -> Path:
    parquet = Path(parquet)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".json")


def read_set(parquet: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    meta = json.loads(meta_path(parquet).read_text(encoding="utf-8"))
    return pd.read_parquet(parquet), meta


# -- optional sources ------------------------------------------------------------------------------
def stats_path(parquet: str | Path) -> Path:
    parquet = Path(parquet)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".stats.json")


NOT_FOUND = {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "DatasetNotFoundError",
             "FileNotFoundError", "NotADirectoryError", "IsADirectoryError"}


def access_refused(error: BaseException) -> bool:
    """Whether a failure to load a source is a refusal of access (offline, gated, no token, the
    network, a repo the mirror does not hold) rather than a wrong hub id, revision or path, which
    must fail its job: a typo is not a gated dataset. The hub answers a wrong id with
    RepositoryNotFoundError (datasets: DatasetNotFoundError; so does a private repo without a
    token: also a fix in the config), and a gated one with GatedRepoError (a subclass, checked
    first) or, through datasets, a DatasetNotFoundError saying "is a gated dataset"."""
    names = {c.__name__ for c in type(error).__mro__}
    if names & {"SourceUnavailable", "MirrorMissing", "GatedRepoError", "OfflineModeIsEnabled"}:
        return True
    if names & NOT_FOUND:  # the hub's 404 text mentions gated repos too: only datasets' own gated message counts
        return "is a gated dataset" in str(error).lower()
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status is None or status in (401, 403, 429) or status >= 500


def prepare_optional(source, out: str | Path, *, cache_dir: str | Path, validation: float, test: float,
                     seed: int, offline: bool) -> dict[str, Any]:
    """Prepare a source like the data stage does; if access is refused (gated, offline, network:
    `access_refused`), write an empty parquet and stats with
    status `missing` and the reason instead of failing. An error in the source's entry (a field the
    records lack, an unmapped label or language value) is raised: a broken entry must fail its job,
    naming source, field and value, not hide as a gated dataset."""
    from crest.data.prepare import ACCESS_ERRORS, COLUMNS, prepare_source

    try:
        stats = prepare_source(source, out, cache_dir=cache_dir, validation=validation, test=test, seed=seed,
                               offline=offline)
    except ACCESS_ERRORS as e:
        if not access_refused(e):
            raise ConfigError(f"source {source.id!r} ({source.origin}): {type(e).__name__}: {e}: a wrong hub id, "
                              f"revision or path in its registry entry (only a refused access makes it missing)") from e
        reason = f"{type(e).__name__}: {e}".strip()
        log.warning("source %s could not be reached; its benchmark will be marked missing: %s\n%s",
                    source.id, reason, traceback.format_exc())
        write_parquet(pd.DataFrame({c: pd.Series(dtype="int8" if c == "label" else "str") for c in COLUMNS}), out)
        stats = {"source": source.id, "status": MISSING, "reason": reason[:2000], "url": source.spec.get("url"),
                 "provenance": {"loader": source.loader_kind, "hub_id": source.loader.get("id"),
                                "revision": source.loader.get("revision"), "license": source.spec.get("license"),
                                "registry": str(source.origin)}}
        write_json(stats, stats_path(out))
        return stats
    stats = {**stats, "status": OK}
    write_json(stats, stats_path(out))
    return stats


# -- sampling and filters --------------------------------------------------------------------------
def _rank(ids: pd.Series, seed: int) -> pd.Series:
    return ids.map(lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())


def sample_quota(labels: pd.Series, max_rows: int | None, min_per_label: int = 0) -> dict[Any, int] | None:
    """Rows to keep per label out of rows with these labels (None: keep them all): in proportion,
    each label at least one row when present and at least `min_per_label` where it has them (a
    90%-unsafe split sampled in proportion leaves too few safe rows to measure a false-positive
    rate), `max_rows` in all."""
    if not max_rows or len(labels) <= max_rows:
        return None
    counts = labels.value_counts()
    quota = {lab: max(1, round(max_rows * n / len(labels)), min(int(n), min_per_label)) for lab, n in counts.items()}
    while sum(quota.values()) > max_rows:
        big = max(quota, key=quota.get)
        quota[big] -= 1
    return quota


def ranked(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows in sampling order: a hash of (seed, id), so the same ids in every language."""
    return df.assign(_rank=_rank(df["id"], seed)).sort_values("_rank", kind="stable").drop(columns="_rank")


def take_quota(df: pd.DataFrame, quota: dict[Any, int], seed: int) -> pd.DataFrame:
    """The first `quota[label]` rows of each label in sampling order, in the frame's own order."""
    order = ranked(df, seed)
    return pd.concat([order[order["label"] == lab].head(q) for lab, q in quota.items()]).sort_index()


def sample_rows(df: pd.DataFrame, max_rows: int | None, seed: int, min_per_label: int = 0) -> pd.DataFrame:
    """At most `max_rows` rows, labels in their proportions (`sample_quota`), chosen by a hash of
    (seed, id): the same ids in every language of a translated benchmark."""
    quota = sample_quota(df["label"], max_rows, min_per_label)
    return df if quota is None else take_quota(df, quota, seed)


def switch_until_filled(candidates: pd.DataFrame, switch: Callable[[pd.DataFrame], pd.DataFrame],
                        quota: dict[Any, int] | None, seed: int, min_chunk: int = 8) -> pd.DataFrame:
    """`switch` (code-switch rows; a row with a `drop_reason` is dropped) applied to the candidates
    in sampling order, chunk by chunk, to labels short of their quota only, until each label has
    `quota[label]` kept rows or no candidates left; the switched rows in candidate order. Alignment
    is most of a code-switched set's cost and most candidates were never kept, so only what the
    sample can use is aligned. Every row of a label before its quota-th kept row is switched, so
    `take_quota` on the kept rows picks what it would pick after switching every candidate. Each
    chunk asks for the rows still needed over the label's kept rate so far ((kept+1)/(tried+1))."""
    if quota is None:
        return switch(candidates)
    order = ranked(candidates, seed)
    queue = {lab: order[order["label"] == lab] for lab in quota}
    kept, tried = dict.fromkeys(quota, 0), dict.fromkeys(quota, 0)
    done: list[pd.DataFrame] = []
    while short := [lab for lab in quota if kept[lab] < quota[lab] and tried[lab] < len(queue[lab])]:
        chunk = []
        for lab in short:
            k = max(min_chunk, math.ceil((quota[lab] - kept[lab]) * (tried[lab] + 1) / (kept[lab] + 1)))
            chunk.append(queue[lab].iloc[tried[lab]:tried[lab] + k])
            tried[lab] += len(chunk[-1])
        switched = switch(pd.concat(chunk))
        done.append(switched)
        for lab, n in switched.loc[switched["drop_reason"].isna(), "label"].value_counts().items():
            kept[lab] += int(n)
    position = pd.Series(range(len(candidates)), index=candidates["id"].to_numpy())
    out = pd.concat(done, ignore_index=True)
    return out.iloc[position[out["id"]].to_numpy().argsort(kind="stable")].reset_index(drop=True)


def _filter(df: pd.DataFrame, split: str | None, sources: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    if sources:
        df = df[df["source"].isin(list(sources))]
        notes.append(f"source in {list(sources)}")
    if split:
        df = df[df["split"] == split]
        notes.append(f"split == {split!r}")
    return df, notes


def _label_counts(df: pd.DataFrame) -> dict[str, int]:
    return {"n": int(len(df)), "n_unsafe": int((df["label"] == 1).sum()), "n_safe": int((df["label"] == 0).sum())}


def _shard_info(path: str | Path) -> dict[str, Any]:
    """What the translation stage says about a shard: its QC json overlaid by its parquet metadata."""
    from crest.translate.shard import shard_metadata

    qc = Path(path).with_name(Path(path).name.removesuffix(".parquet") + ".qc.json")
    info = json.loads(qc.read_text(encoding="utf-8")) if qc.is_file() else {}
    return {**info, **shard_metadata(path)}


def _shard_random(path: str | Path) -> bool:
    return bool(_shard_info(path).get("translator_is_random", False))


def _shard_model(path: str | Path) -> str | None:
    return _shard_info(path).get("model")


def _translation(meta: dict[str, Any], path: str | Path) -> None:
    """Record how a translated shard was made (docs/translate.md, "Backend and route"): backend, pivot route, gloss rate."""
    info = _shard_info(path)
    meta["translation_backend"] = info.get("backend")
    for key in ("route", "gloss_rate"):
        if info.get(key) is not None:
            meta[f"translation_{key}"] = info[key]


# -- building one set ------------------------------------------------------------------------------
def _decontaminate(df: pd.DataFrame, kind: str, lang: str, contamination: dict[str, Any] | None,
                   meta: dict[str, Any]) -> pd.DataFrame:
    """Drop rows repeating a training row (crest.evaluate.contamination); counts into meta."""
    if not contamination or df.empty:
        return df
    from crest.evaluate.contamination import Settings, check_set

    kept, counts = check_set(df, kind=kind, lang=lang, training=contamination.get("training") or {},
                             cluster=contamination.get("cluster") or {},
                             settings=Settings.from_spec(contamination.get("settings")),
                             source_lang=contamination.get("source_lang", "en"))
    meta["contamination"] = counts
    return kept


def build_set(*, benchmark: str, lang: str, kind: str, group: str, spec: dict[str, Any], inputs: Sequence[str],
              out: str | Path, scripts: dict[str, str] | None = None,
              contamination: dict[str, Any] | None = None, aligner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the set parquet and its json; return the json. `scripts` maps language codes to
    ISO 15924 scripts (code-switched sets join spans by script). `contamination`: {training:
    {lang: parquet}, cluster: {lang: parquet}, settings, in_distribution, source_lang}; rows that
    repeat a training row are dropped before `max_rows` sampling (crest.evaluate.contamination).
    `aligner` ({model, layer, method}: the run's encoder) word-aligns code-switched pairs; their
    inspection sample goes to `{lang}.sample.tsv` beside the set. A code-switched set takes its
    per-label quotas from the candidates' labels (before alignment drops, which cannot be known
    without aligning) and aligns candidates in sampling order only until the quotas are filled
    (json `codeswitch.candidates` / `aligned`); `dropped` counts the aligned rows."""
    contamination = contamination or {}
    meta: dict[str, Any] = {"benchmark": benchmark, "lang": lang, "kind": kind, "group": group,
                            "title": spec.get("title", benchmark), "split": spec.get("split"),
                            "inputs": list(map(str, inputs)), "translator_is_random": False, "filters": [],
                            "in_distribution": bool(contamination.get("in_distribution", False)),
                            "parallel": parallel_languages(kind, spec), "note": spec.get("note"),
                            "class_floor": spec.get("class_floor")}
    df, status, reason = pd.DataFrame(columns=SET_COLUMNS), OK, None
    if kind == "sources":
        frames = []
        for path in inputs:
            stats = stats_path(path)
            s = json.loads(stats.read_text(encoding="utf-8")) if stats.is_file() else {}
            if s.get("status") == MISSING:
                status, reason = MISSING, f"source {s.get('source', Path(path).stem)!r} unavailable: {s.get('reason')}"
                break
            frames.append(pd.read_parquet(path))
        if status == OK:
            df = pd.concat(frames, ignore_index=True)
            if lang != "*":
                df = df[df["lang"] == lang]
                meta["filters"].append(f"lang == {lang!r}")
            df, notes = _filter(df, spec.get("split"), None)
            meta["filters"] += notes
    elif kind == "corpus":
        (path,) = inputs
        df = pd.read_parquet(path)
        meta["translator_is_random"] = _shard_random(path)
        meta["translator"] = _shard_model(path)
        _translation(meta, path)
        df, notes = _filter(df, spec.get("split"), spec.get("filter_sources"))
        meta["filters"] += notes
    elif kind == "codeswitch":
        from crest.evaluate.codeswitch import (
            EncoderAligner,
            code_switch_frame,
            inspection_sample,
            split_dropped,
            summary,
        )

        if not aligner or not aligner.get("model"):
            raise ValueError(f"{benchmark}/{lang}: a code-switched set needs an aligner (the run's encoder)")
        matrix_path, embedded_path = inputs
        matrix_lang, embedded_lang = lang.split("-", 1)
        matrix, notes = _filter(pd.read_parquet(matrix_path), spec.get("split"), spec.get("filter_sources"))
        embedded = pd.read_parquet(embedded_path)
        meta["filters"] += notes
        meta["translator_is_random"] = _shard_random(matrix_path) or _shard_random(embedded_path)
        _translation(meta, embedded_path)  # the matrix side is usually the source language, untranslated
        matrix = matrix[matrix["id"].isin(embedded["id"])]
        pairs = matrix.assign(matrix_text=matrix["text"], embedded_text=matrix["id"].map(embedded.set_index("id")["text"]))
        matrix = _decontaminate(pairs, kind, lang, contamination, meta).drop(columns=["matrix_text", "embedded_text"])
        scripts = scripts or {}
        model = EncoderAligner(aligner["model"], layer=aligner.get("layer", 8), method=aligner.get("method", "itermax"),
                               device=aligner.get("device", "cpu"))
        seed = spec.get("seed", 13)
        # quotas from the candidates' labels, before alignment drops: the kept rows of each label are
        # then known without aligning every candidate (switch_until_filled)
        quota = sample_quota(matrix["label"], spec.get("max_rows"), spec.get("min_rows_per_label") or 0)
        every = switch_until_filled(matrix, lambda rows: code_switch_frame(
            rows, embedded, model, ratio=spec["ratio"], seed=seed, matrix_lang=matrix_lang,
            embedded_lang=embedded_lang, matrix_script=scripts.get(matrix_lang, "Latn"),
            embedded_script=scripts.get(embedded_lang, "Latn")), quota, seed)
        write_text(inspection_sample(every).to_csv(sep="\t", index=False), sample_path(out))
        df, dropped = split_dropped(every)
        before = len(df)
        if quota is not None:
            df = take_quota(df, quota, seed)
        if len(df) < before:
            meta["sampled_from"] = before
        meta["codeswitch"] = {"ratio": spec["ratio"], "aligner": {"model": model.name, "layer": model.layer,
                                                                  "method": model.method},
                              "candidates": int(len(matrix)), "aligned": int(len(every)), **summary(df, dropped)}
    else:
        raise ValueError(f"unknown evaluation set kind {kind!r}")
    if status == OK and kind != "codeswitch":
        df = _decontaminate(df, kind, lang, contamination, meta)
        before = len(df)
        df = sample_rows(df, spec.get("max_rows"), spec.get("seed", 13), spec.get("min_rows_per_label") or 0)
        if len(df) < before:
            meta["sampled_from"] = before
    if status == OK and df.empty:
        status, reason = MISSING, f"no rows left after filtering ({'; '.join(meta['filters']) or 'no filter'})"
        if meta.get("contamination", {}).get("rows_before"):
            reason += f"; decontamination dropped all {meta['contamination']['rows_before']} rows"
    columns = SET_COLUMNS + [c for c in df.columns if c not in SET_COLUMNS and c != "origin"]
    df = df.reindex(columns=columns).reset_index(drop=True)
    if not df.empty:
        df["label"] = df["label"].astype("int8")
        meta["sources"] = {k: int(v) for k, v in df["source"].value_counts().items()}
    meta.update(status=status, reason=reason, **_label_counts(df))
    write_parquet(df, out)
    write_json(meta, meta_path(out))
    log.info("%s/%s: %s, %d rows (%d unsafe)%s", benchmark, lang, status, meta["n"], meta["n_unsafe"],
             f": {reason}" if reason else "")
    return meta
