"""Throughput of the translation stage against raw CTranslate2 `translate_batch` and Hugging
Face `generate`, on the same model and workload, greedy and beam 4.

    python bench/translate.py                                # CPU: the tiny random-weight NLLB
    python bench/translate.py --shape nllb-600m              # GPU: random weights, NLLB-600M's exact shape
    python bench/translate.py --shape nllb-600m --sentences 2048 --batch 256 --beam-batch 64

Three ways to translate the same sentences into French:

- `ct2 raw`: pre-tokenised sources straight into `Translator.translate_batch` (CTranslate2 sorts
  and splits them into batches of `--batch` examples itself).
- `stage`: crest's own path from text to a written shard: `translate_shard` on a rows parquet
  with an already loaded translator (tokenisation, segmentation, length-sorted batching,
  asynchronous submission, detokenisation, chunk checkpoints, parquet I/O; model load excluded,
  as for the other two).
- `hf generate`: `M2M100ForConditionalGeneration.generate` (bf16 on GPU, fp32 on CPU), inputs
  sorted by length, batches of `--batch` examples.

Random weights cost the same compute as trained ones, but a random model stops at arbitrary
points; every side is forced to generate exactly `--gen-tokens` tokens (min = max length), and the
script checks that the output lengths agree. The `nllb-600m` shape is d_model 1024, 12+12 layers,
FFN 4096, 16 heads, vocabulary 256,206 (the tiny tokenizer's ids are a subset; the conversion pads
the vocabulary to the model's size). Prints sentences/s, generated tokens/s and the ratios, and
writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from crest.io import write_json

SHAPES = {
    "tiny": dict(d_model=64, layers=2, heads=4, ffn_dim=128, vocab_size=None),
    "nllb-600m": dict(d_model=1024, layers=12, heads=16, ffn_dim=4096, vocab_size=256206),
}


def build_model(shape: str, root: Path, quantization: str) -> tuple[Path, Path]:
    """HF directory and CTranslate2 directory of a random-weight model of `shape`."""
    import torch
    from transformers import AutoTokenizer, M2M100Config, M2M100ForConditionalGeneration

    from crest.translate.convert import convert_model
    from crest.translate.tiny import build_tiny_nllb

    hf = build_tiny_nllb(root / "tiny-hf")
    if shape != "tiny":
        s = SHAPES[shape]
        tok = AutoTokenizer.from_pretrained(hf)
        config = M2M100Config(
            vocab_size=s["vocab_size"], d_model=s["d_model"], encoder_layers=s["layers"], decoder_layers=s["layers"],
            encoder_attention_heads=s["heads"], decoder_attention_heads=s["heads"], encoder_ffn_dim=s["ffn_dim"],
            decoder_ffn_dim=s["ffn_dim"], max_position_embeddings=1024, scale_embedding=True,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id)
        torch.manual_seed(0)
        model = M2M100ForConditionalGeneration(config).to(torch.float16).eval()
        hf = root / f"{shape}-hf"
        model.save_pretrained(hf)
        tok.save_pretrained(hf)
        (hf / "crest.json").write_text(json.dumps({"random_weights": True, "shape": shape}))
        del model
    ct2 = convert_model(hf, root / f"{shape}-ct2-{quantization}", quantization, spec=f"random {shape}")
    return hf, ct2


def workload(n: int, mean_tokens: int, count_tokens, seed: int = 0) -> list[str]:
    """`n` sentences of CLDR names whose token counts spread around `mean_tokens` (±40%)."""
    from crest.tiny import sample_texts

    rng = random.Random(seed)
    words = [w for t in sample_texts(("en", "de", "es", "fr")) for w in t.split()]
    out = []
    for _ in range(n):
        target = rng.randint(int(mean_tokens * 0.6), int(mean_tokens * 1.4))
        sent: list[str] = []
        while True:
            sent.append(rng.choice(words))
            if count_tokens([" ".join(sent)])[0] >= target:
                break
        out.append(" ".join(sent))
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def sync():
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    except ImportError:
        pass


def bench_ct2_raw(translator, pieces, gen, beam, batch):
    from crest.translate.nllb import nllb_format

    sources, prefixes = zip(*(nllb_format(p, "eng_Latn", "fra_Latn") for p in pieces))
    results, seconds = timed(lambda: translator.translator.translate_batch(
        list(sources), list(prefixes), max_batch_size=batch, beam_size=beam, max_input_length=0,
        min_decoding_length=gen + 1, max_decoding_length=gen + 1))
    lengths = [len(r.hypotheses[0]) - 1 for r in results]
    return seconds, lengths


def bench_stage(translator, texts, gen, beam, batch, workdir: Path, chunk_rows: int):
    import pandas as pd

    from crest.languages import load_languages
    from crest.translate.nllb import DecodeOptions
    from crest.translate.shard import translate_shard

    rows = pd.DataFrame({"id": [f"b-{i}" for i in range(len(texts))], "text": texts, "label": 0, "lang": "en",
                         "source": "bench", "category": "", "split": "test", "origin": "bench"})
    rows_path = workdir / f"rows-{beam}.parquet"
    rows.to_parquet(rows_path, index=False)
    out = workdir / f"fr-{beam}.parquet"
    out.unlink(missing_ok=True)
    options = DecodeOptions(beam_size=beam, max_batch_examples=batch, max_batch_tokens=batch * 1024,
                            max_length_ratio=0.0, max_length_extra=gen, min_decoding_length=gen,
                            max_segment_tokens=1000)
    _, seconds = timed(lambda: translate_shard(rows_path, translator.model_dir, out, "fr", load_languages(),
                                               options=options, chunk_rows=chunk_rows, device=translator.device,
                                               progress=False, translator=translator))
    shard = pd.read_parquet(out)
    return seconds, shard["out_tokens"].tolist()


def bench_hf(hf_dir: Path, texts, gen, beam, batch, device: str):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir, src_lang="eng_Latn")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForSeq2SeqLM.from_pretrained(hf_dir, dtype=dtype).to(device).eval()
    forced = tok.convert_tokens_to_ids("fra_Latn")
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    lengths = []

    def run():
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                chunk = [texts[i] for i in order[start:start + batch]]
                enc = tok(chunk, return_tensors="pt", padding=True).to(device)
                out = model.generate(**enc, forced_bos_token_id=forced, num_beams=beam, do_sample=False,
                                     min_new_tokens=gen + 1, max_new_tokens=gen + 1, early_stopping=False)
                lengths.extend([out.shape[1] - 2] * len(chunk))  # minus decoder start and language token
        sync()

    run_small = texts[: min(len(texts), batch)]  # warm-up (CUDA kernels, allocator)
    with torch.inference_mode():
        enc = tok(run_small[:8], return_tensors="pt", padding=True).to(device)
        model.generate(**enc, forced_bos_token_id=forced, num_beams=beam, max_new_tokens=4)
    sync()
    _, seconds = timed(run)
    model = None  # free the weights (None, not del: the nested run() reads the name)
    if device == "cuda":
        torch.cuda.empty_cache()
    return seconds, lengths


def bench(shape: str = "tiny", device: str = "auto", sentences: int | None = None, *, src_tokens: int = 51,
          gen_tokens: int = 48, batch: int | None = None, beam_batch: int | None = None,
          beams: tuple[int, ...] = (1, 4), quantization: str | None = None, chunk_rows: int = 2048,
          threads: int = 0, skip_hf: bool = False, repeat: int = 1, workdir: Path | None = None) -> dict:
    """ct2 raw, the stage and HF generate on the same sentences, per beam size: rows and ratios."""
    from crest.translate.nllb import NllbTranslator, resolve_device

    device = resolve_device(device)
    gpu = device == "cuda"
    n = sentences or (2048 if gpu else 512)
    batches = {1: batch or (256 if gpu else 64), 4: beam_batch or (64 if gpu else 16)}
    quantization = quantization or ("float16" if gpu else "float32")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="crest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"building random-weight {shape} model in {workdir} ...", file=sys.stderr)
    hf_dir, ct2_dir = build_model(shape, workdir, quantization)
    translator = NllbTranslator(ct2_dir, device=device, intra_threads=threads)
    texts = workload(n, src_tokens, translator.count_tokens)
    pieces = translator.tokenize(texts)
    src_mean = sum(map(len, pieces)) / n
    print(f"{shape} on {device} ({translator.translator.compute_type}), {n} sentences, "
          f"{src_mean:.1f} source / {gen_tokens} generated tokens each", file=sys.stderr)

    bench_ct2_raw(translator, pieces[:64], 4, 1, 64)  # warm-up
    rows = []
    for beam in beams:
        size = batches.get(beam, batches[4])
        raw_s, raw_len = min((bench_ct2_raw(translator, pieces, gen_tokens, beam, size)
                              for _ in range(repeat)), key=lambda r: r[0])
        stage_s, stage_len = min((bench_stage(translator, texts, gen_tokens, beam, size, workdir, chunk_rows)
                                  for _ in range(repeat)), key=lambda r: r[0])
        entries = [("ct2 raw", raw_s, raw_len), ("stage", stage_s, stage_len)]
        if not skip_hf:
            hf_s, hf_len = bench_hf(hf_dir, texts, gen_tokens, beam, size, device)
            entries.append(("hf generate", hf_s, hf_len))
        for name, seconds, lengths in entries:
            mean_len = sum(lengths) / len(lengths)
            rows.append({"mode": name, "beam": beam, "batch": size, "sentences": n, "seconds": round(seconds, 3),
                         "sentences_per_s": round(n / seconds, 1), "tokens_per_s": round(sum(lengths) / seconds, 1),
                         "mean_generated": round(mean_len, 2), "equal_lengths": set(lengths) == {gen_tokens}})
    ratios = {}
    for beam in beams:
        by = {r["mode"]: r["sentences_per_s"] for r in rows if r["beam"] == beam}
        ratios[f"beam{beam}_stage_vs_raw"] = round(by["stage"] / by["ct2 raw"], 3)
        if "hf generate" in by:
            ratios[f"beam{beam}_stage_vs_hf"] = round(by["stage"] / by["hf generate"], 2)
            ratios[f"beam{beam}_raw_vs_hf"] = round(by["ct2 raw"] / by["hf generate"], 2)
    return {"shape": shape, "device": device, "compute_type": translator.translator.compute_type,
            "source_tokens_mean": round(src_mean, 1), "generated_tokens": gen_tokens, "results": rows,
            "ratios": ratios}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--sentences", type=int, default=None, help="default: 2048 on GPU, 512 on CPU")
    p.add_argument("--src-tokens", type=int, default=51, help="mean source tokens per sentence")
    p.add_argument("--gen-tokens", type=int, default=48, help="generated tokens per sentence (forced)")
    p.add_argument("--batch", type=int, default=None, help="greedy batch (examples); default 256 GPU, 64 CPU")
    p.add_argument("--beam-batch", type=int, default=None, help="beam-4 batch; default 64 GPU, 16 CPU")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    p.add_argument("--quantization", default=None, help="default float16 on GPU, float32 on CPU")
    p.add_argument("--chunk-rows", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for CTranslate2 (0: its default)")
    p.add_argument("--skip-hf", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="repeat ct2 raw and stage, keep the best")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    result = bench(args.shape, args.device, args.sentences, src_tokens=args.src_tokens, gen_tokens=args.gen_tokens,
                   batch=args.batch, beam_batch=args.beam_batch, beams=tuple(args.beams),
                   quantization=args.quantization, chunk_rows=args.chunk_rows, threads=args.threads,
                   skip_hf=args.skip_hf, repeat=args.repeat, workdir=args.workdir)
    print(f"\n{'mode':<12} {'beam':>4} {'batch':>5} {'sent/s':>9} {'tok/s':>10} {'gen/sent':>8}  equal-length")
    for r in result["results"]:
        print(f"{r['mode']:<12} {r['beam']:>4} {r['batch']:>5} {r['sentences_per_s']:>9.1f} {r['tokens_per_s']:>10.1f} "
              f"{r['mean_generated']:>8.2f}  {r['equal_lengths']}")
    for beam in args.beams:
        ratios = result["ratios"]
        line = f"beam {beam}: stage / ct2 raw = {ratios[f'beam{beam}_stage_vs_raw']:.2f}"
        if f"beam{beam}_stage_vs_hf" in ratios:
            line += f", stage / hf generate = {ratios[f'beam{beam}_stage_vs_hf']:.2f}x"
        print(line)
    if args.shape == "tiny":
        print("(tiny model: per-step overheads dominate; the GPU figures with --shape nllb-600m are the ones to quote)")
    if args.out:
        write_json(result, args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
