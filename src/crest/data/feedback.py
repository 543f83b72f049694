"""The registry's `feedback` loader: red-team feedback exported by `crest feedback export` (JSONL,
crest.guard.feedback) as a source of rows, so what broke a guard becomes training or test data of
the next run.

    sources:
      redteam:
        loader: {feedback: {path: results/demo/feedback.jsonl, lang: en}}   # lang: for records sent without one
        license: internal

The label is the one the person gave (`safe` -> 0, `unsafe` -> 1), never a guard's verdict. A
feedback id seen twice (two exports concatenated) is read once; the same text sent several times
(near-duplicate key of crest.data.clean) is kept once, with the person's latest label. Each row's
`origin` names the file, the feedback id and its time; the source's provenance lists the models
(names and weight revisions) whose answers were judged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from crest.data.clean import dedup_key
from crest.data.formats import DataFormatError, parse_records
from crest.data.rows import ORIGIN
from crest.paths import display_path, resolve
from crest.schema import ConfigError

DEFAULTS = {"text": "text", "label": {"field": "label", "map": {"safe": 0, "unsafe": 1}}, "id_field": "id"}
"""How a feedback record becomes a row; a registry entry may override any of them."""


def apply_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A registry entry with the `feedback` loader gets the text, label, id and language fields of
    the export unless it names its own (`lang: xx` for records without a language)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("loader"), dict) or "feedback" not in spec["loader"]:
        return spec
    out = {**DEFAULTS, **spec}
    if "lang" not in spec and "lang_field" not in spec:
        out["lang_field"] = "lang"
    return out


def load_feedback(source_id: str, spec: dict[str, Any], origin: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of an export, deduplicated, and their provenance."""
    path = resolve(spec["path"])
    if not path.is_file():
        raise ConfigError(f"source {source_id!r}: feedback export {path} not found ({origin}); write one with "
                          f"`crest feedback export --out {spec['path']}`")
    data = path.read_bytes()
    records = parse_records(data, "jsonl", str(path))
    seen_ids: set[str] = set()
    by_text: dict[str, dict[str, Any]] = {}
    repeated_ids = 0
    for n, r in enumerate(records, 1):
        for key in ("id", "text", "label"):
            if not isinstance(r.get(key), str) or not r[key]:
                raise DataFormatError(f"{path}: line {n}: {key!r} must be a non-empty string "
                                      f"(a `crest feedback export` file?)")
        if r["label"] not in ("safe", "unsafe"):
            raise DataFormatError(f"{path}: line {n}: label {r['label']!r}; expected 'safe' or 'unsafe'")
        if not r.get("lang"):
            if not spec.get("lang"):
                raise DataFormatError(f"{path}: line {n}: feedback without a language; give the loader one for "
                                      f"such records (loader: {{feedback: {{path: ..., lang: en}}}}) in {origin}")
            r = {**r, "lang": spec["lang"]}
        if r["id"] in seen_ids:
            repeated_ids += 1
            continue
        seen_ids.add(r["id"])
        key = dedup_key(r["text"])
        if key in by_text and str(by_text[key].get("created") or "") > str(r.get("created") or ""):
            continue  # an earlier word on a text already judged later
        by_text[key] = {**r, ORIGIN: f"feedback:{display_path(path)}#{r['id']}@{r.get('created') or ''}"}
    kept = sorted(by_text.values(), key=lambda r: (str(r.get("created") or ""), r["id"]))
    models: dict[str, set[str]] = {}
    for r in kept:
        for name, info in (r.get("models") or {}).items():
            models.setdefault(name, set()).add(str((info or {}).get("revision")))
    return kept, {"path": display_path(path), "sha256": hashlib.sha256(data).hexdigest(), "records": len(records),
                  "repeated_ids": repeated_ids, "same_text_dropped": len(seen_ids) - len(kept),
                  "models": {k: sorted(v) for k, v in sorted(models.items())}}
