"""The label audit (crest.data.audit): confident learning finds flipped labels in real rows; the
drop touches the training corpus's train split only; config and input errors are clear."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.data.audit import audit_rows, read_suspects, run_audit, source_table, suspects_frame
from crest.data.prepare import build_corpus
from crest.schema import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "audit_rows.tsv"
"""200 real rows of the demo's sources: 100 AdvBench requests (unsafe, MIT, from pyrit 1.1.0) and
100 chatterbot-corpus English lines (safe, BSD-3-Clause, chatterbot-corpus 1.3.3)."""


def real_rows() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, sep="\t", dtype={"id": str}).assign(split="train", lang="en", category=None,
                                                                     origin="fixture")


def char_ngrams(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True).fit_transform(texts)


def test_audit_finds_most_flipped_labels_in_real_rows() -> None:
    rows = real_rows()
    labels = rows["label"].to_numpy()
    flipped = np.zeros(len(rows), dtype=bool)
    flipped[np.random.default_rng(0).choice(len(rows), size=20, replace=False)] = True  # 10% of the labels
    noisy = rows.assign(label=np.where(flipped, 1 - labels, labels))
    audited, fig = audit_rows(noisy, char_ngrams(rows["text"]), folds=5, seed=13, C=1.0, scale=False)
    flags = audited["suspected"].to_numpy()
    precision = (flags & flipped).sum() / flags.sum()
    recall = (flags & flipped).sum() / flipped.sum()
    print(f"flags {flags.sum()}, precision {precision:.2f}, recall {recall:.2f}")
    assert recall >= 0.8 and precision >= 0.8
    # the clean labels: these two sources are easy to tell apart, so hardly anything is flagged
    clean, _ = audit_rows(rows, char_ngrams(rows["text"]), folds=5, seed=13, C=1.0, scale=False)
    assert clean["suspected"].sum() <= 4
    # quality is the out-of-sample probability of the given label: flips score low
    assert audited.loc[flipped, "quality"].median() < 0.5 < audited.loc[~flipped, "quality"].median()


def test_tables_per_source_and_worst_first() -> None:
    audited = pd.DataFrame({"source": ["a", "a", "b", "b"], "id": ["1", "2", "3", "4"], "split": "train",
                            "lang": "en", "label": [0, 1, 1, 1], "text": list("wxyz"),
                            "quality": [0.9, 0.1, 0.05, 0.8], "prob_unsafe": [0.1, 0.1, 0.05, 0.8],
                            "suspected": [False, True, True, False]})
    table = source_table(audited, ["b", "a"])
    assert table["source"].tolist() == ["b", "a"]
    assert table.set_index("source").loc["a", ["rows", "suspected", "rate", "suspected_given_unsafe"]].tolist() == \
        [2, 1, 0.5, 1]
    assert suspects_frame(audited)["id"].tolist() == ["3", "2"]


def test_drop_touches_train_rows_only(tmp_path: Path) -> None:
    rows = real_rows().head(6).assign(split=["train", "train", "validation", "test", "train", "test"])
    src = tmp_path / "advbench.parquet"
    rows.to_parquet(src)
    suspects = tmp_path / "suspects.tsv"
    pd.DataFrame({"source": rows["source"].iloc[[0, 2, 3]], "id": rows["id"].iloc[[0, 2, 3]]}).to_csv(
        suspects, sep="\t", index=False)
    plain = build_corpus([src], tmp_path / "plain.parquet")
    stats = build_corpus([src], tmp_path / "dropped.parquet", suspects=suspects)
    kept = pd.read_parquet(tmp_path / "dropped.parquet")
    assert plain["rows_kept"] == 6 and stats["rows_kept"] == 5
    assert rows["id"].iloc[0] not in set(kept["id"])
    # validation and test rows are the same with and without the drop
    before = pd.read_parquet(tmp_path / "plain.parquet")
    for split in ("validation", "test"):
        assert kept[kept["split"] == split]["id"].tolist() == before[before["split"] == split]["id"].tolist()
    drop = stats["audit_drop"]
    assert drop["dropped"] == 1 and drop["kept_in_other_splits"] == 2
    assert drop["dropped_ids"] == [f"{rows['source'].iloc[0]}:{rows['id'].iloc[0]}"]
    assert stats["dropped"]["audit_suspect_train"] == 1


def test_bad_suspects_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "suspects.tsv"
    bad.write_text("row\tlabel\n1\t0\n")
    with pytest.raises(ValueError, match="not an audit suspects file"):
        read_suspects(bad)
    src = tmp_path / "s.parquet"
    real_rows().head(3).to_parquet(src)
    r = subprocess.run([sys.executable, "-m", "crest", "data", "corpus", "--out", str(tmp_path / "c.parquet"),
                        "--drop-suspects", str(bad), str(src)], capture_output=True, text=True)
    assert r.returncode == 2 and "not an audit suspects file" in r.stderr and "Traceback" not in r.stderr


def test_run_audit_writes_its_files_with_the_frozen_encoder(tmp_path: Path, tiny_encoder: Path) -> None:
    rows = real_rows()
    paths = []
    for source, g in rows.assign(source=np.where(rows["label"] == 1, "advbench", "chatterbot")).groupby("source"):
        paths.append(tmp_path / f"{source}.parquet")
        g.to_parquet(paths[-1])
    features = {"max_length": 32, "pad_to": 8, "batch_tokens": None, "max_batch_size": 32}
    summary = run_audit(paths, str(tiny_encoder), tmp_path / "audit", folds=3, top=2, features=features)
    table = pd.read_csv(tmp_path / "audit" / "sources.tsv", sep="\t")
    assert table["source"].tolist() == ["advbench", "chatterbot"] and table["rows"].sum() == 200
    assert table["suspected"].sum() == summary["suspected"] == len(read_suspects(tmp_path / "audit" / "suspects.tsv"))
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["encoder_digest"] == summary["encoder_digest"]
    assert "Label audit" in (tmp_path / "audit" / "index.html").read_text()


def test_config_checks(write_yaml) -> None:
    from crest.config import load_config
    from crest.paths import REPO_ROOT
    from crest.schema import read_yaml

    demo = read_yaml(REPO_ROOT / "config" / "demo.yaml")
    assert load_config(demo)["data"]["audit"]["C"] == 0.01
    for change, message in [({"encoder": "large"}, "data.audit.encoder"), ({"enabled": False, "drop": True}, "drop"),
                            ({"folds": 1}, "folds")]:
        cfg = read_yaml(REPO_ROOT / "config" / "demo.yaml")
        cfg["data"]["audit"].update(change)
        with pytest.raises(ConfigError, match=message):
            load_config(cfg)

