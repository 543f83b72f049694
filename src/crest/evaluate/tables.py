"""Paper tables from the long metrics table, declared in paper/tables.yaml (no code per table):

    - id: english                          # file stem: tables/english.{csv,md,tex}
      title: F1 on English benchmarks
      filter: {group: english}             # rows of eval/metrics.csv (lists mean "any of";
                                           # lang_group matches a language's membership)
      rows: {by: benchmark}                # one row per value of a column, or
      columns: {by: model}                 # {named: {Label: filter, ...}} for hand-made rows/columns
      diff: {label: "ID - OOD", a: ID, b: OOD}   # optional: a column a - b of two named columns
      value: f1                            # f1 | precision | recall | accuracy | auprc | auroc | fpr
      scale: 100                           # shown as 100 x value, `digits` decimals
      best: row                            # bold the best cell of each row (column | none)

      overflag: true                       # add a column: FPR on the run's all-safe (benign) sets
      significance: true                   # mark cells that differ from crest (significance table)

A cell averages the matching (benchmark, language) sets of one model on parallel rows
(crest.evaluate.aggregate: the same benchmarks in every language of the cell, the row ids present
in every language, equal weight per language), per seed, then over seeds and draws (mean, and ± the
SD when there are several). Single-class sets: an F1 / precision / AUPRC average holds only mixed
sets; recall adds the all-unsafe sets, FPR the all-safe ones; a cell of all-unsafe sets only shows
its F1 marked `§`. Every table is written at the run's threshold (`{id}`) and at each model's
calibrated threshold (`{id}.calibrated`), with a per-benchmark breakdown (`{id}.by_benchmark`)
beside every table that averages benchmarks. Cell marks: `missing`, `—` (not evaluated), `n/a`
(undefined), `*` (random-weight translator: noise), `†` (a gloss translation, word by word),
`‡` (some matching sets missing), `§` (F1 of all-unsafe sets), `◇` (not parallel: averages the
languages of a native benchmark, each scored on its own prompts), `▲`/`▼` (significantly above /
below crest on the very languages and benchmarks of the cell, Holm-adjusted p < 0.05). Each table lists the marks it uses, what was left out
to make it parallel, and the reasons of missing sets under it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.evaluate.aggregate import (
    RANKING,
    Parallel,
    average,
    parallel_benchmarks,
    parallel_counts,
    seed_key,
    set_values,
    usable_classes,
)
from crest.io import write_text
from crest.schema import read_yaml

VALUES = ("f1", "precision", "recall", "accuracy", "auprc", "auroc", "fpr")
LOWER_IS_BETTER = {"fpr"}
FIELDS = ("model", "model_kind", "arm", "size", "baseline", "benchmark", "title", "set", "group", "lang", "lang_group",
          "cluster", "role", "family", "family_model", "set_class", "in_distribution", "translation_backend")
MISSING, NOT_RUN, UNDEFINED, SEEN = "missing", "—", "n/a", "seen"
RANDOM_MARK, GLOSS_MARK, PARTIAL_MARK, UNSAFE_ONLY_MARK, NATIVE_MARK = "*", "†", "‡", "§", "◇"
BETTER_MARK, WORSE_MARK = "▲", "▼"
MARKS = (RANDOM_MARK, GLOSS_MARK, PARTIAL_MARK, UNSAFE_ONLY_MARK, NATIVE_MARK, BETTER_MARK, WORSE_MARK)
OPERATING_POINTS = {"default": "at the run's threshold (evaluate.threshold, 0.5); baselines at their official rule",
                    "calibrated": "at each model's calibrated threshold (its crest_guard.json); baselines at their "
                                  "official decision rule",
                    "threshold_free": "threshold-free (ranking only)"}
NOTES = {
    RANDOM_MARK: "rests on the random-weight demo translator (its translations are noise): not a result",
    GLOSS_MARK: "rests on a gloss translation (a word-by-word dictionary substitution, not a fluent translation)",
    PARTIAL_MARK: "some of the averaged sets are missing; the value averages the others",
    UNSAFE_ONLY_MARK: "F1 of all-unsafe sets (= 2·recall/(1+recall)): an always-unsafe model scores 100; "
                      "read it with the benign FPR",
    NATIVE_MARK: "not parallel: averages languages of a native benchmark (each language its own prompts, the "
                 "same rows for every model and seed); unmarked cells average one language or the same prompts "
                 "in every language",
    BETTER_MARK: "significantly above crest on exactly this cell's languages and benchmarks (bootstrap over "
                 "prompts, seeds and draws; Holm-adjusted p < 0.05; significance table); a cell averaging other "
                 "languages than the test carries no mark",
    WORSE_MARK: "significantly below crest on exactly this cell's languages and benchmarks (bootstrap over "
                "prompts, seeds and draws; Holm-adjusted p < 0.05; significance table)",
    MISSING: "the benchmark could not be loaded (gated or unavailable); see the reasons below",
    NOT_RUN: "not evaluated in this run",
    SEEN: "the model trained on this language: never reported as unseen for it",
    UNDEFINED: "undefined (e.g. F1 of a set without unsafe rows)",
}


@dataclass
class TableSpec:
    id: str
    title: str
    rows: dict[str, Any]
    columns: dict[str, Any]
    filter: dict[str, Any] = field(default_factory=dict)
    caption: str = ""
    value: str = "f1"
    scale: float = 100.0
    digits: int = 1
    best: str = "row"
    diff: dict[str, str] | None = None
    row_header: str | None = None
    overflag: bool = False
    significance: bool = False
    unseen_only: bool = False  # a language the model trained on leaves every cell of that model


def _check_axis(axis: Any, where: str) -> None:
    if not isinstance(axis, dict) or len(axis) != 1 or next(iter(axis)) not in ("by", "named"):
        raise ValueError(f"{where}: expected {{by: <column>}} or {{named: {{label: filter}}}}, got {axis!r}")
    if "by" in axis and axis["by"] not in FIELDS:
        raise ValueError(f"{where}.by: unknown column {axis['by']!r} (known: {', '.join(FIELDS)})")
    if "named" in axis:
        if not isinstance(axis["named"], dict) or not axis["named"]:
            raise ValueError(f"{where}.named: expected a non-empty mapping label -> filter")
        for label, flt in axis["named"].items():
            _check_filter(flt, f"{where}.named.{label}")


def _check_filter(flt: Any, where: str) -> None:
    if not isinstance(flt, dict):
        raise ValueError(f"{where}: a filter is a mapping column -> value(s), got {flt!r}")
    for key in flt:
        if key not in FIELDS:
            raise ValueError(f"{where}: unknown filter column {key!r} (known: {', '.join(FIELDS)})")


def load_table_specs(path: str | Path) -> list[TableSpec]:
    """Read and check paper/tables.yaml; errors name the table and the key."""
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), list):
        raise ValueError(f"{path}: expected a mapping with a list `tables`")
    specs, seen = [], set()
    for i, raw in enumerate(doc["tables"]):
        where = f"{path}: tables[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping")
        unknown = set(raw) - set(TableSpec.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
        for key in ("id", "title", "rows", "columns"):
            if key not in raw:
                raise ValueError(f"{where}: missing key {key!r}")
        spec = TableSpec(**raw)
        where = f"{path}: table {spec.id!r}"
        if spec.id in seen:
            raise ValueError(f"{where}: duplicate id")
        seen.add(spec.id)
        _check_axis(spec.rows, f"{where}.rows")
        _check_axis(spec.columns, f"{where}.columns")
        _check_filter(spec.filter, f"{where}.filter")
        if spec.value not in VALUES:
            raise ValueError(f"{where}.value: {spec.value!r} is not one of {', '.join(VALUES)}")
        if spec.best not in ("row", "column", "none"):
            raise ValueError(f"{where}.best: expected row, column or none")
        if spec.diff is not None:
            names = spec.columns.get("named", {})
            if set(spec.diff) != {"label", "a", "b"} or spec.diff["a"] not in names or spec.diff["b"] not in names:
                raise ValueError(f"{where}.diff: expected {{label, a, b}} with a and b named columns")
        specs.append(spec)
    return specs


# -- selecting ------------------------------------------------------------------------------------
def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def apply_filter(df: pd.DataFrame, flt: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for key, value in flt.items():
        wanted = _as_list(value)
        if key == "lang_group":
            groups = df["_groups"] if "_groups" in df else df["lang_groups"].fillna("").str.split(";").map(frozenset)
            mask &= np.fromiter((not g.isdisjoint(wanted) for g in groups), dtype=bool, count=len(df))
        else:
            col = df[key]
            mask &= (col if col.dtype == object else col.astype(str)).isin(wanted).to_numpy()
    return df[mask]


MODEL_KEYS = ("model", "model_kind", "arm", "size", "baseline")


def _axis_items(df: pd.DataFrame, axis: dict[str, Any], spec_filter: dict[str, Any],
                order: dict[str, list[str]], everything: pd.DataFrame | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(label, filter) per row/column. `by` values come in the order of `order[column]` when given
    (models in config order, languages in their group's order), else first appearance. Models are
    those the filter's model keys select in the whole run (`everything`), so a model without any
    matching set shows as a row/column of `—` rather than vanishing."""
    if "named" in axis:
        return list(axis["named"].items())
    col = axis["by"]
    if col in MODEL_KEYS and everything is not None:
        df = apply_filter(everything, {k: v for k, v in spec_filter.items() if k in MODEL_KEYS})
    if col == "lang_group":
        present = {g for gs in df["lang_groups"].fillna("").str.split(";") for g in gs if g}
        wanted = _as_list(spec_filter.get("lang_group", [])) or order.get("lang_group", sorted(present))
        return [(g, {"lang_group": g}) for g in wanted if g in present]
    values = list(dict.fromkeys(df[col].dropna().astype(str)))
    preferred = order.get(col, [])
    if col == "lang" and "lang_group" in spec_filter:
        preferred = [c for g in _as_list(spec_filter["lang_group"]) for c in order.get(f"group:{g}", [])]
    ranked = [v for v in preferred if v in values] + [v for v in values if v not in preferred]
    labels = order.get(f"label:{col}", {})
    if col == "cluster":
        ranked.sort(key=lambda v: (len(v), v))  # numeric ids in order
        labels = {v: f"cluster {v}" for v in ranked}
    return [(labels.get(v, v) if isinstance(labels, dict) else v, {col: v}) for v in ranked]


@dataclass
class Cell:
    value: float | None = None
    sd: float | None = None
    seeds: int = 0
    status: str = "ok"  # ok | missing | not_run | undefined
    random: bool = False
    partial: bool = False
    reasons: tuple[str, ...] = ()
    gloss: bool = False
    unsafe_only: bool = False
    native: bool = False  # averages languages that were scored on different prompts
    left_out: tuple[str, ...] = ()
    sig: str = ""
    text: str | None = None  # a cell that is not a number (significance intervals)
    counts: str = ""  # an n/a cell whose sets are all below their class floor: their rows per class

    @classmethod
    def number(cls, value: Any) -> Cell:
        """A value cell, or `undefined` for a missing value (NaN: a metric a row cannot have)."""
        return cls(value=float(value)) if pd.notna(value) else cls(status="undefined")


def compute_cell(df: pd.DataFrame, value: str, values: dict[tuple, float] | None = None,
                 floor: dict[tuple, str] | None = None) -> Cell:
    """One cell from its matching metrics.csv rows; `values`: every set's value (set_values),
    computed once per table; None: the rows' own `value` column. `floor`: sets below their class
    floor (below_floor), left out and named; a cell of such sets only is n/a with their counts."""
    if df.empty:
        return Cell(status="not_run")
    status = df["status"].to_numpy()
    ok = df[status == "ok"]
    missing = df[status != "ok"]
    reasons = tuple(sorted({f"{b}/{lang}: {r}" for b, lang, r in zip(missing["benchmark"], missing["lang"], missing["reason"])}))
    if ok.empty:
        return Cell(status="missing", reasons=reasons)
    if values is None:
        values = set_values(ok, value, None, False)
    left_out = []
    classes = [c or "mixed" for c in (ok["set_class"].fillna("") if "set_class" in ok else [""] * len(ok))]
    use = usable_classes(value, classes)
    keys = list(zip(ok["model"].astype(str), ok["_seed"] if "_seed" in ok else seed_key(ok["seed"]),
                    ok["benchmark"].astype(str), ok["lang"].astype(str)))
    single = sorted({k[2] for k, c in zip(keys, classes) if c not in use})
    if single:
        left_out.append(f"single-class sets of {', '.join(single)} ({value} needs both classes; see single_class)")
    inside = [c in use for c in classes]
    keys = [k for k, keep in zip(keys, inside) if keep]
    keys, dropped = parallel_benchmarks(keys)
    left_out += [f"{d}: a benchmark must be in every language of the cell" for d in dropped]
    low = [k for k in keys if floor and k in floor]
    if low:
        left_out += sorted({floor[k] for k in low})
        keys = [k for k in keys if k not in set(low)]
        if not keys:
            counts = sorted({floor[k].split(": ", 1)[1].split(";", 1)[0] for k in low})
            return Cell(status="undefined", reasons=reasons, left_out=tuple(left_out), counts=", ".join(counts))
    if not keys:
        return Cell(status="undefined", reasons=reasons, left_out=tuple(left_out))
    kept = set(keys)
    used = ok[[k in kept for k in zip(ok["model"].astype(str), ok["_seed"] if "_seed" in ok else seed_key(ok["seed"]),
                                        ok["benchmark"].astype(str), ok["lang"].astype(str))]]
    random = bool(used["random_translator"].astype(bool).any())
    gloss = bool((used["translation_backend"].astype(str) == "gloss").any()) if "translation_backend" in used else False
    native = "parallel" in used and used["lang"].nunique() > 1 and not used["parallel"].astype(bool).all()
    per_seed = average([(k, values.get(k, np.nan)) for k in keys])
    unsafe_only = value == "f1" and {c for c, keep in zip(classes, inside) if keep} == {"all_unsafe"}
    if not per_seed:
        return Cell(status="undefined", random=random, gloss=gloss, reasons=reasons, left_out=tuple(left_out))
    mean = float(np.mean(per_seed))
    sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
    return Cell(value=mean, sd=sd, seeds=len(per_seed), random=random, partial=not missing.empty, reasons=reasons,
                gloss=gloss, unsafe_only=unsafe_only, native=bool(native), left_out=tuple(left_out))


@dataclass
class Table:
    spec: TableSpec
    row_labels: list[str]
    col_labels: list[str]
    cells: list[list[Cell]]
    notes: list[str]
    empty_reason: str | None = None
    operating_point: str = "default"
    file_id: str = ""
    value_note: str | None = None  # replaces the "F1 x 100" line (tables of mixed metrics)

    def __post_init__(self) -> None:
        self.file_id = self.file_id or self.spec.id


def _parallel(preds: pd.DataFrame | None, rows: pd.DataFrame, value: str) -> Parallel | None:
    ok = rows[rows["status"] == "ok"]
    if preds is None or ok.empty:
        return None
    return parallel_counts(preds, ok, ranking=value in ("auprc", "auroc"))


def _sig_mark(significance: pd.DataFrame | None, col_filter: dict[str, Any], rows: pd.DataFrame,
              calibrated: bool, value: str = "f1") -> str:
    """▲/▼ when the cell's model (or family) differs from crest (same size) at Holm-adjusted
    p < 0.05 in the cell's role group (`role` of the column, `english` for English benchmarks),
    and only when the cell averages exactly what was tested: for every model of the cell, the
    languages and benchmarks of the test's row (`langs`, `benchmarks`; the test runs on crest's
    languages of the role, so a model whose own role languages differ gets no mark: its number
    was not the one tested). AUROC tables take the threshold-free tests."""
    if significance is None or significance.empty or rows.empty or "langs" not in significance:
        return ""
    group = col_filter.get("role") or ("english" if col_filter.get("group") == "english" else None)
    if not isinstance(group, str):
        return ""
    names = set(rows["model"].astype(str)) | set(rows.get("family_model", pd.Series(dtype=str)).astype(str))
    point = "threshold_free" if value == "auroc" else "calibrated" if calibrated else "default"
    hit = significance[(significance["group"] == group) & (significance["benchmark"] == "all")
                       & (significance["operating_point"] == point) & (significance["metric"] == value)
                       & significance["b"].isin(names) & significance["a"].str.startswith("crest")]
    if hit.empty:
        return ""
    r = hit.iloc[0]
    p = r["p_holm"] if "p_holm" in hit and pd.notna(r["p_holm"]) else r["p"]
    if not pd.notna(p) or p >= 0.05:
        return ""
    tested_langs = set(str(r["langs"]).split())
    tested_benchmarks = set(str(r.get("benchmarks", "")).split())
    ok = rows[(rows["status"] == "ok") & (rows["set_class"].replace("", "mixed") == "mixed")]
    for _, part in ok.groupby("model"):
        if set(part["lang"].astype(str)) != tested_langs or (
                tested_benchmarks and set(part["benchmark"].astype(str)) != tested_benchmarks):
            return ""
    return WORSE_MARK if float(r["diff"]) > 0 else BETTER_MARK  # diff = crest minus this model


UNSEEN_LISTS = {"unseen_hrl", "ood_lrl", "id_lrl"}


def _table_columns(value: str) -> set[str]:
    return {*FIELDS, "lang_groups", "status", "reason", "seed", "random_translator", "threshold", "threshold_cal", "parallel", "note", "role_map",
            value, f"{value}_cal", "fpr", "fpr_cal", "n_unsafe", "n_safe", "class_floor"}


FLOOR_CLASSES = {"recall": ("unsafe",), "fpr": ("safe",)}  # every other metric needs both classes


def below_floor(rows: pd.DataFrame, value: str, parallel: Parallel | None) -> dict[tuple, str]:
    """Sets (model, seed, benchmark, lang) with fewer rows of a class `value` needs than their
    benchmark's `class_floor` (code-switched pairs: 30), counted on the table's rows (the parallel
    counts when predictions are there, else the set's own n_safe / n_unsafe), each with the note
    the table prints: a pair of 9 safe rows and 1 unsafe gives the flag-everything F1, not a
    measurement."""
    if "class_floor" not in rows or rows.empty:
        return {}
    floors = pd.to_numeric(rows["class_floor"], errors="coerce")
    has = floors.notna().to_numpy()
    if not has.any():
        return {}
    sub = rows[has]
    keys = list(zip(sub["model"].astype(str), seed_key(sub["seed"]), sub["benchmark"].astype(str), sub["lang"].astype(str)))
    sizes: dict[tuple, tuple[int, int]] = {}
    if parallel is not None:
        c = parallel.counts
        for k, tp, fp, fn, tn in zip(zip(c["model"], c["seed"], c["benchmark"], c["lang"]), c["tp"], c["fp"], c["fn"], c["tn"]):
            sizes[k] = (int(fp + tn), int(tp + fn))
    else:
        for k, s, u in zip(keys, sub["n_safe"], sub["n_unsafe"]):
            sizes[k] = (int(s or 0), int(u or 0))
    out = {}
    for k, floor in zip(keys, floors[has].astype(int)):
        safe, unsafe = sizes.get(k, (0, 0))
        need = FLOOR_CLASSES.get(value, ("safe", "unsafe"))
        if any({"safe": safe, "unsafe": unsafe}[c] < floor for c in need):
            out[k] = (f"below the class floor, {k[2]} [{k[3]}]: n = {safe + unsafe}: {safe} safe / {unsafe} unsafe; "
                      f"{value} needs {floor} {' and '.join(need)} rows")
    return out


def _drop_seen(rows: pd.DataFrame, flt: dict[str, Any], always: bool = False) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A cell on a named list of unseen languages (languages.groups), or any cell of a table with
    `unseen_only` (transfer, ID vs OOD), never counts a language the model trained on: those sets
    leave the cell, named under the table."""
    if not (always or UNSEEN_LISTS & set(_as_list(flt.get("lang_group", [])))) or rows.empty:
        return rows, ()
    seen = rows["role"] == "seen"
    pairs = sorted({f"{m} trained on {lang}" for m, lang in zip(rows[seen]["model"], rows[seen]["lang"])})
    return rows[~seen], tuple(f"{p} (not unseen for it)" for p in pairs)


def parallel_notes(parallel: Parallel) -> list[str]:
    """Which benchmarks are compared on the same prompts across languages and which are native,
    with the ids kept per benchmark (per language for a native one: the same for every model/seed)."""
    notes = []
    for scope, n in parallel.dropped_ids.items():
        if scope in parallel.native or " [" in scope and scope.split(" [", 1)[0] in parallel.native:
            continue
        notes.append(f"parallel rows, {scope}: {parallel.kept_ids[scope]} ids in every language"
                     + (f", {n} ids left out (not in every language)" if n else ""))
    for bench, langs in parallel.native.items():
        kept = [parallel.kept_ids.get(f"{bench} [{lang}]", 0) for lang in langs]
        dropped = sum(parallel.dropped_ids.get(f"{bench} [{lang}]", 0) for lang in langs)
        span = f"{min(kept)}" if min(kept) == max(kept) else f"{min(kept)}-{max(kept)}"
        notes.append(f"native benchmark, {bench}: each language its own prompts ({span} ids per language in "
                     f"{len(langs)} language{'s' if len(langs) > 1 else ''}, the same for every model and seed)"
                     + (f", {dropped} ids left out (not scored for every model and seed)" if dropped else ""))
    return notes


def _uses_roles(spec: TableSpec) -> bool:
    filters = [spec.filter, *spec.rows.get("named", {}).values(), *spec.columns.get("named", {}).values()]
    return "role" in (spec.rows.get("by"), spec.columns.get("by")) or any("role" in f for f in filters)


def role_map_notes(spec: TableSpec, sub: pd.DataFrame) -> list[str]:
    """Which language map each model's roles come from (the typology arm's from the typology map,
    the others from the first cluster method): a caption fact, since ID/OOD differ by map."""
    if not _uses_roles(spec) or "role_map" not in sub or sub.empty:
        return []
    trained = sub[sub["role_map"].fillna("").astype(str) != ""]
    by_map: dict[str, list[str]] = {}
    for model, method in dict(zip(trained["family_model"].astype(str), trained["role_map"].astype(str))).items():
        by_map.setdefault(method, []).append(model)
    if not by_map:
        return []
    return ["roles (ID/OOD) from the language map of " + "; ".join(f"{m}: {', '.join(ms)}" for m, ms in by_map.items())]


def build_table(df: pd.DataFrame, spec: TableSpec, order: dict[str, Any] | None = None, *,
                preds: pd.DataFrame | None = None, calibrated: bool = False, by_benchmark: bool = False,
                significance: pd.DataFrame | None = None, cache: dict[Any, Any] | None = None) -> Table:
    """One table. With `preds` (predictions.parquet) every cell is computed on the table's parallel
    rows; `calibrated`: at each model's calibrated threshold instead of the run's; `by_benchmark`:
    each row split into one per benchmark (the breakdown of the averages, same parallel rows)."""
    order = order or {}
    if "family_model" not in df:
        from crest.evaluate.roles import attach_roles

        df = attach_roles(df, None)
    for col, default in (("set_class", "mixed"), ("translation_backend", ""), ("in_distribution", False)):
        if col not in df:
            df = df.assign(**{col: default})
    df = df[[c for c in df.columns if c in _table_columns(spec.value)]]  # slim: every filter copies the frame
    df = df.astype({c: object for c in df.columns if pd.api.types.is_string_dtype(df[c])})  # numpy takes: faster
    df = df.assign(_seed=seed_key(df["seed"]).to_numpy(),
                   _groups=df["lang_groups"].fillna("").astype(str).str.split(";").map(frozenset).to_numpy())
    df = df.astype({c: str for c in FIELDS if c in df and df[c].dtype != object and c != "lang_group"})
    sub = apply_filter(df, spec.filter)
    rows = _axis_items(sub, spec.rows, spec.filter, order, df)
    if by_benchmark:
        titles = order.get("title", [])
        split = []
        for label, rf in rows:
            present = list(dict.fromkeys(apply_filter(sub, rf)["title"].astype(str)))
            present.sort(key=lambda t: titles.index(t) if t in titles else len(titles))
            split += [(f"{label} · {t}", {**rf, "title": t}) for t in present]
        rows = split
    cols = _axis_items(sub, spec.columns, spec.filter, order, df)
    benign = pd.DataFrame(columns=df.columns)
    if spec.overflag:
        base = apply_filter(df, {k: v for k, v in spec.filter.items() if k != "set_class"})
        benign = base[base["set_class"] == "all_safe"]
    scope = pd.concat([sub, benign]) if not benign.empty else sub
    key = (spec.id, repr(spec.filter), spec.value, spec.overflag)  # the same for every variant of a spec
    if cache is not None and key in cache:
        parallel = cache[key]
    else:
        parallel = _parallel(preds, scope, spec.value)
        if cache is not None:
            cache[key] = parallel
    values = set_values(scope[scope["status"] == "ok"], spec.value, parallel, calibrated)
    floor = below_floor(scope[scope["status"] == "ok"], spec.value, parallel)
    fpr = set_values(benign[benign["status"] == "ok"], "fpr", parallel, calibrated) if spec.overflag else {}
    cells = []
    for _, rf in rows:
        line = []
        row_part = apply_filter(sub, rf)  # once per row, not per cell
        for _, cf in cols:
            part = apply_filter(row_part, cf)
            part, seen = _drop_seen(part, {**spec.filter, **rf, **cf}, spec.unseen_only)
            cell = compute_cell(part, spec.value, values, floor) if not (seen and part.empty) else Cell(status="seen")
            cell.left_out += seen
            if spec.significance and cell.status == "ok":
                cell.sig = _sig_mark(significance, cf, part, calibrated, spec.value)
            line.append(cell)
        if spec.overflag:
            line.append(compute_cell(apply_filter(benign, rf), "fpr", fpr))
        cells.append(line)
    col_labels = [label for label, _ in cols] + (["Benign FPR (over-flagging)"] if spec.overflag else [])
    if spec.diff is not None:
        ia, ib = col_labels.index(spec.diff["a"]), col_labels.index(spec.diff["b"])
        for row in cells:
            a, b = row[ia], row[ib]
            if a.value is not None and b.value is not None:
                row.append(Cell(value=a.value - b.value, random=a.random or b.random, partial=a.partial or b.partial,
                                gloss=a.gloss or b.gloss, native=a.native or b.native))
            else:
                row.append(Cell(status="not_run" if "not_run" in (a.status, b.status) else a.status if a.status != "ok" else b.status))
        col_labels.append(spec.diff["label"])
    notes = parallel_notes(parallel) if parallel is not None else []
    notes += role_map_notes(spec, sub)
    if "note" in sub:
        notes += list(dict.fromkeys(f"{t}: {n}" for t, n in zip(sub["title"].astype(str), sub["note"].fillna("").astype(str))
                                    if n))
    if parallel is None and not sub.empty:
        notes.append("no per-row predictions: each set's own rows (not intersected across languages)")
    table = Table(spec, [label for label, _ in rows], col_labels, cells, notes,
                  operating_point="threshold_free" if spec.value in RANKING else "calibrated" if calibrated else "default",
                  file_id=variant_id(spec, calibrated, by_benchmark))
    if sub.empty or not rows or not cols:
        what = ", ".join(f"{k}={v}" for k, v in spec.filter.items()) or "any"
        table.empty_reason = f"no evaluation matches this table in this run (filter: {what})"
    return table


BREAKDOWN_AXES = ("benchmark", "title", "set")
EXTRA_TABLES = ("significance", "significance.calibrated", "significance.auroc", "null_control")
"""Tables every run writes beside the specs' (crest evaluate tables: significance at each operating
point, the null control check)."""


def has_breakdown(spec: TableSpec) -> bool:
    """Whether a table's cells can average several benchmarks (then a per-benchmark table goes
    beside it)."""
    axes = [spec.rows.get("by"), spec.columns.get("by")]
    one = isinstance(spec.filter.get("benchmark"), str) or isinstance(spec.filter.get("title"), str)
    return not one and not any(a in BREAKDOWN_AXES for a in axes)


def table_variants(spec: TableSpec) -> list[tuple[str, bool, bool]]:
    """Every table a spec becomes: (id, calibrated, by_benchmark) for the table, its calibrated
    twin (none for a threshold-free value, AUROC or AUPRC: it would repeat the table), and the
    per-benchmark breakdown of each."""
    splits = (False, True) if has_breakdown(spec) else (False,)
    points = (False,) if spec.value in RANKING else (False, True)
    return [(variant_id(spec, cal, split), cal, split) for split in splits for cal in points]


def variant_id(spec: TableSpec, calibrated: bool = False, by_benchmark: bool = False) -> str:
    return spec.id + (".by_benchmark" if by_benchmark else "") + (".calibrated" if calibrated else "")


# -- formatting -----------------------------------------------------------------------------------
def _number(cell: Cell, spec: TableSpec) -> str:
    text = f"{cell.value * spec.scale:.{spec.digits}f}"
    if cell.sd is not None:
        text += f" ± {cell.sd * spec.scale:.{spec.digits}f}"
    return text


def _marks(cell: Cell) -> str:
    flags = (cell.random, cell.gloss, cell.partial, cell.unsafe_only, cell.native, cell.sig == BETTER_MARK,
             cell.sig == WORSE_MARK)
    return "".join(m for m, on in zip(MARKS, flags) if on)


def cell_text(cell: Cell, spec: TableSpec) -> tuple[str, str]:
    """(text, marks) of a cell; text is a number or one of the status words."""
    if cell.text is not None:
        return cell.text, _marks(cell)
    if cell.status == "not_run":
        return NOT_RUN, ""
    if cell.status == "missing":
        return MISSING, ""
    if cell.status == "seen":
        return SEEN, ""
    if cell.status == "undefined":
        return (f"{UNDEFINED} ({cell.counts})" if cell.counts else UNDEFINED), _marks(cell)
    return _number(cell, spec), _marks(cell)


def _best(table: Table) -> set[tuple[int, int]]:
    spec = table.spec
    if spec.best == "none":
        return set()
    n_cols = len(table.col_labels) - (1 if spec.diff else 0)  # the diff column is never bolded
    lower = spec.value in LOWER_IS_BETTER
    out = set()
    lines = ([[(i, j) for j in range(n_cols)] for i in range(len(table.row_labels))] if spec.best == "row"
             else [[(i, j) for i in range(len(table.row_labels))] for j in range(n_cols)])
    for line in lines:
        vals = [(table.cells[i][j].value, (i, j)) for i, j in line if table.cells[i][j].value is not None]
        if len(vals) < 2:
            continue
        target = (min if lower else max)(v for v, _ in vals)
        if all(math.isclose(v, target, rel_tol=0, abs_tol=1e-12) for v, _ in vals):
            continue  # a tie across the whole line: nothing to point out
        out |= {pos for v, pos in vals if math.isclose(v, target, rel_tol=0, abs_tol=1e-12)}
    return out


def _footnotes(table: Table) -> list[str]:
    used = set()
    reasons: list[str] = []
    left_out: list[str] = []
    for row in table.cells:
        for c in row:
            text, marks = cell_text(c, table.spec)
            used |= set(marks)
            if text in (MISSING, NOT_RUN, UNDEFINED, SEEN):
                used.add(text)
            if c.partial:
                used.add(PARTIAL_MARK)
            reasons += [r for r in c.reasons if r not in reasons]
            left_out += [x for x in c.left_out if x not in left_out]
    notes = [f"{mark} {NOTES[mark]}" if mark in MARKS else f"{mark}: {NOTES[mark]}"
             for mark in (*MARKS, MISSING, UNDEFINED, NOT_RUN, SEEN) if mark in used]
    notes += [f"missing {r}" for r in reasons]
    notes += table.notes + [f"left out: {x}" for x in left_out]
    if table.value_note:
        notes.insert(0, f"{table.value_note}, {OPERATING_POINTS[table.operating_point]}")
    elif table.spec.scale == 100:
        notes.insert(0, f"{table.spec.value.upper() if table.spec.value != 'f1' else 'F1 (unsafe class)'} x 100"
                     + (", mean ± sd over seeds (and draws)" if any(c.sd is not None for row in table.cells for c in row)
                        else "") + f", {OPERATING_POINTS[table.operating_point]}")
    return notes


def _title(table: Table) -> str:
    if table.operating_point == "threshold_free":
        return table.spec.title
    point = "calibrated thresholds" if table.operating_point == "calibrated" else "threshold 0.5"
    return f"{table.spec.title} ({point})"


def _row_header(table: Table) -> str:
    if table.spec.row_header:
        return table.spec.row_header
    axis = table.spec.rows
    return {"benchmark": "Benchmark", "title": "Benchmark", "set": "Set", "lang": "Language", "model": "Model", "arm": "Arm",
            "lang_group": "Languages", "cluster": "Cluster"}.get(axis.get("by", ""), "")


def to_csv(table: Table) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if table.empty_reason:
        w.writerows([["note"], [table.empty_reason]])
        return buf.getvalue()
    w.writerow([_row_header(table), *table.col_labels])
    for label, row in zip(table.row_labels, table.cells):
        w.writerow([label, *("".join(cell_text(c, table.spec)) for c in row)])
    return buf.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    spec = table.spec
    lines = [f"### {_title(table)}", ""]
    if spec.caption:
        lines += [spec.caption.strip(), ""]
    if table.empty_reason:
        return "\n".join(lines + [f"_{table.empty_reason}_", ""])
    best = _best(table)
    lines.append("| " + " | ".join(map(_md_escape, [_row_header(table), *table.col_labels])) + " |")
    lines.append("| --- |" + " ---: |" * len(table.col_labels))
    for i, (label, row) in enumerate(zip(table.row_labels, table.cells)):
        out = []
        for j, c in enumerate(row):
            text, marks = cell_text(c, spec)
            out.append((f"**{text}**" if (i, j) in best else text) + marks)
        lines.append("| " + " | ".join(map(_md_escape, [label, *out])) + " |")
    lines.append("")
    lines += [f"- {n}" for n in _footnotes(table)]
    return "\n".join(lines).rstrip("\n") + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


TEX_MARKS = {RANDOM_MARK: "$^{*}$", GLOSS_MARK: "$^{\\dagger}$", PARTIAL_MARK: "$^{\\ddagger}$",
             UNSAFE_ONLY_MARK: "$^{\\S}$", NATIVE_MARK: "$^{\\diamond}$", BETTER_MARK: "$^{\\blacktriangle}$", WORSE_MARK: "$^{\\blacktriangledown}$"}


def _tex_marks(marks: str) -> str:
    return "".join(TEX_MARKS[m] for m in marks)


def to_latex(table: Table, source: str = "") -> str:
    spec = table.spec
    head = [f"% {spec.id}: generated by `crest evaluate tables`" + (f" from {source}" if source else "")
            + "; do not edit by hand", "\\begin{table}[t]", "\\centering", "\\small",
            f"\\caption{{{tex_escape(_title(table))}}}", f"\\label{{tab:{table.file_id}}}"]
    if table.empty_reason:
        return "\n".join(head + [f"\\textit{{{tex_escape(table.empty_reason)}}}", "\\end{table}", ""])
    best = _best(table)
    lines = head + ["\\begin{tabular}{l" + "r" * len(table.col_labels) + "}", "\\toprule",
                    " & ".join(tex_escape(x) for x in [_row_header(table), *table.col_labels]) + " \\\\", "\\midrule"]
    for i, (label, row) in enumerate(zip(table.row_labels, table.cells)):
        out = []
        for j, c in enumerate(row):
            text, marks = cell_text(c, spec)
            if text == MISSING:
                body = "\\textit{missing}"
            elif text == NOT_RUN:
                body = "--"
            else:
                body = tex_escape(text).replace(" ± ", " $\\pm$ ")
                body = f"\\textbf{{{body}}}" if (i, j) in best else body
            out.append(body + _tex_marks(marks))
        lines.append(" & ".join([tex_escape(label), *out]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    notes = _footnotes(table)
    if notes:
        tex_notes = [tex_escape(n).replace("±", "$\\pm$").replace(" x 100", " $\\times$ 100") for n in notes]
        tex_notes = [_tex_marks(n[0]) + n[1:] if n[:1] in MARKS else n for n in tex_notes]
        lines += ["\\par\\smallskip", "{\\footnotesize " + " \\\\\n".join(tex_notes) + "}"]
    lines += ["\\end{table}", ""]
    return "\n".join(lines)


def to_html(table: Table) -> str:
    import html

    spec = table.spec
    parts = [f"<h3 id='{table.file_id}'>{html.escape(_title(table))}</h3>"]
    if spec.caption:
        parts.append(f"<p>{html.escape(spec.caption.strip())}</p>")
    if table.empty_reason:
        return "\n".join(parts + [f"<p><em>{html.escape(table.empty_reason)}</em></p>"])
    best = _best(table)
    parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in [_row_header(table), *table.col_labels])
                 + "</tr></thead><tbody>")
    for i, (label, row) in enumerate(zip(table.row_labels, table.cells)):
        tds = []
        for j, c in enumerate(row):
            text, marks = cell_text(c, spec)
            cls = " class='missing'" if text == MISSING else (" class='random'" if RANDOM_MARK in marks else "")
            body = html.escape(text) + (f"<sup>{html.escape(marks)}</sup>" if marks else "")
            tds.append(f"<td{cls}>{'<b>' + body + '</b>' if (i, j) in best else body}</td>")
        parts.append(f"<tr><th>{html.escape(label)}</th>{''.join(tds)}</tr>")
    parts.append("</tbody></table>")
    notes = _footnotes(table)
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(parts)


HTML_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
thead th{border-bottom:2px solid #333}
tbody th{text-align:left;font-weight:normal}
td.missing{color:#b00;font-style:italic}
td.random{color:#777}
ul.notes{font-size:.85em;color:#444}
.banner{background:#fff3cd;border:1px solid #e0c36c;padding:.6em 1em;margin:1em 0}
</style>"""


def write_tables(df: pd.DataFrame, specs: Sequence[TableSpec], out_dir: str | Path, *, order: dict[str, Any] | None = None,
                 source: str = "", banner: str | None = None, preds: pd.DataFrame | None = None,
                 significance: pd.DataFrame | None = None, extra: Sequence[Table] = ()) -> list[Table]:
    """tables/{id}.csv, .md, .tex for every variant of every spec (table_variants: both operating
    points, per-benchmark breakdowns) and for `extra` tables (significance), plus tables/index.md
    and tables/index.html (all tables on one page, for the report)."""
    out_dir = Path(out_dir)
    cache: dict[Any, Any] = {}
    tables = [build_table(df, spec, order, preds=preds, calibrated=cal, by_benchmark=split, significance=significance,
                          cache=cache) for spec in specs for _, cal, split in table_variants(spec)] + list(extra)
    index_md = ["# Tables", ""] + ([f"> {banner}", ""] if banner else [])
    index_html = ["<!doctype html><html><head><meta charset='utf-8'><title>crest tables</title>", HTML_STYLE,
                  "</head><body><h1>Tables</h1>"] + ([f"<div class='banner'>{banner}</div>"] if banner else [])
    for t in tables:
        write_text(to_csv(t), out_dir / f"{t.file_id}.csv")
        md = to_markdown(t)
        write_text(md, out_dir / f"{t.file_id}.md")
        write_text(to_latex(t, source), out_dir / f"{t.file_id}.tex")
        index_md += [md, ""]
        index_html.append(to_html(t))
    write_text("\n".join(index_md).rstrip("\n") + "\n", out_dir / "index.md")
    write_text("\n".join(index_html + ["</body></html>"]) + "\n", out_dir / "index.html")
    return tables
