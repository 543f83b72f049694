"""`OnnxGuard`: a `crest guard export-onnx` directory scored with ONNX Runtime, behind `Guard`'s API.

    guard = Guard.from_pretrained("exports/crest-large-onnx")          # an export dir: ONNX Runtime
    guard = OnnxGuard.from_pretrained(DIR, precision="fp32", device="cpu")

The same tokenizer, sliding windows, length-sorted batches, thresholds (global and per language) and
outputs as the PyTorch `Guard`: only the forward pass of each padded batch runs in ONNX Runtime
(CPU, or CUDA when its provider is installed). The directory holds `model.onnx` (float32) and,
with `--int8`, `model.int8.onnx`; `precision="auto"` takes the int8 file when there is one.
Every file in an export passed the quality gate of `crest.guard.onnx_export` (`onnx_gate.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from crest import hub
from crest.guard.loading import ModelLoadError, check_threshold
from crest.guard.model import DEFAULT_THRESHOLD, GUARD_FILE, Guard, load_guard_file

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
GATE_FILE = "onnx_gate.json"
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "int8")


def is_onnx_export(path: str | Path) -> bool:
    """A local directory holding an ONNX export and no PyTorch weights."""
    p = Path(str(path)).expanduser()
    return p.is_dir() and (p / ONNX_FILES["fp32"]).is_file() and not (p / "model.safetensors").exists()


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for a crest device name ("auto", "cpu", "cuda", "cuda:N")."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ValueError(f"device {device!r}: this onnxruntime has no CUDA provider (available: "
                             f"{', '.join(available)}); install onnxruntime-gpu or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    raise ValueError(f"device {device!r}: expected auto, cpu, cuda or cuda:N")


def open_session(path: Path, device: str = "cpu", threads: int | None = None):
    """An InferenceSession over one ONNX file; an unreadable file is one line naming it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: a CLI failure stays one line
    if threads:
        opts.intra_op_num_threads = threads
    providers = providers_for(device)
    options = None
    if device.startswith("cuda:"):
        options = [{"device_id": int(device.split(":", 1)[1])}, {}]
    try:
        return ort.InferenceSession(str(path), opts, providers=providers, provider_options=options)
    except Exception as e:  # onnxruntime raises its own (Fail, InvalidProtobuf, ...)
        raise ModelLoadError(f"{path}: not a loadable ONNX model ({str(e).splitlines()[0][:300]})") from None


class OnnxGuard(Guard):
    """`Guard` whose forward pass runs in ONNX Runtime. `score`, `classify`, `thresholds` and the
    windows are Guard's own; the encoder-feature methods are not available (the graph ends in logits)."""

    def __init__(self, session: Any, tokenizer: Any, config: Any, *, threshold: float = DEFAULT_THRESHOLD,
                 batch_size: int = 32, max_length: int | None = None, stride: int | None = None,
                 pad_to_multiple_of: int = 8, precision: str = "fp32", file: Path | None = None) -> None:
        self.session = session
        self._config = config
        self.precision = precision
        self.file = file
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        self._configure(config, tokenizer, threshold=threshold, batch_size=batch_size, max_length=max_length,
                        stride=stride, pad_to_multiple_of=pad_to_multiple_of)

    @property
    def config(self) -> Any:
        return self._config

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "auto", threshold: float | None = None,
                        precision: str = "auto", threads: int | None = None, dtype: str | None = None,
                        compile: bool = False, **kwargs: Any) -> OnnxGuard:
        """Load an export directory. Threshold: the argument, else the stored one (per language too,
        unless a threshold is given), else 0.5. `precision`: "int8" (model.int8.onnx), "fp32"
        (model.onnx), or "auto" (int8 when the export has it)."""
        from transformers import AutoConfig, AutoTokenizer

        if compile or dtype:
            raise ValueError("compile= and dtype= apply to the PyTorch backend, not an ONNX export")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if threshold is not None:
            threshold = check_threshold(threshold)
        root = Path(str(path)).expanduser()
        if not is_onnx_export(root):
            raise ModelLoadError(f"{path}: not an ONNX export (no {ONNX_FILES['fp32']}); make one with "
                                 f"crest guard export-onnx")
        if precision == "auto":
            precision = "int8" if (root / ONNX_FILES["int8"]).is_file() else "fp32"
        file = root / ONNX_FILES[precision]
        if not file.is_file():
            raise ModelLoadError(f"{root}: no {file.name} in this export (export it with --int8)")
        stored = load_guard_file(root)
        explicit = threshold is not None
        if threshold is None:
            threshold = check_threshold(stored.get("threshold", DEFAULT_THRESHOLD), f"{root / GUARD_FILE}: threshold")
        guard = cls(open_session(file, device, threads), hub.from_pretrained(AutoTokenizer, root),
                    hub.from_pretrained(AutoConfig, root), threshold=threshold, precision=precision, file=file, **kwargs)
        if not explicit:
            guard.use_stored_thresholds(stored, root / GUARD_FILE)
        return guard

    def _probs(self, ids, mask) -> np.ndarray:
        logits = self.session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        logits = logits.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e[:, self.unsafe] / e.sum(axis=1)).astype(np.float32)

    def window_features(self, texts):  # noqa: D102
        raise NotImplementedError("an ONNX export ends in logits; encoder features need the PyTorch model")

    def score_features(self, feats, owner, n_texts):  # noqa: D102
        raise NotImplementedError("an ONNX export ends in logits; encoder features need the PyTorch model")


def load_guard(model: str | Path, *, backend: str = "auto", precision: str = "auto", **kwargs: Any) -> Guard:
    """What `crest classify` and `crest serve` load: "auto" takes ONNX Runtime for an export
    directory and PyTorch otherwise; "torch"/"onnx" insist (and say what is wrong if they cannot)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    onnx = is_onnx_export(model)
    if backend == "torch" and onnx:
        raise ModelLoadError(f"{model}: an ONNX export, not PyTorch weights; use --backend onnx (or auto)")
    if backend == "onnx" or onnx:
        return OnnxGuard.from_pretrained(model, precision=precision, **kwargs)
    if precision != "auto":
        raise ValueError("--precision applies to an ONNX export only")
    return Guard.from_pretrained(model, **kwargs)


def gate_record(root: str | Path) -> dict[str, Any] | None:
    """The export's quality-gate report (onnx_gate.json), for /v1/model."""
    path = Path(root) / GATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
