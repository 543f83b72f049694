"""The label-shuffled null control must come out at chance, and `eval/null_control.tsv` says
whether it does (crest.evaluate.null)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.evaluate.null import NULL_BAND, POOLED, null_control, shuffled_arms


def _metrics(aurocs: dict[str, list[float]], langs=("en", "de"), n_safe: int = 20) -> pd.DataFrame:
    """metrics.csv rows: one per (arm, language), AUROC given per arm (one value per language)."""
    rows = [{"model": f"{arm}-base", "arm": arm, "seed": 0, "benchmark": "b", "lang": lang, "status": "ok", "n": 40,
             "n_unsafe": 20, "n_safe": n_safe, "auroc": v}
            for arm, values in aurocs.items() for lang, v in zip(langs, values, strict=True)]
    return pd.DataFrame(rows)


NULL_DRAWS = [[0.40, 0.44], [0.55, 0.60], [0.50, 0.52], [0.47, 0.49], [0.52, 0.50], [0.45, 0.47], [0.53, 0.55],
              [0.49, 0.51], [0.56, 0.52], [0.48, 0.46]]


def test_a_null_near_half_passes_and_a_leaky_one_is_flagged() -> None:
    shuffled = {f"shuffled_{i}": "shuffled" for i in range(10)} | {f"leaky_{i}": "leaky" for i in range(3)}
    df = null_control(_metrics({**{f"shuffled_{i}": v for i, v in enumerate(NULL_DRAWS)},
                                "leaky_0": [0.80, 0.82], "leaky_1": [0.78, 0.83], "leaky_2": [0.85, 0.80],
                                "crest": [0.9, 0.9]}), shuffled)
    assert set(df["family"]) == {"shuffled", "leaky"}  # a learned arm is not a null control
    pooled = df[df["lang"] == POOLED].set_index("family")
    assert pooled.loc["shuffled", "draws"] == 10
    assert pooled.loc["shuffled", "mean"] == pytest.approx(np.mean([np.mean(v) for v in NULL_DRAWS]))  # draw means first
    assert pooled.loc["shuffled", "at_chance"] and 0.4 <= pooled.loc["shuffled", "lo"] < pooled.loc["shuffled", "hi"] <= 0.6
    assert not pooled.loc["leaky", "at_chance"] and pooled.loc["leaky", "p"] < 0.01
    de = df[(df["family"] == "shuffled") & (df["lang"] == "de")].iloc[0]
    assert (de["min"], de["max"], de["draws"]) == (0.44, 0.60, 10) and de["band_lo"] == NULL_BAND[0]
    # three of those draws: a mean in the band, but the interval is too wide to say "at chance"
    three = null_control(_metrics({f"shuffled_{i}": NULL_DRAWS[i] for i in range(3)}),
                         {f"shuffled_{i}": "shuffled" for i in range(3)})
    row = three[three["lang"] == POOLED].iloc[0]
    assert 0.4 <= row["mean"] <= 0.6 and not row["at_chance"]


def test_a_moderate_leak_over_ten_draws_is_not_at_chance() -> None:
    """Ten draws around 0.65, or around 0.58 with a real null's spread: a mean inside the band (the
    old rule) or a t-test with few draws let such a null pass; the equivalence interval does not."""
    spread = np.array([-0.08, -0.06, -0.04, -0.02, 0.0, 0.0, 0.02, 0.04, 0.06, 0.08])  # sd ~0.05
    for centre in (0.65, 0.58):
        values = centre + spread
        df = null_control(_metrics({f"s_{i}": [v, v] for i, v in enumerate(values)}), {f"s_{i}": "s" for i in range(10)})
        pooled = df[df["lang"] == POOLED].iloc[0]
        assert pooled["draws"] == 10 and pooled["hi"] > 0.6 and not pooled["at_chance"], (centre, pooled)
    assert NULL_BAND[0] <= pooled["mean"] <= NULL_BAND[1]  # 0.58: the mean alone would have passed


def test_single_class_sets_and_one_draw_have_no_test() -> None:
    one = null_control(_metrics({"shuffled": [0.5, 0.6]}), {"shuffled": "shuffled"})
    assert one["draws"].eq(1).all() and one["p"].isna().all()
    assert null_control(_metrics({"shuffled": [0.5, 0.6]}, n_safe=0), {"shuffled": "shuffled"}).empty


@pytest.mark.slow
def test_arms_trained_on_shuffled_labels_score_at_chance(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    """The real thing on tiny data: the same rows with real labels give a model that finds the
    planted trigger (AUROC > 0.9 on the test split); with labels permuted, three draws average at
    chance and the check says so."""
    from sklearn.metrics import roc_auc_score

    from crest.config import load_config
    from crest.guard import Guard
    from crest.train.dataset import build_arm_dataset
    from crest.train.plan import dataset_settings
    from crest.train.trainer import train_model
    from test_arms import TABLE, _config
    from test_train_loop import _settings

    shards = toy_shards(["en", "hi"], rows=400)
    config = load_config(_config({"real": {"languages": ["en", "hi"]},
                                  "shuffled": {"languages": ["en", "hi"], "shuffle_labels": True, "shuffle_draws": 3}}))
    test = pd.concat([pd.read_parquet(shards / f"{c}.parquet").assign(lang=c) for c in ("en", "hi")])
    test = test[test["split"] == "test"]
    rows, infos = [], []
    for arm in ("real", "shuffled_0", "shuffled_1", "shuffled_2"):
        data, info = tmp_path / arm / "data.parquet", tmp_path / arm / "data.json"
        build_arm_dataset(dataset_settings(config, arm, TABLE), shards, data, info, table=TABLE)
        settings = _settings(max_steps=60, eval_every=30, save_every=1000) | {"arm": arm}
        train_model(data, str(tiny_encoder), settings, tmp_path / arm / "state", tmp_path / arm / "model",
                    json.loads(info.read_text()))
        guard = Guard.from_pretrained(tmp_path / arm / "model", device="cpu")
        for lang, part in test.groupby("lang"):
            rows.append({"model": f"{arm}-base", "arm": arm, "seed": 0, "benchmark": "toy", "lang": lang,
                         "status": "ok", "n": len(part), "n_unsafe": int(part["label"].sum()),
                         "n_safe": int((1 - part["label"]).sum()),
                         "auroc": roc_auc_score(part["label"], guard.score(part["text"].tolist()))})
        infos.append(info)
    metrics = pd.DataFrame(rows)
    assert metrics.loc[metrics["arm"] == "real", "auroc"].min() > 0.9
    df = null_control(metrics, shuffled_arms(infos))
    pooled = df[df["lang"] == POOLED].iloc[0]
    assert pooled["family"] == "shuffled" and pooled["draws"] == 3
    assert NULL_BAND[0] <= pooled["mean"] <= NULL_BAND[1], df
    # three draws cannot show chance (equivalence needs the interval inside the band): the verdict follows it
    assert pooled["at_chance"] == (NULL_BAND[0] <= pooled["lo"] and pooled["hi"] <= NULL_BAND[1])


def test_the_table_flags_a_leaky_null_and_is_threshold_free() -> None:
    from crest.evaluate.null import null_control_table
    from crest.evaluate.tables import to_markdown

    shuffled = {f"leaky_{i}": "leaky" for i in range(2)}
    md = to_markdown(null_control_table(null_control(_metrics({"leaky_0": [0.8, 0.9], "leaky_1": [0.85, 0.8]}),
                                                     shuffled)))
    assert "| leaky · b · all | 83.8 |" in md and "**no**" in md and "threshold 0.5" not in md
    assert "no arm of this run trains on shuffled labels" in to_markdown(null_control_table(
        null_control(_metrics({"crest": [0.9, 0.9]}), {})))
