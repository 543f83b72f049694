"""Length-bucketed batches for fine-tuning: dynamic padding without a new tensor shape every batch.

Each text's token count is rounded up to a multiple of `pad_to` (8 by default): its *bucket*.
Every batch holds texts of one bucket only and is padded to that bucket's length, so a run sees at
most `max_length / pad_to` distinct sequence lengths (a GPU pays a warm-up for every new shape).
Batch size per bucket comes from a token budget (`batch_tokens` padded tokens, at most
`max_batch_size` texts): short texts travel in big batches, long ones in small batches. With
`batch_tokens=None` every bucket uses `max_batch_size` (fixed-size, length-grouped batches).

An epoch's batches are a pure function of (seed, epoch): members are shuffled inside each bucket,
then the batch order is shuffled. Bucket sizes do not depend on the shuffle, so every epoch has the
same number of batches; a resumed run rebuilds the exact batches it was at. With `balance_labels`
the minority label of each bucket is resampled (with replacement, per epoch) up to the majority's
count, which again keeps the per-epoch count fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def bucket_lengths(lengths: np.ndarray, pad_to: int) -> np.ndarray:
    """Padded length of each text: its token count rounded up to a multiple of `pad_to`."""
    return (np.ceil(np.asarray(lengths) / pad_to) * pad_to).astype(np.int64)


@dataclass
class BucketBatcher:
    lengths: np.ndarray
    """Token count of each example (special tokens included, already truncated)."""
    batch_tokens: int | None = 16384
    max_batch_size: int = 256
    pad_to: int = 8
    seed: int = 0
    labels: np.ndarray | None = None
    balance_labels: bool = False

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if len(self.lengths) == 0:
            raise ValueError("no examples to batch")
        if self.balance_labels and self.labels is None:
            raise ValueError("balance_labels needs labels")
        padded = bucket_lengths(self.lengths, self.pad_to)
        self.buckets = {int(b): np.flatnonzero(padded == b) for b in np.unique(padded)}
        self.sizes = {b: self.batch_size(b) for b in self.buckets}
        self._n_batches = sum(math.ceil(self._bucket_count(m) / self.sizes[b]) for b, m in self.buckets.items())

    def batch_size(self, padded_length: int) -> int:
        if self.batch_tokens is None:
            return self.max_batch_size
        return max(1, min(self.max_batch_size, self.batch_tokens // padded_length))

    def _bucket_count(self, members: np.ndarray) -> int:
        if not self.balance_labels:
            return len(members)
        counts = np.bincount(self.labels[members], minlength=2)
        return 2 * int(counts.max()) if counts.min() > 0 else len(members)

    def __len__(self) -> int:
        return self._n_batches

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches (arrays of example indices), in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches: list[np.ndarray] = []
        for b, members in self.buckets.items():
            members = self._balanced(members, rng) if self.balance_labels else members
            members = rng.permutation(members)
            size = self.sizes[b]
            batches.extend(members[i:i + size] for i in range(0, len(members), size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _balanced(self, members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        by_label = [members[self.labels[members] == y] for y in (0, 1)]
        small, large = sorted(by_label, key=len)
        if len(small) == 0:
            return members
        extra = rng.choice(small, size=len(large) - len(small), replace=True)
        return np.concatenate([large, small, extra])


def shard_steps(batches: list[np.ndarray], world_size: int, grad_accum: int) -> list[list[list[np.ndarray]]]:
    """Group an epoch's batches into optimizer steps: steps[s][rank] is the list of `grad_accum`
    micro-batches that rank runs in step s. The list is padded by cycling its first batches so that
    every rank runs the same number of micro-batches (DDP needs that)."""
    per_step = world_size * grad_accum
    n_steps = math.ceil(len(batches) / per_step)
    padded = [batches[i % len(batches)] for i in range(n_steps * per_step)]
    return [[padded[s * per_step + r * grad_accum: s * per_step + (r + 1) * grad_accum] for r in range(world_size)]
            for s in range(n_steps)]


def eval_limits(batch_tokens: int | None, max_batch_size: int) -> tuple[int, int]:
    """(token budget, size cap) of an evaluation or encoding batch from the training ones: twice
    as large, since no activations are kept for a backward pass."""
    return 2 * (batch_tokens or 16384), 2 * max_batch_size


def eval_batches(lengths: np.ndarray, batch_tokens: int, max_batch_size: int, pad_to: int) -> list[np.ndarray]:
    """Deterministic evaluation batches: examples sorted by length, cut by the token budget."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    padded = bucket_lengths(np.asarray(lengths)[order], pad_to)
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) <= max_batch_size and (end - start + 1) * padded[end] <= batch_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def collate(ids: list[np.ndarray], pad_id: int, pad_to: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad token-id arrays to the batch's longest length rounded up to `pad_to`: (input_ids, attention_mask)."""
    width = int(bucket_lengths(np.array([max(len(x) for x in ids)]), pad_to)[0])
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = x
        mask[i, :len(x)] = 1
    return input_ids, mask
