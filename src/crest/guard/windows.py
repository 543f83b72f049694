"""Sliding windows over token ids, so text past the model's length limit is scored, not cut off
(a guardrail that truncates at 512 tokens misses an attack placed at token 600)."""

from __future__ import annotations


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` tokens every `stride` tokens; the last window ends at
    the last token, so every token is covered and no window is shorter than needed."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if n_tokens <= window:
        return [0]
    starts = list(range(0, n_tokens - window, stride))
    starts.append(n_tokens - window)
    return starts


def split_windows(ids: list[int], window: int, stride: int) -> list[list[int]]:
    return [ids[s:s + window] for s in window_starts(len(ids), window, stride)]
