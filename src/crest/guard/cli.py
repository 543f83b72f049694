"""`crest classify` (score texts with a trained guardrail), `crest serve`, `crest guard calibrate`
and `crest guard export-onnx`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "txt"}


def read_inputs(source: str, fmt: str, field: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Records and their texts from a file or '-' (stdin): plain lines, JSONL (a field) or CSV (a
    column). Empty input, binary data, a missing field: DataFormatError naming the input."""
    from crest.data.formats import DataFormatError, parse_records  # pandas: import only when used

    name = "<stdin>" if source == "-" else source
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise DataFormatError(f"{name}: no such file")
        data = path.read_bytes()
    if fmt == "auto":
        fmt = "txt" if source == "-" else FORMATS.get(Path(source).suffix.lower(), "txt")
    if b"\x00" in data[:65536]:
        raise DataFormatError(f"{name}: binary data (NUL bytes); expected text lines, JSONL or CSV")
    records = parse_records(data, "txt" if fmt == "lines" else fmt, name)
    if not records:
        raise DataFormatError(f"{name}: no input texts (empty input)")
    key = "text" if fmt in ("txt", "lines") else field
    missing = next((i for i, r in enumerate(records, 1) if key not in r), None)
    if missing is not None:
        fields = ", ".join(sorted(records[missing - 1])) or "none"
        what = "column" if fmt in ("csv", "tsv") else "field"
        raise DataFormatError(f"{name}: record {missing} has no {what} {key!r} (it has: {fields}); "
                              f"choose one with --field")
    where = _record_lines(data, fmt, name, len(records))
    texts = []
    for at, record in zip(where, records, strict=True):
        value = record[key]
        if not isinstance(value, str):
            shown = "NaN" if isinstance(value, float) and value != value else type(value).__name__
            raise DataFormatError(f"{name}: {at}: {key!r} is {'null' if value is None else shown}, expected a string")
        try:
            json.dumps(record, allow_nan=False)  # what is written back must be JSON
        except ValueError:
            raise DataFormatError(f"{name}: {at}: holds NaN or Infinity, which is not JSON") from None
        texts.append(value)
    return records, texts


def _record_lines(data: bytes, fmt: str, name: str, n: int) -> list[str]:
    """Where each record is, for error messages: its line in JSONL (blank lines are skipped by the
    parser), else its record number."""
    if fmt != "jsonl":
        return [f"record {i}" for i in range(1, n + 1)]
    from crest.data.formats import decode_utf8

    return [f"line {i}" for i, line in enumerate(decode_utf8(data, name).splitlines(), 1) if line.strip()]


def check_out(out: Path | None) -> None:
    """Refuse an --out that cannot be written before any work: a directory, or under a file."""
    if out is None:
        return
    if out.is_dir():
        raise ValueError(f"--out {out}: is a directory; name the file to write")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a directory")


def quiet_loading() -> None:
    """No weight-loading progress bars on stderr: a CLI error there stays one line."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def record_langs(records: list[dict[str, Any]], lang: str | None, field: str | None) -> list[str | None] | str | None:
    """The language of each record for per-language thresholds: --lang for all, or --lang-field
    (a record without it, or with an empty one, uses the global threshold)."""
    if lang and field:
        raise ValueError("give --lang or --lang-field, not both")
    if field:
        return [str(r[field]) if r.get(field) not in (None, "") else None for r in records]
    return lang


def _classify(args: argparse.Namespace) -> None:
    from crest.guard.onnx_guard import load_guard
    from crest.io import write_text

    quiet_loading()
    check_out(args.out)
    records, texts = read_inputs(args.input, args.format, args.field)
    langs = record_langs(records, args.lang, args.lang_field)
    guard = load_guard(args.model, backend=args.backend, precision=args.precision, device=args.device,
                       threshold=args.threshold, batch_size=args.batch_size)
    results = guard.classify(texts, langs=langs, detect=not args.no_detect_lang)
    lines = [json.dumps({**record, **result}, ensure_ascii=False, default=str) for record, result in zip(records, results)]
    out = "\n".join(lines) + "\n"
    if args.out:
        write_text(out, args.out)
    else:
        sys.stdout.write(out)  # written once, after every text is scored: never half an answer


def _calibrate(args: argparse.Namespace) -> None:
    import pandas as pd

    from crest.guard import Guard
    from crest.guard.calibrate import calibrate_model

    quiet_loading()
    frames = []
    for path in args.data:
        frame = pd.read_parquet(path)
        needed = {"text", "label", "split"} if args.split else {"text", "label"}
        missing = sorted(needed - set(frame.columns))
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(missing)} (it has: {', '.join(map(str, frame.columns))})")
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    if args.split:
        df = df[df["split"] == args.split]
    if df.empty:
        raise ValueError(f"no rows with split {args.split!r} in {', '.join(map(str, args.data))}")
    if (args.language_map or args.no_language_map) and not args.per_language:
        raise ValueError("--language-map and --no-language-map go with --per-language")
    if args.language_map and args.no_language_map:
        raise ValueError("give --language-map or --no-language-map, not both")
    if args.per_language and "lang" not in df.columns:
        raise ValueError(f"--per-language: no column lang in {', '.join(map(str, args.data))}")
    guard = Guard.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)
    note = f"{args.split or 'all'} split of {', '.join(Path(p).name for p in args.data)}"
    probs = guard.score(df["text"].tolist())
    result = calibrate_model(args.model, probs, df["label"].to_numpy(),
                             target_recall=args.target_recall, target_fpr=args.target_fpr, note=note)
    if args.per_language:
        from crest.guard.languages import calibrate_languages, default_language_map

        language_map = None if args.no_language_map else (args.language_map or default_language_map(args.model))
        result["languages"] = calibrate_languages(
            args.model, probs, df["label"].to_numpy(), df["lang"].astype(str).tolist(), target_recall=args.target_recall,
            target_fpr=args.target_fpr, min_rows=args.min_rows_per_class, note=note, language_map=language_map)
    print(json.dumps(result))


def _export_onnx(args: argparse.Namespace) -> None:
    from crest.guard.onnx_export import Tolerances, export_onnx, read_gate_rows, summary

    quiet_loading()
    texts, labels, langs, note = read_gate_rows(args.data, args.split, args.field, args.label_field,
                                                args.lang_field, limit=args.max_rows, heldout=args.heldout)
    tol = Tolerances(max_auroc_drop=args.max_auroc_drop, min_agreement=args.min_agreement,
                     max_fp32_diff=args.max_fp32_diff)
    report = export_onnx(args.model, args.out, texts, labels, langs=langs, int8=args.int8,
                         int8_method=args.int8_method, opset=args.opset,
                         tolerances=tol, data_note=note, batch_size=args.batch_size)
    print(json.dumps(summary(report)))


def _serve(args: argparse.Namespace) -> None:
    from crest.guard.feedback import FeedbackLimits
    from crest.guard.serve import Limits, parse_models, read_token, serve

    quiet_loading()
    limits = Limits(max_texts=args.max_texts, max_chars=args.max_chars, batch_window_ms=args.batch_window_ms,
                    max_batch_texts=args.max_batch_texts, max_queue=args.max_queue)
    feedback_limits = FeedbackLimits(max_text_chars=args.max_chars, max_rows=args.feedback_max_rows,
                                     max_bytes=args.feedback_max_mb * 1024 * 1024)
    parse_models(args.model, args.model_id)  # bad names fail before the port is bound
    serve(args.model, host=args.host, port=args.port, device=args.device, threshold=args.threshold,
          batch_size=args.batch_size, limits=limits, model_id=args.model_id, backend=args.backend,
          precision=args.precision, feedback_db=args.feedback_db, feedback_limits=feedback_limits,
          no_feedback=args.no_feedback, token=read_token(args.token_file), shared_scoring=args.scoring == "shared",
          grace_seconds=args.grace_seconds, detect_lang=not args.no_detect_lang)


def _feedback_export(args: argparse.Namespace) -> None:
    from crest.guard.feedback import export_feedback

    db = args.db if args.db is not None else args.run_dir / "feedback" / "feedback.sqlite"
    n = export_feedback(db, args.out)
    print(f"{n} feedback records from {db} -> {args.out}")


def _guardbench_export(args: argparse.Namespace) -> None:
    from crest.guard.guardbench import export_sets

    names = export_sets(args.sets, args.out, benchmarks=args.benchmark, langs=args.lang, prefix=args.prefix)
    print("\n".join(names))


def _guardbench(args: argparse.Namespace) -> None:
    from guardbench import benchmark

    from crest.guard import Guard
    from crest.guard.guardbench import moderate

    quiet_loading()
    guard = Guard.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)
    benchmark(moderate, model_name=args.model_name or Path(args.model).name, out_dir=str(args.out),
              batch_size=args.batch_size, datasets=args.datasets, metrics=["f1", "recall", "fpr", "auprc"], guard=guard)


def add_detect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-detect-lang", action="store_true",
                   help="do not detect the language of a text given without one (it is then judged at the "
                        "global threshold)")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="auto: ONNX Runtime for a `crest guard export-onnx` directory, else PyTorch")
    p.add_argument("--precision", choices=["auto", "fp32", "int8"], default="auto",
                   help="which file of an ONNX export (auto: int8 when exported)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="score texts with a trained guardrail; JSONL out")
    p.add_argument("--model", required=True, help="model directory (or hub id org/name); safetensors only")
    p.add_argument("--threshold", type=float, default=None,
                   help="in [0, 1]; default: the model's calibrated one, else 0.5")
    p.add_argument("--format", choices=["auto", "lines", "jsonl", "csv", "tsv"], default="auto")
    p.add_argument("--field", default="text", help="JSONL field / CSV column holding the text")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, help="write here (atomically) instead of stdout")
    p.add_argument("--lang", help="the language of every text (its calibrated threshold applies, if any)")
    p.add_argument("--lang-field", help="JSONL field / CSV column holding each text's language")
    add_detect(p)
    add_backend(p)
    p.add_argument("input", nargs="?", default="-", help="file, or - for stdin (default)")
    p.set_defaults(func=_classify)

    p = sub.add_parser("serve", help="serve trained guardrails over HTTP (JSON, micro-batched) and a red-team page")
    p.add_argument("--model", required=True, action="append",
                   help="model directory (or hub id org/name; safetensors only), or NAME=DIR; repeat for several "
                        "guards side by side (the first is the default)")
    p.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold", type=float, default=None,
                   help="in [0, 1]; default: the model's calibrated one, else 0.5")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request (more: 413)")
    p.add_argument("--max-chars", type=int, default=20_000, help="characters per text (more: 413)")
    p.add_argument("--batch-window-ms", type=float, default=5.0, help="how long a request waits for others to batch with")
    p.add_argument("--max-batch-texts", type=int, default=256, help="texts scored together at most")
    p.add_argument("--max-queue", type=int, default=1024,
                   help="texts waiting to be scored, per model, at most (more: 503 with Retry-After)")
    p.add_argument("--grace-seconds", type=float, default=10.0,
                   help="on SIGTERM/SIGINT, how long requests in flight may still be scored; then 503")
    p.add_argument("--model-id", help="the id answers name (default: --model as given); one model only")
    p.add_argument("--scoring", choices=["per-model", "shared"], default="per-model",
                   help="one scoring worker per model (default), or one guard scoring at a time")
    p.add_argument("--feedback-db", type=Path,
                   help="SQLite file for POST /v1/feedback (default: RUN/feedback/feedback.sqlite of the first "
                        "model inside a run directory; none: feedback off)")
    p.add_argument("--no-feedback", action="store_true", help="keep no feedback")
    p.add_argument("--feedback-max-rows", type=int, default=100_000, help="feedback rows kept at most")
    p.add_argument("--feedback-max-mb", type=int, default=256, help="MiB of feedback text kept at most")
    p.add_argument("--token-file", type=Path,
                   help="require 'Authorization: Bearer TOKEN' on /v1/ (TOKEN: this file's first line; "
                        "default: $CREST_SERVE_TOKEN when set, else no token)")
    add_detect(p)
    add_backend(p)
    p.set_defaults(func=_serve)

    fb = sub.add_parser("feedback", help="red-team feedback kept by crest serve").add_subparsers(
        dest="feedback_command", required=True)
    p = fb.add_parser("export", help="write the feedback database as JSONL (the registry's feedback loader reads it)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", type=Path, help="the SQLite file")
    where.add_argument("--run-dir", type=Path, default=Path("results/demo"),
                       help="its run directory (RUN/feedback/feedback.sqlite; default results/demo)")
    p.add_argument("--out", type=Path, required=True, help="JSONL file, written atomically")
    p.set_defaults(func=_feedback_export)

    guard = sub.add_parser("guard", help="guardrail utilities").add_subparsers(dest="guard_command", required=True)
    p = guard.add_parser("calibrate", help="choose and store the threshold for a target recall or FPR")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--data", required=True, nargs="+", type=Path, help="parquet(s) with text, label, split")
    p.add_argument("--split", default="validation")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-recall", type=float)
    target.add_argument("--target-fpr", type=float)
    p.add_argument("--per-language", action="store_true",
                   help="also a threshold per language (column lang) with enough rows of both classes")
    p.add_argument("--min-rows-per-class", type=int, default=20,
                   help="--per-language: rows of each class a language (or cluster) needs for a threshold of its own")
    p.add_argument("--language-map", type=Path,
                   help="--per-language: clusters.tsv whose clusters get thresholds too, the fallback of their "
                        "languages (default: the model's run's clusters/kmeans/clusters.tsv, if there is one)")
    p.add_argument("--no-language-map", action="store_true", help="--per-language: no cluster thresholds")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=_calibrate)

    p = guard.add_parser("export-onnx", help="ONNX (and int8) export, refused unless it passes a quality gate")
    p.add_argument("--model", required=True, type=Path, help="a crest guard directory (safetensors)")
    p.add_argument("--out", required=True, type=Path, help="the export directory (replaced only if the gate passes)")
    p.add_argument("--data", required=True, nargs="+", type=Path,
                   help="labelled rows for the gate (parquet/CSV/TSV/JSONL with text, label[, split, lang])")
    p.add_argument("--split", default="validation", help="rows of this split (empty: all rows)")
    p.add_argument("--heldout", nargs="+", type=Path, default=[],
                   help="more labelled files whose every row joins the gate (e.g. evaluation sets: held-out rows)")
    p.add_argument("--field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--lang-field", default="lang", help="language column, for per-language thresholds")
    p.add_argument("--max-rows", type=int, default=None, help="a stratified sample of at most this many rows")
    p.add_argument("--int8", action="store_true", help="also int8 (model.int8.onnx), gated too")
    p.add_argument("--int8-method", choices=["dynamic", "blockwise"], default="dynamic",
                   help="dynamic: per-tensor scales, fastest; blockwise: 8-bit weights and activations per block "
                        "of 32 (MatMulNBits), robust to outlier channels (docs/guard.md)")
    p.add_argument("--max-auroc-drop", type=float, default=0.005)
    p.add_argument("--min-agreement", type=float, default=0.99)
    p.add_argument("--max-fp32-diff", type=float, default=1e-4)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=_export_onnx)

    p = guard.add_parser("guardbench-export", help="a run's eval sets as GuardBench custom datasets")
    p.add_argument("--sets", required=True, type=Path, help="results/{run}/eval/sets")
    p.add_argument("--benchmark", nargs="+", help="default: every benchmark there")
    p.add_argument("--lang", nargs="+", help="default: every language")
    p.add_argument("--prefix", default="crest", help="dataset names are {prefix}-{benchmark}-{lang}")
    p.add_argument("--out", type=Path, help="where the JSONL files go (default: under $GUARDBENCH_DEV_PATH)")
    p.set_defaults(func=_guardbench_export)

    p = guard.add_parser("guardbench", help="run GuardBench's benchmark on a crest model")
    p.add_argument("--model", required=True, help="model directory (or hub id org/name)")
    p.add_argument("--datasets", required=True, nargs="+", help="GuardBench dataset names (exported or built in)")
    p.add_argument("--model-name", default=None, help="name in GuardBench's outputs (default: the model dir's name)")
    p.add_argument("--out", type=Path, default=Path("guardbench-results"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_guardbench)
