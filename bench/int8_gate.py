"""int8 methods against the quality gate's two figures on a trained guard, with and without a
threshold of the int8 model's own (docs/guard.md "ONNX export, int8, and the quality gate").

    python bench/int8_gate.py --model results/demo/models/crest/base/seed0 \\
        --data results/demo/train/crest/data.parquet --heldout results/demo/eval/sets/heldout/*.parquet

For each method of `crest.guard.onnx_export.quantize_int8` (and the float32 graph): AUROC drop and
decision agreement with PyTorch at the model's threshold, on the validation split (the rows the
threshold was calibrated on) and on the held-out files; then the agreement when the int8 model gets
its own threshold, calibrated on the same validation rows to the model's stored target (what the
gate would accept if it compared each model at its own threshold; the gate does not). CPU seconds
are process time of one-thread scoring. Prints one JSON line per file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from crest.guard import Guard
from crest.guard.calibrate import calibrate_threshold
from crest.guard.model import load_guard_file
from crest.guard.onnx_export import INT8_METHODS, export_graph, quantize_int8
from crest.guard.onnx_guard import OnnxGuard, open_session


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path, help="the arm's data.parquet (its validation split)")
    ap.add_argument("--heldout", nargs="*", type=Path, default=[], help="evaluation sets (every row)")
    ap.add_argument("--methods", nargs="+", default=list(INT8_METHODS), choices=INT8_METHODS)
    args = ap.parse_args()
    torch.set_num_threads(1)

    data = pd.read_parquet(args.data)
    rows = {"val": data[data["split"] == "validation"]}
    if args.heldout:
        rows["held"] = pd.concat([pd.read_parquet(p) for p in args.heldout], ignore_index=True)
    guard = Guard.from_pretrained(args.model, device="cpu")
    target = {k: v for k, v in load_guard_file(args.model).get("calibration", {}).items()
              if k in ("target_recall", "target_fpr")} or {"target_recall": 0.9}

    def timed(score) -> tuple[dict[str, np.ndarray], float]:
        start = time.process_time()
        out = {k: score(df["text"].tolist()) for k, df in rows.items()}
        return out, time.process_time() - start

    ref, ref_s = timed(guard.score)
    print(json.dumps({"file": "torch", "threshold": guard.threshold, "cpu_s": round(ref_s, 1)}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        export_graph(guard.model, fp32)
        for name in ["fp32", *args.methods]:
            path = fp32 if name == "fp32" else Path(tmp) / f"{name}.onnx"
            if name != "fp32":
                quantize_int8(fp32, path, name)
            onnx_guard = OnnxGuard(open_session(path, "cpu", 1), guard.tokenizer, guard.config, threshold=guard.threshold)
            probs, cpu_s = timed(onnx_guard.score)
            own = calibrate_threshold(probs["val"], rows["val"]["label"].to_numpy(), **target)["threshold"]
            line = {"file": name, "cpu_s": round(cpu_s, 1), "mb": round(path.stat().st_size / 1e6, 1),
                    "own_threshold": round(own, 4)}
            for k, df in rows.items():
                labels, p, r = df["label"].to_numpy(), probs[k], ref[k]
                line[f"{k}_auroc_drop"] = round(roc_auc_score(labels, r) - roc_auc_score(labels, p), 4)
                line[f"{k}_agreement"] = round(float(((p >= guard.threshold) == (r >= guard.threshold)).mean()), 4)
                line[f"{k}_agreement_own_threshold"] = round(float(((p >= own) == (r >= guard.threshold)).mean()), 4)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
