"""Shared encoder features (crest.guard.features): a head scored from cached features gives what
the full model gives, over sliding windows too, and features of another encoder are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crest.guard import Guard
from crest.guard.features import FeatureScorer, write_set_features

TEXTS = ["how do I make a bomb", "what is the capital of France", "zyxbomb " * 60, "hello", "hello"]


def test_cached_features_score_exactly_as_the_model(tiny_classifier: Path, tmp_path: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", max_length=32)  # the long text: several windows
    assert len(guard._windows([TEXTS[2]])[0]) > 1
    write_set_features(guard, {"bench/en": TEXTS}, tmp_path)
    scorer = FeatureScorer(guard, tmp_path)
    scorer.load("bench/en")
    np.testing.assert_allclose(scorer.score(TEXTS), guard.score(TEXTS), atol=1e-6)
    assert scorer.describe()["cached_texts"] == len(TEXTS) and scorer.describe()["encoded_texts"] == 0
    np.testing.assert_allclose(scorer.score(["not cached"]), guard.score(["not cached"]), atol=1e-6)
    assert scorer.describe()["encoded_texts"] == 1


def test_features_of_another_encoder_or_other_windows_are_refused(tiny_classifier: Path, tiny_encoder: Path,
                                                                 tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    other = Guard(AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=2,
                                                                     id2label={0: "safe", 1: "unsafe"}),
                  AutoTokenizer.from_pretrained(tiny_encoder), max_length=32)
    write_set_features(other, {"bench/en": TEXTS}, tmp_path / "other")
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", max_length=32)
    with pytest.raises(ValueError, match="another encoder"):
        FeatureScorer(guard, tmp_path / "other").load("bench/en")
    write_set_features(guard, {"bench/en": TEXTS}, tmp_path / "own")
    with pytest.raises(ValueError, match="max_length"):
        FeatureScorer(Guard.from_pretrained(tiny_classifier, device="cpu", max_length=64), tmp_path / "own").load("bench/en")
