from pathlib import Path

import torch

from crest.tiny import build_tiny_xlmr, sample_texts


def test_sample_texts_are_multiscript() -> None:
    texts = sample_texts()
    joined = "".join(texts)
    assert len(texts) > 2000
    for ch_range in [(0x0400, 0x04FF), (0x0600, 0x06FF), (0x0900, 0x097F), (0x4E00, 0x9FFF), (0x0E00, 0x0E7F)]:
        assert any(ch_range[0] <= ord(c) <= ch_range[1] for c in joined), ch_range


def test_tiny_xlmr_round_trips_through_from_pretrained(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = build_tiny_xlmr(tmp_path / "m", num_labels=2)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    ids = tok(["Deutschland", "Россия"], padding=True, return_tensors="pt")
    assert tok.unk_token_id not in ids["input_ids"][0].tolist()  # pieces are real, not <unk>
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (2, 2) and model.config.id2label == {0: "safe", 1: "unsafe"}
    assert (out / "model.safetensors").is_file()
