"""Latency and throughput of the guardrail API (`crest.guard.Guard`), against an LLM guard.

    python bench/latency.py                              # CPU: tiny classifier vs tiny Llama
    python bench/latency.py --shape base --shape large   # random-weight XLM-R Base/Large shapes
    python bench/latency.py --model results/demo/models/crest/small/seed0
    python bench/latency.py --shape base --shape large --llm-shape llama-3.1-8b --compile   # on a GPU

Random weights cost the same compute as trained ones, so the real shapes give real timings without
the hub. Prints batch-1 latency (median / p90, warm) and batched throughput, through the same
`Guard.score` path users call (tokenisation included), then the LLM guard (prefill of a
LlamaGuard-sized prompt, then 5 generated tokens) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from crest.guard import Guard
from crest.guard.model import pick_device
from crest.tiny import build_tiny_xlmr, sample_texts

XLMR_SHAPES = {  # hidden, layers, heads, ffn
    "tiny": (64, 2, 4, 128),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}
LLM_SHAPES = {  # hidden, layers, heads, kv heads, ffn, vocab
    "llama-tiny": (256, 4, 8, 2, 688, 32000),
    "llama-3.2-1b": (2048, 16, 32, 8, 8192, 128256),
    "llama-3.1-8b": (4096, 32, 32, 8, 14336, 128256),
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def text_of_tokens(tokenizer, n_tokens: int) -> str:
    words = " ".join(sample_texts(("en", "de", "fr"))).split()
    ids: list[int] = []
    i = 0
    while len(ids) < n_tokens:
        ids += tokenizer(words[i % len(words)], add_special_tokens=False)["input_ids"]
        i += 1
    return tokenizer.decode(ids[:n_tokens])


def random_guard(shape: str, tokenizer_dir: Path, device: str, dtype: torch.dtype, compile: bool) -> Guard:
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    hidden, layers, heads, ffn = XLMR_SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = XLMRobertaConfig(vocab_size=250002, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=ffn, max_position_embeddings=514, num_labels=2, pad_token_id=1)
    model = XLMRobertaForSequenceClassification(config).to(dtype)
    guard = Guard(model, tokenizer, device=device, pad_to_multiple_of=64 if compile else 8)
    if compile:
        guard.model = torch.compile(guard.model, mode="reduce-overhead")
    return guard


def bench_guard(name: str, guard: Guard, args: argparse.Namespace, device: str) -> dict:
    """Batch-1 latency (median, p90) and batch-`args.batch` throughput through `Guard.score`."""
    text = text_of_tokens(guard.tokenizer, args.length - 2)
    t0 = time.perf_counter()
    guard.score([text])  # the first call pays torch.compile's compilation, when compiled
    first = time.perf_counter() - t0
    one = timed(lambda: guard.score([text]), device, args.warmup, args.iters)
    batch = [text] * args.batch
    many = timed(lambda: guard.score(batch), device, 2, max(3, args.iters // 10))
    ms = statistics.median(one) * 1e3
    p90 = sorted(one)[int(0.9 * (len(one) - 1))] * 1e3
    rate = args.batch / statistics.median(many)
    print(f"{name:24s} batch 1: {ms:8.2f} ms (p90 {p90:.2f})   batch {args.batch}: {rate:9.1f} samples/s", flush=True)
    return {"batch1_ms": round(ms, 3), "batch1_p90_ms": round(p90, 3), f"batch{args.batch}_per_s": round(rate, 1),
            "first_call_s": round(first, 2)}


def bench_llm(shape: str, args: argparse.Namespace, device: str, dtype: torch.dtype) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, kv, ffn, vocab = LLM_SHAPES[shape]
    config = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         intermediate_size=ffn, vocab_size=vocab, max_position_embeddings=4096)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    prompt = torch.randint(0, vocab, (1, args.llm_prompt), device=device)

    def generate() -> None:
        with torch.inference_mode():
            model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5, min_new_tokens=5,
                           do_sample=False, pad_token_id=0)

    times = timed(generate, device, 1, max(3, args.iters // 10))
    ms = statistics.median(times) * 1e3
    row = {"batch1_ms": round(ms, 3)}
    if args.llm_batch:
        prompts = torch.randint(0, vocab, (args.llm_batch, args.llm_prompt), device=device)

        def generate_many() -> None:
            with torch.inference_mode():
                model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=5, min_new_tokens=5,
                               do_sample=False, pad_token_id=0)

        row[f"batch{args.llm_batch}_per_s"] = round(args.llm_batch / statistics.median(
            timed(generate_many, device, 1, 2)), 2)
    print(f"{'LLM guard ' + shape:24s} batch 1: {ms:8.2f} ms   (prefill {args.llm_prompt} + 5 generated tokens)"
          + (f"   batch {args.llm_batch}: {row[f'batch{args.llm_batch}_per_s']:.1f} samples/s" if args.llm_batch else ""),
          flush=True)
    del model
    return row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="trained classifier dir(s)")
    p.add_argument("--shape", action="append", choices=sorted(XLMR_SHAPES), default=[])
    p.add_argument("--llm-shape", choices=sorted(LLM_SHAPES), default=None,
                   help="default: llama-3.1-8b on GPU, llama-tiny on CPU")
    p.add_argument("--no-llm", action="store_true")
    p.add_argument("--length", type=int, default=128, help="tokens per input, specials included")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--llm-prompt", type=int, default=400)
    p.add_argument("--llm-batch", type=int, default=0, help="also time the LLM guard at this batch (0: batch 1 only)")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help='torch.compile(mode="reduce-overhead") (CUDA graphs)')
    p.add_argument("--eager-and-compiled", action="store_true", help="time each shape both ways")
    return p


def bench(args: argparse.Namespace) -> dict:
    """{name: latency row} for each shape / model (eager, compiled or both) and the LLM guard, with
    the LLM's batch-1 latency over each classifier's (`llm_over_guard`)."""
    device = pick_device(args.device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    print(f"device {device}, dtype {dtype}, input length {args.length} tokens, threads {torch.get_num_threads()}",
          flush=True)
    modes = [False, True] if args.eager_and_compiled else [args.compile]
    shapes = args.shape or ([] if args.model else ["tiny"])
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = build_tiny_xlmr(Path(tmp) / "tok", num_labels=2)
        for shape in shapes:
            for compiled in modes:
                name = f"xlmr-{shape}" + (" compiled" if compiled else " eager")
                results[name] = bench_guard(name, random_guard(shape, tok_dir, device, dtype, compiled), args, device)
    for model in args.model:
        for compiled in modes:
            guard = Guard.from_pretrained(model, device=device, compile=compiled)
            results[f"{Path(model).name}" + (" compiled" if compiled else " eager")] = bench_guard(
                Path(model).name, guard, args, device)
    if not args.no_llm:
        shape = args.llm_shape or ("llama-3.1-8b" if device == "cuda" else "llama-tiny")
        llm = bench_llm(shape, args, device, dtype)
        for name, row in results.items():
            row["llm_over_guard"] = round(llm["batch1_ms"] / row["batch1_ms"], 1)
            print(f"ratio LLM guard / {name}: {row['llm_over_guard']}x (batch 1)")
        results[f"llm-guard {shape}"] = llm
    return {"device": device, "dtype": str(dtype).removeprefix("torch."), "length": args.length,
            "threads": torch.get_num_threads(), "results": results}


def main() -> None:
    bench(parser().parse_args())

if __name__ == "__main__":
    main()
