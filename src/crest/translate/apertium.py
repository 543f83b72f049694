"""Apertium (rule-based MT) run from the unpacked Debian tree (crest.translate.debian), many lines
per call, with line alignment verified.

Apertium reads a text stream, and its transfer rules match across newlines, so lines joined by
"\\n" move words between lines. Each line is therefore sent as the stream format itself
(`apertium -f none`, reserved characters backslash-escaped), prefixed with a superblank marker
`[crest:{i}]` that Apertium copies through untouched, and ended by a NUL (`-z`: a flush, so most
pairs translate each line on its own). The output is split at the markers, which must come back
0..n-1 in order; if they do not, the batch is halved and retried, down to single lines. `-u`
drops the unknown-word marks (unknown words stay as they are, in English); the `#`/`@`
generation and transfer marks are dropped too. Deterministic: same input, same output.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from crest.translate.debian import APERTIUM_SHARE, tool_env

log = logging.getLogger(__name__)

_RESERVED_RE = re.compile(r"([\\\[\]^$/<>@{}*#+~|])")
_MARKER_RE = re.compile(r"(?<!\\)\[crest:(\d+)\]")
_MARK_RE = re.compile(r"(?<![\\\w])[#@*](?=\w)")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
_SPACES_RE = re.compile(r"(?<=\S) {2,}(?=\S)")
TIMEOUT_S = 1800


class ApertiumError(RuntimeError):
    """Apertium failed, or its output could not be aligned with the input lines."""


def escape(text: str) -> str:
    return _RESERVED_RE.sub(r"\\\1", text.replace("\0", ""))


def unescape(text: str) -> str:
    """Stream-format output -> plain text: marks dropped, escapes undone, the runs of spaces
    Apertium leaves where it deleted a word collapsed."""
    text = _ESCAPE_RE.sub(r"\1", _MARK_RE.sub("", text.replace("\0", "")))
    return _SPACES_RE.sub(" ", text)


def split_marked(stdout: str, n: int) -> list[str] | None:
    """The n line outputs between the markers, or None if the markers are not exactly 0..n-1."""
    found = list(_MARKER_RE.finditer(stdout))
    if [int(m.group(1)) for m in found] != list(range(n)) or stdout[:found[0].start() if found else 0].strip("\0 \n"):
        return None
    ends = [m.start() for m in found[1:]] + [len(stdout)]
    return [stdout[m.end():end] for m, end in zip(found, ends)]


class Apertium:
    """Runs modes of one unpacked tree: `translate(lines, mode)` -> one output per line."""

    def __init__(self, tree: str | Path) -> None:
        self.tree = Path(tree).resolve()
        self.datadir = self.tree / APERTIUM_SHARE
        self.env = tool_env(self.tree)
        self.calls = 0

    def has_mode(self, mode: str) -> bool:
        return (self.datadir / "modes" / f"{mode}.mode").is_file()

    def _run(self, lines: Sequence[str], mode: str) -> str:
        data = "".join(f"[crest:{i}]{escape(line)}\0" for i, line in enumerate(lines))
        cmd = ["apertium", "-f", "none", "-z", "-u", "-d", str(self.datadir), mode]
        self.calls += 1
        try:
            proc = subprocess.run(cmd, input=data.encode("utf-8"), capture_output=True, env=self.env,
                                  timeout=TIMEOUT_S, check=False)
        except FileNotFoundError as e:
            raise ApertiumError(f"apertium not found under {self.tree}/usr/bin (install the Debian assets)") from e
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise ApertiumError(f"apertium {mode} failed (exit {proc.returncode}): {err}")
        return proc.stdout.decode("utf-8", "replace")

    def translate(self, lines: Sequence[str], mode: str) -> list[str]:
        """Translate every line with `mode`; len(output) == len(lines), each output from its own line."""
        if not self.has_mode(mode):
            raise ApertiumError(f"no Apertium mode {mode!r} under {self.datadir}/modes (install its pair package)")
        if not lines:
            return []
        parts = split_marked(self._run(lines, mode), len(lines))
        if parts is not None:
            return [unescape(p).strip() if line.strip() == line else unescape(p) for p, line in zip(parts, lines)]
        if len(lines) == 1:
            raise ApertiumError(f"apertium {mode}: could not align the output of one line: {lines[0][:200]!r}")
        half = len(lines) // 2
        log.info("apertium %s: markers lost in a batch of %d lines; retrying in halves", mode, len(lines))
        return self.translate(lines[:half], mode) + self.translate(lines[half:], mode)

    def translate_route(self, lines: Sequence[str], modes: Sequence[str]) -> list[str]:
        """Through a pivot chain: the output of each mode is the input of the next."""
        out = list(lines)
        for mode in modes:
            out = self.translate(out, mode)
        return out


def check_engine(tree: str | Path, mode: str) -> str | None:
    """None if `mode` translates a word under `tree`, else why not (a host without the shared
    libraries the binaries link to, a broken unpack)."""
    try:
        out = Apertium(tree).translate(["hello"], mode)
    except ApertiumError as e:
        return str(e)
    return None if out and out[0].strip() else f"apertium {mode} returned nothing for 'hello'"
