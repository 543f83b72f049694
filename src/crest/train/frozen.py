"""The frozen-encoder recipe: train the classification head only, on features computed once.

With `optim.freeze_encoder: true` every encoder weight stays as loaded, so the head's input for a
text (the last layer's first-token state, what `XLMRobertaClassificationHead` reads) is the same at
every step. Computing it once per text and stepping only the head turns a CPU run of hundreds of
full forward/backward passes into one forward per text: the demo's recipe, which its model cards
state. The exported model is still a complete `...ForSequenceClassification` (frozen encoder +
trained head), scored like any other. Single process only: DDP gains nothing here.
"""

from __future__ import annotations

import numpy as np

from crest.train.batching import collate, eval_batches


def freeze_encoder(model) -> None:
    """Stop gradients to every weight but the classification head's."""
    for p in model.base_model.parameters():
        p.requires_grad_(False)


def head_features(model, ids: list[np.ndarray], pad_id: int, *, pad_to: int, batch_tokens: int,
                  max_batch_size: int, device, autocast) -> "torch.Tensor":
    """The encoder's last-layer state of each text's first token, (len(ids), 1, hidden), in the
    order of `ids`; the encoder runs in eval mode (no dropout: it is not being trained)."""
    import torch

    was_training = model.training
    model.eval()
    out = None
    with torch.no_grad(), autocast():
        for b in eval_batches(np.array([len(x) for x in ids]), batch_tokens, max_batch_size, pad_to):
            input_ids, mask = collate([ids[i] for i in b], pad_id, pad_to)
            hidden = model.base_model(input_ids=torch.from_numpy(input_ids).to(device),
                                      attention_mask=torch.from_numpy(mask).to(device)).last_hidden_state
            if out is None:
                out = torch.empty((len(ids), 1, hidden.shape[-1]), dtype=torch.float32, device=device)
            out[torch.from_numpy(b).to(device)] = hidden[:, :1].float()
    model.train(was_training)
    return out
