"""`crest serve` over real HTTP on loopback: concurrent answers equal `Guard.score`, micro-batching
groups requests, limits answer 413, a shutdown during a request still answers it."""

from __future__ import annotations

import os
import random
import re
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
from crest.guard.serve import Limits, MicroBatcher, bind_listener, create_app
from crest.tiny import sample_texts

WORDS = [w for w in sample_texts(("en", "de", "hi")) if " " not in w][:300]


def until(condition, timeout: float, what: str, step: float = 0.02) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(step)


def announced_url(log: Path, proc: subprocess.Popen, timeout: float = 90.0) -> str:
    """The address `crest serve --port 0` listens on, from the line it logs once bound."""
    found: list[str] = []

    def started() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        found[:] = re.findall(r"crest serve listening on (http://127\.0\.0\.1:\d+)", log.read_text())
        return bool(found)

    until(started, timeout, "crest serve announcing its port", step=0.1)
    return found[0]


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
    """uvicorn in a thread on a loopback socket bound to port 0 (as `crest serve` binds: the port is the
    one the kernel gave, never released and bound again); `stop()` is what SIGTERM does."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = bind_listener("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=20))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

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
def test_crest_serve_concurrent_answers_equal_guard_score(tiny_classifier: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", str(tiny_classifier), "--port", "0",
                                 "--device", "cpu", "--max-texts", "8", "--max-chars", "500", "--batch-window-ms", "20"],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = announced_url(log, proc)
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
        assert "Application shutdown complete" in log.read_text()
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

    def slow_score(texts, **kw):
        entered.set()
        assert release.wait(timeout=30)
        return score(texts, **kw)

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
        until(lambda: server.sock.fileno() == -1, 30, "uvicorn closing its listening socket")
        assert stopper.is_alive()  # shutdown waits for the request in flight (its scoring is held)
        with pytest.raises(httpx.ConnectError):
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
    assert main(["serve", "--model", str(tiny_classifier), "--max-texts", "0", "--port", "0"]) == 2
    assert "max_texts must be at least 1" in capsys.readouterr().err


def test_a_failed_batch_fails_its_requests_not_the_server(tiny_classifier: Path) -> None:
    """Guard.score raising: every request of that batch gets the error (HTTP 500), the worker lives on,
    and the next batch is scored."""
    from fastapi.testclient import TestClient

    guard = Guard.from_pretrained(tiny_classifier, device="cpu")
    score = guard.score

    def failing_score(texts, **kw):
        if any("boom" in t for t in texts):
            raise RuntimeError("scoring failed")
        return score(texts, **kw)

    guard.score = failing_score
    batcher = MicroBatcher(guard, Limits(batch_window_ms=500, max_batch_texts=8))
    batcher.start()
    try:
        together = [batcher.submit(["hello"]), batcher.submit(["boom", "x"])]  # one batch: both fail
        for f in together:
            with pytest.raises(RuntimeError, match="scoring failed"):
                f.result(timeout=30)
        np.testing.assert_allclose(batcher.submit(["hello"]).result(timeout=30), score(["hello"]), atol=1e-6)
    finally:
        batcher.stop()
    assert batcher.batches == 1 and batcher.largest_batch == 1  # only the scored batch counts

    app = create_app(guard, model_id="tiny", limits=Limits(batch_window_ms=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/classify", json={"texts": ["boom"]}).status_code == 500
        r = client.post("/v1/classify", json={"texts": ["hello", "world"]})
        assert r.status_code == 200 and client.get("/healthz").status_code == 200
        np.testing.assert_allclose(r.json()["prob_unsafe"], score(["hello", "world"]), atol=1e-5)


def test_healthz_is_503_once_the_scoring_worker_is_gone(tiny_classifier: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Guard.from_pretrained(tiny_classifier, device="cpu"), model_id="tiny")
    with TestClient(app) as client:
        r = client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok", "in_flight": 0}
        app.state.batcher.stop()  # the worker thread ends: nothing would ever score a request
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json() == {"status": "down", "in_flight": 0}
