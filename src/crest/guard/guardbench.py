"""crest under GuardBench (the `guardbench` package): a `moderate` callable for its benchmark
runner, and an export of a run's evaluation sets as GuardBench custom datasets.

    from guardbench import benchmark
    from crest.guard import Guard
    from crest.guard.guardbench import export_sets, moderate

    names = export_sets("results/paper/eval/sets", benchmarks=["xstest"])   # registered with GuardBench
    benchmark(moderate, model_name="crest-large", datasets=names, guard=Guard.from_pretrained(model_dir))

GuardBench's contract: `moderate(conversations, **kwargs)` gets a batch of conversations (lists of
{"role": "user"|"assistant", "content": str}) and returns one P(unsafe) per conversation; a
dataset is JSONL rows {"id": str, "label": bool, "conversation": [...]}. crest classifies prompts,
so a conversation is scored on its last turn (the turn the dataset's label judges: the prompt of a
prompt dataset, the response of a response-labelled one). GuardBench thresholds at 0.5 (strictly
greater); its AUPRC does not depend on the threshold, and crest's calibrated threshold is not applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crest.io import write_text

Conversation = list[dict[str, str]]


def last_turn(conversation: Conversation) -> str:
    """The text crest judges in a conversation: its last turn's content."""
    if not conversation:
        raise ValueError("an empty conversation has nothing to judge")
    content = conversation[-1].get("content")
    if not isinstance(content, str):
        raise ValueError(f"conversation turn content must be a string, got {type(content).__name__}")
    return content


def moderate(conversations: Sequence[Conversation], guard: Any, **_: Any) -> list[float]:
    """GuardBench's moderation callable: P(unsafe) per conversation, from one Guard.score call."""
    return [float(p) for p in guard.score([last_turn(c) for c in conversations])]


def set_rows(df) -> list[dict[str, Any]]:
    """GuardBench rows of one eval set. A row with `prompt` and `response` columns becomes a
    user/assistant conversation; otherwise `text` is one user turn."""
    has_pair = {"prompt", "response"} <= set(df.columns)
    rows = []
    for rec in df.to_dict("records"):
        if int(rec["label"]) not in (0, 1):
            raise ValueError(f"row {rec['id']!r}: label {rec['label']!r} is not 0 or 1")
        response = rec.get("response") if has_pair else None
        if isinstance(response, str) and response:
            conversation = [{"role": "user", "content": str(rec["prompt"])}, {"role": "assistant", "content": response}]
        else:
            conversation = [{"role": "user", "content": str(rec["text"])}]
        rows.append(json.dumps({"id": str(rec["id"]), "label": bool(int(rec["label"])),
                                "conversation": conversation}, ensure_ascii=False))
    return rows


def dataset_name(prefix: str, benchmark: str, lang: str) -> str:
    return f"{prefix}-{benchmark}-{lang}".lower().replace("_", "-")


def export_sets(sets_dir: str | Path, out_dir: str | Path | None = None, *, benchmarks: Sequence[str] | None = None,
                langs: Sequence[str] | None = None, prefix: str = "crest", register: bool = True) -> list[str]:
    """Write each `{benchmark}/{lang}.parquet` eval set under `sets_dir` as GuardBench JSONL
    (`out_dir/{name}.jsonl`, default beside GuardBench's own datasets) and, with `register`, load it
    into GuardBench as a custom dataset (under $GUARDBENCH_DEV_PATH). Returns the dataset names,
    which `guardbench.benchmark(datasets=...)` takes. Empty sets are skipped."""
    import pandas as pd

    sets_dir = Path(sets_dir)
    if not sets_dir.is_dir():
        raise FileNotFoundError(f"{sets_dir}: no such eval-sets directory")
    paths = sorted(p for p in sets_dir.glob("*/*.parquet")
                   if (benchmarks is None or p.parent.name in benchmarks) and (langs is None or p.stem in langs))
    if not paths:
        raise ValueError(f"{sets_dir}: no eval sets match (benchmarks {benchmarks}, languages {langs})")
    if out_dir is None:
        from guardbench.paths import base_path

        out_dir = base_path() / "crest-export"
    names = []
    for path in paths:
        df = pd.read_parquet(path)
        if df.empty:
            continue
        name = dataset_name(prefix, path.parent.name, path.stem)
        jsonl = Path(out_dir) / f"{name}.jsonl"
        write_text("\n".join(set_rows(df)) + "\n", jsonl)
        if register:
            from guardbench import CustomDataset

            CustomDataset(name).load_data(jsonl)
        names.append(name)
    return names
