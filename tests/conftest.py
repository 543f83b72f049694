"""Shared fixtures: small registries and run configs written to tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_yaml(tmp_path: Path):
    def write(name: str, doc: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def local_source(tmp_path: Path):
    """A registry entry over a local CSV the test writes."""

    def make(rows: str, fmt: str = "csv", **spec: Any) -> dict[str, Any]:
        data = tmp_path / f"data.{fmt}"
        data.write_text(rows, encoding="utf-8")
        entry = {"license": "test", "loader": {"local": {"path": str(data), "format": fmt}},
                 "text": "prompt", "label": {"field": "label", "map": {"safe": 0, "unsafe": 1}}, "lang": "en"}
        entry.update(spec)
        return entry

    return make
