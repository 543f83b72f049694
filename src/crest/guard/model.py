"""`Guard`: a fine-tuned XLM-R safety classifier behind a small API.

    guard = Guard.from_pretrained("results/paper/models/crest/large/seed0")
    guard.score(["How do I make a pipe bomb?"])        # -> array([0.98], dtype=float32)
    guard.classify(texts)                              # threshold stored with the model, else 0.5
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crest import hub
from crest.guard.loading import check_threshold, resolve_model
from crest.guard.windows import split_windows

log = logging.getLogger(__name__)
GUARD_FILE = "crest_guard.json"  # threshold and calibration, saved beside the weights
DEFAULT_THRESHOLD = 0.5


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


UNSAFE_LABELS = ("unsafe", "harmful")


def unsafe_index(config: Any) -> int:
    """Which logit is 'unsafe': the checkpoint's `id2label` entry named unsafe (or harmful), any case,
    whatever its position; generic names (LABEL_0, LABEL_1) mean index 1. Other names are refused:
    guessing would silently invert a guard."""
    id2label = {int(k): str(v).strip().lower() for k, v in (getattr(config, "id2label", None) or {}).items()}
    for name in UNSAFE_LABELS:
        found = [i for i, label in sorted(id2label.items()) if label == name]
        if found:
            return found[0]
    if not id2label or all(label == f"label_{i}" for i, label in id2label.items()):
        return 1
    raise ValueError(f"cannot tell which class is unsafe from id2label {dict(sorted(id2label.items()))} "
                     f"(expected a label named {' or '.join(UNSAFE_LABELS)})")


def load_guard_file(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / GUARD_FILE
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # invalid JSON or UTF-8
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return stored


class ScoringStopped(RuntimeError):
    """`Guard.score` gave up between forward passes because its `stop` check said so."""


class Guard:
    """Scores texts with P(unsafe). Inputs longer than the model's window are scored over
    overlapping windows and the maximum is taken."""

    def __init__(self, model: Any, tokenizer: Any, *, threshold: float = DEFAULT_THRESHOLD,
                 device: str = "cpu", batch_size: int = 32, max_length: int | None = None,
                 stride: int | None = None, pad_to_multiple_of: int = 8, top_layers: int = 0) -> None:
        from crest.guard.toplayer import check_top_layers

        self.model = model.eval().to(device)
        self.device = device
        # encoder layers trained with the head (crest_guard.json trained_top_layers): cached features
        # (window_features) are then the input to those layers, not the head's input
        self.top_layers = check_top_layers(top_layers)
        self._configure(model.config, tokenizer, threshold=threshold, batch_size=batch_size, max_length=max_length,
                        stride=stride, pad_to_multiple_of=pad_to_multiple_of)

    def _configure(self, config: Any, tokenizer: Any, *, threshold: float, batch_size: int, max_length: int | None,
                   stride: int | None, pad_to_multiple_of: int) -> None:
        """Windows, thresholds and batching from the model's config: shared by every backend."""
        self.tokenizer = tokenizer
        self.threshold = check_threshold(threshold)
        self.lang_thresholds: dict[str, float] = {}  # calibrated per language (crest.guard.languages)
        self.cluster_thresholds: dict[str, float] = {}  # calibrated per cluster of the run's language map
        self.language_clusters: dict[str, str] = {}  # that map: language -> cluster
        self.batch_size = batch_size
        limit = int(getattr(config, "max_position_embeddings", 514)) - 2  # XLM-R positions start at 2
        self.max_length = min(max_length or 512, limit)
        self.window = self.max_length - 2  # room for <s> and </s>
        self.stride = stride or max(1, self.window // 2)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.unsafe = unsafe_index(config)

    @property
    def config(self) -> Any:
        return self.model.config

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, *, device: str = "auto", threshold: float | None = None,
                        dtype: str | None = None, compile: bool = False, **kwargs: Any) -> Guard:
        """Load a classifier directory (or hub id `org/name`; safetensors only, see
        crest.guard.loading for what is refused). The threshold is, in order: the argument, the
        calibrated one stored in the directory, 0.5. `compile=True` wraps the model in
        torch.compile(mode="reduce-overhead") (CUDA graphs; lengths are bucketed to limit
        recompilation)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from crest.guard.onnx_guard import OnnxGuard, is_onnx_export

        if is_onnx_export(path_or_hub_id):  # a `crest guard export-onnx` directory
            return OnnxGuard.from_pretrained(path_or_hub_id, device=device, threshold=threshold, **kwargs)
        if threshold is not None:
            threshold = check_threshold(threshold)  # before any loading: a bad value fails fast
        source, local, hub_kwargs = resolve_model(path_or_hub_id)
        stored = load_guard_file(source) if local else {}
        explicit = threshold is not None  # a given threshold overrides the stored per-language ones too
        if threshold is None:
            threshold = check_threshold(stored.get("threshold", DEFAULT_THRESHOLD), f"{Path(source) / GUARD_FILE}: threshold")
        device = pick_device(device)
        torch_dtype = getattr(torch, dtype) if dtype else (torch.float16 if device == "cuda" else torch.float32)
        tokenizer = hub.from_pretrained(AutoTokenizer, source, **hub_kwargs)
        model = hub.from_pretrained(AutoModelForSequenceClassification, source, dtype=torch_dtype,
                                    use_safetensors=True, **hub_kwargs)
        if compile:
            kwargs.setdefault("pad_to_multiple_of", 64)
        from crest.guard.toplayer import TOP_KEY

        kwargs.setdefault("top_layers", stored.get(TOP_KEY, 0))
        guard = cls(model, tokenizer, threshold=threshold, device=device, **kwargs)
        if not explicit:
            guard.use_stored_thresholds(stored, Path(source) / GUARD_FILE)
        if compile:
            guard.model = torch.compile(guard.model, mode="reduce-overhead")
        return guard

    def _windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Token-id windows with special tokens, and the text each window belongs to."""
        tok = self.tokenizer
        ids = tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        windows, owner = [], []
        for i, seq in enumerate(ids):
            for w in split_windows(seq, self.window, self.stride):
                windows.append([tok.cls_token_id, *w, tok.sep_token_id])
                owner.append(i)
        return windows, owner

    def _collate(self, windows: list[list[int]]):
        """Right-padded id and mask tensors, length rounded up to `pad_to_multiple_of` (few distinct
        shapes: cheap for CUDA graphs and kernels alike). Plain numpy: on the batch-1 path the
        tokenizer's generic `pad` costs more than a compiled forward."""
        import torch

        m = self.pad_to_multiple_of
        width = -(-max(len(w) for w in windows) // m) * m
        ids = np.full((len(windows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for row, w in enumerate(windows):
            ids[row, :len(w)] = w
            mask[row, :len(w)] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def score(self, texts: Sequence[str], stop: Callable[[], bool] | None = None) -> np.ndarray:
        """P(unsafe) per text (float32), the maximum over its windows. `stop` is asked before each
        forward pass; when it says True, ScoringStopped is raised (a server whose callers have all been
        answered need not finish a long batch)."""
        import torch

        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float32)
        windows, owner = self._windows(texts)
        order = np.argsort([len(w) for w in windows], kind="stable")
        probs = np.empty(len(windows), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                if stop is not None and stop():
                    raise ScoringStopped(f"stopped after {start} of {len(order)} windows")
                idx = order[start:start + self.batch_size]
                probs[idx] = self._probs(*self._collate([windows[i] for i in idx]))
        out = np.zeros(len(texts), dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), probs)
        return out

    def _probs(self, ids, mask) -> np.ndarray:
        """P(unsafe) per window of one padded batch (the only step a backend replaces)."""
        import torch

        logits = self.model(input_ids=ids.to(self.device, non_blocking=True),
                            attention_mask=mask.to(self.device, non_blocking=True)).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.unsafe].cpu().numpy()

    def window_features(self, texts: Sequence[str]) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
        """What the model's trained part reads, per window, and the text each window belongs to. With
        `top_layers` 0 (a head on a frozen encoder): the encoder's last-layer state of the first token
        (float32, windows x hidden). With 1 (the last layer trained too, crest.guard.toplayer): the
        last layer's input, every token of the window (a list of float16 tokens x hidden arrays).
        Models that share the frozen layers share these (crest.guard.features): one pass, many
        heads."""
        import torch

        windows, owner = self._windows(texts)
        order = np.argsort([len(w) for w in windows], kind="stable")
        if self.top_layers:
            from crest.guard.toplayer import layer_inputs

            seqs: list[np.ndarray] = [np.zeros(0)] * len(windows)
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    ids, mask = self._collate([windows[i] for i in idx])
                    hidden = layer_inputs(self.model, ids.to(self.device), mask.to(self.device), self.top_layers)
                    hidden = hidden.to(torch.float16).cpu().numpy()
                    for j, i in enumerate(idx):
                        seqs[i] = hidden[j, :len(windows[i])]
            return seqs, np.asarray(owner, dtype=np.int64)
        feats = None
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                ids, mask = self._collate([windows[i] for i in idx])
                hidden = self.model.base_model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
                first = hidden.last_hidden_state[:, 0].float().cpu().numpy()
                if feats is None:
                    feats = np.empty((len(windows), first.shape[1]), dtype=np.float32)
                feats[idx] = first
        return (feats if feats is not None else np.zeros((0, 0), np.float32)), np.asarray(owner, dtype=np.int64)

    def score_features(self, feats: np.ndarray, owner: np.ndarray, n_texts: int) -> np.ndarray:
        """P(unsafe) per text from `window_features` of this model's encoder: its head on each
        window, the maximum per text (what `score` gives, without the encoder pass)."""
        import torch

        out = np.zeros(n_texts, dtype=np.float32)
        if len(owner) == 0:
            return out
        if self.top_layers:
            from crest.guard.toplayer import top_logits

            order = np.argsort([len(f) for f in feats], kind="stable")
            probs = np.empty(len(feats), dtype=np.float32)
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    logits = top_logits(self.model, [feats[i] for i in idx], self.device).float()
                    probs[idx] = torch.softmax(logits, dim=-1)[:, self.unsafe].cpu().numpy()
            np.maximum.at(out, owner, probs)
            return out
        dtype = next(self.model.classifier.parameters()).dtype
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(feats)).to(self.device, dtype)[:, None, :]
            probs = torch.softmax(self.model.classifier(x).float(), dim=-1)[:, self.unsafe].cpu().numpy()
        np.maximum.at(out, owner, probs)
        return out

    def use_stored_thresholds(self, stored: dict[str, Any], origin: str | Path = GUARD_FILE) -> None:
        """Judge texts at the per-language and per-cluster thresholds of a crest_guard.json."""
        self.lang_thresholds = language_thresholds(stored, origin)
        self.cluster_thresholds, self.language_clusters = cluster_thresholds(stored, origin)

    def threshold_for(self, lang: str | None) -> tuple[float, str]:
        """A language's threshold and where it came from: "language" (calibrated on its own rows;
        `pt-br` also finds `pt`), "cluster" (its cluster's, in the run's language map), "model"."""
        if lang:
            key = normalise_lang(lang)
            keys = (key, key.split("-")[0])
            for k in keys:
                if k in self.lang_thresholds:
                    return self.lang_thresholds[k], "language"
            for k in keys:
                if self.language_clusters.get(k) in self.cluster_thresholds:
                    return self.cluster_thresholds[self.language_clusters[k]], "cluster"
        return self.threshold, "model"

    def thresholds(self, n: int, langs: Sequence[str | None] | str | None = None,
                   threshold: float | None = None) -> tuple[np.ndarray, list[str]]:
        """The threshold each of `n` texts is judged at, and where it came from: "request" (the
        `threshold` argument, for all), else as `threshold_for` the text's language."""
        if threshold is not None:
            return np.full(n, check_threshold(threshold), dtype=np.float64), ["request"] * n
        langs = [langs] * n if langs is None or isinstance(langs, str) else list(langs)
        if len(langs) != n:
            raise ValueError(f"{len(langs)} languages for {n} texts")
        found = [self.threshold_for(lang) for lang in langs]
        return np.array([t for t, _ in found], dtype=np.float64), [o for _, o in found]

    def classify(self, texts: Sequence[str], threshold: float | None = None,
                 langs: Sequence[str | None] | str | None = None, detect: bool = True) -> list[dict[str, Any]]:
        """{"prob_unsafe", "label", "threshold", "threshold_from", "lang", "lang_from"} per text;
        label is "unsafe" when prob_unsafe >= the text's threshold (see `thresholds`). `langs`: the
        language of each text (or one for all) as the caller knows it; where it gives none, the
        language is detected (`detect`, crest.guard.langid). `lang_from`: "given", "detected", or
        None (no language: not given, and detection off or unsure)."""
        probs = self.score(texts)
        used, lang_from = resolve_langs(texts, langs, detect)
        ts, origin = self.thresholds(len(probs), used, threshold)
        return [{"prob_unsafe": float(p), "label": "unsafe" if p >= t else "safe", "threshold": float(t),
                 "threshold_from": o, "lang": lang, "lang_from": f}
                for p, t, o, lang, f in zip(probs, ts, origin, used, lang_from, strict=True)]


def resolve_langs(texts: Sequence[str], langs: Sequence[str | None] | str | None,
                  detect: bool = True) -> tuple[list[str | None], list[str | None]]:
    """Each text's language and where it came from ("given", "detected", None): the caller's where
    given, else detected (when `detect`; None where detection is unsure)."""
    given = [langs] * len(texts) if langs is None or isinstance(langs, str) else list(langs)
    if len(given) != len(texts):
        raise ValueError(f"{len(given)} languages for {len(texts)} texts")
    given = [lang if lang else None for lang in given]
    missing = [i for i, lang in enumerate(given) if lang is None]
    detected: dict[int, str | None] = {}
    if detect and missing:
        from crest.guard.langid import detect_languages

        detected = dict(zip(missing, detect_languages([texts[i] for i in missing]), strict=True))
    used = [lang if lang is not None else detected.get(i) for i, lang in enumerate(given)]
    origin = ["given" if g is not None else ("detected" if u is not None else None) for g, u in zip(given, used)]
    return used, origin


def normalise_lang(code: str) -> str:
    """A language code as thresholds are keyed: lower case, '_' as '-' ('pt_BR' -> 'pt-br')."""
    return str(code).strip().lower().replace("_", "-")


def cluster_thresholds(stored: dict[str, Any], origin: str | Path = GUARD_FILE) -> tuple[dict[str, float],
                                                                                        dict[str, str]]:
    """({cluster: threshold}, {language: cluster}) from a crest_guard.json's "clusters" and
    "language_clusters" sections (`crest guard calibrate --per-language` with a language map)."""
    section, mapping = stored.get("clusters") or {}, stored.get("language_clusters") or {}
    if not isinstance(section, dict) or not isinstance(mapping, dict):
        raise ValueError(f"{origin}: 'clusters' and 'language_clusters' must be objects")
    thresholds = {str(c): check_threshold(entry.get("threshold") if isinstance(entry, dict) else entry,
                                          f"{origin}: clusters.{c}.threshold") for c, entry in section.items()}
    return thresholds, {normalise_lang(lang): str(c) for lang, c in mapping.items()}


def language_thresholds(stored: dict[str, Any], origin: str | Path = GUARD_FILE) -> dict[str, float]:
    """{language: threshold} from a crest_guard.json's "languages" section (written by
    `crest guard calibrate --per-language`); each checked like the global threshold."""
    section = stored.get("languages") or {}
    if not isinstance(section, dict):
        raise ValueError(f"{origin}: 'languages' must be an object of language -> calibration")
    out = {}
    for lang, entry in section.items():
        value = entry.get("threshold") if isinstance(entry, dict) else entry
        out[normalise_lang(lang)] = check_threshold(value, f"{origin}: languages.{lang}.threshold")
    return out
