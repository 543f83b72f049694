"""Strict, explained loading of a guard model: a local directory or a hub id, safetensors only.

A deploying engineer's typo must not turn into a hub lookup, and a pickled checkpoint (arbitrary
code on `torch.load`) must be refused before anything reads it. Every refusal is a `ModelLoadError`
whose one-line message names the path or id and what to do."""

from __future__ import annotations

import math
import os
from pathlib import Path

from crest.hub import HUB_ID, model_source

SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "tokenizer.model", "spiece.model",
                   "vocab.txt", "vocab.json")


class ModelLoadError(ValueError):
    """A model path or id that cannot be loaded safely; the message names it and says why."""


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def check_model_dir(path: Path) -> None:
    """Refuse a directory that lacks config, tokenizer or safetensors weights, naming what is missing;
    a directory with pickle weights only is refused naming the file and how to convert it."""
    names = {p.name for p in path.iterdir()}
    if not (names & set(SAFETENSORS)):
        pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES) or n == "pytorch_model.bin.index.json")
        if pickles:
            raise ModelLoadError(
                f"{path}: weights only as a pickle ({pickles[0]}); crest loads safetensors only (a pickle can run "
                f"code when loaded). Convert it where you trust the file: load it with "
                f"torch.load(..., weights_only=True) and save with model.save_pretrained(dir), which writes "
                f"model.safetensors")
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not (names & set(TOKENIZER_FILES)):
        missing.append(f"a tokenizer ({' or '.join(TOKENIZER_FILES[:2])})")
    if not (names & set(SAFETENSORS)):
        missing.append("weights (model.safetensors)")
    if missing:
        raise ModelLoadError(f"{path}: not a complete model directory: missing {', '.join(missing)}")


def resolve_model(path_or_hub_id: str | Path) -> tuple[str, bool, dict]:
    """(what to pass to from_pretrained, whether it is a local directory of ours, the keyword
    arguments crest.hub adds). An existing path must be a complete model directory; anything else
    must be a hub id `org/name`, which goes through crest.hub (its mirror folder, checked like a
    local one, or the id at its locked revision), and offline without a cached copy it fails here."""
    text = str(path_or_hub_id)
    path = Path(text).expanduser()
    if path.is_dir():
        check_model_dir(path)
        return str(path), True, {}
    if path.exists():
        raise ModelLoadError(f"{text}: not a directory (give the model directory, not a file in it)")
    if isinstance(path_or_hub_id, Path) or not HUB_ID.match(text):
        raise ModelLoadError(f"{text}: no such model directory (and not a hub id of the form org/name)")
    source, kwargs = model_source(text)
    if source != text:  # the mirror's folder
        check_model_dir(Path(source))
        return source, False, {}
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(text, "config.json", revision=kwargs.get("revision")), str):
            raise ModelLoadError(f"{text}: no such local directory, and the hub is offline (HF_HUB_OFFLINE=1) "
                                 f"with no cached copy of this hub id")
    return text, False, kwargs


def check_threshold(value: float, origin: str = "threshold") -> float:
    """A decision threshold: a finite number in [0, 1]."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{origin}: {value!r} is not a number") from None
    if not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise ValueError(f"{origin}: {value!r} is not a finite number in [0, 1]")
    return t
