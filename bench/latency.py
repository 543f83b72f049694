"""Latency and throughput of the guardrail API (`crest.guard.Guard`), against an LLM guard.

    python bench/latency.py                              # CPU: tiny classifier vs tiny Llama
    python bench/latency.py --shape base --shape large   # random-weight XLM-R Base/Large shapes
    python bench/latency.py --model results/demo/models/crest/small/seed0
    python bench/latency.py --shape base --shape large --llm-shape llama-3.1-8b --compile   # on a GPU
    python bench/latency.py --shape base --onnx --length 64 256 --batch 0 --no-llm   # torch vs ONNX fp32 vs int8

Random weights cost the same compute as trained ones, so the real shapes give real timings without
the hub. Prints batch-1 latency (median / p90, warm) and batched throughput, through the same
`Guard.score` path users call (tokenisation included), then the LLM guard (prefill of a
LlamaGuard-sized prompt, then 5 generated tokens) and the ratio. `--onnx` also exports each shape
with `crest.guard.onnx_export` (the graph `crest guard export-onnx` writes, fp32 and dynamic int8)
and times it through `OnnxGuard.score`: the same tokenisation and windows, ONNX Runtime underneath.
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


def bench_guard(name: str, guard: Guard, args: argparse.Namespace, device: str, length: int) -> dict:
    """Batch-1 latency (median, p90) and batch-`args.batch` throughput (0: skipped) through `Guard.score`."""
    text = text_of_tokens(guard.tokenizer, length - 2)
    t0 = time.perf_counter()
    guard.score([text])  # the first call pays torch.compile's compilation, when compiled
    first = time.perf_counter() - t0
    one = timed(lambda: guard.score([text]), device, args.warmup, args.iters)
    ms = statistics.median(one) * 1e3
    p90 = sorted(one)[int(0.9 * (len(one) - 1))] * 1e3
    row = {"batch1_ms": round(ms, 3), "batch1_p90_ms": round(p90, 3), "first_call_s": round(first, 2)}
    line = f"{name:30s} {length:4d} tokens  batch 1: {ms:8.2f} ms (p90 {p90:.2f})"
    if args.batch:
        batch = [text] * args.batch
        many = timed(lambda: guard.score(batch), device, 2, max(3, args.iters // 10))
        row[f"batch{args.batch}_per_s"] = round(args.batch / statistics.median(many), 1)
        line += f"   batch {args.batch}: {row[f'batch{args.batch}_per_s']:9.1f} samples/s"
    print(line, flush=True)
    return row


def onnx_guards(guard: Guard, workdir: Path, threads: int) -> dict[str, Guard]:
    """The guard's model exported as `crest guard export-onnx` does (fp32, then dynamic int8), each
    loaded as an OnnxGuard; file sizes printed."""
    from crest.guard.onnx_export import ONNX_FILES, export_graph, quantize_int8
    from crest.guard.onnx_guard import OnnxGuard

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    export_graph(guard.model, workdir / ONNX_FILES["fp32"])
    t1 = time.perf_counter()
    quantize_int8(workdir / ONNX_FILES["fp32"], workdir / ONNX_FILES["int8"])
    guard.tokenizer.save_pretrained(workdir)
    guard.model.config.save_pretrained(workdir)
    print(f"exported in {t1 - t0:.1f} s ({(workdir / ONNX_FILES['fp32']).stat().st_size / 1e6:.0f} MB), int8 in "
          f"{time.perf_counter() - t1:.1f} s ({(workdir / ONNX_FILES['int8']).stat().st_size / 1e6:.0f} MB)", flush=True)
    return {p: OnnxGuard.from_pretrained(workdir, precision=p, device="cpu", threads=threads,
                                         pad_to_multiple_of=guard.pad_to_multiple_of) for p in ("fp32", "int8")}


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
    model = None  # free the weights (None, not del: the nested generate functions read the name)
    return row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="trained classifier dir(s)")
    p.add_argument("--shape", action="append", choices=sorted(XLMR_SHAPES), default=[])
    p.add_argument("--llm-shape", choices=sorted(LLM_SHAPES), default=None,
                   help="default: llama-3.1-8b on GPU, llama-tiny on CPU")
    p.add_argument("--no-llm", action="store_true")
    p.add_argument("--length", type=int, nargs="+", default=[128], help="tokens per input, specials included")
    p.add_argument("--batch", type=int, default=64, help="batched throughput at this batch (0: batch 1 only)")
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime fp32 and int8 exports of each shape (CPU)")
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
    suffix = (lambda n: f" {n}t") if len(args.length) > 1 else (lambda n: "")  # noqa: E731

    def run(name: str, guard: Guard, dev: str) -> None:
        for n in args.length:
            results[name + suffix(n)] = bench_guard(name, guard, args, dev, n)

    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = build_tiny_xlmr(Path(tmp) / "tok", num_labels=2)
        for shape in shapes:
            for compiled in modes:
                guard = random_guard(shape, tok_dir, device, dtype, compiled)
                run(f"xlmr-{shape}" + (" compiled" if compiled else " eager"), guard, device)
            if args.onnx:  # export a float32 CPU eager model (random weights: timing only)
                cpu_guard = guard if device == "cpu" and not compiled else random_guard(shape, tok_dir, "cpu",
                                                                                        torch.float32, False)
                for precision, onnx_guard in onnx_guards(cpu_guard, Path(tmp) / f"onnx-{shape}",
                                                         torch.get_num_threads()).items():
                    run(f"xlmr-{shape} onnx {precision}", onnx_guard, "cpu")
    for model in args.model:
        for compiled in modes:
            guard = Guard.from_pretrained(model, device=device, compile=compiled)
            run(Path(model).name + (" compiled" if compiled else " eager"), guard, device)
    if not args.no_llm:
        shape = args.llm_shape or ("llama-3.1-8b" if device == "cuda" else "llama-tiny")
        llm = bench_llm(shape, args, device, dtype)
        for name, row in results.items():
            row["llm_over_guard"] = round(llm["batch1_ms"] / row["batch1_ms"], 1)
            print(f"ratio LLM guard / {name}: {row['llm_over_guard']}x (batch 1)")
        results[f"llm-guard {shape}"] = llm
    return {"device": device, "dtype": str(dtype).removeprefix("torch."),
            "length": args.length[0] if len(args.length) == 1 else args.length,
            "threads": torch.get_num_threads(), "results": results}


def main() -> None:
    bench(parser().parse_args())

if __name__ == "__main__":
    main()
