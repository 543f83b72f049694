"""`crest serve` over real HTTP on loopback: concurrent answers equal `Guard.score`, micro-batching
groups requests, limits answer 413, a shutdown during a request still answers it."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from crest.guard import Guard
from crest.guard.serve import Limits, MicroBatcher, create_app
from crest.tiny import sample_texts

WORDS = [w for w in sample_texts(("en", "de", "hi")) if " " not in w][:300]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy after {timeout} s")


def random_texts(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(n)]


class InProcessServer:
    """uvicorn in a thread on a free loopback port; `stop()` is what SIGTERM does."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=20))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        wait_healthy(self.url, timeout=30)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server did not stop"

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.mark.slow
def test_crest_serve_concurrent_answers_equal_guard_score(tiny_classifier: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", str(tiny_classifier), "--port", str(port),
                             "--device", "cpu", "--max-texts", "8", "--max-chars", "500", "--batch-window-ms", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_healthy(url, proc)
        rng = random.Random(0)
        requests = [random_texts(rng, rng.randint(1, 4)) for _ in range(36)]
        answers: dict[int, dict] = {}

        def client(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                for i in range(worker, len(requests), 6):
                    body = {"text": requests[i][0]} if len(requests[i]) == 1 else {"texts": requests[i]}
                    r = c.post("/v1/classify", json=body)
                    answers[i] = {"status": r.status_code, **r.json()}

        threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(answers) == len(requests) and {a["status"] for a in answers.values()} == {200}

        guard = Guard.from_pretrained(tiny_classifier, device="cpu")
        for i, texts in enumerate(requests):
            np.testing.assert_allclose(answers[i]["prob_unsafe"], guard.score(texts), atol=1e-5)
            assert answers[i]["labels"] == [r["label"] for r in guard.classify(texts)]
            assert answers[i]["threshold"] == 0.5 and answers[i]["model"] == str(tiny_classifier)

        info = httpx.get(f"{url}/v1/model").json()
        assert info["max_length"] == guard.max_length and info["limits"]["max_texts"] == 8
        assert info["labels"] == {"0": "safe", "1": "unsafe"}

        r = httpx.post(f"{url}/v1/classify", json={"texts": ["a"] * 9})
        assert r.status_code == 413 and r.json()["limit"] == 8 and "9 texts" in r.json()["detail"]
        r = httpx.post(f"{url}/v1/classify", json={"texts": ["ok", "x" * 501]})
        assert r.status_code == 413 and r.json()["got"] == 501 and "text 1 has 501 characters" in r.json()["detail"]
        r = httpx.post(f"{url}/v1/classify", json={"text": "a", "texts": ["b"]})
        assert r.status_code == 422
        r = httpx.post(f"{url}/v1/classify", json={"text": "a", "threshold": 1.5})
        assert r.status_code == 422 and "finite number in [0, 1]" in r.text
        r = httpx.post(f"{url}/v1/classify", json={"text": "a", "threshold": 0.0})
        assert r.json()["labels"] == ["unsafe"] and r.json()["threshold"] == 0.0

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
        assert "Application shutdown complete" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_concurrent_requests_share_one_batch(tiny_classifier: Path) -> None:
    """Requests queued within the window are scored in one Guard.score call, split back in order."""
    guard = Guard.from_pretrained(tiny_classifier, device="cpu")
    batcher = MicroBatcher(guard, Limits(batch_window_ms=500, max_batch_texts=6))
    batcher.start()
    try:
        rng = random.Random(1)
        jobs = [random_texts(rng, n) for n in (1, 2, 3, 2)]
        futures = [batcher.submit(texts) for texts in jobs]
        results = [f.result(timeout=30) for f in futures]
    finally:
        batcher.stop()
    assert batcher.batches == 2 and batcher.largest_batch == 6  # 1+2+3 together, then 2 (the cap is 6)
    for texts, got in zip(jobs, results, strict=True):
        np.testing.assert_allclose(got, guard.score(texts), atol=1e-5)


def test_long_input_uses_the_guard_windows(tiny_classifier: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", max_length=32)
    text = " ".join(random.Random(2).choice(WORDS) for _ in range(200))
    assert len(guard._windows([text])[0]) > 1
    with InProcessServer(create_app(guard, model_id="tiny")) as server:
        r = httpx.post(f"{server.url}/v1/classify", json={"text": text}, timeout=30)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["prob_unsafe"], guard.score([text]), atol=1e-5)


def test_shutdown_during_a_request_still_answers_it(tiny_classifier: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu")
    entered, release = threading.Event(), threading.Event()
    score = guard.score

    def slow_score(texts):
        entered.set()
        assert release.wait(timeout=30)
        return score(texts)

    guard.score = slow_score
    server = InProcessServer(create_app(guard, model_id="tiny", limits=Limits(batch_window_ms=0)))
    server.__enter__()
    answer: dict = {}

    def client() -> None:
        r = httpx.post(f"{server.url}/v1/classify", json={"texts": ["hello", "world"]}, timeout=60)
        answer.update(status=r.status_code, body=r.json())

    t = threading.Thread(target=client)
    t.start()
    try:
        assert entered.wait(timeout=30)  # the request is being scored
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        time.sleep(0.3)
        assert stopper.is_alive()  # shutdown waits for the request in flight
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=2)  # no new connections meanwhile
    finally:
        release.set()
    t.join(timeout=30)
    stopper.join(timeout=30)
    assert not stopper.is_alive() and answer["status"] == 200
    np.testing.assert_allclose(answer["body"]["prob_unsafe"], score(["hello", "world"]), atol=1e-5)


def test_serve_refuses_a_busy_port_in_one_line(tiny_classifier: Path, capsys) -> None:
    from crest.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(tiny_classifier), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"crest: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert main(["serve", "--model", str(tiny_classifier), "--max-texts", "0", "--port", str(free_port())]) == 2
    assert "max_texts must be at least 1" in capsys.readouterr().err
