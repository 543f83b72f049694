"""QC and provenance tables for the Snakemake report (and for a reader of the run directory):

    qc/eval_sets.csv        every evaluation set: status (ok / missing and why), rows, labels, translator
    qc/data_sources.csv     every prepared source: rows read and kept, drops per reason, loader and version
    qc/translation.csv      per translated (corpus, language): rows kept/dropped, QC flags (the stage's qc_summary.tsv)
    qc/provenance.csv       every evaluated model: where it is, whether its training data came from a
                            random-weight translator, the provenance files it carries; and the software versions
    qc/index.html           all four on one page
"""

from __future__ import annotations

import html
import json
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from crest.io import atomic_path, write_text

PACKAGES = ("crest", "torch", "transformers", "tokenizers", "ctranslate2", "scikit-learn", "pandas", "snakemake")


def _read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def eval_sets_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for p in paths:
        m = _read_json(p)
        rows.append({"benchmark": m["benchmark"], "lang": m["lang"], "group": m["group"], "kind": m["kind"],
                     "status": m["status"], "reason": m.get("reason") or "", "n": m.get("n"),
                     "n_unsafe": m.get("n_unsafe"), "n_safe": m.get("n_safe"), "split": m.get("split"),
                     "translator_is_random": m.get("translator_is_random"),
                     "sources": ";".join(f"{k}:{v}" for k, v in (m.get("sources") or {}).items()),
                     "codeswitch": json.dumps(m["codeswitch"]) if m.get("codeswitch") else ""})
    return _ints(pd.DataFrame(rows), ["n", "n_unsafe", "n_safe"])


def data_sources_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for p in paths:
        s = _read_json(p)
        prov = s.get("provenance") or {}
        rows.append({"source": s.get("source", Path(p).name.split(".")[0]), "status": s.get("status", "ok"),
                     "reason": s.get("reason") or "", "records_read": s.get("records_read"), "rows_kept": s.get("rows_kept"),
                     "dropped": ";".join(f"{k}:{v}" for k, v in (s.get("dropped") or {}).items()),
                     "labels": ";".join(f"{k}:{v}" for k, v in (s.get("labels") or {}).items()),
                     "loader": prov.get("loader", s.get("loader")),
                     "origin": prov.get("hub_id") or (f"{prov['package']}=={prov['version']}" if prov.get("package") else prov.get("path")),
                     "sha256": prov.get("sha256") or "", "revision": prov.get("revision") or "",
                     "license": prov.get("license", s.get("license"))})
    return _ints(pd.DataFrame(rows), ["records_read", "rows_kept"])


def translation_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        df = pd.read_csv(p, sep="\t")
        df.insert(0, "corpus", Path(p).parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def provenance_table(models: Sequence[dict[str, Any]], metrics: pd.DataFrame | None) -> pd.DataFrame:
    from crest.evaluate.run import model_provenance

    rows = []
    for m in models:
        prov = model_provenance(m["path"]) if m.get("kind") != "baseline" and Path(m["path"]).is_dir() else {}
        row = {**{k: m.get(k) for k in ("label", "kind", "arm", "size", "seed", "family", "path")},
               "translator_is_random": prov.get("translator_is_random", False),
               "provenance_files": ";".join(prov.get("provenance_files", []))}
        if metrics is not None and not metrics.empty:
            mine = metrics[(metrics["model"] == m.get("label")) &
                           (metrics["seed"].astype("string").fillna("-") == (str(m["seed"]) if m.get("seed") is not None else "-"))]
            row.update(sets_ok=int((mine["status"] == "ok").sum()), sets_missing=int((mine["status"] != "ok").sum()))
        rows.append(row)
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    rows.append({"label": "software", "kind": "environment",
                 "path": f"python {platform.python_version()}; " + "; ".join(f"{k} {v}" for k, v in versions.items() if v)})
    return _ints(pd.DataFrame(rows), ["seed", "sets_ok", "sets_missing"])


def _ints(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Integer columns stay integers when some rows lack them (pandas would make them floats)."""
    for col in cols:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>none in this run</em></p>"
    return df.to_html(index=False, na_rep="", escape=True, border=0, classes="qc")


def write_qc(out_dir: str | Path, *, set_jsons: Sequence[str | Path] = (), data_stats: Sequence[str | Path] = (),
             translation_qc: Sequence[str | Path] = (), models: Sequence[dict[str, Any]] = (),
             metrics: str | Path | None = None) -> list[Path]:
    from crest.evaluate.collect import read_metrics_csv
    from crest.evaluate.tables import HTML_STYLE

    out_dir = Path(out_dir)
    met = read_metrics_csv(metrics) if metrics and Path(metrics).is_file() else None
    tables = {
        "eval_sets": ("Evaluation sets", eval_sets_table(set_jsons)),
        "data_sources": ("Prepared data sources", data_sources_table(data_stats)),
        "translation": ("Translation QC per corpus and language", translation_table(translation_qc)),
        "provenance": ("Models and software", provenance_table(models, met)),
    }
    paths = []
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>crest QC and provenance</title>", HTML_STYLE,
            "</head><body><h1>QC and provenance</h1>"]
    for name, (title, df) in tables.items():
        path = out_dir / f"{name}.csv"
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        paths.append(path)
        page += [f"<h2>{html.escape(title)}</h2>", _html_table(df)]
    write_text("\n".join(page + ["</body></html>"]) + "\n", out_dir / "index.html")
    paths.append(out_dir / "index.html")
    return paths
