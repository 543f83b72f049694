"""The embedding stage: a multilingual corpus in, per-language embeddings and language means out.

Outputs in `out_dir` (`results/{run}/embeddings/{corpus}/{encoder}/`):

    {lang}.npy               float16 (n_texts, dim): mean-pooled embeddings at the primary layer
                             (the first of `layers`), rows in rows.parquet order for that language
    layer{L}/{lang}.npy      the same at every other requested layer L
    rows.parquet             lang, row, id, key, n_tokens, text: what each .npy row is
    language_means.parquet   lang, layer, n_texts, mean (list of float32, computed in float32)
    embed.json               model, layers, device, dtype, selection, counts, dropped languages, timing

Layers are hidden-state indices: 0 is the embedding output, L (= num_hidden_layers) the last.
`language_means.parquet` is written last: its presence means the rest is complete.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.embed.corpus import read_inputs, select_texts
from crest.io import atomic_path, write_json, write_parquet

log = logging.getLogger(__name__)


def embed_corpus(inputs: Sequence[str | Path], out_dir: str | Path, model: str, *,
                 languages: Sequence[str] | None = None, max_per_language: int | None = None,
                 min_per_language: int = 1, align: bool = True, seed: int = 13, layers: Sequence[int] = (-1,),
                 batch_size: int = 64, max_tokens: int | None = None, max_length: int = 128,
                 device: str = "auto", dtype: str = "auto", prefix: str = "", progress: bool = True,
                 encoder=None) -> dict[str, Any]:
    """Embed the selected texts of every language and write the outputs listed above."""
    from crest.embed.encode import Encoder, normalise_layers

    t0 = time.perf_counter()
    selection = select_texts(read_inputs(inputs), languages=languages, max_per_language=max_per_language,
                             min_per_language=min_per_language, align=align, seed=seed)
    rows = selection.rows
    encoder = encoder or Encoder(model, device=device, dtype=dtype, max_length=max_length, prefix=prefix)
    resolved = normalise_layers(layers, encoder.num_layers)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"embed: layers {list(layers)} name the same layer twice")
    t1 = time.perf_counter()
    vectors, n_tokens = encoder.encode(rows["text"].tolist(), layers=layers, batch_size=batch_size,
                                       max_tokens=max_tokens, progress=progress)
    t2 = time.perf_counter()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)
    rows = rows.assign(row=rows.groupby("lang", sort=False).cumcount(), n_tokens=n_tokens)
    primary = resolved[0]
    means = []
    for lang, idx in rows.groupby("lang", sort=False).indices.items():
        for layer in resolved:
            block = vectors[layer][idx]
            target = out_dir / f"{lang}.npy" if layer == primary else out_dir / f"layer{layer}" / f"{lang}.npy"
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, block.astype(np.float16))
            means.append({"lang": lang, "layer": layer, "n_texts": len(idx),
                          "mean": block.mean(axis=0, dtype=np.float64).astype(np.float32).tolist()})
    write_parquet(rows[["lang", "row", "id", "key", "n_tokens", "text"]], out_dir / "rows.parquet")
    total_tokens = int(n_tokens.sum())
    manifest = {
        "model": encoder.name, "num_layers": encoder.num_layers, "dim": encoder.dim, "layers": resolved,
        "primary_layer": primary, "device": encoder.device, "dtype": str(encoder.dtype).removeprefix("torch."),
        "prefix": prefix, "max_length": encoder.max_length, "batch_size": batch_size, "max_tokens": max_tokens,
        "inputs": [str(p) for p in inputs], "aligned": selection.aligned, "parallel_keys": selection.keys,
        "languages": int(rows["lang"].nunique()), "texts": len(rows), "tokens": total_tokens,
        "texts_per_language": {k: int(v) for k, v in rows["lang"].value_counts(sort=False).items()},
        "dropped_languages": selection.dropped,
        "seconds": {"load": round(t1 - t0, 2), "encode": round(t2 - t1, 2)},
        "texts_per_second": round(len(rows) / max(t2 - t1, 1e-9), 1),
        "tokens_per_second": round(total_tokens / max(t2 - t1, 1e-9), 1),
    }
    write_json(manifest, out_dir / "embed.json")
    write_parquet(pd.DataFrame(means), out_dir / "language_means.parquet")
    log.info("embedded %d texts in %d languages in %.1fs (%.0f texts/s)", len(rows), manifest["languages"],
             t2 - t1, manifest["texts_per_second"])
    return manifest


def _clear_previous(out_dir: Path) -> None:
    """Remove .npy files of an earlier run (a language dropped since must not linger)."""
    for path in out_dir.glob("*.npy"):
        path.unlink()
    for sub in out_dir.glob("layer*"):
        if sub.is_dir():
            shutil.rmtree(sub)


def read_language_means(path: str | Path, layer: int | None = None) -> tuple[list[str], np.ndarray, int]:
    """(languages, means (n_lang, dim) float64, layer) at `layer` (None: the primary layer, i.e. the
    first in the file; negative counts from the model's last layer, as in the embed config)."""
    import json

    path = Path(path)
    df = pd.read_parquet(path)
    layers = list(dict.fromkeys(df["layer"]))
    if layer is None:
        layer = layers[0]
    elif layer < 0:
        manifest = json.loads((path.parent / "embed.json").read_text(encoding="utf-8"))
        layer = layer % (manifest["num_layers"] + 1)
    if layer not in layers:
        raise ValueError(f"{path}: no layer {layer} (layers embedded: {layers})")
    sub = df[df["layer"] == layer]
    return sub["lang"].tolist(), np.stack(sub["mean"].map(np.asarray).to_list()).astype(np.float64), int(layer)


def read_text_embeddings(out_dir: str | Path, langs: Sequence[str], layer: int | None = None
                         ) -> dict[str, np.ndarray]:
    """{lang: (n_texts, dim) float32} at `layer` (None or the primary layer: `{lang}.npy`)."""
    import json

    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "embed.json").read_text(encoding="utf-8"))
    sub = "" if layer is None or layer == manifest["primary_layer"] else f"layer{layer}"
    return {lang: np.load(out_dir / sub / f"{lang}.npy").astype(np.float32) for lang in langs}


def read_rows(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(out_dir) / "rows.parquet")
