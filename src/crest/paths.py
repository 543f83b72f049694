"""Where the repository's own files live, so library code and rules agree on one location."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "workflow" / "schemas"
CONFIG_DIR = REPO_ROOT / "config"


def resolve(path: str | Path, base: Path = REPO_ROOT) -> Path:
    """A config path is relative to the repository root unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else base / p


def display_path(path: str | Path) -> str:
    """A path as recorded in provenance: repository-relative when inside it, so records compare
    across machines."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)
