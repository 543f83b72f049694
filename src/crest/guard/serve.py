"""`crest serve`: a trained guard behind an HTTP JSON API (FastAPI on uvicorn).

    crest serve --model results/paper/models/crest/large/seed0 --port 8000
    curl -s localhost:8000/v1/classify -H 'content-type: application/json' -d '{"texts": ["hi", "..."]}'

Concurrent requests are micro-batched: the first request waiting opens a short window
(`batch_window_ms`); every request that arrives in it (up to `max_batch_texts` texts) is scored in
one `Guard.score` call, which sorts the texts' windows by length and runs them in batches, with
the same sliding windows over long inputs as the library. Scoring runs in one worker thread, so the
event loop keeps accepting requests while a batch runs. On SIGTERM/SIGINT uvicorn stops accepting,
the requests in flight are answered, then the worker stops.

`POST /v1/moderations` speaks OpenAI's moderation API (`{"input": str | [str], "model"}` ->
`{"id", "model", "results": [{"flagged", "categories", "category_scores", ...}]}`), so gateways
that call OpenAI's moderation (LiteLLM's `openai_moderation` guardrail, the `openai` client) use
the guard by pointing their base URL here. The binary guard fills one category, `unsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from crest.guard.loading import check_threshold
from crest.guard.model import Guard, load_guard_file
from crest.guard.onnx_guard import load_guard

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """What one request may ask and how requests are grouped."""

    max_texts: int = 64  # texts per request
    max_chars: int = 20_000  # characters per text
    batch_window_ms: float = 5.0  # how long the first waiting request waits for company
    max_batch_texts: int = 256  # texts per Guard.score call

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_batch_texts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.batch_window_ms <= 10_000:
            raise ValueError(f"batch_window_ms must be in [0, 10000], got {self.batch_window_ms}")


class ClassifyRequest(BaseModel):
    """POST /v1/classify: one `text` or a list `texts`; `threshold` overrides the model's (and its
    per-language ones); `lang` (one for all) or `langs` (one per text) picks per-language thresholds."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    texts: list[str] | None = None
    threshold: float | None = None
    lang: str | None = None
    langs: list[str | None] | None = None


MODERATION_CATEGORY = "unsafe"  # the one category a binary guard fills in /v1/moderations


class TextPart(BaseModel):
    """One element of OpenAI's multi-modal moderation input; crest scores `text` parts only."""

    type: str
    text: str | None = None


class ModerationRequest(BaseModel):
    """POST /v1/moderations, OpenAI's shape: `input` a string, a list of strings or of text parts;
    `model` is accepted and not used (the server has one model); `lang` is crest's extension."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str | TextPart]
    model: str | None = None
    lang: str | None = None


@dataclass
class _Job:
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """One worker thread that gathers queued requests for a short window and scores them together."""

    def __init__(self, guard: Guard, limits: Limits) -> None:
        self.guard, self.limits = guard, limits
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0  # Guard.score calls, for /v1/model and the tests
        self.largest_batch = 0
        self.thread = threading.Thread(target=self._run, name="crest-serve-batcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Score what is queued, then end the worker."""
        self.jobs.put(None)
        self.thread.join()

    def submit(self, texts: list[str]) -> Future:
        job = _Job(texts)
        self.jobs.put(job)
        return job.future

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` and the jobs that arrive within the window (texts up to max_batch_texts); True when
        the stop sentinel was seen."""
        batch, n = [first], len(first.texts)
        deadline = time.monotonic() + self.limits.batch_window_ms / 1000
        while n < self.limits.max_batch_texts:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if n + len(job.texts) > self.limits.max_batch_texts:
                self.jobs.put(job)  # the next batch opens with it (FIFO order aside, nothing is lost)
                break
            batch.append(job)
            n += len(job.texts)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while True:
            try:
                first = self.jobs.get(timeout=0.1 if stopping else None)
            except queue.Empty:
                return
            if first is None:
                stopping = True  # answer what is still queued, then end
                continue
            batch, saw_stop = self._gather(first)
            stopping = stopping or saw_stop
            texts = [t for job in batch for t in job.texts]
            try:
                probs = self.guard.score(texts)
            except Exception as e:  # a failed batch fails its requests, not the server
                log.exception("scoring a batch of %d texts failed", len(texts))
                for job in batch:
                    job.future.set_exception(e)
                continue
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(texts))
            start = 0
            for job in batch:
                job.future.set_result(probs[start:start + len(job.texts)])
                start += len(job.texts)


def model_summary(guard: Guard, model_dir: Path | None, model_id: str) -> dict[str, Any]:
    """What /v1/model says: the model, its threshold and how it was chosen, its window."""
    import json

    summary: dict[str, Any] = {"model": model_id, "threshold": guard.threshold, "max_length": guard.max_length,
                               "window_tokens": guard.window, "stride_tokens": guard.stride,
                               "labels": {int(k): v for k, v in (guard.config.id2label or {}).items()},
                               "backend": f"onnxruntime {guard.precision}" if hasattr(guard, "session") else "torch",
                               "language_thresholds": dict(guard.lang_thresholds),
                               "moderation_categories": [MODERATION_CATEGORY]}
    if model_dir is not None:
        stored = load_guard_file(model_dir)
        summary["calibration"] = stored.get("calibration")
        if stored.get("language_calibration"):
            summary["language_calibration"] = stored["language_calibration"]
        if stored.get("onnx"):
            summary["onnx_gate"] = stored["onnx"].get("gate")
        provenance = model_dir / "provenance.json"
        if provenance.is_file():
            card = json.loads(provenance.read_text(encoding="utf-8"))
            summary["card"] = {k: card[k] for k in ("run", "arm", "size", "seed", "encoder", "languages",
                                                    "translator_is_random") if k in card}
    return summary


def create_app(guard: Guard, *, model_id: str, model_dir: Path | None = None, limits: Limits | None = None):
    """The ASGI app. The batcher starts and stops with the app's lifespan."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    limits = limits or Limits()
    batcher = MicroBatcher(guard, limits)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.stop)  # after uvicorn has answered the requests in flight

    app = FastAPI(title="crest guard", lifespan=lifespan)
    app.state.batcher = batcher
    summary = model_summary(guard, model_dir, model_id)

    def too_large(detail: str, limit: int, got: int) -> JSONResponse:
        return JSONResponse(status_code=413, content={"error": "request too large", "detail": detail,
                                                      "limit": limit, "got": got})

    app.state.in_flight = 0

    def check_texts(texts: list[str]) -> JSONResponse | None:
        """413 past the limits (the same for every endpoint), else None."""
        if len(texts) > limits.max_texts:
            return too_large(f"{len(texts)} texts in one request; at most {limits.max_texts}", limits.max_texts,
                             len(texts))
        longest = max(range(len(texts)), key=lambda i: len(texts[i]))
        if len(texts[longest]) > limits.max_chars:
            return too_large(f"text {longest} has {len(texts[longest])} characters; at most {limits.max_chars} per text",
                             limits.max_chars, len(texts[longest]))
        return None

    @app.post("/v1/classify")
    async def classify(req: ClassifyRequest):
        app.state.in_flight += 1  # one event loop: no lock needed
        try:
            return await _classify(req)
        finally:
            app.state.in_flight -= 1

    async def _classify(req: ClassifyRequest):
        if (req.text is None) == (req.texts is None):
            raise HTTPException(status_code=422, detail="give exactly one of 'text' (a string) and 'texts' (a list)")
        texts = [req.text] if req.text is not None else req.texts
        if not texts:
            raise HTTPException(status_code=422, detail="'texts' is empty")
        refused = check_texts(texts)
        if refused is not None:
            return refused
        if req.lang is not None and req.langs is not None:
            raise HTTPException(status_code=422, detail="give 'lang' (one for all) or 'langs' (one per text), not both")
        langs = req.lang if req.langs is None else req.langs
        try:
            threshold = guard.threshold if req.threshold is None else check_threshold(req.threshold)
            thresholds, origin = guard.thresholds(len(texts), langs, req.threshold)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        probs = await asyncio.wrap_future(batcher.submit(list(texts)))
        return {"model": model_id, "threshold": threshold, "prob_unsafe": [float(p) for p in probs],
                "labels": ["unsafe" if p >= t else "safe" for p, t in zip(probs, thresholds, strict=True)],
                "thresholds": [float(t) for t in thresholds], "threshold_from": origin,
                "langs": langs if isinstance(langs, list) else [langs] * len(texts)}

    @app.post("/v1/moderations")
    async def moderations(req: ModerationRequest):
        app.state.in_flight += 1
        try:
            return await _moderations(req)
        finally:
            app.state.in_flight -= 1

    async def _moderations(req: ModerationRequest):
        items = [req.input] if isinstance(req.input, str) else req.input
        if not items:
            raise HTTPException(status_code=422, detail="'input' is empty")
        texts = []
        for i, item in enumerate(items):
            if isinstance(item, TextPart):
                if item.type != "text" or item.text is None:
                    raise HTTPException(status_code=422, detail=f"input {i}: type {item.type!r}; crest moderates text only")
                item = item.text
            texts.append(item)
        refused = check_texts(texts)
        if refused is not None:
            return refused
        thresholds, _ = guard.thresholds(len(texts), req.lang)
        probs = await asyncio.wrap_future(batcher.submit(texts))
        return {"id": f"modr-{uuid.uuid4().hex}", "model": model_id, "results": [
            {"flagged": bool(p >= t), "categories": {MODERATION_CATEGORY: bool(p >= t)},
             "category_scores": {MODERATION_CATEGORY: float(p)},
             "category_applied_input_types": {MODERATION_CATEGORY: ["text"]}}
            for p, t in zip(probs, thresholds, strict=True)]}

    @app.get("/v1/model")
    async def model():
        return {**summary, "limits": vars(limits), "batches_scored": batcher.batches,
                "largest_batch": batcher.largest_batch}

    @app.get("/healthz")
    async def healthz():
        alive = batcher.thread.is_alive()
        return JSONResponse(status_code=200 if alive else 503,
                            content={"status": "ok" if alive else "down", "in_flight": app.state.in_flight})

    return app


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          threshold: float | None = None, batch_size: int = 32, limits: Limits | None = None,
          model_id: str | None = None, graceful_timeout_s: float = 30.0, backend: str = "auto",
          precision: str = "auto") -> None:
    """Load the guard (strictly, as `Guard.from_pretrained`) and serve it until SIGINT/SIGTERM.
    Port 0 takes a free port; the log line "crest serve listening on http://HOST:PORT" names it."""
    import uvicorn

    sock = bind_listener(host, port)  # before loading: a busy port fails at once
    with sock:
        guard = load_guard(model, backend=backend, precision=precision, device=device, threshold=threshold,
                           batch_size=batch_size)
        local = Path(model).expanduser()
        app = create_app(guard, model_id=model_id or str(model), model_dir=local if local.is_dir() else None,
                         limits=limits)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                               timeout_graceful_shutdown=graceful_timeout_s))
        address = f"[{host}]" if ":" in host else host  # uvicorn names no port for sockets given to it
        logging.getLogger("uvicorn.error").info("crest serve listening on http://%s:%d", address, sock.getsockname()[1])
        server.run(sockets=[sock])  # the socket bound above, never closed and bound again (no race)
    if not server.started:  # as uvicorn.run: the app's startup failed (uvicorn logged why)
        raise SystemExit(3)


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (0: a free port) for uvicorn to listen on, with the options
    uvicorn sets itself; a busy or unusable address is an OSError of one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
