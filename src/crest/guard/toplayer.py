"""A classifier whose encoder's last layer was trained with the head, scored from cached inputs.

The frozen-encoder recipe (crest.train.frozen) trains the classification head on the first token's
last-layer state, computed once per text. `optim.unfreeze_top_layers: 1` also trains the encoder's
last layer: the cached feature is then that layer's *input*, every token of the window (float16),
and the trainable part is the last layer plus the head. The head reads position 0 only, and in the
last layer position 0 depends on the other positions only through their keys and values, so
`first_token_state` computes the layer's output at position 0 alone (its query, attention over
every key, the feed-forward of one position): the same number the full model gives, at a fraction
of a full layer's cost. The exported model is a plain `XLMRobertaForSequenceClassification`;
`crest_guard.json` records `trained_top_layers` so that cached features are read as inputs to the
last layer and only features of the frozen layers below it are accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TOP_KEY = "trained_top_layers"
SUPPORTED = (0, 1)


def check_top_layers(value: Any) -> int:
    """The number of trained top layers: 0 (the head only) or 1 (the last layer too)."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in SUPPORTED:
        raise ValueError(f"trained top layers must be one of {SUPPORTED} (0: the head only, 1: the last encoder "
                         f"layer too), got {value!r}")
    return value


def top_layer_params(model: Any, top_layers: int) -> list[tuple[str, Any]]:
    """(name, parameter) of the encoder's top `top_layers` layers."""
    if not top_layers:
        return []
    n = len(model.base_model.encoder.layer)
    prefixes = tuple(f"encoder.layer.{i}." for i in range(n - top_layers, n))
    return [(n_, p) for n_, p in model.base_model.named_parameters() if n_.startswith(prefixes)]


def layer_inputs(model: Any, input_ids, attention_mask, top_layers: int):
    """The hidden states entering the top `top_layers` layers, (batch, tokens, hidden)."""
    out = model.base_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.hidden_states[-1 - top_layers]


def first_token_state(layer: Any, hidden, mask):
    """An XLM-R encoder layer's output at position 0 (batch, 1, hidden), from its input `hidden`
    (batch, tokens, hidden) and the 0/1 attention `mask` (batch, tokens): the layer's own modules
    (dropout included when training), for the one position the classification head reads."""
    import torch

    att = layer.attention.self
    b, t, h = hidden.shape
    heads = att.num_attention_heads
    d = h // heads
    q = att.query(hidden[:, :1]).view(b, 1, heads, d).transpose(1, 2)
    k = att.key(hidden).view(b, t, heads, d).transpose(1, 2)
    v = att.value(hidden).view(b, t, heads, d).transpose(1, 2)
    bias = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(mask == 0, float("-inf"))
    scores = (q @ k.transpose(-1, -2)) * att.scaling + bias[:, None, None, :]
    probs = torch.nn.functional.dropout(scores.softmax(-1), p=att.dropout.p, training=layer.training)
    ctx = (probs @ v).transpose(1, 2).reshape(b, 1, h)
    attended = layer.attention.output(ctx, hidden[:, :1])
    return layer.output(layer.intermediate(attended), attended)


def pack(seqs: Sequence[np.ndarray], device=None, dtype=None):
    """Pad variable-length (tokens, hidden) arrays into (batch, tokens, hidden) and a 0/1 mask."""
    import torch

    t = max(len(s) for s in seqs)
    x = np.zeros((len(seqs), t, seqs[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(seqs), t), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return (torch.from_numpy(x).to(device=device, dtype=dtype or torch.float32),
            torch.from_numpy(mask).to(device=device))


def top_logits(model: Any, seqs: Sequence[np.ndarray], device=None):
    """The classifier's logits from cached inputs to its last layer (trained_top_layers 1)."""
    dtype = next(model.classifier.parameters()).dtype
    hidden, mask = pack(seqs, device, dtype)
    return model.classifier(first_token_state(model.base_model.encoder.layer[-1], hidden, mask))


def flatten(seqs: Sequence[np.ndarray], hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(all tokens stacked, float16; offsets (len(seqs)+1)) for an .npz file without pickles."""
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.concatenate([np.asarray(s, dtype=np.float16) for s in seqs]) if seqs \
        else np.zeros((0, hidden), dtype=np.float16)
    return flat, offsets


def unflatten(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
