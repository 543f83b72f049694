"""Sentence segmentation and reassembly (pure Python; a whitespace token counter stands in for
the tokenizer)."""

from __future__ import annotations

from crest.translate.segment import joiner_for, plan_segments, reassemble, split_sentences


def words(texts):
    return [len(t.split()) for t in texts]


def chars(texts):
    return [len(t) for t in texts]


def test_split_sentences_keeps_terminators_and_abbreviations() -> None:
    text = 'Mr. Smith met Dr. Jones. They talked about the U.S. economy, e.g. jobs! Did J. K. Rowling come? "Yes."'
    assert split_sentences(text) == ["Mr. Smith met Dr. Jones.", "They talked about the U.S. economy, e.g. jobs!",
                                     "Did J. K. Rowling come?", '"Yes."']
    assert split_sentences("你好。你是谁？好的") == ["你好。", "你是谁？", "好的"]
    assert split_sentences("यह एक वाक्य है। यह दूसरा है।") == ["यह एक वाक्य है।", "यह दूसरा है।"]
    assert split_sentences("no terminator") == ["no terminator"]
    assert split_sentences("Version 3.5 is out... Really?! Yes") == ["Version 3.5 is out...", "Really?!", "Yes"]


def test_short_texts_stay_whole() -> None:
    plan = plan_segments(["one two three", "four. five six."], words, max_tokens=5)
    assert plan.segments == ["one two three", "four. five six."]
    assert plan.whole == [True, True] and plan.owner == [0, 1] and plan.segments_per_text() == [1, 1]


def test_long_input_is_segmented_never_truncated() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(40)]  # 7 words each
    text = " ".join(sentences)
    plan = plan_segments([text, "short"], words, max_tokens=20)
    segs = [plan.segments[i] for line in plan.layout[0] for i in line]
    assert len(segs) == 20  # two sentences (14 words) per segment: a third would make 21
    assert all(len(s.split()) <= 20 for s in segs)
    assert " ".join(segs).split() == text.split()  # every word, in order
    assert plan.segments_per_text() == [20, 1]


def test_overlong_sentence_splits_at_clauses_then_words_then_characters() -> None:
    clause = "a b c d e f, " * 6
    blob = "x" * 50
    text = f"{clause}then {blob} end"
    plan = plan_segments([text], chars, max_tokens=16)
    segs = plan.segments
    assert all(len(s) <= 16 for s in segs)
    assert "".join(segs).replace(" ", "") == text.replace(" ", "")


def test_lines_are_kept_and_reassembled() -> None:
    text = "First line is long enough. It has two sentences.\n\nThird line"
    plan = plan_segments([text], words, max_tokens=6)
    assert [len(line) for line in plan.layout[0]] == [2, 0, 1]
    translated = [s.upper() for s in plan.segments]
    assert reassemble(translated, plan.layout) == ["FIRST LINE IS LONG ENOUGH. IT HAS TWO SENTENCES.\n\nTHIRD LINE"]


def test_joiner_follows_the_target_script() -> None:
    assert joiner_for("Hans") == "" and joiner_for("Jpan") == "" and joiner_for("Latn") == " "
    assert reassemble(["你好。", "再见。"], [[[0, 1]]], joiner_for("Hans")) == ["你好。再见。"]
