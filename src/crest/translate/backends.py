"""The translate stage's backends, chosen per language in the config (`translate.backend`,
`translate.backends`, `translate.routes`): `ctranslate2` (NLLB-200, the paper's), `apertium`
(rule-based MT from pinned Debian packages, pivot chains as data) and `gloss` (FreeDict
word-by-word glosses). All run through `crest.translate.shard.translate_shard` (chunks,
checkpoints, resume, atomic writes); a non-NLLB backend is an *engine* with the NLLB translator's
prepare / submit / collect shape.

Fallback, decided inside the translate job (the DAG is the same everywhere): when the Debian
assets are not installed (their status file says why: no apt-get, a failed download, a host the
binaries cannot run on), an apertium or gloss language is translated by `models.translator`
instead, and its shard says so (`backend: ctranslate2`, `requested_backend`, `fallback_reason`;
`translator_is_random: true` when that is the random tiny NLLB).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crest.schema import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("ctranslate2", "apertium", "gloss")
STATUS_FILE = "status.json"


def backend_of(section: dict[str, Any], lang: str) -> str:
    return section.get("backends", {}).get(lang, section.get("backend", "ctranslate2"))


def route_of(section: dict[str, Any], lang: str) -> list[str]:
    """The pivot chain, source first: `translate.routes[lang]`, else [source_lang, lang]."""
    return list(section.get("routes", {}).get(lang) or [section.get("source_lang", "en"), lang])


def shard_settings(section: dict[str, Any], lang: str, base: dict[str, Any], assets: str) -> dict[str, Any]:
    """A shard job's settings: the decoding ones (`base`), plus the language's backend and, for
    Apertium and glosses, its route and where the pinned Debian assets are."""
    backend = backend_of(section, lang)
    extra: dict[str, Any] = {"backend": backend}
    if backend != "ctranslate2":
        extra.update(route=route_of(section, lang), assets=assets, asset_cache=section["asset_cache"])
    return {**base, **extra}


def needs_assets(section: dict[str, Any], languages: Sequence[str]) -> bool:
    return any(backend_of(section, lang) != "ctranslate2" for lang in languages if lang != section["source_lang"])


def check_backends(section: dict[str, Any], languages: Sequence[str], table: dict, origin: str = "config") -> None:
    """DAG-build checks: every `backends`/`routes` key a translated language, every backend known,
    every route hop an Apertium mode of the assets file, every gloss language a dictionary."""
    from crest.translate.debian import Assets

    source = section["source_lang"]
    targets = [lang for lang in languages if lang != source]
    for key in ("backends", "routes"):
        for lang in section.get(key, {}):
            if lang not in table:
                raise ConfigError(f"{origin}: translate.{key}.{lang}: unknown language code {lang!r}")
            if lang not in targets:
                raise ConfigError(f"{origin}: translate.{key}.{lang}: {lang!r} is not a translated language "
                                  f"(translate.languages: {', '.join(targets) or 'none'})")
    for lang, name in section.get("backends", {}).items():
        if name not in BACKENDS:
            raise ConfigError(f"{origin}: translate.backends.{lang}: unknown backend {name!r} "
                              f"(one of {', '.join(BACKENDS)})")
    if not needs_assets(section, languages):
        return
    from crest.paths import resolve

    try:
        assets = Assets.load(resolve(section["assets"]))
    except ConfigError as e:
        raise ConfigError(f"{origin}: translate.assets: {e}") from e
    for lang in targets:
        backend, route = backend_of(section, lang), route_of(section, lang)
        where = f"{origin}: translate.routes.{lang}" if lang in section.get("routes", {}) else \
            f"{origin}: translate.backends.{lang}"
        if lang in section.get("routes", {}) and backend != "apertium":
            raise ConfigError(f"{where}: a route is only for the apertium backend ({lang} uses {backend})")
        if backend == "apertium":
            if route[0] != source or route[-1] != lang or len(route) < 2:
                raise ConfigError(f"{where}: {route} must start with translate.source_lang ({source}) and end "
                                  f"with {lang!r}")
            for a, b in zip(route, route[1:]):
                if assets.hop(a, b) is None:
                    raise ConfigError(f"{where}: no Apertium mode for {a}->{b} in {section['assets']} "
                                      f"(apertium_modes: {', '.join(assets.modes)})")
        elif backend == "gloss" and lang not in assets.freedict:
            raise ConfigError(f"{where}: no FreeDict dictionary for {lang!r} in {section['assets']} "
                              f"(freedict: {', '.join(assets.freedict)})")


# -- engines ---------------------------------------------------------------------------------------
@dataclass
class LineOutput:
    """Per-text results with the NLLB translator's TextOutput fields (+ glossed words; a gloss
    counts src_tokens as its words)."""

    texts: list[str]
    segments: list[int]
    src_tokens: list[int]
    out_tokens: list[int]
    capped: list[bool]
    glossed: list[int] | None = None


@dataclass
class LinePrepared:
    pieces: list[str]


class LineEngine:
    """A whole chunk in one call (Apertium, glosses): `prepare` keeps the texts, `collect` runs.
    Token counts are words (whitespace-separated)."""

    def __init__(self, name: str, run: Callable[[list[str]], tuple[list[str], dict[str, list[int]]]],
                 info: dict) -> None:
        self.name, self._run, self.info = name, run, info

    def prepare(self, texts: Sequence[str]) -> LinePrepared:
        return LinePrepared(pieces=list(texts))

    def submit(self, prepared: LinePrepared) -> LinePrepared:
        return prepared

    def collect(self, submitted: LinePrepared, progress: Callable[[int], None] | None = None) -> LineOutput:
        texts = submitted.pieces
        out, counts = self._run(texts)
        if len(out) != len(texts):
            raise RuntimeError(f"{self.name}: {len(out)} outputs for {len(texts)} inputs")
        if progress:
            progress(len(texts))
        return LineOutput(texts=out, segments=[1] * len(texts),
                          src_tokens=counts.get("src_tokens") or [len(t.split()) for t in texts],
                          out_tokens=[len(t.split()) for t in out], capped=[False] * len(texts),
                          glossed=counts.get("glossed"))


def read_status(cache_root: str | Path) -> dict[str, Any]:
    path = Path(cache_root) / STATUS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"ok": False, "reason": f"{path} missing or unreadable: the Debian assets were not installed "
                                       "(rule debian_assets / `crest translate assets`)"}


def open_engine(backend: str, lang: str, route: Sequence[str], assets_path: str | Path,
                cache_root: str | Path) -> tuple[LineEngine | None, dict[str, Any]]:
    """(engine, shard metadata) for an apertium or gloss language, or (None, metadata with
    `fallback_reason`) when the assets are unavailable: the caller then uses models.translator."""
    from crest.translate.debian import Assets, tree_dir

    route = list(route)
    status = read_status(cache_root)
    assets = Assets.load(assets_path)
    needed = assets.packages_for(backend, lang, route)
    missing = [p for p in needed if status.get("packages", {}).get(p) != assets.pins[p].version]
    reason = None if status.get("ok") else status.get("reason", "unknown")
    if reason is None and missing:
        reason = f"the installed Debian assets lack {', '.join(missing)} (rerun `crest translate assets`)"
    if reason is not None:
        log.warning("!" * 80)
        log.warning("%s: the %s backend is unavailable (%s); FALLING BACK to models.translator for %s", lang,
                    backend, reason, lang)
        log.warning("!" * 80)
        return None, {"requested_backend": backend, "fallback_reason": reason}
    tree = tree_dir(cache_root)
    packages = {p: {"version": assets.pins[p].version, "sha256": assets.pins[p].sha256} for p in needed}
    if backend == "apertium":
        from crest.translate.apertium import Apertium

        modes = [assets.hop(a, b)["mode"] for a, b in zip(route, route[1:])]
        apertium = Apertium(tree)
        info = {"backend": "apertium", "route": route, "modes": modes, "packages": packages,
                "model": "apertium " + " | ".join(modes)}
        return LineEngine("apertium", lambda texts: (apertium.translate_route(texts, modes), {}), info), info
    if backend == "gloss":
        from crest.translate.debian import DICTD_SHARE
        from crest.translate.gloss import Glosser

        name = assets.freedict[lang]["name"]
        glosser = Glosser.from_dictd(tree / DICTD_SHARE, name)

        def run(texts: list[str]) -> tuple[list[str], dict[str, list[int]]]:
            results = [glosser.gloss(t) for t in texts]
            return [r.text for r in results], {"glossed": [r.glossed for r in results],
                                               "src_tokens": [r.words for r in results]}

        info = {"backend": "gloss", "route": [route[0], lang], "dictionary": name, "packages": packages,
                "model": f"gloss {name}"}
        return LineEngine("gloss", run, info), info
    raise ValueError(f"{lang}: backend {backend!r} has no engine (one of {', '.join(BACKENDS[1:])})")


class NllbEngine:
    """The NLLB translator bound to one language pair and decoding options (the ctranslate2 path:
    `prepare` tokenises the next chunk while the device decodes the current one)."""

    name = "ctranslate2"

    def __init__(self, translator, src_code: str, tgt_code: str, options) -> None:
        self.translator, self.src_code, self.tgt_code, self.options = translator, src_code, tgt_code, options

    def prepare(self, texts: Sequence[str]):
        return self.translator.prepare(list(texts), self.src_code, self.tgt_code, self.options)

    def submit(self, prepared):
        return self.translator.submit(prepared, self.options)

    def collect(self, submitted, progress: Callable[[int], None] | None = None):
        return self.translator.collect(submitted, progress=progress)
