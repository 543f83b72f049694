"""`crest serve` under shutdown and overload: SIGTERM with long requests in flight answers each one
200 or 503 (JSON), never 500, and the process exits within the grace period; work nobody waits for
leaves the queue; a full queue answers 503 with Retry-After."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from crest.guard import Guard
from crest.guard.model import ScoringStopped
from crest.guard.serve import SHUTDOWN_MARGIN_S, Limits, MicroBatcher, Refused, create_app
from test_serve import WORDS, InProcessServer, announced_url, until, wait_healthy


def long_texts(n: int, chars: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        out.append(" ".join(words)[:chars])
    return out


def sigterm_with_requests_in_flight(model: Path, log: Path, *, grace: float, texts: int, chars: int,
                                    clients: int = 4) -> tuple[list[httpx.Response], float]:
    """`crest serve` in its own process; `clients` clients each post `texts` texts of `chars`
    characters; once the server holds all of them, SIGTERM. The answers, and seconds to exit."""
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", str(model), "--port", "0",
                                 "--device", "cpu", "--no-feedback", "--batch-size", "1", "--max-batch-texts", "32",
                                 "--grace-seconds", str(grace)],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = announced_url(log, proc)
        wait_healthy(url, proc)
        answers: list[httpx.Response] = []

        def client(i: int) -> None:
            answers.append(httpx.post(f"{url}/v1/classify", json={"texts": long_texts(texts, chars, i)}, timeout=120))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        def all_arrived() -> bool:
            # a short request may be answered before the last one arrives (a loaded machine starts
            # threads slowly): every request is in flight or answered, and at least one still in flight
            in_flight = httpx.get(f"{url}/healthz", timeout=5).json()["in_flight"]
            return in_flight >= 1 and in_flight + len(answers) == clients

        until(all_arrived, 60, "every request reaching the server")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        took = time.monotonic() - sent
        for t in threads:
            t.join(timeout=60)
        return answers, took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_sigterm_past_the_grace_period_answers_503_never_500_and_exits(tiny_classifier: Path, tmp_path: Path) -> None:
    """4 x 32 texts of 20,000 characters, one window per forward pass: far more work than 1 s. Was:
    uvicorn cancelled the requests after its 30 s timeout (500 with a traceback) and the worker went
    on scoring them."""
    log = tmp_path / "serve.log"
    grace = 1.0
    answers, took = sigterm_with_requests_in_flight(tiny_classifier, log, grace=grace, texts=32, chars=20_000)
    text = log.read_text()
    assert len(answers) == 4 and {r.status_code for r in answers} <= {200, 503}, [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code == 503]
    assert refused, "the work was meant to outlast the grace period"
    for r in refused:
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "shutting down" and "1 s grace period" in r.json()["detail"]
    assert took < grace + 2 * SHUTDOWN_MARGIN_S, f"exited {took:.1f} s after SIGTERM"
    assert "Traceback" not in text and "Cancel " not in text  # uvicorn's own timeout never fired
    assert f"{len(refused)} request(s) refused at the grace deadline" in text


@pytest.mark.slow
def test_sigterm_within_the_grace_period_answers_every_request(tiny_classifier: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    answers, took = sigterm_with_requests_in_flight(tiny_classifier, log, grace=60, texts=4, chars=3_000)
    assert [r.status_code for r in answers] == [200] * 4
    assert all(len(r.json()["prob_unsafe"]) == 4 for r in answers)
    assert took < 30  # it leaves once the answers are out, not at the end of the grace period
    assert "0 request(s) refused at the grace deadline, 0 dropped unscored" in log.read_text()


def held(guard: Guard) -> tuple[list[list[str]], threading.Event, threading.Event]:
    """Make `guard.score` wait for `release` (after setting `entered`) and record what it was asked."""
    score, asked = guard.score, []
    entered, release = threading.Event(), threading.Event()

    def held_score(texts, stop=None):
        asked.append(list(texts))
        entered.set()
        assert release.wait(timeout=30)
        return score(texts, stop=stop)

    guard.score = held_score
    return asked, entered, release


def test_work_nobody_waits_for_leaves_the_queue(tiny_classifier: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", batch_size=1, max_length=16)
    asked, entered, release = held(guard)
    batcher = MicroBatcher(guard, Limits(batch_window_ms=0, max_batch_texts=4))
    batcher.start()
    try:
        first = batcher.submit(["hello world"])
        assert entered.wait(timeout=30)
        cancelled, kept = batcher.submit(["gone"]), batcher.submit(["still wanted"])
        assert cancelled.cancel()  # what asyncio.wrap_future does when its request task is cancelled
        release.set()
        first.result(timeout=30), kept.result(timeout=30)
        assert asked == [["hello world"], ["still wanted"]] and batcher.skipped == 1

        entered.clear(), release.clear()
        long = batcher.submit(long_texts(1, 2_000, 0))  # many 16-token windows: many forward passes
        assert entered.wait(timeout=30)
        queued = batcher.submit(["waiting"])
        assert batcher.refuse_all("stopping") == 2
        forwards = []
        probs = guard._probs
        guard._probs = lambda ids, mask: forwards.append(1) or probs(ids, mask)
        release.set()
        for f in (long, queued):
            with pytest.raises(Refused, match="stopping"):
                f.result(timeout=30)
        with pytest.raises(Refused):
            batcher.submit(["new"])
    finally:
        release.set()
        assert batcher.stop(timeout=30)
    assert len(asked) == 3 and forwards == []  # the refused batch stopped before its first forward pass
    assert batcher.batches == 2 and batcher.skipped == 1 + 2 and batcher.queued == 0


def test_score_stops_between_forward_passes(tiny_classifier: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", batch_size=1, max_length=16)
    text = long_texts(1, 2_000, 1)
    calls = []
    with pytest.raises(ScoringStopped, match="stopped after 3 of"):
        guard.score(text, stop=lambda: calls.append(1) or len(calls) > 3)
    np.testing.assert_allclose(guard.score(text, stop=lambda: False), guard.score(text))


def test_a_full_queue_answers_503_with_retry_after(tiny_classifier: Path) -> None:
    guard = Guard.from_pretrained(tiny_classifier, device="cpu")
    asked, entered, release = held(guard)
    app = create_app(guard, model_id="tiny", limits=Limits(max_texts=4, max_queue=6, batch_window_ms=0))
    answers: dict[int, httpx.Response] = {}
    with InProcessServer(app) as srv:
        def post(i: int, n: int) -> None:
            answers[i] = httpx.post(f"{srv.url}/v1/classify", json={"texts": [f"text {i} {j}" for j in range(n)]},
                                    timeout=60)

        threads = [threading.Thread(target=post, args=(0, 4))]  # being scored (held): not in the queue
        threads[0].start()
        assert entered.wait(timeout=30)
        for i, n, queued in ((1, 4, 4), (2, 2, 6)):  # then 6 texts wait: the queue is full
            threads.append(threading.Thread(target=post, args=(i, n)))
            threads[-1].start()
            until(lambda q=queued: app.state.batcher.queued == q, 30, f"{queued} texts queued")
        post(3, 1)  # one text more than the queue holds
        refused = answers[3]
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        body = refused.json()
        assert body["error"] == "overloaded" and body["limit"] == 6 and body["queued"] == 6
        assert "6 texts are waiting" in body["detail"]
        release.set()
        for t in threads:
            t.join(timeout=30)
        assert [answers[i].status_code for i in range(3)] == [200, 200, 200]
        assert httpx.post(f"{srv.url}/v1/classify", json={"text": "now there is room"}).status_code == 200
    scored = [t for batch in asked for t in batch]
    assert len(scored) == 4 + 4 + 2 + 1 and not any(t.startswith("text 3") for t in scored)


def test_a_client_that_leaves_takes_its_work_off_the_queue(tiny_classifier: Path) -> None:
    """A client that times out (a gateway's deadline) closes its connection: its queued texts are
    never scored, and a batch of its own being scored stops at the next forward pass."""
    guard = Guard.from_pretrained(tiny_classifier, device="cpu", batch_size=1, max_length=16)
    asked, entered, release = held(guard)
    forwards = []
    probs = guard._probs
    guard._probs = lambda ids, mask: forwards.append(len(ids)) or probs(ids, mask)
    app = create_app(guard, model_id="tiny", limits=Limits(batch_window_ms=0))
    batcher = app.state.batcher
    answers: dict[str, int] = {}
    with InProcessServer(app) as srv:
        def post(name: str, texts: list[str], timeout: float) -> None:
            try:
                answers[name] = httpx.post(f"{srv.url}/v1/classify", json={"texts": texts}, timeout=timeout).status_code
            except httpx.TimeoutException:
                answers[name] = -1  # gave up and closed the connection

        first = threading.Thread(target=post, args=("first", long_texts(1, 2_000, 2), 1.0))
        first.start()
        assert entered.wait(timeout=30)  # its batch is in Guard.score, held before any forward pass
        queued = threading.Thread(target=post, args=("queued", ["left behind"], 1.0))
        queued.start()
        until(lambda: len(batcher.unanswered) == 2, 30, "the second request queued")
        first.join(timeout=30), queued.join(timeout=30)
        until(lambda: len(batcher.unanswered) == 0, 30, "the server noticing both clients gone")
        release.set()
        until(lambda: batcher.skipped == 2, 30, "the worker dropping both")
        r = httpx.post(f"{srv.url}/v1/classify", json={"text": "still serving"}, timeout=30)
        assert r.status_code == 200
    assert answers == {"first": -1, "queued": -1}
    assert asked == [long_texts(1, 2_000, 2), ["still serving"]]  # "left behind" never reached Guard.score
    assert forwards == [1]  # the abandoned batch ran no forward pass; the last request one


def test_bad_grace_and_queue_settings_are_refused_in_one_line(tiny_classifier: Path, capsys) -> None:
    from crest.cli import main

    for flags, message in ((["--grace-seconds", "-1"], "grace_seconds must be in [0, 3600], got -1.0"),
                           (["--grace-seconds", "nan"], "grace_seconds must be in [0, 3600], got nan"),
                           (["--max-queue", "10"], "max_queue (10) must be at least max_texts (64)")):
        assert main(["serve", "--model", str(tiny_classifier), "--port", "0", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
