"""The red-team page `crest serve` answers at `/`: one HTML file, one script, one style sheet, all
shipped in the package (page_assets/) and served by the same app; nothing is loaded from outside,
so it works on a machine without internet.

Why not Gradio: it would add a few dozen pinned packages (and its own front-end bundle) for a text
box, a slider per guard and a button, and its components render markdown/HTML from values unless
each is configured not to: a red-team page shows hostile text, so the page here writes every text
with `textContent` (never `innerHTML`), and the Content-Security-Policy below allows only this
server's own script: an injected `<script>` or `onerror=` would not run even if it reached markup.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def asset(name: str) -> bytes:
    return resources.files("crest.guard").joinpath("page_assets", name).read_bytes()


def html() -> bytes:
    return asset("index.html")
