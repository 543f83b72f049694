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


def bench_guard(name: str, guard: Guard, args: argparse.Namespace, device: str) -> float:
    text = text_of_tokens(guard.tokenizer, args.length - 2)
    one = timed(lambda: guard.score([text]), device, args.warmup, args.iters)
    batch = [text] * args.batch
    many = timed(lambda: guard.score(batch), device, 2, max(3, args.iters // 10))
    ms = statistics.median(one) * 1e3
    p90 = sorted(one)[int(0.9 * (len(one) - 1))] * 1e3
    rate = args.batch / statistics.median(many)
    print(f"{name:24s} batch 1: {ms:8.2f} ms (p90 {p90:.2f})   batch {args.batch}: {rate:9.1f} samples/s")
    return ms


def bench_llm(shape: str, args: argparse.Namespace, device: str, dtype: torch.dtype) -> float:
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
    print(f"{'LLM guard ' + shape:24s} batch 1: {ms:8.2f} ms   (prefill {args.llm_prompt} + 5 generated tokens)")
    return ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="trained classifier dir(s)")
    p.add_argument("--shape", action="append", choices=sorted(XLMR_SHAPES), default=[])
    p.add_argument("--llm-shape", choices=sorted(LLM_SHAPES), default=None,
                   help="default: llama-3.1-8b on GPU, llama-tiny on CPU")
    p.add_argument("--no-llm", action="store_true")
    p.add_argument("--length", type=int, default=128, help="tokens per input, specials included")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--llm-prompt", type=int, default=400)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help='torch.compile(mode="reduce-overhead") (CUDA graphs)')
    args = p.parse_args()
    device = pick_device(args.device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    torch.set_grad_enabled(False)
    print(f"device {device}, dtype {dtype}, input length {args.length} tokens, threads {torch.get_num_threads()}")
    if not args.model and not args.shape:
        args.shape = ["tiny"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = build_tiny_xlmr(Path(tmp) / "tok", num_labels=2)
        for shape in args.shape:
            results[f"xlmr-{shape}"] = bench_guard(f"xlmr-{shape} (random)", random_guard(shape, tok_dir, device, dtype, args.compile),
                                                   args, device)
    for model in args.model:
        guard = Guard.from_pretrained(model, device=device, compile=args.compile)
        results[model] = bench_guard(Path(model).name, guard, args, device)
    if not args.no_llm:
        llm = bench_llm(args.llm_shape or ("llama-3.1-8b" if device == "cuda" else "llama-tiny"), args, device, dtype)
        for name, ms in results.items():
            print(f"ratio LLM guard / {name}: {llm / ms:.1f}x (batch 1)")


if __name__ == "__main__":
    main()
