"""Where the repository's own files live, so library code and rules agree on one location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "workflow" / "schemas"
CONFIG_DIR = REPO_ROOT / "config"


def resolve(path: str | Path, base: Path = REPO_ROOT) -> Path:
    """A config path is relative to the repository root unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else base / p


def run_dir(config: dict[str, Any]) -> Path:
    """`results/{run}`: everything a run writes (relative to the working directory, so the demo and
    the paper run never share files)."""
    return Path("results") / config["run"]


def display_path(path: str | Path) -> str:
    """A path as recorded in provenance: repository-relative when inside it, so records compare
    across machines."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)
