"""Sentence embeddings from an XLM-R encoder: mean pooling over the attention mask, at one or
several hidden layers.

Throughput comes from doing little work per token rather than from tricks:
- all texts are tokenized once up front (the fast tokenizer, one call), then sorted by token
  length, so a batch holds texts of similar length and is padded only to its own longest
  (dynamic padding) — rounded up to a multiple of 8 on GPU, so a handful of shapes recur;
- a batch is capped by a number of texts *and* a token budget (texts x padded length), so short
  texts go in large batches and long ones in small batches; on CPU the budget is at most
  CPU_MAX_TOKENS (2,048): a profile found 8k-token batches page-faulting fresh activation memory
  on every forward (docs/performance.md), where 2k-token batches reuse it and do less padding;
- on GPU the weights are cast to fp16 (or bf16) once, inputs are pinned and copied
  asynchronously; on CPU the model runs in fp32;
- pooling happens on the device in fp32, and only the pooled vectors leave it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crest import hub

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16")
CPU_MAX_TOKENS = 2048  # padded tokens per CPU batch: activations stay in reused heap memory


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("embed: device 'cuda' requested but no CUDA device is available")
    return device


def resolve_dtype(dtype: str, device: str):
    """auto: fp16 on GPU (bf16 if asked), fp32 on CPU (half precision on CPU is slow and lossy)."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"embed: dtype {dtype!r} is not one of {DTYPES}")
    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


@dataclass
class Batch:
    index: np.ndarray  # positions in the input
    length: int  # padded length


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None,
                 multiple_of: int = 1) -> list[Batch]:
    """Length-sorted batches (longest first, so memory peaks early) of at most `batch_size` texts
    and at most `max_tokens` padded tokens each; the padded length is rounded up to `multiple_of`."""
    if batch_size < 1:
        raise ValueError("embed: batch_size must be >= 1")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[Batch] = []
    start = 0
    while start < len(order):
        longest = int(math.ceil(lengths[order[start]] / multiple_of) * multiple_of)
        cap = batch_size if not max_tokens else max(1, min(batch_size, max_tokens // max(longest, 1)))
        idx = order[start:start + cap]
        batches.append(Batch(idx, longest))
        start += len(idx)
    return batches


def normalise_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """Layer indices as hidden_states positions 0..num_layers (0 = embeddings, -1 = last)."""
    out = []
    for layer in layers:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(f"embed: layer {layer} out of range for a {num_layers}-layer model "
                             f"(0 = embeddings, 1..{num_layers}, or negative from the last)")
        out.append(layer % (num_layers + 1))
    return out


class Encoder:
    """A Hugging Face encoder + tokenizer, ready to embed lists of texts."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", max_length: int = 128,
                 prefix: str = ""):
        from transformers import AutoModel, AutoTokenizer

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = hub.from_pretrained(AutoTokenizer, model)
        kwargs = {"add_pooling_layer": False} if _has_pooler_arg(model) else {}
        self.model = hub.from_pretrained(AutoModel, model, dtype=self.dtype, **kwargs).to(self.device).eval()
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.dim = int(self.model.config.hidden_size)
        limit = getattr(self.model.config, "max_position_embeddings", 514) - 2
        self.max_length = min(max_length, limit)
        self.prefix = prefix
        self.name = model

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer([self.prefix + t for t in texts], truncation=True, max_length=self.max_length,
                             add_special_tokens=True)
        return enc["input_ids"]

    def encode(self, texts: Sequence[str], layers: Sequence[int] = (-1,), batch_size: int = 64,
               max_tokens: int | None = None, progress: bool = True) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """{layer: (n, dim) float32 mean-pooled embeddings} in input order, and token counts."""
        import torch
        from tqdm.auto import tqdm

        wanted = normalise_layers(layers, self.num_layers)
        ids = self.tokenize(texts)
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        on_gpu = self.device.startswith("cuda")
        if not on_gpu:
            max_tokens = min(max_tokens or CPU_MAX_TOKENS, CPU_MAX_TOKENS)
        batches = plan_batches(lengths, batch_size, max_tokens, multiple_of=8 if on_gpu else 1)
        out = {layer: np.zeros((len(ids), self.dim), dtype=np.float32) for layer in wanted}
        pad = self.tokenizer.pad_token_id
        need_all = wanted != [self.num_layers]
        bar = tqdm(total=len(ids), desc=f"embed {len(ids)} texts", unit="text", disable=not progress,
                   mininterval=2.0)
        with torch.inference_mode():
            for batch in batches:
                input_ids = torch.full((len(batch.index), batch.length), pad, dtype=torch.long)
                mask = torch.zeros((len(batch.index), batch.length), dtype=torch.long)
                for row, i in enumerate(batch.index):
                    input_ids[row, :lengths[i]] = torch.as_tensor(ids[i])
                    mask[row, :lengths[i]] = 1
                if on_gpu:
                    input_ids = input_ids.pin_memory().to(self.device, non_blocking=True)
                    mask = mask.pin_memory().to(self.device, non_blocking=True)
                result = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=need_all)
                weights = mask.unsqueeze(-1).float()
                denom = weights.sum(1).clamp(min=1.0)
                for layer in wanted:
                    hidden = result.hidden_states[layer] if need_all else result.last_hidden_state
                    pooled = (hidden.float() * weights).sum(1) / denom
                    out[layer][batch.index] = pooled.cpu().numpy()
                bar.update(len(batch.index))
        bar.close()
        return out, lengths


def _has_pooler_arg(model: str) -> bool:
    """BERT-family models take `add_pooling_layer`; crest never uses the pooler, so skip it."""
    from transformers import AutoConfig

    return hub.from_pretrained(AutoConfig, model).model_type in {"xlm-roberta", "roberta", "bert", "camembert"}
