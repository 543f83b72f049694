"""The stored operating point says what it holds (docs/train.md, "`train.calibrate`")."""

import json

import numpy as np

from crest.guard.calibrate import calibrate_model, calibrate_threshold


def test_recall_target_states_its_rows_and_the_fpr_it_costs() -> None:
    probs = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.65, 0.1, 0.05])
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    r = calibrate_threshold(probs, labels, target_recall=0.8)
    assert r["threshold"] == 0.6 and r["recall"] == 5 / 6 and r["fpr"] == 0.25 and r["holds"]
    assert r["target"] == "recall >= 0.8 on the 6 unsafe rows, at the lowest false-positive rate on the 4 safe rows"
    assert (r["n_unsafe"], r["n_safe"], r["flags_everything"]) == (6, 4, False)
    f = calibrate_threshold(probs, labels, target_fpr=0.0)
    assert f["fpr"] == 0.0 and f["recall"] == 4 / 6 and f["holds"]
    assert f["target"] == "false-positive rate <= 0.0 on the 4 safe rows, at the highest recall"


def test_a_threshold_that_flags_everything_is_said_to_in_the_card(tmp_path) -> None:
    """The first demo models: a recall target on a mostly unsafe validation split whose scores do not
    separate the classes lands on the lowest score, and flags every row."""
    probs = np.array([0.2, 0.9, 0.3, 0.25, 0.8])
    labels = np.array([1, 0, 1, 1, 0])
    result = calibrate_model(tmp_path, probs, labels, target_recall=0.95, note="the validation split")
    assert result["flags_everything"] and result["fpr"] == 1.0
    card = (tmp_path / "README.md").read_text()
    assert "flag-everything value" in card and "recall >= 0.95 on the 3 unsafe rows" in card
    stored = json.loads((tmp_path / "crest_guard.json").read_text())
    assert stored["calibration"]["target"].startswith("recall >= 0.95") and stored["calibration"]["holds"]
