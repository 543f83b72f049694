"""Code-switched cells need both classes (docs/evaluate.md, "Generated code-switching"): each pair is its own sample (never
intersected with the other pairs), and a pair with fewer rows of a class than its `class_floor`
(30) is not averaged: its cell is n/a with its counts, named under the table. Before, a pair of 9
safe rows and 1 unsafe gave the flag-everything F1 (18.2) as a number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crest.evaluate.aggregate import collect_predictions, parallel_counts
from crest.evaluate.collect import collect, read_metrics_csv, write_metrics_csv
from crest.evaluate.tables import TableSpec, build_table, to_csv, to_markdown
from test_parallel_native import scored


def _rows(pair: str, safe: int, unsafe: int, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """`safe` + `unsafe` rows of one pair, ids of its own (a code-switched pair is its own sample),
    scores that separate the classes imperfectly."""
    labels = [0] * safe + [1] * unsafe
    return [(f"{pair}-{i}", y, float(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.2), 0, 1))) for i, y in enumerate(labels)]


def cs_fixture(tmp_path: Path, floor: int | None = 30) -> list[Path]:
    rng = np.random.default_rng(0)
    sizes = {"en-de": (40, 40), "en-ja": (40, 10), "en-hi": (10, 0)}  # en-ja: 10 unsafe; en-hi: 10 safe only
    files = []
    for arm in ("crest", "english"):
        for pair, (safe, unsafe) in sizes.items():
            path = scored(tmp_path, arm, 0, "cs", pair, _rows(pair, safe, unsafe, rng), kind="codeswitch")
            rec = json.loads(path.read_text())
            rec.update(group="code_switched", class_floor=floor)
            path.write_text(json.dumps(rec))
            files.append(path)
    return files


ORDER = {"model": ["crest-base", "english-base"]}


@pytest.mark.parametrize("with_predictions", [True, False])
def test_a_pair_below_the_class_floor_is_na_with_its_counts(tmp_path: Path, with_predictions: bool) -> None:
    df = collect(cs_fixture(tmp_path), {}, {})
    write_metrics_csv(df, tmp_path / "metrics.csv")
    df = read_metrics_csv(tmp_path / "metrics.csv")  # the column survives the round trip
    assert set(df["class_floor"]) == {30}
    preds = collect_predictions(df) if with_predictions else None
    if preds is not None:  # native: each pair keeps its own ids, nothing intersected across pairs
        par = parallel_counts(preds, df)
        assert par.kept_ids == {"cs [en-de]": 80, "cs [en-ja]": 50, "cs [en-hi]": 10}
    by_pair = build_table(df, TableSpec(id="p", title="P", filter={}, rows={"by": "lang"}, columns={"by": "model"}),
                          {**ORDER, "lang": ["en-de", "en-ja", "en-hi"]}, preds=preds)
    lines = to_csv(by_pair).splitlines()
    assert lines[1].startswith("en-de,") and "n/a" not in lines[1]  # 40 + 40: a number
    assert lines[2] == "en-ja,n/a (n = 50: 40 safe / 10 unsafe),n/a (n = 50: 40 safe / 10 unsafe)"
    assert lines[3] == "en-hi,n/a (n = 10: 10 safe / 0 unsafe),n/a (n = 10: 10 safe / 0 unsafe)"  # one class only
    md = to_markdown(by_pair)
    assert "below the class floor, cs [en-ja]: n = 50: 40 safe / 10 unsafe; f1 needs 30 safe and unsafe rows" in md

    # the pooled cell averages only the pair above the floor
    pooled = build_table(df, TableSpec(id="c", title="C", filter={}, rows={"by": "model"},
                                       columns={"named": {"Code-switched": {}}}), ORDER, preds=preds)
    de = build_table(df, TableSpec(id="d", title="D", filter={"lang": "en-de"}, rows={"by": "model"},
                                   columns={"named": {"Code-switched": {}}}), ORDER, preds=preds)
    assert pooled.cells[0][0].value == pytest.approx(de.cells[0][0].value)
    # FPR needs only safe rows: en-ja's 40 are above the floor, en-hi's 10 are not
    fpr = build_table(df, TableSpec(id="f", title="F", filter={}, rows={"by": "lang"}, columns={"by": "model"},
                                    value="fpr"), {**ORDER, "lang": ["en-de", "en-ja", "en-hi"]}, preds=preds)
    assert [r.split(",")[1].startswith("n/a") for r in to_csv(fpr).splitlines()[1:]] == [False, False, True]


def test_without_a_floor_the_small_pair_is_a_number(tmp_path: Path) -> None:
    df = collect(cs_fixture(tmp_path, floor=None), {}, {})
    table = build_table(df, TableSpec(id="p", title="P", filter={"lang": "en-ja"}, rows={"by": "lang"},
                                      columns={"by": "model"}), ORDER, preds=collect_predictions(df))
    assert table.cells[0][0].value is not None


def test_code_switched_sets_default_to_a_floor_of_30_and_the_demo_samples_above_it() -> None:
    from crest.config import load_config

    for path in ("config/demo.yaml", "config/config.yaml"):
        config = load_config(path)
        for name, spec in config["evaluate"]["codeswitch"].items():
            assert spec["class_floor"] == 30, (path, name)
            if spec.get("max_rows"):  # each pair sampled with at least the floor of each class
                assert (spec.get("min_rows_per_label") or 0) >= spec["class_floor"] and spec["max_rows"] >= 2 * spec["class_floor"]
        assert all(b["class_floor"] is None for b in config["evaluate"]["benchmarks"].values())
