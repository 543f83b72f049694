"""Metrics of the evaluation stage against values computed by hand, including the degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest

from crest.evaluate.metrics import (
    EvaluationError,
    binary_metrics,
    bootstrap_f1,
    counts_metrics,
    default_thresholds,
    threshold_sweep,
)

# 8 rows at threshold 0.5: flagged = probs >= 0.5 -> rows 0, 1, 3, 4 (0.5 counts as flagged)
LABELS = [1, 1, 1, 0, 0, 0, 1, 0]
PROBS = [0.9, 0.5, 0.2, 0.7, 0.6, 0.1, 0.3, 0.4]
# TP = rows 0,1 -> 2; FP = rows 3,4 -> 2; FN = rows 2,6 -> 2; TN = rows 5,7 -> 2


def test_hand_computed_counts_and_rates():
    m = binary_metrics(LABELS, PROBS, threshold=0.5, bootstrap=0)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 2, 2, 2)
    assert m["n"] == 8 and m["n_unsafe"] == 4 and m["n_safe"] == 4
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))  # 0.5
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["fpr"] == pytest.approx(2 / 4)
    assert m["undefined"] == {}


def test_auprc_by_hand():
    # ranked: 0.9 (unsafe) P=1 R=.5; 0.8 (safe); 0.7 (unsafe) P=2/3 R=1  -> AP = .5*1 + .5*2/3
    m = binary_metrics([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], bootstrap=0)
    assert m["auprc"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert m["auroc"] == pytest.approx(0.75)  # 3 of the 4 (unsafe, safe) pairs ordered right


def test_threshold_is_inclusive_and_configurable():
    assert binary_metrics([1, 0], [0.5, 0.49], threshold=0.5, bootstrap=0)["tp"] == 1
    m = binary_metrics([1, 0], [0.5, 0.49], threshold=0.45, bootstrap=0)
    assert (m["tp"], m["fp"]) == (1, 1)
    with pytest.raises(EvaluationError, match="threshold"):
        binary_metrics([1], [0.5], threshold=1.5)


def test_only_unsafe_rows():
    m = binary_metrics([1, 1, 1], [0.9, 0.2, 0.6], bootstrap=0)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert m["fpr"] is None and m["auroc"] is None  # no safe rows: undefined, never 0
    assert m["undefined"] == {"fpr": "no safe rows", "auroc": "no safe rows", "auprc": "single-class set (no safe rows)"}
    # average precision is 1.0 for any scores on an all-unsafe set: reported as undefined, no PR curve
    assert m["auprc"] is None and m["pr_curve"] is None


def test_both_operating_points_are_recorded():
    labels, probs = [1, 1, 0, 0], [0.9, 0.4, 0.35, 0.1]
    m = binary_metrics(labels, probs, calibrated=(0.3, "crest_guard.json"), bootstrap=0)
    default, cal = m["operating_points"]["default"], m["operating_points"]["calibrated"]
    assert default["threshold"] == 0.5 and (default["tp"], default["fp"]) == (1, 0) and default["recall"] == 0.5
    assert cal["source"] == "crest_guard.json" and (cal["tp"], cal["fp"]) == (2, 1)
    assert cal["recall"] == 1.0 and cal["fpr"] == 0.5 and m["recall"] == default["recall"]
    assert "calibrated" not in binary_metrics(labels, probs, bootstrap=0)["operating_points"]


def test_only_safe_rows():
    m = binary_metrics([0, 0, 0, 0], [0.9, 0.2, 0.6, 0.1], bootstrap=100)
    assert m["f1"] is None and m["recall"] is None and m["auprc"] is None
    assert m["fpr"] == pytest.approx(2 / 4)
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["precision"] == 0.0  # two flagged, none unsafe
    assert m["f1_ci"]["lo"] is None and m["f1_ci"]["hi"] is None
    assert set(m["undefined"]) == {"f1", "recall", "auprc", "auroc"}


def test_nothing_flagged_leaves_precision_undefined():
    m = binary_metrics([1, 0], [0.1, 0.2], bootstrap=0)
    assert m["precision"] is None and m["f1"] == 0.0 and m["recall"] == 0.0
    assert m["undefined"]["precision"].startswith("nothing flagged")


@pytest.mark.parametrize(("labels", "probs", "match"), [
    ([], [], "no predictions"),
    ([1, 0], [0.5], "2 labels but 1 probabilities"),
    ([1, 0], [0.5, float("nan")], "NaN"),
    ([1, 0], [0.5, 1.2], r"\[0, 1\]"),
    ([1, 2], [0.5, 0.5], "labels must be 0"),
])
def test_bad_inputs_are_clear_errors(labels, probs, match):
    with pytest.raises(EvaluationError, match=match):
        binary_metrics(labels, probs)


def test_counts_metrics_empty_is_all_undefined():
    assert counts_metrics(0, 0, 0, 0) == {"f1": None, "precision": None, "recall": None, "accuracy": None, "fpr": None}


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.clip(labels * 0.4 + rng.random(400) * 0.6, 0, 1)
    m = binary_metrics(labels, probs, bootstrap=2000, seed=3)
    ci = m["f1_ci"]
    assert ci["lo"] < m["f1"] < ci["hi"]
    assert 0.02 < ci["hi"] - ci["lo"] < 0.2
    assert binary_metrics(labels, probs, bootstrap=2000, seed=3)["f1_ci"] == ci  # seeded: reproducible
    # the multinomial shortcut agrees with resampling rows
    flagged = probs >= 0.5
    f1s = []
    for _ in range(2000):
        idx = rng.integers(0, 400, 400)
        tp = int((flagged[idx] & (labels[idx] == 1)).sum())
        fp = int((flagged[idx] & (labels[idx] == 0)).sum())
        fn = int((~flagged[idx] & (labels[idx] == 1)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn))
    lo, hi = np.quantile(f1s, [0.025, 0.975])
    assert ci["lo"] == pytest.approx(lo, abs=0.015) and ci["hi"] == pytest.approx(hi, abs=0.015)


def test_bootstrap_of_a_perfect_classifier_is_a_point():
    ci = bootstrap_f1(10, 0, 0, 10, resamples=200)
    assert ci["lo"] == ci["hi"] == 1.0


def test_sweep_matches_pointwise_metrics_and_is_monotone():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probs = rng.random(200)
    sweep = threshold_sweep(labels, probs, default_thresholds(0.1))
    assert [r["threshold"] for r in sweep] == pytest.approx([0.1 * i for i in range(1, 10)])
    recalls = [r["recall"] for r in sweep]
    assert recalls == sorted(recalls, reverse=True)
    for r in sweep:
        point = binary_metrics(labels, probs, threshold=r["threshold"], bootstrap=0)
        assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (point["tp"], point["fp"], point["fn"], point["tn"])
        assert r["f1"] == pytest.approx(point["f1"])


def test_pr_curve_and_best_threshold_are_recorded():
    m = binary_metrics(LABELS, PROBS, bootstrap=0, curve_points=20)
    curve = m["pr_curve"]
    assert len(curve["precision"]) == len(curve["recall"]) == len(curve["threshold"]) <= 20
    assert curve["recall"][0] == 1.0 and curve["recall"][-1] == 0.0
    assert m["oracle_f1_on_this_set"]["f1"] >= m["f1"] and "best_f1" not in m
    assert binary_metrics([0, 0], [0.1, 0.9], bootstrap=0)["pr_curve"] is None
