"""`crest serve`: a trained guard behind an HTTP JSON API (FastAPI on uvicorn).

    crest serve --model results/paper/models/crest/large/seed0 --port 8000
    curl -s localhost:8000/v1/classify -H 'content-type: application/json' -d '{"texts": ["hi", "..."]}'

Concurrent requests are micro-batched: the first request waiting opens a short window
(`batch_window_ms`); every request that arrives in it (up to `max_batch_texts` texts) is scored in
one `Guard.score` call, which sorts the texts' windows by length and runs them in batches, with
the same sliding windows over long inputs as the library. Scoring runs in one worker thread, so the
event loop keeps accepting requests while a batch runs. At most `max_queue` texts wait for the worker;
past that a request is refused at once (503 with Retry-After) rather than queued without limit.

On SIGTERM/SIGINT uvicorn stops accepting; the requests in flight are answered for up to
`grace_seconds`; then those still waiting are answered 503 (JSON), the worker drops their texts (and
stops a batch in progress at its next forward pass), and the process exits. A request is never left
to uvicorn's own timeout, which would cancel it into a 500 with a traceback.

`POST /v1/moderations` speaks OpenAI's moderation API (`{"input": str | [str], "model"}` ->
`{"id", "model", "results": [{"flagged", "categories", "category_scores", ...}]}`), so gateways
that call OpenAI's moderation (LiteLLM's `openai_moderation` guardrail, the `openai` client) use
the guard by pointing their base URL here. The binary guard fills one category, `unsafe`.

Several named guards can be served at once (`--model crest=DIR --model english=DIR`): each has its
own scoring worker; `/v1/classify` and `/v1/moderations` take a `model` field (default: the first);
`/v1/model` lists them all. `GET /` is a red-team page (crest.guard.page: no asset from outside),
and `POST /v1/feedback` keeps what a person says a guard got wrong (crest.guard.feedback).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import queue
import re
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import Request  # at module level: FastAPI reads the route's annotation by name
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crest.guard.feedback import FeedbackFull, FeedbackLimits, FeedbackStore
from crest.guard.loading import check_threshold
from crest.guard.model import Guard, ScoringStopped, load_guard_file, resolve_langs
from crest.guard.onnx_guard import load_guard

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """What one request may ask and how requests are grouped."""

    max_texts: int = 64  # texts per request
    max_chars: int = 20_000  # characters per text
    batch_window_ms: float = 5.0  # how long the first waiting request waits for company
    max_batch_texts: int = 256  # texts per Guard.score call
    max_queue: int = 1024  # texts waiting for the worker (beyond the batch being scored); more: 503

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_batch_texts", "max_queue"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < self.max_texts:
            raise ValueError(f"max_queue ({self.max_queue}) must be at least max_texts ({self.max_texts}): "
                             "a request of max_texts texts must fit an empty queue")
        if not 0 <= self.batch_window_ms <= 10_000:
            raise ValueError(f"batch_window_ms must be in [0, 10000], got {self.batch_window_ms}")


class ClassifyRequest(BaseModel):
    """POST /v1/classify: one `text` or a list `texts`; `threshold` overrides the model's (and its
    per-language ones); `lang` (one for all) or `langs` (one per text) picks per-language thresholds;
    where none is given the language is detected, unless `detect_lang` is false (or the server's
    --no-detect-lang)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    texts: list[str] | None = None
    threshold: float | None = None
    lang: str | None = None
    langs: list[str | None] | None = None
    detect_lang: bool | None = None  # None: the server's setting
    model: str | None = None  # which served guard (default: the first)
    detail: bool = False  # also say, per text, how many tokens and sliding windows were scored


MODERATION_CATEGORY = "unsafe"  # the one category a binary guard fills in /v1/moderations


class TextPart(BaseModel):
    """One element of OpenAI's multi-modal moderation input; crest scores `text` parts only."""

    type: str
    text: str | None = None


class ModerationRequest(BaseModel):
    """POST /v1/moderations, OpenAI's shape: `input` a string, a list of strings or of text parts;
    `model` names a served guard (any other name: the first); `lang` and `detect_lang` are crest's
    extensions."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str | TextPart]
    model: str | None = None  # a served guard's name picks it; any other name (OpenAI's) the first
    lang: str | None = None
    detect_lang: bool | None = None


class GuardScore(BaseModel):
    """What the page showed for one guard when the person said it was wrong."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(max_length=200)
    prob_unsafe: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    verdict: Literal["safe", "unsafe"]
    threshold_from: str | None = Field(default=None, max_length=40)


class FeedbackRequest(BaseModel):
    """POST /v1/feedback: the text, the label the person says is right, what each guard said."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")  # the client's, for retries
    text: str
    label: Literal["safe", "unsafe"]
    lang: str | None = Field(default=None, max_length=35)
    note: str | None = None
    scores: list[GuardScore] = Field(default_factory=list, max_length=32)


class Overloaded(RuntimeError):
    """The queue already holds `max_queue` texts: the request is refused, not queued (503)."""

    def __init__(self, queued: int, limit: int, adding: int, retry_after: int) -> None:
        super().__init__(f"{queued} texts are waiting to be scored; {adding} more would pass the queue's limit "
                         f"of {limit}: retry in {retry_after} s")
        self.queued, self.limit, self.retry_after = queued, limit, retry_after


class Refused(RuntimeError):
    """The server is stopping and this request was not scored in time (503)."""


@dataclass(eq=False)
class _Job:
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """One worker thread that gathers queued requests for a short window and scores them together.

    At most `limits.max_queue` texts wait (`Overloaded` beyond). A job nobody waits for any more (its
    future cancelled, or refused by `refuse_all` at shutdown) is skipped, and a batch all of whose
    requests are gone stops at its next forward pass."""

    def __init__(self, guard: Guard, limits: Limits, score_lock: threading.Lock | None = None,
                 name: str = "crest-serve-batcher") -> None:
        self.guard, self.limits = guard, limits
        self.score_lock = score_lock or contextlib.nullcontext()  # shared by all models: one at a time
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.carry: _Job | None = None  # a job that did not fit the last batch: it opens the next one
        self.lock = threading.Lock()  # guards queued, unanswered, refusing and every future's outcome
        self.queued = 0  # texts submitted and not yet taken into a batch
        self.unanswered: set[_Job] = set()
        self.refusing: str | None = None  # set at shutdown: why new and waiting requests are refused
        self.seconds_per_text: float | None = None  # of the last batch, for Retry-After
        self.batches = 0  # Guard.score calls, for /v1/model and the tests
        self.largest_batch = 0
        self.skipped = 0  # jobs dropped unscored because nobody waited for them any more
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Score what is still waited for, then end the worker; False when it is still busy after
        `timeout` seconds (a daemon thread: it does not keep the process alive)."""
        self.jobs.put(None)
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def submit(self, texts: list[str]) -> Future:
        """Queue `texts`; their P(unsafe) arrive in the returned future. Raises Overloaded when the
        queue is full and Refused once the server has begun refusing (shutdown)."""
        job = _Job(texts)
        with self.lock:
            if self.refusing is not None:
                raise Refused(self.refusing)
            if self.queued + len(texts) > self.limits.max_queue:
                raise Overloaded(self.queued, self.limits.max_queue, len(texts), self._retry_after())
            self.queued += len(texts)
            self.unanswered.add(job)
        self.jobs.put(job)
        return job.future

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained, from the last batch's pace (at least 1)."""
        return max(1, min(300, math.ceil(self.queued * (self.seconds_per_text or 0.0))))

    def refuse_all(self, reason: str) -> int:
        """Answer every request not yet answered with Refused(reason), and refuse new ones; the worker
        skips their texts. Returns how many requests were refused."""
        with self.lock:
            self.refusing = reason
            waiting = [job for job in self.unanswered if not job.future.done()]
            for job in waiting:
                job.future.set_exception(Refused(reason))
            self.unanswered.clear()
        return len(waiting)

    def drop(self, future: Future, reason: str) -> bool:
        """Answer one request with Refused(reason) (its client is gone): the worker skips its texts,
        or stops its batch when no other request waits on it. False when it was answered already."""
        with self.lock:
            job = next((j for j in self.unanswered if j.future is future), None)
            if job is None or future.done():
                return False
            future.set_exception(Refused(reason))
            self.unanswered.discard(job)
        return True

    def _take(self, job: _Job) -> bool:
        """Take `job` off the queue; False (and skipped) when nobody waits for its answer any more."""
        with self.lock:
            self.queued -= len(job.texts)
            if job.future.done() or not job.future.set_running_or_notify_cancel():
                self.unanswered.discard(job)
                self.skipped += 1
                return False
        return True

    def _settle(self, job: _Job, result: Any = None, error: BaseException | None = None) -> None:
        with self.lock:
            self.unanswered.discard(job)
            if job.future.done():  # refused meanwhile: that answer stands
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

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
                self.carry = job  # the next batch opens with it
                break
            if self._take(job):
                batch.append(job)
                n += len(job.texts)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while True:
            if self.carry is not None:
                first, self.carry = self.carry, None
            else:
                try:
                    first = self.jobs.get(timeout=0.1 if stopping else None)
                except queue.Empty:
                    return
            if first is None:
                stopping = True  # answer what is still queued, then end
                continue
            if not self._take(first):
                continue
            batch, saw_stop = self._gather(first)
            stopping = stopping or saw_stop
            texts = [t for job in batch for t in job.texts]
            started = time.monotonic()
            try:
                with self.score_lock:
                    probs = self.guard.score(texts, stop=lambda: all(job.future.done() for job in batch))
            except ScoringStopped:
                log.info("a batch of %d texts was dropped unscored: none of its requests waits any more", len(texts))
                self.skipped += len(batch)
                continue
            except Exception as e:  # a failed batch fails its requests, not the server
                log.exception("scoring a batch of %d texts failed", len(texts))
                for job in batch:
                    self._settle(job, error=e)
                continue
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(texts))
            self.seconds_per_text = (time.monotonic() - started) / len(texts)
            start = 0
            for job in batch:
                self._settle(job, probs[start:start + len(job.texts)])
                start += len(job.texts)


def weights_revision(model_dir: Path | None) -> str | None:
    """The first 12 hex digits of the SHA-256 of the weights file (model.safetensors, or the ONNX
    file): which weights answered, recorded with each feedback."""
    if model_dir is None:
        return None
    for name in ("model.safetensors", "model.int8.onnx", "model.onnx"):
        path = model_dir / name
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
            return digest.hexdigest()[:12]
    return None


def model_summary(guard: Guard, model_dir: Path | None, model_id: str) -> dict[str, Any]:
    """What /v1/model says: the model, its threshold and how it was chosen, its window, and the
    facts of its card (task, training languages, revision, validation F1) where it has them."""
    summary: dict[str, Any] = {"model": model_id, "threshold": guard.threshold, "max_length": guard.max_length,
                               "window_tokens": guard.window, "stride_tokens": guard.stride,
                               "labels": {int(k): v for k, v in (guard.config.id2label or {}).items()},
                               "backend": f"onnxruntime {guard.precision}" if hasattr(guard, "session") else "torch",
                               "language_thresholds": dict(guard.lang_thresholds),
                               "cluster_thresholds": dict(guard.cluster_thresholds),
                               "language_clusters": dict(guard.language_clusters),
                               "moderation_categories": [MODERATION_CATEGORY]}
    facts: dict[str, Any] = {"task": "safety", "languages": None, "revision": weights_revision(model_dir),
                             "validation_f1": None}
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
            facts["task"] = card.get("task") or facts["task"]
            facts["languages"] = card.get("languages")
            facts["validation_f1"] = (card.get("training") or {}).get("best_f1")
            facts["arm"] = card.get("arm")
    summary["facts"] = facts
    return summary


@dataclass
class ServedModel:
    """One named guard of a server: what it scores with, where it came from, its worker."""

    name: str
    guard: Guard
    model_dir: Path | None = None
    batcher: MicroBatcher | None = None
    summary: dict[str, Any] = field(default_factory=dict)


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHUTDOWN_MARGIN_S = 2.0  # after the grace period: for the 503s to go out and the worker to stop


def check_grace(grace_s: float) -> float:
    if not (math.isfinite(grace_s) and 0 <= grace_s <= 3600):
        raise ValueError(f"grace_seconds must be in [0, 3600], got {grace_s}")
    return float(grace_s)


class Shutdown:
    """The grace period after SIGTERM/SIGINT. `begin` (from uvicorn's signal handler) starts it; when
    it ends, every request still waiting is answered 503 (`MicroBatcher.refuse_all`) and its texts are
    dropped, so uvicorn finds no task left to cancel."""

    def __init__(self, grace_s: float, batchers: list[MicroBatcher]) -> None:
        self.grace_s, self.batchers = grace_s, batchers
        self.deadline: float | None = None  # time.monotonic() when the grace period ends
        self.refused = 0
        self._timer: threading.Timer | None = None

    def begin(self) -> None:
        if self.deadline is not None:
            return
        self.deadline = time.monotonic() + self.grace_s
        self._timer = threading.Timer(self.grace_s, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def expire(self) -> None:
        reason = (f"the server is shutting down and could not score this request within its "
                  f"{self.grace_s:g} s grace period")
        self.refused += sum(b.refuse_all(reason) for b in self.batchers)
        if self.refused:
            logging.getLogger("uvicorn.error").warning(
                "crest serve: grace period of %g s over: %d request(s) answered 503, their texts dropped",
                self.grace_s, self.refused)

    def stop_timeout(self) -> float | None:
        """How long the lifespan may wait for the workers: no limit (score what is queued) without a
        shutdown deadline, else until the deadline plus the margin."""
        if self.deadline is None:
            return None
        return max(0.1, self.deadline + SHUTDOWN_MARGIN_S - time.monotonic())


def create_app(guard: Guard | list[ServedModel], *, model_id: str | None = None, model_dir: Path | None = None,
               limits: Limits | None = None, feedback: FeedbackStore | None = None, token: str | None = None,
               shared_scoring: bool = False, grace_seconds: float = 10.0, detect_lang: bool = True):
    """The ASGI app for one guard (`guard`, `model_id`, `model_dir`) or several named ones (a list of
    ServedModel; the first is the default). Each guard has its own scoring worker, unless
    `shared_scoring`: then one lock lets one guard score at a time (measured in docs/guard.md).
    `feedback`: where POST /v1/feedback writes (None: feedback is off). `token`: every /v1/ route
    then needs `Authorization: Bearer <token>` (401 otherwise); `/`, its assets and /healthz stay open.
    The workers start and stop with the app's lifespan; `app.state.shutdown.begin()` (called on
    SIGTERM/SIGINT by `serve`) starts the `grace_seconds` after which waiting requests get 503.
    `detect_lang`: detect the language of texts given without one (a request's `detect_lang` wins)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse, Response

    from crest.guard import page

    limits = limits or Limits()
    models = guard if isinstance(guard, list) else [ServedModel(model_id or "model", guard, model_dir)]
    if not models:
        raise ValueError("no model to serve")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ: {', '.join(names)}")
    lock = threading.Lock() if shared_scoring else None
    for m in models:
        m.batcher = MicroBatcher(m.guard, limits, score_lock=lock, name=f"crest-serve-{m.name}")
        m.summary = model_summary(m.guard, m.model_dir, m.name)
    by_name = {m.name: m for m in models}
    default = models[0]
    batchers = [m.batcher for m in models]
    shutdown = Shutdown(check_grace(grace_seconds), batchers)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        for b in batchers:
            b.start()
        if detect_lang:
            from crest.guard.langid import identifier

            await asyncio.to_thread(identifier)  # loaded now, not in the first request
        try:
            yield
        finally:
            for b in batchers:  # after uvicorn has answered the requests in flight
                if not await asyncio.to_thread(b.stop, shutdown.stop_timeout()):
                    log.warning("%s still in a forward pass at the shutdown deadline: left behind", b.thread.name)
            logging.getLogger("uvicorn.error").info(
                "crest serve stopped: %d batches scored, %d request(s) refused at the grace deadline, "
                "%d dropped unscored", sum(b.batches for b in batchers), shutdown.refused,
                sum(b.skipped for b in batchers))
            if feedback is not None:
                feedback.close()

    app = FastAPI(title="crest guard", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = default.batcher  # the default model's worker
    app.state.models = by_name
    app.state.feedback = feedback
    app.state.shutdown = shutdown

    if token is not None:
        expected = f"Bearer {token}".encode()

        @app.middleware("http")
        async def bearer(request: Request, call_next):
            if request.url.path.startswith("/v1/"):
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return JSONResponse(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                                        content={"error": "unauthorized",
                                                 "detail": "this server needs 'Authorization: Bearer <token>'"})
            return await call_next(request)

    async def scored(served: ServedModel, texts: list[str], request: Request) -> Any:
        """P(unsafe) of `texts` from the guard's worker, or the answer that says why not: 503 when the
        queue is full (with Retry-After) or the server stopped before scoring them; 499 when the
        client went away first (its texts then leave the queue: nobody would read their scores)."""
        try:
            future = served.batcher.submit(texts)
        except Overloaded as e:
            return JSONResponse(status_code=503, headers={"Retry-After": str(e.retry_after)},
                                content={"error": "overloaded", "detail": str(e), "limit": e.limit, "queued": e.queued,
                                         "retry_after": e.retry_after})
        except Refused as e:
            return shutting_down(e)
        answer, gone = asyncio.wrap_future(future), asyncio.ensure_future(client_gone(request))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                served.batcher.drop(future, "the client closed the connection")
                answer.cancel()
                return JSONResponse(status_code=499, content={"error": "client closed the request"})
            return answer.result()
        except Refused as e:
            return shutting_down(e)
        finally:
            gone.cancel()

    def shutting_down(e: Refused) -> JSONResponse:
        return JSONResponse(status_code=503, headers={"Connection": "close"},
                            content={"error": "shutting down", "detail": str(e)})

    async def client_gone(request: Request) -> None:
        """Returns when the client disconnects (the body is read: what the server receives next is
        the disconnect)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def languages_of(texts: list[str], langs: Any, detect: bool | None) -> tuple[list, list]:
        """Each text's language and "given"/"detected"/None (crest.guard.model.resolve_langs); a
        thread, not the event loop, runs the detector."""
        return await asyncio.to_thread(resolve_langs, list(texts), langs, detect_lang if detect is None else detect)

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

    def pick(name: str | None) -> ServedModel:
        if name is None:
            return default
        if name not in by_name:
            raise HTTPException(status_code=422, detail=f"no model {name!r} here; served: {', '.join(names)}")
        return by_name[name]

    def windows_of(g: Guard, texts: list[str]) -> tuple[list[int], list[int]]:
        """Tokens and sliding windows per text, as Guard.score splits them."""
        from crest.guard.windows import window_starts

        ids = g.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids], [len(window_starts(len(x), g.window, g.stride)) for x in ids]

    @app.post("/v1/classify")
    async def classify(req: ClassifyRequest, request: Request):
        app.state.in_flight += 1  # one event loop: no lock needed
        try:
            return await _classify(req, request)
        finally:
            app.state.in_flight -= 1

    async def _classify(req: ClassifyRequest, request: Request):
        served = pick(req.model)
        g = served.guard
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
        try:
            threshold = g.threshold if req.threshold is None else check_threshold(req.threshold)
            langs, lang_from = await languages_of(texts, req.lang if req.langs is None else req.langs,
                                                  req.detect_lang)
            thresholds, origin = g.thresholds(len(texts), langs, req.threshold)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        probs = await scored(served, list(texts), request)
        if isinstance(probs, JSONResponse):
            return probs
        answer = {"model": served.name, "threshold": threshold, "prob_unsafe": [float(p) for p in probs],
                  "labels": ["unsafe" if p >= t else "safe" for p, t in zip(probs, thresholds, strict=True)],
                  "thresholds": [float(t) for t in thresholds], "threshold_from": origin,
                  "langs": langs, "lang_from": lang_from}
        if req.detail:
            answer["tokens"], answer["windows"] = await asyncio.to_thread(windows_of, g, list(texts))
        return answer

    @app.post("/v1/moderations")
    async def moderations(req: ModerationRequest, request: Request):
        app.state.in_flight += 1
        try:
            return await _moderations(req, request)
        finally:
            app.state.in_flight -= 1

    async def _moderations(req: ModerationRequest, request: Request):
        served = by_name.get(req.model, default) if req.model is not None else default
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
        langs, _ = await languages_of(texts, req.lang, req.detect_lang)
        thresholds, _ = served.guard.thresholds(len(texts), langs)
        probs = await scored(served, texts, request)
        if isinstance(probs, JSONResponse):
            return probs
        return {"id": f"modr-{uuid.uuid4().hex}", "model": served.name, "results": [
            {"flagged": bool(p >= t), "categories": {MODERATION_CATEGORY: bool(p >= t)},
             "category_scores": {MODERATION_CATEGORY: float(p)},
             "category_applied_input_types": {MODERATION_CATEGORY: ["text"]}}
            for p, t in zip(probs, thresholds, strict=True)]}

    def model_entry(m: ServedModel) -> dict[str, Any]:
        return {**m.summary, "batches_scored": m.batcher.batches, "largest_batch": m.batcher.largest_batch}

    @app.get("/v1/model")
    async def model():
        """The default model's summary (as with one model), and `models`: every served guard."""
        from crest.guard.langid import describe

        return {**model_entry(default), "limits": vars(limits), "models": [model_entry(m) for m in models],
                "language_detection": {"enabled": detect_lang, **describe()},
                "scoring": "shared" if shared_scoring else "per-model",
                "feedback": None if feedback is None else {"enabled": True, **vars(feedback.limits)}}

    flimits = feedback.limits if feedback is not None else None

    def refuse(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": error, "detail": detail, **extra})

    @app.post("/v1/feedback")
    async def post_feedback(request: Request):
        if feedback is None:
            return refuse(404, "feedback is off", "this server keeps no feedback (start crest serve with "
                          "--feedback-db, or serve a model of a run directory)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > flimits.max_body_bytes:
                return refuse(413, "request too large", f"body over {flimits.max_body_bytes} bytes",
                              limit=flimits.max_body_bytes, got=len(body))
        try:
            req = FeedbackRequest.model_validate_json(bytes(body))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ())) or "body"
            return refuse(422, "invalid feedback", f"{where}: {first.get('msg')}")
        if not req.text.strip():
            return refuse(422, "invalid feedback", "the text is empty: there is nothing to keep")
        for what, value, cap in (("text", req.text, flimits.max_text_chars), ("note", req.note or "",
                                                                           flimits.max_note_chars)):
            if len(value) > cap:
                return refuse(413, "request too large", f"the {what} has {len(value)} characters; at most {cap}",
                              limit=cap, got=len(value))
        if any(not (math.isfinite(s.prob_unsafe) and math.isfinite(s.threshold)) for s in req.scores):
            return refuse(422, "invalid feedback", "scores must be finite")
        record = {"id": req.id, "text": req.text, "label": req.label, "lang": req.lang, "note": req.note,
                  "scores": [s.model_dump() for s in req.scores],
                  "models": {m.name: {"revision": m.summary["facts"]["revision"],
                                      "path": str(m.model_dir) if m.model_dir else None} for m in models}}
        try:
            fid, new = await asyncio.to_thread(feedback.add, record)
        except FeedbackFull as e:
            return refuse(507, "feedback database full", str(e))
        return JSONResponse(status_code=201 if new else 200, content={"id": fid, "stored": new, "duplicate": not new})

    @app.get("/")
    async def index():
        return Response(page.html(), media_type="text/html; charset=utf-8", headers=page.HEADERS)

    @app.get("/page.js")
    async def page_js():
        return Response(page.asset("page.js"), media_type="text/javascript; charset=utf-8", headers=page.HEADERS)

    @app.get("/page.css")
    async def page_css():
        return Response(page.asset("page.css"), media_type="text/css; charset=utf-8", headers=page.HEADERS)

    @app.get("/favicon.ico")
    async def favicon():
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz():
        alive = all(b.thread.is_alive() for b in batchers)
        return JSONResponse(status_code=200 if alive else 503,
                            content={"status": "ok" if alive else "down", "in_flight": app.state.in_flight})

    return app


def parse_models(specs: list[str], model_id: str | None = None) -> list[tuple[str, str]]:
    """`--model` values as (name, path): `NAME=PATH` names a guard; a bare `PATH` is named by
    `model_id` (one model only) or by the path as given. Names must differ."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and NAME.match(name) and path:
            out.append((name, path))
        else:
            out.append((None, spec))
    if model_id is not None:
        if len(out) != 1:
            raise ValueError("--model-id names a single model; with several, name each: --model NAME=PATH")
        out[0] = (model_id, out[0][1])
    named = [(name or path, path) for name, path in out]
    names = [n for n, _ in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"--model names must differ: {', '.join(dupes)} given twice")
    return named


def read_token(token_file: str | Path | None = None, env: str = "CREST_SERVE_TOKEN") -> str | None:
    """The bearer token: the first line of `token_file`, else the environment variable `env`, else
    None (no token: the API is open, as before). Never from the command line (it would show in ps)."""
    import os

    if token_file is not None:
        path = Path(token_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such token file")
        token = path.read_text(encoding="utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
    else:
        token = os.environ.get(env)
        if token is None:
            return None
        token = token.strip()
    if len(token) < 16 or not token.isascii() or any(c.isspace() for c in token):
        raise ValueError(f"the bearer token ({token_file or '$' + env}) must be at least 16 printable ASCII characters")
    return token


def serve(model: str | Path | list[str], *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          threshold: float | None = None, batch_size: int = 32, limits: Limits | None = None,
          model_id: str | None = None, grace_seconds: float = 10.0, backend: str = "auto",
          precision: str = "auto", feedback_db: str | Path | None = None, feedback_limits: FeedbackLimits | None = None,
          no_feedback: bool = False, token: str | None = None, shared_scoring: bool = False,
          detect_lang: bool = True) -> None:
    """Load the guards (strictly, as `Guard.from_pretrained`) and serve them until SIGINT/SIGTERM.
    Port 0 takes a free port; the log line "crest serve listening on http://HOST:PORT" names it.
    Feedback goes to `feedback_db`, else to `{run}/feedback/feedback.sqlite` of the first model that
    sits in a run directory, else it is off (also with `no_feedback`). On SIGTERM/SIGINT requests in
    flight are answered for up to `grace_seconds`, then refused with 503 (JSON); the process exits
    within SHUTDOWN_MARGIN_S after that. uvicorn's own `timeout_graceful_shutdown` is set past both,
    as a backstop that should never fire (it would cancel requests into 500s)."""

    from crest.guard.feedback import default_db

    specs = parse_models([str(model)] if isinstance(model, str | Path) else [str(m) for m in model], model_id)
    limits = limits or Limits()
    check_grace(grace_seconds)
    sock = bind_listener(host, port)  # before loading: a busy port fails at once
    with sock:
        served = []
        for name, path in specs:
            guard = load_guard(path, backend=backend, precision=precision, device=device, threshold=threshold,
                               batch_size=batch_size)
            local = Path(path).expanduser()
            served.append(ServedModel(name, guard, local if local.is_dir() else None))
        db = None if no_feedback else (Path(feedback_db) if feedback_db else default_db(
            [m.model_dir for m in served if m.model_dir is not None]))
        store = None
        if db is not None:
            flimits = feedback_limits or FeedbackLimits(max_text_chars=limits.max_chars)
            store = FeedbackStore(db, flimits)
        app = create_app(served, limits=limits, feedback=store, token=token, shared_scoring=shared_scoring,
                         grace_seconds=grace_seconds, detect_lang=detect_lang)
        server = GracefulServer(uvicorn.Config(app, host=host, port=port, log_level="info",
                                               timeout_graceful_shutdown=grace_seconds + 2 * SHUTDOWN_MARGIN_S),
                                on_exit=app.state.shutdown.begin)
        address = f"[{host}]" if ":" in host else host  # uvicorn names no port for sockets given to it
        say = logging.getLogger("uvicorn.error").info
        say("crest serve: %s; feedback %s%s", ", ".join(f"{m.name} ({m.model_dir or 'hub'})" for m in served),
            f"to {db}" if db else "off", "; bearer token required" if token else "")
        say("crest serve listening on http://%s:%d", address, sock.getsockname()[1])
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


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which also tells the app when SIGTERM/SIGINT arrives (`on_exit`): uvicorn
    itself lets the app know only after the requests in flight are done, too late for a grace period."""

    def __init__(self, config, on_exit) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self.on_exit()
