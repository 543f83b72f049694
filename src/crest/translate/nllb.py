"""NLLB-200 through CTranslate2: the input format, tokenisation, length-sorted token batching
and decoding of segments, with one translator object per model directory.

The format (the NLLB paper, section 6.1.1, and transformers' NLLB tokenizer since 4.30): the
source is `[src_lang] pieces </s>`, the decoder is forced to start with `[tgt_lang]` (CTranslate2
`target_prefix`, HF `forced_bos_token_id`), and the hypothesis starts with that code, which is
stripped. `nllb_format` is the one place this is written down.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

EOS = "</s>"
UNK = "<unk>"
NLLB_CODE_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
TOKENIZER_SUBDIR = "tokenizer"
PROVENANCE_FILE = "crest.json"


def nllb_format(pieces: Sequence[str], src_code: str, tgt_code: str) -> tuple[list[str], list[str]]:
    """CTranslate2 inputs for one segment: (source tokens, target prefix)."""
    if not NLLB_CODE_RE.match(src_code) or not NLLB_CODE_RE.match(tgt_code):
        raise ValueError(f"not NLLB language codes: {src_code!r} -> {tgt_code!r} (expected e.g. 'fra_Latn')")
    return [src_code, *pieces, EOS], [tgt_code]


def strip_target(hypothesis: Sequence[str], tgt_code: str) -> list[str]:
    """A hypothesis without the forced target-language token (and a stray end token)."""
    out = list(hypothesis)
    if out and out[0] == tgt_code:
        out = out[1:]
    if out and out[-1] == EOS:
        out = out[:-1]
    return out


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when CTranslate2 sees a GPU, else `cpu`."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


@dataclass(frozen=True)
class DecodeOptions:
    """How segments are batched and decoded (the `translate:` config keys of the same names)."""

    beam_size: int = 4
    max_batch_tokens: int = 8192
    """Source tokens per batch, padding included (batch size x longest segment)."""
    max_batch_examples: int = 0
    """Also cap the number of segments per batch (0: no cap)."""
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    max_length_ratio: float = 2.0
    """Decoding stops at ratio x longest source in the batch + extra tokens: a looping output
    is cut there and flagged (`length_cap` in QC), never passed on silently."""
    max_length_extra: int = 16
    max_decoding_length: int = 512
    max_segment_tokens: int = 200
    """Texts longer than this (source pieces) are split into sentences (crest.translate.segment)."""
    suppress_language_tokens: bool = True
    """Never generate a language code after the forced target prefix."""
    min_decoding_length: int = 1
    """Generated tokens at least (benchmarks set it to the cap to force equal output lengths)."""

    @classmethod
    def from_config(cls, section: dict) -> DecodeOptions:
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})

    def as_dict(self) -> dict:
        return asdict(self)


def make_batches(lengths: Sequence[int], max_tokens: int, max_examples: int = 0) -> list[list[int]]:
    """Indices grouped into batches, longest first, each within `max_tokens` padded tokens
    (count x longest) and `max_examples` items (0: no limit). An item longer than the budget
    is a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * longest > max_tokens
                        or (max_examples and len(current) >= max_examples)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def decoding_cap(longest_source: int, options: DecodeOptions) -> int:
    """Maximum generated tokens for a batch whose longest source has `longest_source` pieces."""
    cap = math.ceil(options.max_length_ratio * longest_source) + options.max_length_extra
    return max(1, min(cap, options.max_decoding_length))


@dataclass
class SegmentOutput:
    """Translations of a list of segments, in input order."""

    pieces: list[list[str]] = field(default_factory=list)
    capped: list[bool] = field(default_factory=list)
    """True where decoding stopped at the length cap instead of the end token."""


def load_provenance(model_dir: str | Path) -> dict:
    path = Path(model_dir) / PROVENANCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class NllbTranslator:
    """A converted NLLB model (a directory written by `crest.translate.convert.convert_model`):
    CTranslate2 weights plus the Hugging Face tokenizer in `tokenizer/`."""

    def __init__(self, model_dir: str | Path, *, device: str = "auto", device_index: int | Sequence[int] = 0,
                 compute_type: str = "default", inter_threads: int = 1, intra_threads: int = 0) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"{self.model_dir}: not a CTranslate2 model directory (no model.bin)")
        # The saved fast tokenizer alone (tokenizers, no transformers/torch import: jobs start in
        # a fraction of the time); it is the backend of transformers' NllbTokenizer.
        tok_file = self.model_dir / TOKENIZER_SUBDIR / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"{tok_file} not found: convert the model with `crest translate convert`")
        self._backend = Tokenizer.from_file(str(tok_file))
        self._vocab = self._backend.get_vocab(with_added_tokens=True)
        self._unk = self._vocab.get(UNK, 3)
        self.language_tokens = sorted(t for t in self._vocab if NLLB_CODE_RE.match(t))
        if not self.language_tokens:
            raise ValueError(f"{tok_file}: the tokenizer has no NLLB language codes (fra_Latn, ...); "
                             "a tokenizer_config.json listing them as additional_special_tokens is missing")
        self.device = resolve_device(device)
        index = list(device_index) if isinstance(device_index, Sequence) else [device_index]
        self.translator = ctranslate2.Translator(str(self.model_dir), device=self.device, device_index=index,
                                                 compute_type=compute_type, inter_threads=inter_threads,
                                                 intra_threads=intra_threads)
        self.provenance = load_provenance(self.model_dir)
        log.info("loaded %s on %s%s (compute type %s)", self.model_dir, self.device, index,
                 self.translator.compute_type)

    @property
    def is_random(self) -> bool:
        """True for a random-weight model (tiny-nllb): its output is noise."""
        return bool(self.provenance.get("random_weights", False))

    def check_language(self, code: str) -> None:
        if code not in self._vocab:
            raise ValueError(f"language code {code!r} is not in the vocabulary of {self.model_dir}")

    # -- tokenisation -------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """SentencePiece pieces of each text, no special tokens."""
        if not texts:
            return []
        return [e.tokens for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]

    def detokenize(self, pieces: Sequence[Sequence[str]]) -> list[str]:
        vocab, unk = self._vocab, self._unk
        ids = [[vocab.get(p, unk) for p in seq] for seq in pieces]
        return self._backend.decode_batch(ids, skip_special_tokens=True) if ids else []

    # -- decoding -----------------------------------------------------------------------------
    # translate() = collect(submit(prepare(...))). The three steps are public so that a caller can
    # prepare the next chunk (tokenisation, segmentation: CPU work) while the device decodes the
    # current one; crest.translate.shard does exactly that.
    def prepare(self, texts: Sequence[str], src_codes: str | Sequence[str], tgt_codes: str | Sequence[str],
                options: DecodeOptions) -> Prepared:
        """Tokenise `texts`, split the long ones into segments. `src_codes` / `tgt_codes`: one NLLB
        code for all texts, or one per text (mixed languages may share a batch)."""
        from crest.translate.segment import plan_segments

        texts = list(texts)
        n = len(texts)
        src = _per_text(src_codes, n, "src_codes")
        tgt = _per_text(tgt_codes, n, "tgt_codes")
        for code in set(src) | set(tgt):
            self.check_language(code)
        text_pieces = self.tokenize(texts)
        plan = plan_segments(texts, self.count_tokens, options.max_segment_tokens,
                             counts=[len(p) for p in text_pieces])
        split = [s for s, whole in enumerate(plan.whole) if not whole]
        split_pieces = dict(zip(split, self.tokenize([plan.segments[s] for s in split])))
        seg_pieces = [text_pieces[plan.owner[s]] if plan.whole[s] else split_pieces[s]
                      for s in range(len(plan.segments))]
        return Prepared(plan=plan, pieces=seg_pieces, src=[src[o] for o in plan.owner],
                        tgt=[tgt[o] for o in plan.owner], text_tgt=tgt, src_tokens=[len(p) for p in text_pieces])

    def submit(self, prepared: Prepared, options: DecodeOptions) -> Submitted:
        """Queue every segment for decoding, in length-sorted token batches, asynchronously: the
        device works through the queue while Python goes on."""
        pieces = prepared.pieces
        batches = make_batches([len(p) + 2 for p in pieces],  # + source code and </s>
                               options.max_batch_tokens, options.max_batch_examples)
        suppress = [[t] for t in self.language_tokens] if options.suppress_language_tokens else None
        queued = []
        for batch in batches:
            sources, prefixes = zip(*(nllb_format(pieces[i], prepared.src[i], prepared.tgt[i]) for i in batch))
            cap = decoding_cap(max(len(pieces[i]) for i in batch), options)
            futures = self.translator.translate_batch(
                list(sources), list(prefixes), asynchronous=True,
                max_batch_size=options.max_batch_tokens, batch_type="tokens",
                beam_size=options.beam_size, length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty, no_repeat_ngram_size=options.no_repeat_ngram_size,
                max_input_length=0,  # never truncate: segmentation already bounded the inputs
                max_decoding_length=cap + 1,  # + the target-language prefix token
                min_decoding_length=min(options.min_decoding_length, cap) + 1,
                suppress_sequences=suppress,
            )
            queued.append((batch, cap, futures))
        return Submitted(prepared=prepared, queued=queued)

    def collect_segments(self, submitted: Submitted, progress: Callable[[int], None] | None = None) -> SegmentOutput:
        """Wait for the decoded segments (batch by batch, in submission order)."""
        tgt = submitted.prepared.tgt
        n = len(tgt)
        out = SegmentOutput(pieces=[[] for _ in range(n)], capped=[False] * n)
        for batch, cap, futures in submitted.queued:
            for i, future in zip(batch, futures):
                hyp = future.result().hypotheses[0]
                if not hyp or hyp[0] != tgt[i]:
                    raise RuntimeError(f"hypothesis without the target prefix {tgt[i]}: {hyp[:5]}")
                stripped = strip_target(hyp, tgt[i])
                out.pieces[i] = stripped
                out.capped[i] = len(stripped) >= cap
            if progress is not None:
                progress(len(batch))
        return out

    def collect(self, submitted: Submitted, progress: Callable[[int], None] | None = None) -> TextOutput:
        """Wait for the segments, detokenise, reassemble the texts."""
        from crest.translate.segment import joiner_for, reassemble

        prepared = submitted.prepared
        result = self.collect_segments(submitted, progress)
        seg_texts = self.detokenize(result.pieces)
        plan = prepared.plan
        n = len(plan.layout)
        out = TextOutput(texts=[""] * n, segments=plan.segments_per_text(), src_tokens=prepared.src_tokens,
                         out_tokens=[0] * n, capped=[False] * n)
        for s, owner in enumerate(plan.owner):
            out.out_tokens[owner] += len(result.pieces[s])
            out.capped[owner] |= result.capped[s]
        for i, lines in enumerate(plan.layout):
            out.texts[i] = reassemble(seg_texts, [lines], joiner_for(prepared.text_tgt[i].split("_")[1]))[0]
        return out

    def translate_pieces(self, pieces: Sequence[Sequence[str]], src_codes: Sequence[str], tgt_codes: Sequence[str],
                         options: DecodeOptions, progress: Callable[[int], None] | None = None) -> SegmentOutput:
        """Translate already tokenised segments, each with its own source and target code."""
        for code in set(src_codes) | set(tgt_codes):
            self.check_language(code)
        prepared = Prepared(plan=None, pieces=list(pieces), src=list(src_codes), tgt=list(tgt_codes), text_tgt=[],
                            src_tokens=[])
        return self.collect_segments(self.submit(prepared, options), progress)

    def translate(self, texts: Sequence[str], src_codes: str | Sequence[str], tgt_codes: str | Sequence[str],
                  options: DecodeOptions, progress: Callable[[int], None] | None = None) -> TextOutput:
        """Translate whole texts: segment the long ones, translate every segment, reassemble."""
        return self.collect(self.submit(self.prepare(texts, src_codes, tgt_codes, options), options), progress)


@dataclass
class Prepared:
    """Texts tokenised and segmented, ready to submit."""

    plan: object
    pieces: list[list[str]]
    src: list[str]
    """Per segment."""
    tgt: list[str]
    text_tgt: list[str]
    """Per text."""
    src_tokens: list[int]


@dataclass
class Submitted:
    prepared: Prepared
    queued: list


@dataclass
class TextOutput:
    """Translations of whole texts, in input order, with per-text counts."""

    texts: list[str]
    segments: list[int]
    src_tokens: list[int]
    out_tokens: list[int]
    capped: list[bool]


def _per_text(codes: str | Sequence[str], n: int, name: str) -> list[str]:
    if isinstance(codes, str):
        return [codes] * n
    codes = list(codes)
    if len(codes) != n:
        raise ValueError(f"{name}: {len(codes)} codes for {n} texts")
    return codes
