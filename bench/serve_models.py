"""Several guards in one `crest serve`: one scoring worker per model (default) against one guard
scoring at a time (`--scoring shared`), under the red-team page's load: each client sends one
prompt to every guard at once (as the page does) and waits for all answers.

    python bench/serve_models.py                          # two random XLM-R Base-shaped guards, CPU
    python bench/serve_models.py --shape tiny --clients 1 4 --duration 10
    python bench/serve_models.py --model results/demo/models/crest/base/seed0 --model results/demo/models/english/base/seed0

Prints, per mode and client count, pages/s (one page = one prompt scored by every guard) and the
p50/p95 page latency.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from serve import free_port, launch, prompts, random_model, run_clients  # noqa: E402 (bench/serve.py)


def start(models: list[Path], port: int, scoring: str, device: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crest", "serve", "--port", str(port), "--device", device, "--scoring", scoring,
           "--no-feedback"]
    for i, m in enumerate(models):
        cmd += ["--model", f"g{i}={m}"]
    return launch(cmd, port, 300)


def pages(url: str, names: list[str], texts: list[str], clients: int, duration: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    t_end = time.perf_counter() + duration

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c, ThreadPoolExecutor(len(names)) as pool:
            i = k
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                answers = list(pool.map(lambda n: c.post("/v1/classify", json={"text": texts[i % len(texts)],
                                                                                "model": n}), names))
                for r in answers:
                    r.raise_for_status()
                latencies[k].append(time.perf_counter() - t0)
                i += clients

    seconds = run_clients(client, clients, duration + 300)
    ms = np.asarray([x for per in latencies for x in per]) * 1e3
    return {"clients": clients, "pages": len(ms), "pps": len(ms) / seconds,
            "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, action="append", help="a guard directory (repeat; default: random ones)")
    p.add_argument("--guards", type=int, default=2, help="how many random guards without --model")
    p.add_argument("--shape", choices=["tiny", "base", "large"], default="base")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    p.add_argument("--duration", type=float, default=15.0, help="seconds per row")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per scoring worker")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    texts = prompts(200)
    with tempfile.TemporaryDirectory() as tmp:
        models = args.model or [random_model(args.shape, Path(tmp) / f"g{i}") for i in range(args.guards)]
        names = [f"g{i}" for i in range(len(models))]
        rows = []
        for scoring in ("per-model", "shared"):
            port = free_port()
            server = start(models, port, scoring, args.device)
            try:
                url = f"http://127.0.0.1:{port}"
                pages(url, names, texts, 1, 2.0)  # warm-up
                rows += [{"scoring": scoring, **pages(url, names, texts, n, args.duration)} for n in args.clients]
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
    print(f"{len(models)} guards ({', '.join(map(str, args.model)) if args.model else 'random xlmr-' + args.shape}), "
          f"device {args.device}, {args.threads} torch thread(s) per worker, {args.duration:g} s per row, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| scoring | clients | pages | pages/s | p50 ms | p95 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['scoring']} | {r['clients']} | {r['pages']} | {r['pps']:.2f} | {r['p50']:.1f} | {r['p95']:.1f} |")


if __name__ == "__main__":
    main()
