"""Strict loading and clean refusals: every class of bad input to `crest classify` / `crest guard
calibrate` / `Guard.from_pretrained` exits 2 with one line naming the input, and nothing is
written at --out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from crest.cli import main
from crest.guard import Guard
from crest.guard.loading import ModelLoadError


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys, args: list[str], *needles: str, out: Path | None = None) -> None:
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 2, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for needle in needles:
        assert needle in stderr, stderr
    if out is not None:
        assert not out.exists() or out.is_dir()


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("hello there\nanother line\n")
    return path


@pytest.fixture
def pickle_only(tiny_classifier: Path, tmp_path: Path) -> Path:
    """The tiny classifier with its weights as a pickled pytorch_model.bin instead of safetensors."""
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(tiny_classifier, model)
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    return model


class Boom:
    """A malicious pickle: unpickling it creates a file."""

    target = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


@pytest.mark.parametrize("model", ["/nonexistent/crest/model", "results/no_such_run/models/crest", "./model_dir",
                                   "~/no/such/model"])
def test_missing_model_path_is_never_a_hub_lookup(capsys, texts: Path, tmp_path: Path, model: str) -> None:
    out = tmp_path / "out.jsonl"
    assert_refused(capsys, ["classify", "--model", model, "--out", str(out), str(texts)], model,
                   "no such model directory", out=out)


def test_model_file_not_directory(capsys, tiny_classifier: Path, texts: Path) -> None:
    config = str(tiny_classifier / "config.json")
    assert_refused(capsys, ["classify", "--model", config, str(texts)], config, "not a directory")


def test_hub_id_offline_says_so(capsys, monkeypatch, texts: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert_refused(capsys, ["classify", "--model", "no-such-org/no-such-guard", str(texts)],
                   "no-such-org/no-such-guard", "offline")


def test_incomplete_directory_names_what_is_missing(capsys, tiny_classifier: Path, texts: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(capsys, ["classify", "--model", str(empty), str(texts)], str(empty),
                   "missing config.json, a tokenizer", "weights (model.safetensors)")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_classifier, partial)
    for name in ("tokenizer.json", "sentencepiece.bpe.model"):
        (partial / name).unlink()
    assert_refused(capsys, ["classify", "--model", str(partial), str(texts)], str(partial), "missing a tokenizer")


def test_pickle_weights_are_refused(capsys, pickle_only: Path, texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert_refused(capsys, ["classify", "--model", str(pickle_only), "--out", str(out), str(texts)],
                   str(pickle_only), "pytorch_model.bin", "safetensors only", "save_pretrained", out=out)
    with pytest.raises(ModelLoadError, match="pytorch_model.bin"):
        Guard.from_pretrained(pickle_only, device="cpu")


def test_malicious_pickle_is_never_unpickled(capsys, pickle_only: Path, texts: Path, tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"
    Boom.target = str(marker)
    (pickle_only / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    pickle.loads((pickle_only / "pytorch_model.bin").read_bytes())  # the payload works...
    assert marker.exists()
    marker.unlink()
    assert_refused(capsys, ["classify", "--model", str(pickle_only), str(texts)], "pytorch_model.bin")
    assert not marker.exists()  # ...and crest never ran it


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf"])
def test_threshold_must_be_finite_in_unit_interval(capsys, tiny_classifier: Path, texts: Path, tmp_path: Path,
                                                    value: str) -> None:
    out = tmp_path / "out.jsonl"
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), "--threshold", value, "--out", str(out),
                            str(texts)], "threshold", "finite number in [0, 1]", out=out)


def test_stored_threshold_is_checked(tiny_classifier: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_classifier, model)
    (model / "crest_guard.json").write_text('{"threshold": 7}')
    with pytest.raises(ValueError, match="crest_guard.json: threshold"):
        Guard.from_pretrained(model, device="cpu")


def test_out_directory_is_refused(capsys, tiny_classifier: Path, texts: Path, tmp_path: Path) -> None:
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), "--out", str(tmp_path), str(texts)],
                   f"--out {tmp_path}", "is a directory")


def test_os_errors_exit_2_without_traceback(capsys, tiny_classifier: Path, texts: Path, tmp_path: Path) -> None:
    """An --out under a regular file is refused before scoring; any OSError while working (here: an
    unreadable input) is one line, exit 2."""
    out = texts / "out.jsonl"
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), "--out", str(out), str(texts)],
                   f"{texts} is a file")
    unreadable = tmp_path / "fifo_dir"
    unreadable.mkdir()
    (unreadable / "in.txt").symlink_to(unreadable / "in.txt")  # a symlink loop: is_file() false, open fails
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), str(unreadable / "in.txt")], "in.txt")


@pytest.mark.parametrize("value,shown", [("null", "null"), ("3", "int"), ("[1, 2]", "list"), ("NaN", "NaN"),
                                         ('{"a": 1}', "dict")])
def test_jsonl_text_must_be_a_string(capsys, tiny_classifier: Path, tmp_path: Path, value: str, shown: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": ' + value + "}\n")
    out = tmp_path / "out.jsonl"
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), "--out", str(out), str(path)],
                   f"{path}: line 3: 'text' is {shown}, expected a string", out=out)


def test_jsonl_nan_elsewhere_is_not_written_back(capsys, tiny_classifier: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "fine", "score": NaN}\n')
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), str(path)], "line 1", "NaN or Infinity")


def test_csv_short_row_is_refused(capsys, tiny_classifier: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,text\n1,hello\n2\n")
    assert_refused(capsys, ["classify", "--model", str(tiny_classifier), str(path)], "record 2: 'text' is null")


def test_calibrate_refuses_bad_model_and_data(capsys, tiny_classifier: Path, tmp_path: Path) -> None:
    import pandas as pd

    good, data = tmp_path / "good.parquet", tmp_path / "val.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1], "split": ["validation"] * 2}).to_parquet(good)
    pd.DataFrame({"text": ["a", "b"], "split": ["validation"] * 2}).to_parquet(data)
    assert_refused(capsys, ["guard", "calibrate", "--model", str(tmp_path / "nope"), "--data", str(good),
                            "--target-recall", "0.9"], "nope", "no such model directory")
    assert_refused(capsys, ["guard", "calibrate", "--model", str(tiny_classifier), "--data", str(data),
                            "--target-recall", "0.9"], str(data), "no column(s) label")
    assert_refused(capsys, ["guard", "calibrate", "--model", str(tiny_classifier), "--data", str(tmp_path / "x.parquet"),
                            "--target-recall", "0.9"], "x.parquet")


def test_good_input_still_scores(capsys, tiny_classifier: Path, texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "classify", "--model", str(tiny_classifier), "--threshold", "1", "--out", str(out),
                           str(texts))
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["hello there", "another line"] and {r["label"] for r in rows} == {"safe"}
