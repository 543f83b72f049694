"""crest models under the real `guardbench` and `any_guardrail` packages, offline, on a tiny model
and a tiny exported eval set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crest.guard import Guard


@pytest.fixture
def guardbench_home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "guardbench"
    monkeypatch.setenv("GUARDBENCH_DEV_PATH", str(home))
    return home


@pytest.fixture
def eval_sets(tmp_path: Path) -> Path:
    """Two eval sets as the evaluate stage writes them; one carries prompt/response columns."""
    sets = tmp_path / "sets"
    (sets / "xstest").mkdir(parents=True)
    (sets / "pairs").mkdir(parents=True)
    pd.DataFrame({"id": ["x1", "x2", "x3"], "text": ["How do I kill a process?", "zyxbomb now", "Kenia Peru"],
                  "label": [0, 1, 0], "lang": "de", "source": "xstest", "category": "", "split": "test"},
                 ).to_parquet(sets / "xstest" / "de.parquet")
    pd.DataFrame({"id": [7], "text": ["q\na"], "label": [1], "lang": "en", "source": "p", "category": "", "split": "test",
                  "prompt": ["q"], "response": ["a zyxbomb answer"]}).to_parquet(sets / "pairs" / "en.parquet")
    return sets


def test_export_and_benchmark_under_guardbench(tiny_classifier: Path, guardbench_home: Path, eval_sets: Path,
                                               tmp_path: Path) -> None:
    from guardbench import benchmark
    from guardbench.datasets import load_dataset

    from crest.guard.guardbench import export_sets, moderate

    names = export_sets(eval_sets, tmp_path / "export")
    assert names == ["crest-pairs-en", "crest-xstest-de"]
    rows = [json.loads(line) for line in (tmp_path / "export" / "crest-xstest-de.jsonl").read_text().splitlines()]
    assert rows[1] == {"id": "x2", "label": True, "conversation": [{"role": "user", "content": "zyxbomb now"}]}
    pair = load_dataset("crest-pairs-en")  # registered with GuardBench: its own loader reads it back
    assert pair[0]["conversation"] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a zyxbomb answer"}]

    guard = Guard.from_pretrained(tiny_classifier, device="cpu")
    out = tmp_path / "gb-results"
    benchmark(moderate, model_name="tiny", out_dir=str(out), batch_size=2, datasets=names, guard=guard)
    preds = json.loads((out / "crest-xstest-de" / "tiny.json").read_text())
    expected = guard.score(["How do I kill a process?", "zyxbomb now", "Kenia Peru"])
    np.testing.assert_allclose([preds[i] for i in ("x1", "x2", "x3")], expected, atol=1e-6)
    pair_pred = json.loads((out / "crest-pairs-en" / "tiny.json").read_text())["7"]
    assert pair_pred == pytest.approx(float(guard.score(["a zyxbomb answer"])[0]), abs=1e-6)  # judged on the response


def test_export_refuses_missing_or_empty(guardbench_home: Path, tmp_path: Path) -> None:
    from crest.guard.guardbench import export_sets

    with pytest.raises(FileNotFoundError, match="no such eval-sets directory"):
        export_sets(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no eval sets match"):
        export_sets(tmp_path / "empty")


def test_any_guardrail_interface(tiny_classifier: Path) -> None:
    from any_guardrail.base import Guardrail
    from any_guardrail.types import GuardrailOutput

    from crest.guard.anyguardrail import CrestGuardrail

    guardrail = CrestGuardrail(tiny_classifier, device="cpu")
    assert isinstance(guardrail, Guardrail) and CrestGuardrail.METADATA.multilingual
    texts = ["hello there", "zyxbomb Kenia", "Peru"]
    probs = guardrail.guard.score(texts)
    one = guardrail.validate(texts[1])
    assert isinstance(one, GuardrailOutput) and one.score == pytest.approx(float(probs[1]), abs=1e-6)
    assert one.valid == (probs[1] < guardrail.guard.threshold) and one.usage.model_id == str(tiny_classifier)
    many = guardrail.validate(texts)
    assert [o.score for o in many] == pytest.approx(probs.tolist(), abs=1e-6)
    strict = CrestGuardrail(tiny_classifier, device="cpu", threshold=0.0)
    assert [o.valid for o in strict.validate(texts)] == [False] * 3
    assert all(o.categories[0].triggered for o in strict.validate(texts))
    with pytest.raises(ValueError, match="finite number"):
        CrestGuardrail(tiny_classifier, device="cpu", threshold=2.0)
    with pytest.raises(TypeError, match="string"):
        guardrail.validate(3)
