"""ONNX export of a guard with its quality gate, on a tiny XLM-R trained here to flag a trigger word:
the fp32 and int8 files pass the gate and score like PyTorch; a broken int8 file is refused with the
numbers; `Guard.from_pretrained`, `crest classify` and the CLI load an export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TRIGGER, toy_rows  # the trained_guard fixture is there too (shared with the page tests)
from crest.guard import Guard
from crest.guard.onnx_export import GateRefused, Tolerances, export_onnx
from crest.guard.onnx_guard import ONNX_FILES, OnnxGuard, load_guard
from crest.paths import REPO_ROOT


@pytest.fixture(scope="session")
def gate_rows(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rows") / "validation.parquet"
    toy_rows(240, seed=1).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def exported(trained_guard: Path, gate_rows: Path, tmp_path_factory) -> tuple[Path, dict]:
    rows = pd.read_parquet(gate_rows)
    out = tmp_path_factory.mktemp("export") / "guard-onnx"
    report = export_onnx(trained_guard, out, rows["text"].tolist(), rows["label"].to_numpy(), int8=True,
                         data_note="toy validation rows")
    return out, report


def test_trained_guard_separates(trained_guard: Path, gate_rows: Path) -> None:
    rows = pd.read_parquet(gate_rows)
    probs = Guard.from_pretrained(trained_guard, device="cpu").score(rows["text"].tolist())
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(rows["label"], probs) > 0.95  # the gate has something to lose


def test_export_passes_gate_and_scores_like_torch(exported, trained_guard: Path, gate_rows: Path) -> None:
    out, report = exported
    assert report["passed"] and set(report["files"]) == {"fp32", "int8"}
    fp32, int8 = report["files"]["fp32"], report["files"]["int8"]
    assert fp32["max_abs_diff"] < 1e-4 and fp32["agreement"] == 1.0
    assert int8["auroc_drop"] <= 0.005 and int8["agreement"] >= 0.99
    assert int8["bytes"] < fp32["bytes"]
    # the export is self-contained and records its gate
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "config.json", "crest_guard.json", "onnx_gate.json", "README.md"} <= names
    assert "model.safetensors" not in names
    stored = json.loads((out / "crest_guard.json").read_text())
    assert stored["onnx"]["gate"]["passed"] and stored["onnx"]["versions"]["onnxruntime"]
    assert "## ONNX export" in (out / "README.md").read_text()
    assert json.loads((out / "onnx_gate.json").read_text())["files"]["int8"]["auroc"] == int8["auroc"]
    # scores through Guard.from_pretrained (ONNX Runtime), other texts, other batch sizes, long texts
    rows = pd.read_parquet(gate_rows)
    texts = rows["text"].tolist()[:40] + [" ".join([rows["text"][0]] * 200)]  # one text of several windows
    torch_probs = Guard.from_pretrained(trained_guard, device="cpu").score(texts)
    guard = Guard.from_pretrained(out, device="cpu", batch_size=7)
    assert isinstance(guard, OnnxGuard) and guard.precision == "int8"
    np.testing.assert_allclose(guard.score(texts), torch_probs, atol=0.05)
    fp32_guard = OnnxGuard.from_pretrained(out, precision="fp32", device="cpu", batch_size=5)
    np.testing.assert_allclose(fp32_guard.score(texts), torch_probs, atol=1e-5)
    assert guard.threshold == Guard.from_pretrained(trained_guard, device="cpu").threshold


def _zero_classifier(path: Path) -> None:
    """Zero every weight of the quantized classification head: the int8 file then scores one
    constant, as a silently broken quantization would."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if "classifier" in init.name and "zero_point" not in init.name:
            arr = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(arr), init.name))
    onnx.save(model, str(path))


def test_broken_int8_is_refused_with_numbers(trained_guard: Path, gate_rows: Path, tmp_path: Path,
                                             monkeypatch) -> None:
    from crest.guard import onnx_export

    real = onnx_export.quantize_int8

    def broken(src: Path, dst: Path, method: str) -> None:
        real(src, dst, method)
        _zero_classifier(dst)

    monkeypatch.setattr(onnx_export, "quantize_int8", broken)
    rows = pd.read_parquet(gate_rows)
    out = tmp_path / "refused"
    with pytest.raises(GateRefused, match=r"int8 \(model.int8.onnx\): AUROC 0\.5000 vs torch (1\.0000|0\.9\d+).*agree on 5\d\.\d+% of rows") as err:
        export_onnx(trained_guard, out, rows["text"].tolist(), rows["label"].to_numpy(), int8=True)
    assert "refused.json" in str(err.value)
    assert not out.exists() and not (tmp_path / ".refused.tmp").exists()
    refused = json.loads((tmp_path / "refused.refused.json").read_text())
    assert refused["files"]["fp32"]["passed"] and not refused["files"]["int8"]["passed"]


def test_tolerance_is_enforced(trained_guard: Path, gate_rows: Path, tmp_path: Path) -> None:
    """An existing export is kept when a new one is refused; a tolerance the int8 file cannot meet
    (exact equality of P(unsafe) does not apply to it, but a zero AUROC drop with a changed
    decision does) refuses it."""
    rows = pd.read_parquet(gate_rows)
    texts, labels = rows["text"].tolist(), rows["label"].to_numpy()
    out = tmp_path / "e"
    export_onnx(trained_guard, out, texts, labels)  # fp32 only: passes
    before = (out / "onnx_gate.json").read_text()
    with pytest.raises(GateRefused, match="max \\|P\\(unsafe\\) difference\\|"):
        export_onnx(trained_guard, out, texts, labels, tolerances=Tolerances(max_fp32_diff=0.0))
    assert (out / "onnx_gate.json").read_text() == before  # the old export stands
    with pytest.raises(ValueError, match="both classes"):
        export_onnx(trained_guard, tmp_path / "x", texts[:5], np.ones(5, int))


@pytest.mark.slow
def test_cli_export_then_classify(trained_guard: Path, gate_rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-export"
    run = subprocess.run([sys.executable, "-m", "crest.cli", "guard", "export-onnx", "--model", str(trained_guard),
                          "--out", str(out), "--data", str(gate_rows), "--int8"],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    gate = json.loads(run.stdout)
    assert gate["passed"] and gate["int8"]["agreement"] >= 0.99
    texts = tmp_path / "in.txt"
    texts.write_text(f"hello world\nsome words {TRIGGER} here\n")
    scored = subprocess.run([sys.executable, "-m", "crest.cli", "classify", "--model", str(out), "--device", "cpu",
                             str(texts)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert scored.returncode == 0, scored.stderr[-2000:]
    lines = [json.loads(line) for line in scored.stdout.splitlines()]
    assert [r["label"] for r in lines] == ["safe", "unsafe"]
    torch_probs = Guard.from_pretrained(trained_guard, device="cpu").score(["hello world", f"some words {TRIGGER} here"])
    np.testing.assert_allclose([r["prob_unsafe"] for r in lines], torch_probs, atol=0.05)
    # refused flags: the torch backend on an export, a gate file without a label column
    bad = subprocess.run([sys.executable, "-m", "crest.cli", "classify", "--model", str(out), "--backend", "torch",
                          str(texts)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode == 2 and "ONNX export" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    nolabel = tmp_path / "nolabel.parquet"
    pd.DataFrame({"text": ["a"], "split": ["validation"]}).to_parquet(nolabel)
    bad = subprocess.run([sys.executable, "-m", "crest.cli", "guard", "export-onnx", "--model", str(trained_guard),
                          "--out", str(tmp_path / "y"), "--data", str(nolabel)], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert bad.returncode == 2 and "no column(s) label" in bad.stderr


def test_load_guard_backends(exported, trained_guard: Path) -> None:
    out, _ = exported
    with pytest.raises(ValueError, match="already an ONNX export"):
        export_onnx(out, out.parent / "again", ["a", "b"], np.array([0, 1]))
    assert isinstance(load_guard(out, device="cpu"), OnnxGuard)
    assert load_guard(out, precision="fp32", device="cpu").file.name == ONNX_FILES["fp32"]
    assert not isinstance(load_guard(trained_guard, device="cpu"), OnnxGuard)
    with pytest.raises(ValueError, match="not an ONNX export"):
        load_guard(trained_guard, backend="onnx", device="cpu")
    with pytest.raises(ValueError, match="applies to an ONNX export only"):
        load_guard(trained_guard, precision="int8", device="cpu")


def test_corrupt_onnx_file_is_one_line(exported, tmp_path: Path) -> None:
    import shutil

    out, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "model.int8.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model.int8.onnx: not a loadable ONNX model"):
        OnnxGuard.from_pretrained(copy, device="cpu")


def test_blockwise_int8_graph_and_quiet_logging(trained_guard: Path, tmp_path: Path) -> None:
    """--int8-method blockwise writes MatMulNBits (8-bit, blocks of 32) and leaves the process's logging
    as it was: onnxruntime's quantizer module calls logging.basicConfig(level=INFO) on import and logs
    a line per node."""
    import logging

    import onnx

    from crest.guard.onnx_export import export_graph, quantize_int8

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    export_graph(Guard.from_pretrained(trained_guard, device="cpu").model, tmp_path / "m.onnx")
    quantize_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", "blockwise")
    assert (list(root.handlers), root.level) == before
    nodes = [n for n in onnx.load(str(tmp_path / "q.onnx")).graph.node if n.op_type == "MatMulNBits"]
    assert nodes and all({a.name: a.i for a in n.attribute}["bits"] == 8 for n in nodes)
    with pytest.raises(ValueError, match="int8 method 'int4': expected one of dynamic, blockwise"):
        quantize_int8(tmp_path / "m.onnx", tmp_path / "x.onnx", "int4")
