"""The frozen-encoder recipe: train the classification head only, on features computed once.

With `optim.freeze_encoder: true` every encoder weight stays as loaded, so the head's input for a
text (the last layer's first-token state, what `XLMRobertaClassificationHead` reads) is the same at
every step. Computing it once per text and stepping only the head turns a CPU run of hundreds of
full forward/backward passes into one forward per text: the demo's recipe, which its model cards
state. The exported model is still a complete `...ForSequenceClassification` (frozen encoder +
trained head), scored like any other. Single process only: DDP gains nothing here.

Arms that share the frozen encoder also share the features: rule `train_features` encodes the
union of every arm's texts once (`write_features`, split into parts by a hash of the text so the
parts run side by side), and each job reads them (`load_features`) instead of encoding its own
rows again; a file of another encoder or another `max_length` is refused. Checkpoints and the
best weights then hold the head only (`save_head`): the rest is the encoder as loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crest import hub
from crest.io import atomic_path
from crest.train.batching import collate, eval_batches, eval_limits

if TYPE_CHECKING:
    import torch

HEAD_FILE = "head.safetensors"


def freeze_encoder(model) -> None:
    """Stop gradients to every weight but the classification head's."""
    for p in model.base_model.parameters():
        p.requires_grad_(False)


def head_features(model, ids: list[np.ndarray], pad_id: int, *, pad_to: int, batch_tokens: int,
                  max_batch_size: int, device, autocast, top_layers: int = 0) -> "torch.Tensor | list[np.ndarray]":
    """The encoder's last-layer state of each text's first token, (len(ids), 1, hidden), in the
    order of `ids`; the encoder runs in eval mode (no dropout: it is not being trained). With
    `top_layers` 1 (crest.guard.toplayer), the last layer's input instead: one float16
    (tokens, hidden) array per text."""
    import torch

    was_training = model.training
    model.eval()
    out = None
    seqs: list[np.ndarray] = [np.zeros(0)] * len(ids)
    with torch.no_grad(), autocast():
        for b in eval_batches(np.array([len(x) for x in ids]), batch_tokens, max_batch_size, pad_to):
            input_ids, mask = collate([ids[i] for i in b], pad_id, pad_to)
            if top_layers:
                from crest.guard.toplayer import layer_inputs

                hidden = layer_inputs(model, torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device),
                                      top_layers).to(torch.float16).cpu().numpy()
                for j, i in enumerate(b):
                    seqs[i] = hidden[j, :len(ids[i])]
                continue
            hidden = model.base_model(input_ids=torch.from_numpy(input_ids).to(device),
                                      attention_mask=torch.from_numpy(mask).to(device)).last_hidden_state
            if out is None:
                out = torch.empty((len(ids), 1, hidden.shape[-1]), dtype=torch.float32, device=device)
            out[torch.from_numpy(b).to(device)] = hidden[:, :1].float()
    model.train(was_training)
    return seqs if top_layers else out


def feature_part(text: str, parts: int) -> int:
    """Which of `parts` feature files holds a text (stable across runs and machines)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % parts


def feature_texts(data_paths: Sequence[str | Path], part: int, parts: int) -> list[str]:
    """The distinct texts (train and validation rows) of the arms' data sets that fall in `part`."""
    import pandas as pd

    texts = set()
    for path in data_paths:
        texts.update(pd.read_parquet(path, columns=["text"])["text"].tolist())
    return sorted(t for t in texts if feature_part(t, parts) == part)


def encode_features(encoder: str, texts: Sequence[str], *, max_length: int, pad_to: int, batch_tokens: int | None,
                    max_batch_size: int, threads: int = 1, top_layers: int = 0) -> tuple[Any, str]:
    """Encode `texts` as the trainer would (its tokenisation, `head_features`): (len(texts), hidden)
    float32 features in the order of `texts` (with `top_layers` 1: a list of float16 (tokens, hidden)
    inputs to the last layer), and the weights digest of the encoder's frozen part."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from crest.guard.features import encoder_digest
    from crest.train.trainer import tokenize

    torch.set_num_threads(max(1, threads))
    tokenizer = hub.from_pretrained(AutoTokenizer, encoder)
    model = hub.from_pretrained(AutoModelForSequenceClassification, encoder, num_labels=2, attn_implementation="sdpa")
    ids = tokenize(tokenizer, list(texts), max_length)
    tokens, size = eval_limits(batch_tokens, max_batch_size)
    digest = encoder_digest(model, top_layers)
    if top_layers:
        seqs = head_features(model, ids, tokenizer.pad_token_id, pad_to=pad_to, batch_tokens=tokens,
                             max_batch_size=size, device="cpu", autocast=contextlib.nullcontext,
                             top_layers=top_layers) if ids else []
        return seqs, digest
    feats = head_features(model, ids, tokenizer.pad_token_id, pad_to=pad_to, batch_tokens=tokens, max_batch_size=size,
                          device="cpu", autocast=contextlib.nullcontext) \
        if ids else torch.zeros((0, 1, model.config.hidden_size))
    return feats[:, 0].numpy(), digest


def write_features(encoder: str, texts: Sequence[str], out: str | Path, *, max_length: int, pad_to: int,
                   batch_tokens: int | None, max_batch_size: int, threads: int = 1, top_layers: int = 0) -> int:
    """`encode_features` of `texts` written to `out` (.npz: texts, feats, the encoder's weights
    digest, max_length, top_layers; with top_layers the feats are every token's input to the
    trained layer, stacked, and offsets); returns the number of texts."""
    texts = list(texts)
    feats, digest = encode_features(encoder, texts, max_length=max_length, pad_to=pad_to, batch_tokens=batch_tokens,
                                    max_batch_size=max_batch_size, threads=threads, top_layers=top_layers)
    if top_layers:
        from crest.guard.toplayer import flatten

        flat, offsets = flatten(feats, feats[0].shape[1] if feats else 0)
        arrays = {"feats": flat, "offsets": offsets}
    else:
        arrays = {"feats": feats}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, texts=np.asarray(texts, dtype=object).astype(str), **arrays, top_layers=np.asarray(top_layers),
                 digest=np.asarray(digest), max_length=np.asarray(max_length))
    return len(texts)


def load_features(paths: Sequence[str | Path], digest: str, max_length: int, top_layers: int = 0) -> dict[str, np.ndarray]:
    """text -> head feature (hidden,) from `write_features` files (with `top_layers`: the trained
    layer's input, (tokens, hidden)), refusing any made by another encoder (weights digest), at
    another max_length or for another number of trained layers: cached features never stand in for
    others."""
    out: dict[str, np.ndarray] = {}
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            top = int(z["top_layers"]) if "top_layers" in z.files else 0
            if top != top_layers:
                raise ValueError(f"{path}: features for {top} trained top layer(s), training uses {top_layers} "
                                 "(optim.unfreeze_top_layers); rebuild them (rule train_features)")
            if str(z["digest"]) != digest:
                raise ValueError(f"{path}: features of another encoder (weights digest {z['digest']}, this model's "
                                 f"encoder {digest}); rebuild them (rule train_features)")
            if int(z["max_length"]) != max_length:
                raise ValueError(f"{path}: features at max_length {int(z['max_length'])}, training uses {max_length}")
            if top:
                from crest.guard.toplayer import unflatten

                out.update(zip(z["texts"].tolist(), unflatten(z["feats"], z["offsets"]), strict=True))
            else:
                out.update(zip(z["texts"].tolist(), z["feats"], strict=True))
    return out


def save_head(model: Any, directory: Path) -> None:
    """The trainable (head) tensors only: with the encoder frozen, the rest is the encoder as loaded."""
    from safetensors.torch import save_file

    save_file({n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad},
              directory / HEAD_FILE)


def load_head(model: Any, directory: Path) -> None:
    """Put `save_head`'s tensors back; every one must name a trainable parameter of `model`."""
    import torch
    from safetensors.torch import load_file

    if not (directory / HEAD_FILE).is_file() and (directory / "model.safetensors").is_file():
        model.load_state_dict(load_file(directory / "model.safetensors"))  # a whole model (older runs)
        return
    head = load_file(directory / HEAD_FILE)
    params = dict(model.named_parameters())
    unknown = sorted(set(head) - {n for n, p in params.items() if p.requires_grad})
    if unknown:
        raise ValueError(f"{directory / HEAD_FILE}: not trainable parameters of this model: {', '.join(unknown)}")
    with torch.no_grad():
        for name, tensor in head.items():
            params[name].copy_(tensor.to(params[name].device))
