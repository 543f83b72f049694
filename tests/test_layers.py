"""Stages import downward only where a lower stage's code is shared: the training stage reads the
frozen-encoder features (crest.guard.features) without the evaluation stage, and the cluster stage
reads the held-out languages (crest.heldout) without the training stage."""

from __future__ import annotations

import ast

import pytest

from crest.paths import REPO_ROOT

SRC = REPO_ROOT / "src" / "crest"


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every crest module each file of a package imports, also inside functions."""
    out = {}
    for path in sorted((SRC / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        out[str(path.relative_to(REPO_ROOT))] = {m for m in names if m.startswith("crest.")}
    return out


@pytest.mark.parametrize(("package", "above"), [("train", ("crest.evaluate",)),
                                                ("cluster", ("crest.train", "crest.evaluate"))])
def test_no_stage_imports_a_stage_above_it(package: str, above: tuple[str, ...]) -> None:
    modules = imported_modules(package)
    assert modules, f"no modules under src/crest/{package}"
    upward = {f: sorted(m for m in names if m.startswith(above)) for f, names in modules.items()}
    assert not {f: m for f, m in upward.items() if m}, f"crest.{package} imports from a stage above it"
