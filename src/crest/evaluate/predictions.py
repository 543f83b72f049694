"""Every scored row of a run, held by set (docs/performance.md, "Aggregation at the paper's scale": the paper's 55 million rows on a laptop).

`eval/predictions.parquet` (crest evaluate summary) has one row per scored prompt: model, seed,
benchmark, lang, id, label, prob_unsafe. Read as a table of strings it costs ~10 GiB at the paper's
size; held here it costs ~10 bytes a row:

- `sets`: one row per (model, seed, benchmark, lang) with its slice [start, stop) of the row arrays;
- `id_code` (int32): each row's id as a code into `ids`, the run's distinct ids *sorted*, so ordering
  by code is ordering by id (the order significance lines members' rows up in);
- `label` (int8), `prob` (float32): as scored.

The summary writes the file set by set, streaming (`write_predictions_from_metrics`: one set's
parquet at a time, never the whole table in memory), and the readers (crest.evaluate.aggregate's
parallel rows, crest.evaluate.significance) work on the slices: a table's or a comparison's parallel
rows are a count of id codes per scope (`np.bincount`), not a merge of string frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

UNIT = ["model", "seed", "benchmark", "lang"]
COLUMNS = [*UNIT, "id", "label", "prob_unsafe"]
ROW_GROUP = 1 << 20  # rows per parquet row group when streaming


@dataclass
class Predictions:
    sets: pd.DataFrame  # model (str), seed (int), benchmark (str), lang (str), start, stop
    id_code: np.ndarray
    label: np.ndarray
    prob: np.ndarray
    ids: np.ndarray
    index: dict[tuple, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {k: i for i, k in enumerate(zip(self.sets["model"], self.sets["seed"], self.sets["benchmark"],
                                                         self.sets["lang"]))}
        self.start = self.sets["start"].to_numpy(dtype=np.int64)
        self.stop = self.sets["stop"].to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self.id_code)

    @property
    def empty(self) -> bool:
        return len(self) == 0

    def rows(self, i: int) -> slice:
        return slice(int(self.start[i]), int(self.stop[i]))

    @classmethod
    def from_columns(cls, model: np.ndarray, seed: np.ndarray, benchmark: np.ndarray, lang: np.ndarray,
                     id_code: np.ndarray, ids: np.ndarray, label: np.ndarray, prob: np.ndarray) -> Predictions:
        """From per-row columns (model/benchmark/lang: values or codes, kept as given in `sets`; ids
        as codes into `ids`, re-coded here into sorted order). Rows are grouped by set, stably."""
        order_ids = np.argsort(np.asarray(ids, dtype=object), kind="stable")
        rank = np.empty(len(ids), dtype=np.int32)
        rank[order_ids] = np.arange(len(ids), dtype=np.int32)
        id_code = rank[id_code] if len(id_code) else np.zeros(0, np.int32)
        ids = np.asarray(ids, dtype=object)[order_ids]
        key = np.zeros(len(id_code), dtype=np.int64)
        for col in (model, seed, benchmark, lang):  # one int64 per set, from each column's codes
            codes, uniques = pd.factorize(np.asarray(col))
            key = key * max(len(uniques), 1) + codes
        n = len(key)
        change = np.flatnonzero(key[1:] != key[:-1]) + 1 if n else np.zeros(0, int)
        first = np.r_[0, change] if n else np.zeros(0, int)
        if len(np.unique(key[first])) != len(first):  # a set's rows in several runs: regroup them
            order = np.argsort(key, kind="stable")
            key, id_code, label, prob = key[order], id_code[order], np.asarray(label)[order], np.asarray(prob)[order]
            model, seed, benchmark, lang = (np.asarray(x)[order] for x in (model, seed, benchmark, lang))
            change = np.flatnonzero(key[1:] != key[:-1]) + 1
            first = np.r_[0, change]
        stop = np.r_[first[1:], n].astype(np.int64) if n else np.zeros(0, np.int64)
        sets = pd.DataFrame({"model": np.asarray(model)[first], "seed": np.asarray(seed)[first].astype(int),
                             "benchmark": np.asarray(benchmark)[first], "lang": np.asarray(lang)[first],
                             "start": first.astype(np.int64), "stop": stop})
        return cls(sets, id_code.astype(np.int32, copy=False), np.asarray(label, dtype=np.int8),
                   np.asarray(prob, dtype=np.float32), ids)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Predictions:
        """From a predictions frame (collect_predictions, or an older caller's own)."""
        ids = df["id"].astype(str).astype("category")
        return cls.from_columns(df["model"].astype(str).to_numpy(dtype=object),
                                pd.to_numeric(df["seed"], errors="coerce").fillna(-1).astype(int).to_numpy(),
                                df["benchmark"].astype(str).to_numpy(dtype=object),
                                df["lang"].astype(str).to_numpy(dtype=object),
                                ids.cat.codes.to_numpy(dtype=np.int32), ids.cat.categories.to_numpy(dtype=object),
                                df["label"].to_numpy(), df["prob_unsafe"].to_numpy(dtype=np.float32))


def as_predictions(preds: Predictions | pd.DataFrame | None) -> Predictions | None:
    if preds is None or isinstance(preds, Predictions):
        return preds
    return Predictions.from_frame(preds)


def read_predictions(path: str | Path | None) -> Predictions | None:
    """predictions.parquet, column by column, ids and names as dictionary codes (never a string per
    row); None when there is no file."""
    if not path or not Path(path).is_file():
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=COLUMNS, read_dictionary=["model", "benchmark", "lang", "id"])

    def codes(name: str) -> tuple[np.ndarray, np.ndarray]:
        col = table.column(name)
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        col = col.unify_dictionaries() if col.num_chunks > 1 else col
        if col.num_chunks == 0:
            return np.zeros(0, np.int32), np.zeros(0, object)
        dictionary = col.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object)
        idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in col.chunks]) if col.num_chunks \
            else np.zeros(0, np.int32)
        return idx.astype(np.int32, copy=False), dictionary

    m, m_names = codes("model")
    b, b_names = codes("benchmark")
    lg, l_names = codes("lang")
    i, i_names = codes("id")
    i_names = np.asarray([str(x) for x in i_names], dtype=object)
    seed = table.column("seed").to_numpy()
    label = table.column("label").to_numpy().astype(np.int8, copy=False)
    prob = table.column("prob_unsafe").to_numpy().astype(np.float32, copy=False)
    table = None  # release the arrow table's buffers (None, not del: the nested codes() reads the name)
    preds = Predictions.from_columns(m, seed, b, lg, i, i_names, label, prob)
    for col, names in (("model", m_names), ("benchmark", b_names), ("lang", l_names)):
        preds.sets[col] = [str(names[int(c)]) for c in preds.sets[col]]
    preds.index = {}
    preds.__post_init__()
    return preds


def write_predictions_from_metrics(metrics: pd.DataFrame, out: str | Path, path_of) -> int:
    """Every scored row of every ok set in `metrics` (eval/metrics.csv) into `out`, one set read at a
    time (`path_of(metrics_path)` -> the set's predictions parquet); atomic. Returns the rows written.
    The columns and types of collect_predictions' frame: model/benchmark/lang dictionary, seed int64,
    id string, label int8, prob_unsafe float32."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crest.io import atomic_path

    ok = metrics[metrics["status"] == "ok"]
    models = list(dict.fromkeys(ok["model"].astype(str)))
    benchmarks = list(dict.fromkeys(ok["benchmark"].astype(str)))
    langs = list(dict.fromkeys(ok["lang"].astype(str)))
    code = {n: {v: i for i, v in enumerate(vals)} for n, vals in (("model", models), ("benchmark", benchmarks),
                                                                   ("lang", langs))}
    dict_type = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema([("model", dict_type), ("seed", pa.int64()), ("benchmark", dict_type), ("lang", dict_type),
                        ("id", pa.string()), ("label", pa.int8()), ("prob_unsafe", pa.float32())])
    dictionaries = {"model": pa.array(models, pa.string()), "benchmark": pa.array(benchmarks, pa.string()),
                    "lang": pa.array(langs, pa.string())}
    total, pending, pending_rows = 0, [], 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        def flush() -> None:
            nonlocal pending, pending_rows
            if pending:
                writer.write_table(pa.concat_tables(pending).combine_chunks(), row_group_size=ROW_GROUP)
            pending, pending_rows = [], 0

        for r in ok.itertuples():
            d = pq.read_table(path_of(r.metrics_path), columns=["id", "label", "prob_unsafe"])
            n = d.num_rows
            seed = -1 if pd.isna(r.seed) else int(r.seed)

            def dict_col(name: str, value: str) -> pa.DictionaryArray:
                return pa.DictionaryArray.from_arrays(pa.array(np.full(n, code[name][value], dtype=np.int32)),
                                                      dictionaries[name])

            ids = d.column("id")
            ids = ids.cast(pa.string()) if not pa.types.is_string(ids.type) else ids
            pending.append(pa.table({"model": dict_col("model", str(r.model)), "seed": pa.array(np.full(n, seed, np.int64)),
                                     "benchmark": dict_col("benchmark", str(r.benchmark)),
                                     "lang": dict_col("lang", str(r.lang)), "id": ids,
                                     "label": d.column("label").cast(pa.int8()),
                                     "prob_unsafe": d.column("prob_unsafe").cast(pa.float32())}, schema=schema))
            pending_rows += n
            total += n
            if pending_rows >= ROW_GROUP:
                flush()
        flush()
    return total
