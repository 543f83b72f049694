"""A training job SIGKILLed before its first checkpoint and resumed leaves the same metrics.jsonl
(timings aside) as an uninterrupted run: one `start` record, the same train and eval records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crest.train.trainer import KILL_ENV

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TIMINGS = ("samples_per_s", "seconds")


def _log(path: Path) -> list[dict]:
    """The records with every timing field removed."""
    return [{k: v for k, v in json.loads(line).items() if not any(t in k for t in TIMINGS)}
            for line in path.read_text().splitlines()]


def _train(args: list[str], state: Path, out: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "crest"), "train", "run", *args, "--state-dir", str(state), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_kill_before_first_checkpoint_then_resume_keeps_the_log(toy_shards, tiny_encoder, tmp_path: Path) -> None:
    from test_train_loop import _data, _settings

    data, info = _data(toy_shards, tmp_path, ["en", "de"], rows=120)
    (tmp_path / "info.json").write_text(json.dumps(info))
    settings = _settings(max_steps=8, save_every=6, eval_every=2, log_every=1, warmup_ratio=0.2)
    args = ["--data", str(data), "--info", str(tmp_path / "info.json"), "--encoder", str(tiny_encoder),
            "--settings", json.dumps(settings)]

    whole = _train(args, tmp_path / "a", tmp_path / "model_a")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _train(args, tmp_path / "b", tmp_path / "model_b", env={KILL_ENV: "3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not list((tmp_path / "b").glob("checkpoint-*"))  # killed before the first checkpoint
    assert [r["event"] for r in _log(tmp_path / "b/metrics.jsonl")].count("start") == 1
    resumed = _train(args, tmp_path / "b", tmp_path / "model_b")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    expected = _log(tmp_path / "model_a/metrics.jsonl")
    assert [r["event"] for r in expected].count("start") == 1 and len(expected) == 1 + 8 + 4
    assert _log(tmp_path / "model_b/metrics.jsonl") == expected
