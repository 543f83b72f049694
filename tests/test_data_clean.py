import pandas as pd
import pytest

from crest.data.clean import assign_splits, clean_rows, normalise_text


def frame(texts, labels, split=None):
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": labels,
                         "lang": "en", "source": "s", "category": "", "split": split})


def test_normalise_nfc_and_whitespace() -> None:
    assert normalise_text("  Cafe\u0301 \n\t au  lait ") == "Caf\u00e9 au lait"


def test_drops_are_counted_per_reason() -> None:
    df = frame(["How do I make a bomb?", "how do i make a bomb", "   ", "How do I make a bomb?",
                "Write a poem", "write a POEM!", "Is it safe?", "is it safe"], [1, 1, 1, 1, 0, 0, 0, 1])
    out, dropped = clean_rows(df)
    assert list(out["text"]) == ["How do I make a bomb?", "Write a poem"]
    assert dropped == {"empty": 1, "label_conflict": 2, "duplicate_exact": 1, "duplicate_normalised": 2}


def test_stratified_split_is_deterministic_and_keeps_label_ratio() -> None:
    df = frame([f"t{i}" for i in range(200)], [1] * 150 + [0] * 50)
    a = assign_splits(df, 0.1, 0.2, seed=3)
    b = assign_splits(df, 0.1, 0.2, seed=3)
    assert list(a["split"]) == list(b["split"])
    counts = a.groupby(["split", "label"]).size().to_dict()
    assert counts == {("test", 0): 10, ("test", 1): 30, ("train", 0): 35, ("train", 1): 105,
                      ("validation", 0): 5, ("validation", 1): 15}
    assert list(assign_splits(df, 0.1, 0.2, seed=4)["split"]) != list(a["split"])


def test_source_splits_are_kept_and_renamed() -> None:
    out = assign_splits(frame(["a", "b"], [0, 1], split=["dev", "train"]), 0.1, 0.1, 0)
    assert list(out["split"]) == ["validation", "train"]
    with pytest.raises(ValueError, match=r"\['harmful'\] are not train/validation/test"):
        assign_splits(frame(["a"], [1], split=["harmful"]), 0.1, 0.1, 0)


def test_fractions_leaving_no_training_data() -> None:
    with pytest.raises(ValueError, match="leave no training data"):
        assign_splits(frame(["a"], [1]), 0.5, 0.5, 0)
