"""Evaluation sets encoded once for every model that shares a frozen encoder.

Models trained with `optim.freeze_encoder` (the CPU demo's recipe) differ only in their
classification head, so scoring each of them on every set repeats the same encoder pass. Rule
`eval_features` runs the encoder once per set (`Guard.window_features`: the same windows as
`Guard.score`) and writes `{benchmark}/{lang}.npz`; `FeatureScorer` then scores a model from
those features with its own head (`Guard.score_features`). Each file records a digest of the
encoder's weights, and a model whose encoder differs is refused: cached features can never stand
in for another encoder.

Here, beside the Guard it reads, so the training stage (the frozen-encoder trainer's digest and
calibration) and the evaluation stage share it without one importing the other.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crest.io import atomic_path

log = logging.getLogger(__name__)


def encoder_digest(model: Any, top_layers: int = 0) -> str:
    """sha256 over the encoder's (base model's) tensors, by name: equal iff the weights are. With
    `top_layers` (crest.guard.toplayer), the frozen part only: the top layers a model trained are
    its own, and the features are their input."""
    n = len(model.base_model.encoder.layer)
    own = tuple(f"encoder.layer.{i}." for i in range(n - top_layers, n)) if top_layers else ()
    h = hashlib.sha256()
    if top_layers:
        h.update(f"top_layers={top_layers}".encode())
    for name, tensor in sorted(model.base_model.state_dict().items()):
        if own and name.startswith(own):
            continue
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def feature_path(out_dir: str | Path, set_key: str) -> Path:
    return Path(out_dir) / f"{set_key}.npz"


def write_set_features(guard: Any, sets: dict[str, Sequence[str]], out_dir: str | Path) -> dict[str, int]:
    """Encode each set's texts (set key -> texts) and write `{key}.npz`; returns windows per set."""
    top = getattr(guard, "top_layers", 0)
    digest = encoder_digest(guard.model, top)
    counts = {}
    for key, texts in sets.items():
        feats, owner = guard.window_features(list(texts))
        extra = {}
        if top:  # every token's input to the trained layer: stacked, with offsets (no pickles)
            from crest.guard.toplayer import flatten

            feats, extra["offsets"] = flatten(feats, guard.model.config.hidden_size)
        path = feature_path(out_dir, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, feats=feats, owner=owner, top_layers=np.asarray(top), **extra, texts=np.asarray(list(texts), dtype=object).astype(str),
                     digest=np.asarray(digest), max_length=np.asarray(guard.max_length), stride=np.asarray(guard.stride))
        counts[key] = int(len(owner))
    return counts


def _by_text(feats: np.ndarray | list[np.ndarray], owner: np.ndarray, n_texts: int) -> list[tuple[Any, np.ndarray]]:
    """Each text's window features (and a zero owner per window), grouped in one pass; features are
    an array (one row per window) or, for a model with a trained top layer, a list (one per window)."""
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n_texts + 1))
    pick = (lambda idx: feats[idx]) if isinstance(feats, np.ndarray) else (lambda idx: [feats[j] for j in idx])
    return [(pick(order[bounds[i]:bounds[i + 1]]), np.zeros(bounds[i + 1] - bounds[i], dtype=np.int64))
            for i in range(n_texts)]


class FeatureScorer:
    """`.score(texts)` for a model whose encoder produced the features in `features_dir`: its head
    on the cached windows; texts not cached (none, in a pipeline run) go through the encoder."""

    def __init__(self, guard: Any, features_dir: str | Path | None = None) -> None:
        self.guard = guard
        self.features_dir = Path(features_dir) if features_dir is not None else None
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.hits = self.misses = 0

    @functools.cached_property
    def top_layers(self) -> int:
        return getattr(self.guard, "top_layers", 0)

    @functools.cached_property
    def digest(self) -> str:
        return encoder_digest(self.guard.model, self.top_layers)

    def add(self, texts: Sequence[str], feats: np.ndarray | Sequence[np.ndarray]) -> None:
        """Cache texts that fit one window, with the feature of that window (made by this model's
        encoder from the same ids, e.g. the frozen-encoder trainer's: `calibrate_exported`)."""
        one = (lambda f: [f]) if self.top_layers else (lambda f: f[None, :])
        self.cache.update((t, (one(f), np.zeros(1, dtype=np.int64))) for t, f in zip(texts, feats, strict=True))

    def load(self, set_key: str) -> None:
        """Index one set's features by text (the sets a job scores, not the whole folder)."""
        if self.features_dir is None:
            raise ValueError("this scorer was given no features directory")
        path = feature_path(self.features_dir, set_key)
        with np.load(path, allow_pickle=False) as z:
            if str(z["digest"]) != self.digest:
                raise ValueError(f"{path}: features of another encoder (weights digest {z['digest']}, this model's "
                                 f"encoder {self.digest}); rebuild them (rule eval_features)")
            if int(z["max_length"]) != self.guard.max_length or int(z["stride"]) != self.guard.stride:
                raise ValueError(f"{path}: windows of max_length {int(z['max_length'])}/stride {int(z['stride'])}, "
                                 f"the model scores {self.guard.max_length}/{self.guard.stride}")
            top = int(z["top_layers"]) if "top_layers" in z.files else 0
            if top != self.top_layers:
                raise ValueError(f"{path}: features for {top} trained top layer(s), the model trained "
                                 f"{self.top_layers} (crest_guard.json trained_top_layers)")
            feats, owner, texts = z["feats"], z["owner"], z["texts"]
            if top:
                from crest.guard.toplayer import unflatten

                feats = unflatten(feats, z["offsets"])
        self.cache.update(zip(texts.tolist(), _by_text(feats, owner, len(texts)), strict=True))

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            feats, owner = self.guard.window_features(missing)
            self.cache.update(zip(missing, _by_text(feats, owner, len(missing)), strict=True))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        parts = [self.cache[t] for t in texts]
        if self.top_layers:
            feats = [f for p in parts for f in p[0]]
        else:
            feats = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 0), np.float32)
        owner = np.concatenate([np.full(len(p[1]), i, dtype=np.int64) for i, p in enumerate(parts)]) if parts \
            else np.zeros(0, np.int64)
        return self.guard.score_features(feats, owner, len(texts))

    def describe(self) -> dict[str, Any]:
        return {"features": str(self.features_dir), "encoder_digest": self.digest,
                "cached_texts": self.hits, "encoded_texts": self.misses}
