"""Tiny real models for tests and the offline demo: random weights, real architectures, a real
SentencePiece tokenizer trained here. Never a stub: every stage runs its true code path on them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from babel import Locale

# Locales whose CLDR names give a tokenizer Latin, Cyrillic, Arabic, Devanagari, Han and Thai text.
SAMPLE_LOCALES = ("en", "de", "es", "fr", "ru", "ar", "hi", "zh", "th", "sw", "tl", "vi")


def sample_texts(locales: Sequence[str] = SAMPLE_LOCALES, per_locale: int = 300) -> list[str]:
    """Offline multilingual text: CLDR language and territory names shipped inside `babel`."""
    texts: list[str] = []
    for code in locales:
        loc = Locale.parse(code)
        names = list(loc.territories.values()) + list(loc.languages.values())
        texts.extend(names[:per_locale])
    return texts


def train_sentencepiece(texts: Iterable[str], out_prefix: str | Path, vocab_size: int,
                        model_type: str = "unigram", user_defined_symbols: Sequence[str] = (),
                        character_coverage: float = 0.995) -> Path:
    """Train a SentencePiece model with the fairseq special-token layout XLM-R and NLLB use
    (<s>=0, <pad>=1, </s>=2, <unk>=3); returns the .model path."""
    import sentencepiece as spm

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GLOG_minloglevel", "2")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_prefix=str(out_prefix), vocab_size=vocab_size,
        model_type=model_type, bos_id=0, pad_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False,
        character_coverage=character_coverage, user_defined_symbols=list(user_defined_symbols), minloglevel=2,
    )
    return Path(f"{out_prefix}.model")


def xlmr_tokenizer(spm_model: str | Path):
    """An XLM-R tokenizer over a SentencePiece unigram model (pieces and scores, ids as in the
    model, <mask> appended), as XLM-R itself is built."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return XLMRobertaTokenizer(vocab=vocab)


def deberta_v2_tokenizer(texts: Iterable[str], out_prefix: str | Path, vocab_size: int = 1000):
    """A DeBERTa-v2/v3 tokenizer (the kind ProtectAI's deberta-v3 and Prompt Guard's mDeBERTa use): a
    SentencePiece unigram model with DeBERTa's special-token layout ([PAD]=0, [CLS]=1, [SEP]=2,
    [UNK]=3, [MASK] appended), encoding `[CLS] text [SEP]`."""
    import sentencepiece as spm
    from transformers import DebertaV2Tokenizer

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GLOG_minloglevel", "2")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_prefix=str(out_prefix), vocab_size=vocab_size, model_type="unigram",
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]",
        unk_piece="[UNK]", hard_vocab_limit=False, character_coverage=0.995, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=f"{out_prefix}.model")
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return DebertaV2Tokenizer(vocab=vocab, unk_id=3)


def build_tiny_deberta_classifier(out_dir: str | Path, id2label: dict[int, str], texts: Sequence[str] | None = None, *,
                                  vocab_size: int = 1000, hidden_size: int = 32, num_layers: int = 2,
                                  num_heads: int = 2, intermediate_size: int = 64, seed: int = 0) -> Path:
    """Save a random-weight DebertaV2ForSequenceClassification (the class of ProtectAI's deberta-v3
    and Llama Prompt Guard 2) with a DeBERTa-v2 tokenizer and the given id2label to `out_dir`."""
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = deberta_v2_tokenizer(texts or sample_texts(), out_dir / "spm", vocab_size)
    tokenizer.model_max_length = 512
    config = DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size, max_position_embeddings=512,
        relative_attention=True, position_buckets=256, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0, pad_token_id=tokenizer.pad_token_id,
        num_labels=len(id2label), id2label=dict(id2label), label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    DebertaV2ForSequenceClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    for leftover in (out_dir / "spm.model", out_dir / "spm.vocab"):
        leftover.unlink(missing_ok=True)
    return out_dir


def build_tiny_xlmr(out_dir: str | Path, texts: Sequence[str] | None = None, *, vocab_size: int = 1000,
                    hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 64,
                    max_position_embeddings: int = 514, num_labels: int | None = None, seed: int = 0,
                    extra_symbols: Sequence[str] = ()) -> Path:
    """Save a random-weight XLM-R (an encoder, or a sequence classifier when `num_labels` is set)
    with its tokenizer to `out_dir`, loadable by `from_pretrained`. `extra_symbols` become single
    vocabulary pieces (a test can plant one as a trigger)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spm_model = train_sentencepiece(texts or sample_texts(), out_dir / "sentencepiece.bpe", vocab_size,
                                    user_defined_symbols=extra_symbols)
    tokenizer = xlmr_tokenizer(spm_model)
    tokenizer.model_max_length = max_position_embeddings - 2
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    if num_labels is None:
        model = XLMRobertaModel(config)
    else:
        config.num_labels = num_labels
        if num_labels == 2:
            config.id2label, config.label2id = {0: "safe", 1: "unsafe"}, {"safe": 0, "unsafe": 1}
        model = XLMRobertaForSequenceClassification(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "sentencepiece.bpe.vocab").unlink(missing_ok=True)
    return out_dir


def byte_level_bpe(texts: Iterable[str], *, specials: Sequence[str], vocab_size: int = 2000,
                   bos_token: str | None = None, eos_token: str | None = None, pad_token: str | None = None,
                   chat_template: str | None = None, prepend_bos: bool = False):
    """A byte-level BPE tokenizer (the kind Llama 3 and Qwen use) trained on `texts`, with `specials`
    as special tokens; `prepend_bos` adds bos to every encoding as Llama 3's post-processor does.
    Returns a PreTrainedTokenizerFast (save it with save_pretrained)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    if prepend_bos and bos_token:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B",
            special_tokens=[(bos_token, tok.token_to_id(bos_token))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos_token, eos_token=eos_token,
                                   pad_token=pad_token)
    if chat_template:
        fast.chat_template = chat_template
    return fast
