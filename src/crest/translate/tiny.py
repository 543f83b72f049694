"""A tiny random-weight NLLB for tests and the offline demo: the real architecture (M2M100, as
NLLB-200 is), a SentencePiece BPE tokenizer trained here on `crest.tiny.sample_texts()`, the 202
NLLB language codes as special tokens. It exercises the whole translation path; its output is
noise, and `crest.json` in the model directory says so (`random_weights: true`), which every
shard, QC file and table built from it carries on."""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path

# ASCII punctuation and digits as single pieces, so prompts tokenize without <unk>.
PUNCTUATION_SYMBOLS = tuple(string.punctuation + string.digits)


def language_codes() -> list[str]:
    """The 202 NLLB-200 language codes, in the order of the real tokenizer."""
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    return list(FAIRSEQ_LANGUAGE_CODES)


def write_nllb_tokenizer_config(out_dir: str | Path, src_lang: str = "eng_Latn") -> None:
    """The file that keeps the language codes: without it `NllbTokenizer.from_pretrained(dir)`
    over a bare sentencepiece.bpe.model maps fra_Latn to <unk>."""
    config = {"tokenizer_class": "NllbTokenizer", "src_lang": src_lang, "legacy_behaviour": False,
              "additional_special_tokens": language_codes()}
    Path(out_dir, "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")


def build_tiny_nllb(out_dir: str | Path, texts: Sequence[str] | None = None, *, vocab_size: int = 2000,
                    d_model: int = 64, layers: int = 2, heads: int = 4, ffn_dim: int = 128,
                    max_position_embeddings: int = 1024, seed: int = 0) -> Path:
    """Save a random-weight M2M100 with an NLLB tokenizer to `out_dir` (Hugging Face format)."""
    import torch
    from transformers import AutoTokenizer, M2M100Config, M2M100ForConditionalGeneration

    from crest import hub
    from crest.tiny import sample_texts, train_sentencepiece

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_sentencepiece(texts or sample_texts(), out_dir / "sentencepiece.bpe", vocab_size, model_type="bpe",
                        user_defined_symbols=PUNCTUATION_SYMBOLS)
    (out_dir / "sentencepiece.bpe.vocab").unlink(missing_ok=True)
    write_nllb_tokenizer_config(out_dir)
    tokenizer = hub.from_pretrained(AutoTokenizer, out_dir)
    codes = language_codes()
    ids = tokenizer.convert_tokens_to_ids(codes)
    if tokenizer.unk_token_id in ids:
        raise RuntimeError(f"{out_dir}: the tokenizer lost the NLLB language codes")
    config = M2M100Config(
        vocab_size=len(tokenizer), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim, max_position_embeddings=max_position_embeddings, scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config).eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    provenance = {"random_weights": True, "builder": "crest.translate.tiny.build_tiny_nllb",
                  "note": "random weights: translations from this model are noise",
                  "params": {"vocab_size": len(tokenizer), "d_model": d_model, "layers": layers, "heads": heads,
                             "ffn_dim": ffn_dim, "seed": seed}}
    (out_dir / "crest.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return out_dir
