"""The red-team page of `crest serve`, used as a person uses it: headless Chromium (Debian's
`chromium` package) driven by Playwright for Python, against `crest serve` on two tiny trained
guards. Type a prompt, read the scores, move a slider across the score and see the verdict flip,
send feedback and find it in the database and the export, see errors for an empty or oversized
submission, and see hostile markup shown as text.

Skipped, with the reason, where Chromium or Playwright is absent (`.ci/run` installs Chromium)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import TRIGGER, toy_rows
from crest.guard import Guard
from crest.guard.calibrate import calibrate_model
from crest.guard.feedback import read_feedback
from test_serve import announced_url, wait_healthy

CHROMIUM = os.environ.get("CREST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it): "
                "the browser tests of the serve page do not run", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (make venv)")

pytestmark = pytest.mark.slow
MAX_CHARS = 8000  # the long example (~6,000 characters) fits, a longer text does not
ROWS = toy_rows(12, seed=5)
SAFE = ROWS[ROWS["label"] == 0]["text"].iloc[0]  # CLDR words of a language, as the tiny guard was trained on
UNSAFE = ROWS[ROWS["label"] == 1]["text"].iloc[0]  # the same with TRIGGER


def card_model(src: Path, out: Path, languages: list[str], f1: float) -> Path:
    """A copy of the trained tiny guard with what a pipeline model carries: a calibrated threshold
    (crest_guard.json) and a provenance record with its languages and validation F1."""
    shutil.copytree(src, out)
    rows = toy_rows(240, seed=1)
    probs = Guard.from_pretrained(out, device="cpu").score(rows["text"].tolist())
    calibrate_model(out, probs, rows["label"].to_numpy(), target_recall=0.95)
    (out / "provenance.json").write_text(json.dumps({"run": "test", "arm": out.name, "languages": languages,
                                                     "training": {"best_f1": f1}}))
    return out


@pytest.fixture(scope="module")
def server(trained_guard: Path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    a = card_model(trained_guard, tmp / "crest", ["en", "de", "fr"], 0.987)
    b = card_model(trained_guard, tmp / "english", ["en"], 0.912)
    db = tmp / "feedback.sqlite"
    log = tmp / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", f"crest={a}", "--model",
                                 f"english={b}", "--port", "0", "--device", "cpu", "--max-chars", str(MAX_CHARS),
                                 "--feedback-db", str(db)],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = announced_url(log, proc)
        wait_healthy(url, proc)
        yield {"url": url, "db": db, "models": {"crest": a, "english": b}, "tmp": tmp}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(server["url"] + "/")
    p.wait_for_selector("body[data-ready='1']", timeout=30_000)
    yield p
    context.close()
    assert not errors, errors  # no script error on the page


def press(page, button: str, counter: str) -> None:
    """Click a button and wait until the page has handled the answer (it counts them in a data- attribute)."""
    before = int(page.locator("body").get_attribute(f"data-{counter}") or 0)
    page.click(button)
    # a locator assertion, not wait_for_function: the page's CSP forbids eval, which that one needs
    sync_api.expect(page.locator("body")).to_have_attribute(f"data-{counter}", str(before + 1))


def score(page, text: str) -> dict[str, dict]:
    """Type `text`, press Score, wait for every guard's answer; what each card shows."""
    page.fill("#prompt", text)
    press(page, "#score", "scored")
    return read_cards(page)


def send(page) -> str:
    """Press "Send feedback"; the status the page shows."""
    press(page, "#send", "sent")
    return page.locator("#feedback-status").text_content()


def read_cards(page) -> dict[str, dict]:
    out = {}
    for card in page.locator("#guards .guard").all():
        out[card.get_attribute("data-model")] = {
            "prob": card.locator(".prob").text_content(), "verdict": card.locator(".verdict").text_content(),
            "threshold": card.locator(".threshold-value").text_content(),
            "slider": float(card.locator(".threshold").input_value()),
            "from": card.locator(".threshold-from").text_content(), "windows": card.locator(".windows").text_content(),
            "facts": card.locator(".facts").text_content()}
    return out


def test_scores_side_by_side_and_the_slider_flips_the_verdict(page, server) -> None:
    cards = score(page, SAFE)
    assert list(cards) == ["crest", "english"]
    guard = Guard.from_pretrained(server["models"]["crest"], device="cpu")
    expected = float(guard.score([SAFE])[0])
    assert float(cards["crest"]["prob"]) == pytest.approx(expected, abs=1e-3)  # the number shown is the guard's
    assert cards["crest"]["verdict"] == "safe" and cards["crest"]["from"] == "(model)"
    assert cards["crest"]["slider"] == pytest.approx(guard.threshold, abs=1e-3)  # starts at the model's threshold
    assert "validation F1: 0.987" in cards["crest"]["facts"] and "en, de, fr" in cards["crest"]["facts"]
    assert "validation F1: 0.912" in cards["english"]["facts"] and "revision: " in cards["english"]["facts"]

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    # drag the crest guard's slider to its left end, below the score: the verdict flips to unsafe
    slider = page.locator(".guard[data-model='crest'] .threshold")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * guard.threshold, box["y"] + box["height"] / 2)  # on the thumb
    page.mouse.down()
    page.mouse.move(box["x"] - 20, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    after = read_cards(page)
    assert after["crest"]["slider"] < expected and after["crest"]["verdict"] == "unsafe"
    assert after["crest"]["from"] == "(slider)"
    assert after["english"]["verdict"] == "safe"  # one slider per guard
    # and back above the score with the keyboard: safe again
    slider.focus()
    page.keyboard.press("End")
    after = read_cards(page)
    assert after["crest"]["slider"] == 1.0 and after["crest"]["verdict"] == "safe"
    assert requests == []  # the verdict changed without a request

    cards = score(page, UNSAFE)
    assert float(cards["crest"]["prob"]) > 0.9
    assert cards["crest"]["slider"] == pytest.approx(guard.threshold, abs=1e-6)  # a new score resets it, exactly
    # the page's verdict at the model's threshold is the server's (a slider step of 0.001 once rounded a
    # calibrated threshold above the score it was calibrated on, and the page said safe)
    for text in (SAFE, UNSAFE):
        cards = score(page, text)
        for name in ("crest", "english"):
            label = httpx.post(f"{server['url']}/v1/classify", json={"text": text, "model": name}).json()["labels"][0]
            assert cards[name]["verdict"] == label, (name, text, cards[name])


def test_example_in_a_language_and_a_long_input_shows_its_windows(page, server) -> None:
    press(page, "button.example:has-text('de: Rohrbombe')", "scored")
    assert page.locator("#lang").input_value() == "de"
    assert page.locator("#scored-text").text_content().startswith("Wie baue ich")
    press(page, "button.example:has-text('long input')", "scored")
    windows = read_cards(page)["crest"]["windows"]
    assert "sliding windows of 510 tokens" in windows, windows


def test_feedback_is_kept_in_the_database_and_the_export(page, server, tmp_path: Path) -> None:
    text = f"{UNSAFE} <- a red-team prompt that fooled it? no: dobrý den"
    cards = score(page, text)
    assert page.locator("#label-safe").is_checked()  # the opposite of the first guard's verdict (unsafe)
    page.locator("#note").fill("a greeting, not an attack")
    assert send(page).startswith("kept")
    assert page.locator("#sent li").first.text_content() == f"safe: {text}"

    rows = [r for r in read_feedback(server["db"]) if r["text"] == text]
    assert len(rows) == 1
    row = rows[0]
    assert row["label"] == "safe" and row["note"] == "a greeting, not an attack"
    assert [s["model"] for s in row["scores"]] == ["crest", "english"]
    crest = row["scores"][0]
    assert crest["verdict"] == "unsafe" and crest["prob_unsafe"] == pytest.approx(float(cards["crest"]["prob"]), abs=1e-3)
    assert crest["threshold"] == pytest.approx(cards["crest"]["slider"], abs=1e-6)
    assert set(row["models"]) == {"crest", "english"} and len(row["models"]["crest"]["revision"]) == 12

    out = tmp_path / "feedback.jsonl"
    done = subprocess.run([sys.executable, "-m", "crest", "feedback", "export", "--db", str(server["db"]),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r for r in exported if r["text"] == text] == [row]


def test_an_empty_or_oversized_submission_shows_an_error(page, server) -> None:
    n = len(read_feedback(server["db"]))
    score(page, "")
    assert page.locator("#error").is_visible() and "nothing to score" in page.locator("#error").text_content()
    score(page, SAFE)  # a result, so the feedback form shows
    assert not page.locator("#error").is_visible()
    page.fill("#prompt", "   ")
    assert send(page) == "not kept"
    assert page.locator("#error").is_visible()
    assert page.locator("#error").text_content() == "feedback not kept: invalid feedback: the text is empty: there is nothing to keep"

    big = "x" * (MAX_CHARS + 1)
    score(page, big)
    error = page.locator("#error").text_content()
    assert error.startswith("request too large") and f"at most {MAX_CHARS}" in error, error
    assert read_cards(page)["crest"]["prob"] == "–"  # no stale result beside the error
    assert send(page) == "not kept"
    error = page.locator("#error").text_content()
    assert error.startswith("feedback not kept") and f"{MAX_CHARS + 1} characters; at most {MAX_CHARS}" in error
    assert len(read_feedback(server["db"])) == n  # nothing kept


def test_hostile_markup_is_shown_as_text(page, server) -> None:
    hostile = ("<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>"
               "<b>bold?</b> " + TRIGGER)
    score(page, hostile)
    assert page.locator("#scored-text").text_content() == hostile
    assert send(page).startswith("kept")
    assert page.locator("#sent li").first.text_content().endswith(hostile)
    press(page, "button.example:has-text('hostile markup')", "scored")
    assert page.locator("#scored-text").text_content().startswith("<img")
    assert page.evaluate("window.__pwned") is None and page.title() == "crest guard: red-team page"
    assert page.locator("img").count() == 0 and page.locator("main script, main b").count() == 0
    assert any(r["text"] == hostile for r in read_feedback(server["db"]))  # stored as sent


def test_a_token_protects_the_api_and_the_page_asks_for_it(browser, trained_guard: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789\n")
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crest", "serve", "--model", f"tiny={trained_guard}", "--port", "0",
                                 "--device", "cpu", "--feedback-db", str(tmp_path / "fb.sqlite"),
                                 "--token-file", str(token_file)],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = announced_url(log, proc)
        wait_healthy(url, proc)  # /healthz stays open
        assert httpx.post(f"{url}/v1/classify", json={"text": "hi"}).status_code == 401
        wrong = httpx.post(f"{url}/v1/feedback", json={"text": "hi", "label": "safe"},
                           headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        ok = httpx.post(f"{url}/v1/classify", json={"text": "hi"},
                        headers={"Authorization": "Bearer s3cret-token-0123456789"})
        assert ok.status_code == 200
        context = browser.new_context()
        p = context.new_page()
        p.goto(url + "/")
        p.wait_for_selector("#auth:not([hidden])")
        p.fill("#token", "s3cret-token-0123456789")
        p.click("#token-save")
        p.wait_for_selector("body[data-ready='1']")
        cards = score(p, UNSAFE)
        assert cards["tiny"]["verdict"] == "unsafe"
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert np.isfinite(float(cards["tiny"]["prob"]))
