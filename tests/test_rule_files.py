"""The rule files and the glue they share (crest.workflow): each rule file imports every Python name
it uses, and the launch prefix and the settings word are written once."""

from __future__ import annotations

import ast
import builtins
import json
import shlex
import types
from pathlib import Path

import pytest
from snakemake import parser

from crest.paths import REPO_ROOT
from crest.workflow import gpu_run, shell_json

RULE_FILES = sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))


class _Source:
    def __init__(self, path: Path) -> None:
        self.path = path

    def get_path_or_uri(self, secret_free: bool = True) -> str:
        return str(self.path)


def rule_file_python(path: Path) -> ast.Module:
    """A rule file as the Python Snakemake compiles it to (rules become decorated functions)."""
    workflow = types.SimpleNamespace(sourcecache=types.SimpleNamespace(open=lambda src: open(src.path)))
    code, _ = parser.parse(_Source(path), workflow, {})
    return ast.parse(code)


def imported_names(tree: ast.Module) -> set[str]:
    return {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) for a in node.names}


def bound_names(tree: ast.Module) -> set[str]:
    """Names the file itself binds: imports, assignments, functions, arguments, loop targets."""
    out = imported_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return out


def test_every_rule_file_imports_the_names_it_uses() -> None:
    """All rule files share one namespace, so a name one of them imports works in the files included
    after it, until the include order changes: a rule file must import what it uses itself."""
    trees = {path.name: rule_file_python(path) for path in RULE_FILES}
    assert {"common.smk", "train.smk", "evaluate.smk"} <= set(trees)
    for name, tree in trees.items():
        imported_elsewhere = set().union(*(imported_names(t) for n, t in trees.items() if n != name))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        borrowed = (used & imported_elsewhere) - bound_names(tree) - set(dir(builtins))
        assert not borrowed, f"workflow/rules/{name} uses {sorted(borrowed)} without importing them"
        assert "globals" not in used, f"workflow/rules/{name} reads another rule file's names through globals()"


def test_the_gpu_launch_prefix_and_the_settings_word_are_written_once() -> None:
    """crest.workflow holds them; no rule file or stage module spells them again."""
    for path in [*RULE_FILES, *(REPO_ROOT / "src" / "crest").rglob("*.py")]:
        if path.name in ("workflow.py", "gpu_slots.py") or "rehearsal" in path.parts:
            continue
        text = path.read_text()
        assert '"crest gpu-run --gpus' not in text, f"{path}: a copy of crest.workflow.gpu_run"
        assert "shlex.quote(json.dumps(" not in text, f"{path}: a copy of crest.workflow.shell_json"


@pytest.mark.parametrize(("call", "prefix"), [
    (lambda: gpu_run(0), ""),  # a CPU job runs as it is
    (lambda: gpu_run(2), "crest gpu-run --gpus {resources.gpu} -- "),  # the rule's own resources.gpu
    (lambda: gpu_run(2, 2), "crest gpu-run --gpus 2 -- "),  # a param: no placeholder is filled there
    (lambda: gpu_run(0, hide_when_none=True), "crest gpu-run --gpus {resources.gpu} -- "),  # gpus 0 hides them
])
def test_gpu_run_prefix(call, prefix: str) -> None:
    assert call() == prefix


def test_shell_json_is_one_shell_word_that_reads_back() -> None:
    settings = {"b": "it's; $(rm -rf /)", "a": [1, 2.5, None], "c": {"z": True}}
    word = shell_json(settings)
    assert len(shlex.split(word)) == 1
    assert json.loads(shlex.split(word)[0]) == settings
    assert word == shell_json(dict(reversed(settings.items())))  # key order does not change the command
