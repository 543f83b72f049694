"""One (corpus, language) shard: the rows to translate, resumable chunked translation, QC and
the final shard, each step its own function (and Snakemake rule).

    translated/{corpus}/source/rows.parquet   the source rows every language translates (a
                                              stratified sample when max_rows is set) + rows.json
    translated/{corpus}/raw/{lang}.parquet    every row translated, with per-row decoding counts
    translated/{corpus}/raw/.{lang}.parts/    chunk checkpoints while a job runs (removed at the end)
    translated/{corpus}/qc/{lang}.parquet     the per-row QC table
    translated/{corpus}/{lang}.parquet        the shard: rows kept by the QC policy
    translated/{corpus}/{lang}.qc.json        QC counts, policy, throughput, provenance
    translated/{corpus}/qc_summary.tsv        one line per language

Shards keep the corpus columns (id unchanged, `text` = the translation, `lang` = the target
code) plus `src_text`. Their parquet metadata (key `crest`, JSON; `shard_metadata()`) and the
qc json carry `translator_is_random`: true when the translator is a random-weight model, whose
output is noise; every table built from such shards must say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crest.io import atomic_path, write_json, write_parquet
from crest.languages import Language, nllb_code
from crest.translate.nllb import DecodeOptions, load_provenance
from crest.translate.qc import QCConfig, check_drop_fraction, run_qc

log = logging.getLogger(__name__)

CORPUS_COLUMNS = ["id", "text", "label", "lang", "source", "category", "split", "origin"]
REQUIRED_COLUMNS = ["id", "text", "label", "lang"]
RAW_EXTRA = ["segments", "src_tokens", "out_tokens", "capped"]
RAW_OPTIONAL = ["glossed"]  # words glossed per row (gloss backend)
META_KEY = b"crest"


def shard_columns(rows: pd.DataFrame) -> list[str]:
    """A shard's columns: the corpus columns (id, text, label, lang, source, category, split,
    origin, in the corpus's order) plus src_text."""
    return [c for c in rows.columns if c != "src_text"] + ["src_text"]


# -- parquet with crest metadata --------------------------------------------------------------------
def write_shard(df: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8")
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(schema_meta), tmp)


def shard_metadata(path: str | Path) -> dict[str, Any]:
    """The `crest` metadata of a translated shard (or raw shard): corpus, lang, model,
    translator_is_random, ..."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def translator_is_random(paths: Sequence[str | Path]) -> bool:
    """True if any of these shards was translated by a random-weight model (label tables as noise)."""
    return any(shard_metadata(p).get("translator_is_random", False) for p in paths)


# -- source rows -------------------------------------------------------------------------------------
def select_rows(corpus: pd.DataFrame, source_lang: str, max_rows: int | None, seed: int) -> tuple[pd.DataFrame, dict]:
    """Rows in `source_lang` (others are counted and left out), sampled down to `max_rows`
    stratified by (label, split) with `seed`, in corpus order."""
    missing = [c for c in REQUIRED_COLUMNS if c not in corpus.columns]
    if missing:
        raise ValueError(f"corpus lacks column(s) {missing}")
    in_lang = corpus["lang"] == source_lang
    rows = corpus[in_lang]
    stats: dict[str, Any] = {"rows_in": len(corpus), "rows_other_language": int((~in_lang).sum()),
                             "source_lang": source_lang, "max_rows": max_rows, "seed": seed}
    if rows.empty:
        raise ValueError(f"no rows in the source language {source_lang!r} (languages: "
                         f"{sorted(corpus['lang'].unique())})")
    if max_rows is not None and len(rows) > max_rows:
        rows = stratified_sample(rows, [c for c in ("label", "split") if c in rows.columns], max_rows, seed)
    stats["rows_selected"] = len(rows)
    stats["labels"] = {str(k): int(v) for k, v in rows["label"].value_counts().sort_index().items()}
    if "split" in rows.columns:
        stats["splits"] = {str(k): int(v) for k, v in rows["split"].value_counts().sort_index().items()}
    return rows.reset_index(drop=True), stats


def stratified_sample(df: pd.DataFrame, by: list[str], n: int, seed: int) -> pd.DataFrame:
    """`n` rows with every stratum represented in proportion (largest remainder), original order."""
    groups = df.groupby(by, sort=True, dropna=False).indices
    sizes = {k: len(v) for k, v in groups.items()}
    quota = {k: n * s / len(df) for k, s in sizes.items()}
    take = {k: int(math.floor(q)) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - take[k]), str(k)))[: n - sum(take.values())]:
        take[k] += 1
    picked = []
    for i, (k, idx) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        picked.extend(pd.Series(idx).sample(n=take[k], random_state=seed + i).tolist())
    return df.iloc[sorted(picked)]


def prepare_rows(corpus_path: str | Path, out_path: str | Path, source_lang: str, max_rows: int | None,
                 seed: int) -> dict:
    corpus = pd.read_parquet(corpus_path)
    rows, stats = select_rows(corpus, source_lang, max_rows, seed)
    stats["corpus"] = str(corpus_path)
    write_parquet(rows, out_path)
    write_json(stats, Path(out_path).with_suffix(".json"))
    return stats


# -- translation -----------------------------------------------------------------------------------
def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def model_fingerprint(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    return {"config": json.loads((model_dir / "config.json").read_text()),
            "model_bytes": (model_dir / "model.bin").stat().st_size, "provenance": load_provenance(model_dir)}


def parts_dir(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.parent / f".{out_path.stem}.parts"


def translate_shard(rows_path: str | Path, model_dir: str | Path, out_path: str | Path, lang: str,
                    languages: dict[str, Language], *, source_lang: str = "en",
                    options: DecodeOptions = DecodeOptions(), chunk_rows: int = 2048, device: str = "auto",
                    device_index: Sequence[int] = (0,), compute_type: str = "default", threads: int = 0,
                    inter_threads: int = 1, corpus: str | None = None, progress: bool = True,
                    translator=None, backend: str = "ctranslate2", route: Sequence[str] | None = None,
                    assets: str | Path | None = None, asset_cache: str | Path | None = None) -> dict:
    """Translate the rows at `rows_path` into `lang`, chunk by chunk.

    Each finished chunk is checkpointed (atomically) in `.{lang}.parts/` beside the output, so a
    killed job loses at most the chunk in flight; a rerun translates only the missing chunks,
    then merges them (ids checked: none missing, none repeated) into `out_path`. Chunks are the
    unit of batching too, so a resumed run gives exactly the output of an uninterrupted one.
    A rerun whose output exists with the same inputs and settings does nothing. `translator`: an
    already loaded NllbTranslator for `model_dir` (benchmarks), else one is loaded if needed.

    `backend` apertium or gloss (crest.translate.backends) runs that engine over the same chunks,
    from the Debian assets (`assets` pins file, `asset_cache` root); when they are unavailable
    the model at `model_dir` translates instead and the shard records `fallback_reason`."""
    from crest.translate.backends import NllbEngine, open_engine
    from crest.translate.nllb import resolve_device

    out_path, model_dir = Path(out_path), Path(model_dir)
    rows = pd.read_parquet(rows_path)
    route = list(route or [source_lang, lang])
    engine, engine_meta = None, {}
    if backend != "ctranslate2":
        if assets is None or asset_cache is None:
            raise ValueError(f"backend {backend!r} needs the assets file and the asset cache")
        engine, engine_meta = open_engine(backend, lang, route, assets, asset_cache)
    src_code, tgt_code = nllb_code(source_lang, languages), nllb_code(lang, languages)
    if engine is not None:
        resolved = "cpu"
        fingerprint = _digest(rows["id"].tolist(), rows["text"].tolist(), engine.info, chunk_rows)
    else:
        resolved = resolve_device(device)
        route = [source_lang, lang]
        parts_ = [rows["id"].tolist(), rows["text"].tolist(), model_fingerprint(model_dir), src_code, tgt_code,
                  options.as_dict(), chunk_rows, resolved, compute_type]
        fingerprint = _digest(*parts_, engine_meta) if engine_meta else _digest(*parts_)
    if out_path.is_file() and shard_metadata(out_path).get("fingerprint") == fingerprint:
        log.info("%s is up to date; nothing to do", out_path)
        return shard_metadata(out_path)

    parts = parts_dir(out_path)
    manifest = {"fingerprint": fingerprint, "rows": len(rows), "chunk_rows": chunk_rows, "lang": lang}
    if parts.is_dir():
        old = _read_json(parts / "manifest.json")
        if old.get("fingerprint") != fingerprint:
            log.warning("%s: inputs or settings changed; discarding %d checkpointed chunk(s)", parts,
                        len(list(parts.glob("chunk-*.parquet"))))
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_json(manifest, parts / "manifest.json")

    n_chunks = max(1, math.ceil(len(rows) / chunk_rows))
    chunk_paths = [parts / f"chunk-{i:05d}.parquet" for i in range(n_chunks)]
    todo = [i for i, p in enumerate(chunk_paths) if not p.is_file()]
    if len(todo) < n_chunks:
        log.info("resuming: %d of %d chunks already translated", n_chunks - len(todo), n_chunks)
    provenance = load_provenance(model_dir) if engine is None else {}
    totals = {"rows": 0, "segments": 0, "src_tokens": 0, "out_tokens": 0, "seconds": 0.0}
    if todo:
        if engine is None and translator is None:
            from crest.translate.nllb import NllbTranslator

            inter = max(1, inter_threads)
            translator = NllbTranslator(model_dir, device=resolved, device_index=list(device_index),
                                        compute_type=compute_type, inter_threads=inter,
                                        intra_threads=max(0, threads // inter) if threads else 0)
        run = engine if engine is not None else NllbEngine(translator, src_code, tgt_code, options)
        bar = _progress_bar(sum(min(chunk_rows, len(rows) - i * chunk_rows) for i in todo), f"{corpus or ''}:{lang}",
                            progress)

        def chunk_rows_of(i: int) -> pd.DataFrame:
            return rows.iloc[i * chunk_rows:(i + 1) * chunk_rows]

        try:
            t_start = time.perf_counter()
            prepared = run.prepare(chunk_rows_of(todo[0])["text"].tolist())
            for k, i in enumerate(todo):
                chunk = chunk_rows_of(i)
                submitted = run.submit(prepared)
                extra = len(prepared.pieces) - len(chunk)
                if extra:
                    bar.total += extra
                    bar.refresh()
                if k + 1 < len(todo):  # tokenise the next chunk while the device decodes this one
                    prepared = run.prepare(chunk_rows_of(todo[k + 1])["text"].tolist())
                result = run.collect(submitted, progress=bar.update)
                out = chunk.assign(src_text=chunk["text"], text=result.texts, lang=lang,
                                   segments=result.segments, src_tokens=result.src_tokens,
                                   out_tokens=result.out_tokens, capped=result.capped)
                extra_cols = []
                if getattr(result, "glossed", None) is not None:
                    out = out.assign(glossed=result.glossed)
                    extra_cols = ["glossed"]
                _write_chunk(out[shard_columns(rows) + RAW_EXTRA + extra_cols], chunk_paths[i])
                for key, value in (("rows", len(chunk)), ("segments", sum(result.segments)),
                                   ("src_tokens", sum(result.src_tokens)), ("out_tokens", sum(result.out_tokens))):
                    totals[key] += value
            totals["seconds"] = round(time.perf_counter() - t_start, 3)
        finally:
            bar.close()

    merged = pd.concat([pd.read_parquet(p) for p in chunk_paths], ignore_index=True)
    _check_ids(merged["id"].tolist(), rows["id"].tolist(), out_path)
    throughput = dict(totals)
    if totals["seconds"] > 0:
        throughput.update(sentences_per_s=round(totals["segments"] / totals["seconds"], 1),
                          tokens_per_s=round(totals["out_tokens"] / totals["seconds"], 1))
    meta = {
        "corpus": corpus, "lang": lang, "nllb": tgt_code, "source_lang": source_lang, "translated": True,
        "backend": "ctranslate2", "route": route,
        "translator_is_random": bool(provenance.get("random_weights", False)),
        "model": provenance.get("source", str(model_dir)), "quantization": provenance.get("quantization"),
        "device": resolved, "compute_type": compute_type, "options": options.as_dict(), "chunk_rows": chunk_rows,
        "chunks": n_chunks, "chunks_resumed": n_chunks - len(todo), "throughput_this_run": throughput,
        "fingerprint": fingerprint, **engine_meta,
    }
    if engine is not None:
        meta.update(quantization=None, compute_type=None, options=None)
    write_shard(merged, out_path, meta)
    shutil.rmtree(parts, ignore_errors=True)
    if throughput.get("sentences_per_s"):
        log.info("%s: %d rows, %d sentences in %.1f s: %.1f sentences/s, %.1f tokens/s", lang, totals["rows"],
                 totals["segments"], totals["seconds"], throughput["sentences_per_s"], throughput["tokens_per_s"])
    return meta


def _write_chunk(df: pd.DataFrame, path: Path) -> None:
    write_parquet(df, path)


def _check_ids(got: list[str], expected: list[str], where: Path) -> None:
    if got != expected:
        dup = len(got) - len(set(got))
        missing = len(set(expected) - set(got))
        raise RuntimeError(f"{where}: merged chunks do not match the input rows "
                           f"({len(got)} rows for {len(expected)}, {dup} repeated, {missing} missing)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="sent", disable=not enabled, file=sys.stderr,
                mininterval=0.5 if tty else 15.0, smoothing=0.1, dynamic_ncols=tty)


# -- the source language's own shard ---------------------------------------------------------------
def source_shard(rows_path: str | Path, out_path: str | Path, qc_path: str | Path, lang: str,
                 corpus: str | None = None) -> dict:
    """The source language's shard: the selected rows as they are (text == src_text)."""
    rows = pd.read_parquet(rows_path)
    shard = rows.assign(src_text=rows["text"])[shard_columns(rows)]
    meta = {"corpus": corpus, "lang": lang, "source_lang": lang, "translated": False, "backend": None,
            "route": [lang], "translator_is_random": False, "model": None}
    from crest.translate.qc import CHECKS

    zero = {c: 0 for c in CHECKS}
    summary = {**meta, "rows_in": len(shard), "rows_kept": len(shard), "rows_dropped": 0, "drop_fraction": 0.0,
               "flagged": zero, "dropped": dict(zero), "note": "source language: original rows, not translated, not checked"}
    write_shard(shard, out_path, {**meta, "qc": {"rows_kept": len(shard), "rows_dropped": 0}})
    write_json(summary, qc_path)
    return summary


# -- QC and the final shard --------------------------------------------------------------------------
def qc_shard(raw_path: str | Path, out_path: str | Path, qc_path: str | Path, table_path: str | Path,
             languages: dict[str, Language], config: QCConfig = QCConfig()) -> dict:
    """Check a raw shard, write the per-row QC table, the kept rows and the QC summary.

    A gloss keeps the words its dictionary lacks in English, so its rows mix scripts: for the
    gloss backend `script` only flags (recorded under `qc_not_dropping`), every other check applies."""
    raw = pd.read_parquet(raw_path)
    raw_meta = shard_metadata(raw_path)
    lang = raw_meta.get("lang") or str(raw["lang"].iloc[0])
    script = languages[lang].script
    not_dropping = {}
    if raw_meta.get("backend") == "gloss" and "script" in config.drop:
        config = dataclasses.replace(config, drop=tuple(c for c in config.drop if c != "script"))
        not_dropping["script"] = ("gloss: words missing from the dictionary stay English, so rows mix "
                                  "scripts; flagged, not dropped")
    result = run_qc(raw["id"].tolist(), raw["src_text"].tolist(), raw["text"].tolist(), script, config,
                    capped=raw["capped"].tolist() if "capped" in raw else None,
                    same_language=lang == raw_meta.get("source_lang"))
    summary = {key: raw_meta.get(key) for key in ("corpus", "lang", "nllb", "source_lang", "translated",
                                                  "backend", "route", "translator_is_random", "model",
                                                  "quantization", "device")}
    for key in ("requested_backend", "fallback_reason"):
        if key in raw_meta:
            summary[key] = raw_meta[key]
    summary["script"] = script
    summary.update(result.summary)
    if "glossed" in raw:
        words = int(raw["src_tokens"].sum())
        summary["gloss_rate"] = round(int(raw["glossed"].sum()) / words, 4) if words else 0.0
    if not_dropping:
        summary["qc_not_dropping"] = not_dropping
    summary["translation"] = {"segments": int(raw["segments"].sum()), "rows_segmented": int((raw["segments"] > 1).sum()),
                              "src_tokens": int(raw["src_tokens"].sum()), "out_tokens": int(raw["out_tokens"].sum()),
                              "throughput_last_run": raw_meta.get("throughput_this_run")}
    summary["examples"] = _examples(raw, result.table)
    if summary["translator_is_random"]:
        summary["warning"] = "random-weight translator: these translations are noise"
    if summary.get("fallback_reason"):
        summary["warning"] = (f"{summary['requested_backend']} unavailable ({summary['fallback_reason']}); "
                              f"translated by {summary['model']} instead" + (": noise" if summary["translator_is_random"]
                                                                              else ""))
    write_parquet(result.table, table_path)
    write_json(summary, qc_path)
    check_drop_fraction(summary, config, f"{raw_path}")
    kept = raw.loc[~result.table["dropped"].to_numpy(),
                   [c for c in raw.columns if c not in RAW_EXTRA + RAW_OPTIONAL]]
    kept = kept.reset_index(drop=True)
    meta = {**{k: v for k, v in raw_meta.items() if k != "throughput_this_run"},
            "qc": {k: summary[k] for k in ("rows_in", "rows_kept", "rows_dropped", "dropped")}}
    if "gloss_rate" in summary:
        meta["gloss_rate"] = summary["gloss_rate"]
    write_shard(kept, out_path, meta)
    return summary


def _examples(raw: pd.DataFrame, table: pd.DataFrame, per_check: int = 3, width: int = 160) -> dict:
    out = {}
    for check in ("empty", "length_ratio", "loop", "length_cap", "copy", "script"):
        idx = table.index[table[check]][:per_check]
        out[check] = [{"id": raw["id"].iat[i], "src": raw["src_text"].iat[i][:width], "out": raw["text"].iat[i][:width]}
                      for i in idx]
    return {k: v for k, v in out.items() if v}


def summarise_corpus(qc_paths: Sequence[str | Path], out_path: str | Path) -> pd.DataFrame:
    """One line per language from the qc json files: rows in/kept/dropped, flags per check."""
    from crest.translate.qc import CHECKS

    lines = []
    for path in qc_paths:
        s = json.loads(Path(path).read_text(encoding="utf-8"))
        line = {"lang": s.get("lang"), "translated": s.get("translated"), "backend": s.get("backend"),
                "route": "-".join(s.get("route") or []), "gloss_rate": s.get("gloss_rate"),
                "translator_is_random": s.get("translator_is_random"), "fallback": bool(s.get("fallback_reason")),
                "rows_in": s.get("rows_in"),
                "rows_kept": s.get("rows_kept"), "rows_dropped": s.get("rows_dropped")}
        for check in CHECKS:
            line[f"flag_{check}"] = s.get("flagged", {}).get(check, 0)
        line["median_length_ratio"] = s.get("length_ratio", {}).get("median")
        lines.append(line)
    df = pd.DataFrame(lines)
    with atomic_path(out_path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    return df
