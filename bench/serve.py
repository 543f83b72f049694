"""Load benchmark of `crest serve`: N concurrent clients on loopback, against the same model scored
in-process at batch 1, so the ratio shows what micro-batching buys.

    python bench/serve.py                                        # tiny classifier, CPU
    python bench/serve.py --model results/demo/models/crest/small/seed0 --clients 1 4 16
    python bench/serve.py --shape base --duration 20             # random-weight XLM-R Base shape

Each client sends one text per request (prompts of 5-60 words, a fixed draw) and waits for the
answer, for `--duration` seconds per client count; the server runs in its own process
(`python -m crest serve`, on 127.0.0.1 with a free port) and is stopped at the end. Prints
requests/s and p50/p95/p99 latency per row, and the mean texts per scored batch (from /v1/model).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from crest.guard import Guard
from crest.tiny import build_tiny_xlmr, sample_texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts(n: int, seed: int = 0) -> list[str]:
    words = " ".join(sample_texts(("en", "de", "fr", "es"))).split()
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(n)]


def summarise(name: str, clients: int, latencies: list[float], seconds: float, mean_batch: float | None) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"mode": name, "clients": clients, "requests": len(latencies), "rps": len(latencies) / seconds,
            "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "batch": mean_batch}


def in_process(model: Path, texts: list[str], duration: float, device: str) -> dict:
    guard = Guard.from_pretrained(model, device=device)
    for t in texts[:5]:
        guard.score([t])  # warm-up
    latencies, i, t_end = [], 0, time.perf_counter() + duration
    start = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        guard.score([texts[i % len(texts)]])
        latencies.append(time.perf_counter() - t0)
        i += 1
    return summarise("in-process batch 1", 1, latencies, time.perf_counter() - start, 1.0)


def load(url: str, texts: list[str], clients: int, duration: float) -> dict:
    before = httpx.get(f"{url}/v1/model").json()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    t_end = time.perf_counter() + duration

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            i = k
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                r = c.post("/v1/classify", json={"text": texts[i % len(texts)]})
                r.raise_for_status()
                latencies[k].append(time.perf_counter() - t0)
                i += clients

    seconds = run_clients(client, clients, duration + 120)
    after = httpx.get(f"{url}/v1/model").json()
    done = [x for per in latencies for x in per]
    batches = after["batches_scored"] - before["batches_scored"]
    return summarise("crest serve", clients, done, seconds, len(done) / batches if batches else None)


def start_server(model: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crest", "serve", "--model", str(model), "--port", str(port), "--device", args.device,
           "--batch-window-ms", str(args.window_ms), "--max-batch-texts", str(args.max_batch)]
    return launch(cmd, port, 180)


def run_clients(client, clients: int, join_timeout_s: float) -> float:
    """Run `client(k)` for k < clients on their own threads until all end; the seconds it took."""
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=join_timeout_s)
    return time.perf_counter() - start


def launch(cmd: list[str], port: int, timeout_s: float) -> subprocess.Popen:
    """Start `crest serve` and wait for /healthz; exit with the command when it dies or never answers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"crest serve exited with {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"crest serve did not become healthy within {timeout_s:.0f} s")


def random_model(shape: str, out: Path) -> Path:
    """A random-weight classifier of a real XLM-R shape (the tiny tokenizer; compute is the shape's)."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    sys.path.insert(0, str(Path(__file__).parent))
    from latency import XLMR_SHAPES

    build_tiny_xlmr(out, num_labels=2)
    hidden, layers, heads, ffn = XLMR_SHAPES[shape]
    config = XLMRobertaConfig.from_pretrained(out)
    config.update({"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                   "intermediate_size": ffn})
    XLMRobertaForSequenceClassification(config).save_pretrained(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a trained classifier directory (default: a tiny one built here)")
    p.add_argument("--shape", choices=["tiny", "base", "large"], default="tiny", help="random weights of this shape")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    p.add_argument("--window-ms", type=float, default=5.0)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, server and in-process alike (1: a busy shared CPU oversubscribes more)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server process inherits it
    import torch

    torch.set_num_threads(args.threads)
    texts = prompts(500)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or random_model(args.shape, Path(tmp) / f"xlmr-{args.shape}")
        rows = [in_process(model, texts, args.duration, args.device)]
        port = free_port()
        server = start_server(model, port, args)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(3):
                httpx.post(f"{url}/v1/classify", json={"text": texts[0]}, timeout=60)  # warm-up
            rows += [load(url, texts, n, args.duration) for n in args.clients]
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    base = rows[0]["rps"]
    print(f"model {args.model or 'xlmr-' + args.shape + ' (random)'}, device {args.device}, threads {args.threads}, "
          f"window {args.window_ms} ms, {args.duration:g} s per row, one text per request, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| mode | clients | requests | req/s | x in-process | p50 ms | p95 ms | p99 ms | texts/batch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        batch = "" if r["batch"] is None else f"{r['batch']:.1f}"
        print(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['rps'] / base:.2f} | "
              f"{r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {batch} |")


if __name__ == "__main__":
    main()
