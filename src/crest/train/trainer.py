"""Fine-tune one XLM-R safe/unsafe classifier: a short training loop on Hugging Face Accelerate.

    crest train run --data data.parquet --encoder DIR_OR_HUB_ID --settings JSON --state-dir S --out M
    torchrun --standalone --nproc_per_node=4 --no-python crest train run ...   (DDP, one process per GPU)

Accelerate does the device placement, DDP wrapping, bf16 autocast, gradient sync control and
clipping; the loop around it is ours because its batches are (length-bucketed token budgets,
`crest.train.batching`) and because it makes resume exact and cheap:

- an epoch's batches are a pure function of (seed, epoch), so a checkpoint needs only the step;
- every optimizer step re-seeds torch from (seed, step, rank), so dropout needs no saved RNG state
  and a resumed run repeats the uninterrupted one bit for bit (CPU; GPU kernels may differ in the
  last bits);
- the loss of a step is normalised by the number of texts in the whole step (all micro-batches of
  all ranks: every rank knows the step's batches), so token-budget batches of varying size and
  gradient accumulation give the same gradient as one big batch.

Only rank 0 writes: checkpoints (`checkpoint-N/`, written to a temporary name then renamed, newest
`keep_checkpoints` kept), the best model by validation F1 of the unsafe class (`best/`), the metrics
JSONL and wandb. The state directory is kept apart from the output directory, which Snakemake
deletes before it reruns a job; a rerun resumes from the newest checkpoint whose fingerprint
(settings + data hash) matches and discards checkpoints of other settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest import hub
from crest.data.wheels import sha256_file
from crest.guard.model import GUARD_FILE, load_guard_file
from crest.guard.toplayer import TOP_KEY, top_layer_params, top_logits
from crest.io import write_json
from crest.train.batching import BucketBatcher, collate, eval_batches, eval_limits, shard_steps
from crest.train.card import export_model, recover_dir, write_dir
from crest.train.dataset import check_dataset
from crest.train.frozen import freeze_encoder, head_features, load_features, load_head, save_head

log = logging.getLogger(__name__)

ID2LABEL = {0: "safe", 1: "unsafe"}
KILL_ENV = "CREST_TRAIN_KILL_AT_STEP"
"""Fault injection for tests: SIGKILL the process right after this optimizer step (and its checkpoint)."""
FINGERPRINT_KEYS = ("encoder", "seed", "optim")


def fingerprint(settings: dict[str, Any], data_sha256: str) -> str:
    core = {k: settings[k] for k in FINGERPRINT_KEYS} | {"data": data_sha256}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def null_training(settings: dict[str, Any], data_info: dict[str, Any] | None) -> tuple[int, str]:
    """The seed and the selection rule of one training job. A label-shuffled arm (data.json
    `label_shuffle`, the null control) is exported at its last step (`select: last`): picking its
    weights by validation AUROC on real labels would choose, out of the heads of a noise fit, the
    one that ranks real labels best, a leak into the control. Its draws also start from their own
    head initialisation and batch order (seed from (seed, draw)): with one shared initialisation
    every draw's head stays near the same random direction, so the draws agree with each other
    and not with chance (the demo's three draws: 0.35-0.40 on the held-out set)."""
    select = settings["optim"].get("select", "f1_unsafe")
    if not (data_info or {}).get("label_shuffle"):
        return settings["seed"], select
    draw = int(data_info.get("draw") or 0)
    return int(np.random.SeedSequence([settings["seed"], draw, 0x5EED]).generate_state(1)[0] % 2**31), "last"


def check_selectable(val_labels: np.ndarray, select: str, where: str) -> None:
    """Refuse a validation split of one label when weights are picked on it: AUROC is undefined
    (NaN, and nothing compares greater than NaN) and F1 is 0 or rewards flagging everything, so the
    first evaluation's weights were exported whatever the run learned after (a small source, such
    as red-team feedback that is mostly `unsafe`, splits that way)."""
    if select == "last":
        return
    counts = np.bincount(val_labels, minlength=2)
    if counts.min() == 0:
        missing, present = ("safe", "unsafe") if counts[0] == 0 else ("unsafe", "safe")
        raise ValueError(f"{where}: the validation split has no {missing} rows (only {int(counts.max())} {present}): "
                         f"optim.select {select} cannot pick weights on one label; give the validation split both "
                         "labels, or set optim.select: last")


def improves(score: float, eval_loss: float, best_score: float | None, best_loss: float | None,
             min_delta: float) -> bool:
    """Whether an evaluation's weights replace the best ones: a higher selection score, or the
    same score at a lower validation loss. On a small validation split AUROC (and F1) saturates at
    1.0 early; keeping the first weights to reach it exported a model whose probabilities barely
    separated the labels (tiny feedback runs: 0.49-0.51 accuracy at 0.5 with validation AUROC 1.0)."""
    if best_score is None:
        return True
    return score > best_score + min_delta or (score == best_score and best_loss is not None and eval_loss < best_loss)


def choose_precision(precision: str, device_type: str) -> str:
    """Accelerate's mixed_precision: bf16 autocast on a GPU that supports it (auto), never on CPU."""
    import torch

    if precision == "fp32" or device_type != "cuda":
        return "no"
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def classification_metrics(labels: np.ndarray, prob_unsafe: np.ndarray) -> dict[str, float]:
    """Validation metrics at 0.5, plus AUROC (threshold-free; NaN when one class is absent), which
    `optim.select: auroc` picks the exported weights by: on a 90%-unsafe validation split the F1 of
    the unsafe class is highest for a model that flags everything."""
    from sklearn.metrics import roc_auc_score

    pred = prob_unsafe >= 0.5
    pos = labels == 1
    tp, fp, fn = int((pred & pos).sum()), int((pred & ~pos).sum()), int((~pred & pos).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1_unsafe": f1, "precision_unsafe": precision, "recall_unsafe": recall,
            "accuracy": float((pred == pos).mean()), "n": int(len(labels)),
            "auroc": float(roc_auc_score(pos, prob_unsafe)) if 0 < pos.sum() < len(pos) else float("nan")}


class MetricsLog:
    """metrics.jsonl (rank 0), optionally mirrored to wandb."""

    def __init__(self, path: Path, enabled: bool, wandb_run=None) -> None:
        self.path, self.enabled, self.wandb = path, enabled, wandb_run

    def truncate_after(self, step: int) -> None:
        """Drop records of steps a resumed run will redo; from step 0 that is all of them, the `start`
        record included (it is written again)."""
        if not (self.enabled and self.path.is_file()):
            return
        lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and step > 0 and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            flat = {f"{record['event']}/{k}": v for k, v in record.items()
                    if isinstance(v, (int, float)) and k not in ("step", "event")}
            self.wandb.log(flat, step=record["step"])


def _open_wandb(settings: dict[str, Any], state_dir: Path, fp: str):
    cfg = settings["wandb"]
    if not cfg.get("enabled"):
        return None
    os.environ.setdefault("WANDB_MODE", cfg.get("mode", "offline"))
    import wandb

    name = f"{settings['run']}-{settings['arm']}-{settings['size']}-seed{settings['seed']}"
    return wandb.init(project=cfg.get("project", "crest"), name=name, id=f"{name}-{fp}", resume="allow",
                      dir=str(state_dir), config=settings)


def _checkpoints(state_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in state_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "state.json").is_file():
            found.append((int(suffix), path))
    return sorted(found)


def tokenize(tokenizer, texts: list[str], max_length: int, chunk: int = 4096) -> list[np.ndarray]:
    ids: list[np.ndarray] = []
    for i in range(0, len(texts), chunk):
        enc = tokenizer(texts[i:i + chunk], truncation=True, max_length=max_length, add_special_tokens=True)
        ids.extend(np.asarray(x, dtype=np.int64) for x in enc["input_ids"])
    return ids


def calibrate_exported(model_dir: Path, val_rows: pd.DataFrame, val_ids: list[np.ndarray], val_features,
                       settings: dict[str, Any], max_length: int, top_layers: int = 0, model=None,
                       tokenizer=None) -> dict[str, Any]:
    """Choose the exported model's threshold on the validation split (`settings["calibrate"]`: its
    target), scored the way `crest guard calibrate` scores it (`Guard`, every window). With the
    encoder frozen, a text the trainer saw whole (shorter than max_length: one window, the same
    ids) reuses its feature; only longer texts go through the encoder again. `model`/`tokenizer`:
    the exported classifier already in memory (frozen encoder on CPU: the selected head is loaded
    into it), instead of loading it again."""
    from crest.guard import Guard
    from crest.guard.calibrate import calibrate_model
    from crest.guard.features import FeatureScorer

    if model is not None:  # the exported weights, in float32 as from_pretrained loads them on CPU
        guard = Guard(model, tokenizer, top_layers=top_layers)
    else:
        guard = Guard.from_pretrained(model_dir, device="cpu" if settings.get("device") == "cpu" else "auto")
    texts = val_rows["text"].tolist()
    score = guard.score
    if val_features is not None:
        scorer = FeatureScorer(guard)
        whole = [i for i, ids in enumerate(val_ids) if len(ids) < max_length]
        scorer.add([texts[i] for i in whole], [val_features[i] for i in whole] if top_layers
                   else val_features[whole, 0].cpu().numpy())
        score = scorer.score
    return calibrate_model(model_dir, score(texts), val_rows["label"].to_numpy(), **settings["calibrate"],
                           note="validation split of data.parquet")


def train_model(data_path: str | Path, encoder: str, settings: dict[str, Any], state_dir: str | Path,
                out_dir: str | Path, data_info: dict[str, Any] | None = None,
                feature_files: list[Path] | None = None) -> dict[str, Any]:
    """Train (or resume) one classifier and export it to `out_dir`; returns the summary the model
    card reports. `settings` is `crest.train.plan.job_settings(...)`; with `settings["calibrate"]`
    the exported model's threshold is then chosen on the validation split. `feature_files`: the
    frozen-encoder recipe's shared feature files (rule train_features), read instead of encoding."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler

    opt = settings["optim"]
    seed, select = null_training(settings, data_info)
    state_dir, out_dir = Path(state_dir), Path(out_dir)
    device = settings.get("device", "auto")
    cpu = device == "cpu" or not torch.cuda.is_available()
    mixed = choose_precision(opt["precision"], "cpu" if cpu else "cuda")
    acc = Accelerator(cpu=cpu, mixed_precision=mixed)
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    if cpu:
        torch.set_num_threads(max(1, settings.get("threads", 1) // acc.state.num_processes))
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    rows = pd.read_parquet(data_path)
    check_dataset(rows, str(data_path))
    data_sha = sha256_file(data_path)
    fp = fingerprint(settings, data_sha)
    train_rows = rows[rows["split"] == "train"].reset_index(drop=True)
    val_rows = rows[rows["split"] == "validation"].reset_index(drop=True)
    check_selectable(val_rows["label"].to_numpy(np.int64), select, str(data_path))

    with acc.main_process_first():  # a hub download happens once
        tokenizer = hub.from_pretrained(AutoTokenizer, encoder)
    train_ids = tokenize(tokenizer, train_rows["text"].tolist(), opt["max_length"])
    val_ids = tokenize(tokenizer, val_rows["text"].tolist(), opt["max_length"])
    train_labels = train_rows["label"].to_numpy(np.int64)
    val_labels = val_rows["label"].to_numpy(np.int64)
    pad_id = tokenizer.pad_token_id

    batcher = BucketBatcher(np.array([len(x) for x in train_ids]), batch_tokens=opt["batch_tokens"],
                            max_batch_size=opt["max_batch_size"], pad_to=opt["pad_to"], seed=seed,
                            labels=train_labels, balance_labels=opt["imbalance"] == "resample")
    steps_per_epoch = math.ceil(len(batcher) / (world * opt["grad_accum"]))
    total_steps = opt["max_steps"] or max(1, math.ceil(opt["epochs"] * steps_per_epoch))
    counts = np.bincount(train_labels, minlength=2)
    weights = (len(train_labels) / (2 * counts)) if opt["imbalance"] == "class_weights" else np.ones(2)
    class_weights = torch.tensor(weights, dtype=torch.float32, device=acc.device)

    torch.manual_seed(seed)  # the classifier head's initialisation
    with acc.main_process_first():
        model = hub.from_pretrained(
            AutoModelForSequenceClassification, encoder, num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()},
            attn_implementation="sdpa")
    model.config.problem_type = "single_label_classification"
    if opt["freeze_embeddings"]:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    frozen = opt.get("freeze_encoder", False)
    top = int(opt.get("unfreeze_top_layers", 0)) if frozen else 0  # crest.guard.toplayer
    if opt.get("unfreeze_top_layers", 0) and not frozen:
        raise ValueError("optim.unfreeze_top_layers goes with optim.freeze_encoder (without it every layer trains)")
    top_names: set[str] = set()
    if frozen:
        if world > 1:
            raise ValueError("optim.freeze_encoder trains the head on one process; run it without torchrun")
        freeze_encoder(model)
        for name, p in top_layer_params(model, top):
            p.requires_grad_(True)
            top_names.add(f"{model.base_model_prefix}.{name}")
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    top_lr = opt.get("top_layers_lr") or opt["lr"]
    groups = [{"params": [p for n, p in params if sel(n) and not n.endswith(no_decay)], "weight_decay": opt["weight_decay"],
               "lr": lr_}
              for sel, lr_ in ((lambda n: n not in top_names, opt["lr"]), (lambda n: n in top_names, top_lr))] + \
             [{"params": [p for n, p in params if sel(n) and n.endswith(no_decay)], "weight_decay": 0.0, "lr": lr_}
              for sel, lr_ in ((lambda n: n not in top_names, opt["lr"]), (lambda n: n in top_names, top_lr))]
    groups = [g for g in groups if g["params"]]
    if top and not top_names:
        raise ValueError("optim.unfreeze_top_layers: found no encoder layer to unfreeze")
    optimizer = torch.optim.AdamW(groups, lr=opt["lr"], fused=not cpu)
    scheduler = get_scheduler(opt["scheduler"], optimizer, num_warmup_steps=math.ceil(opt["warmup_ratio"] * total_steps),
                              num_training_steps=total_steps)
    model, optimizer = acc.prepare(model, optimizer)
    raw_model = acc.unwrap_model(model)
    eval_tokens, eval_size = eval_limits(opt["batch_tokens"], opt["max_batch_size"])
    cached: dict[str, np.ndarray] = {}
    if frozen and feature_files:
        from crest.guard.features import encoder_digest

        cached = load_features(feature_files, encoder_digest(raw_model, top), opt["max_length"], top)

    feature_counts = {"cached": 0, "encoded": 0}

    def split_features(texts: list[str], ids: list[np.ndarray]) -> "torch.Tensor | list[np.ndarray]":
        """Each text's head input (with top layers: the trained layer's input): from the shared
        files where cached, else encoded here."""
        done = [i for i, t in enumerate(texts) if t in cached]
        todo = sorted(set(range(len(texts))) - set(done))
        if top:
            seqs = [cached[t] for t in texts] if not todo else [cached.get(t) for t in texts]
            if todo:
                encoded = head_features(raw_model, [ids[i] for i in todo], pad_id, pad_to=opt["pad_to"],
                                        batch_tokens=eval_tokens, max_batch_size=eval_size, device=acc.device,
                                        autocast=acc.autocast, top_layers=top)
                for i, seq in zip(todo, encoded, strict=True):
                    seqs[i] = seq
            feature_counts["cached"] += len(done)
            feature_counts["encoded"] += len(todo)
            return seqs
        out = torch.empty((len(texts), 1, raw_model.config.hidden_size), dtype=torch.float32, device=acc.device)
        if done:
            out[done, 0] = torch.from_numpy(np.stack([cached[texts[i]] for i in done])).to(acc.device)
        if todo:
            out[todo] = head_features(raw_model, [ids[i] for i in todo], pad_id, pad_to=opt["pad_to"],
                                      batch_tokens=eval_tokens, max_batch_size=eval_size, device=acc.device,
                                      autocast=acc.autocast)
        feature_counts["cached"] += len(done)
        feature_counts["encoded"] += len(todo)
        return out

    features = {split: split_features(rows_["text"].tolist(), ids)
                for split, rows_, ids in (("train", train_rows, train_ids), ("validation", val_rows, val_ids))} \
        if frozen else {}
    if frozen:
        log.info("head features: %d texts from the shared files, %d encoded here", feature_counts["cached"],
                 feature_counts["encoded"])

    def save_weights(directory: Path) -> None:
        """The whole model, or with the encoder frozen the head alone (the rest is as loaded)."""
        if frozen:
            save_head(raw_model, directory)
        else:
            raw_model.save_pretrained(directory)

    def logits_of(split: str, b, input_ids, mask):
        """The classifier's logits for rows `b` of a split: from the cached encoder features when
        the encoder is frozen, else a full forward (DDP-wrapped while training)."""
        if frozen and top:
            return top_logits(raw_model, [features[split][i] for i in b], acc.device).float()
        if frozen:
            return raw_model.classifier(features[split][torch.as_tensor(np.asarray(b), device=acc.device)]).float()
        net = model if split == "train" else raw_model
        return net(input_ids=input_ids, attention_mask=mask).logits.float()

    state = {"step": 0, "best_score": None, "best_step": None, "best_metrics": None, "bad_evals": 0,
             "stopped_early": False, "samples_seen": 0, "train_seconds": 0.0, "last_eval_step": None,
             "saved_step": None, "fingerprint": fp, "world_size": world}
    best_dir = state_dir / "best"
    if main:
        state_dir.mkdir(parents=True, exist_ok=True)
        recover_dir(best_dir)
    acc.wait_for_everyone()
    ckpts = _checkpoints(state_dir)
    if ckpts and json.loads((ckpts[-1][1] / "state.json").read_text())["fingerprint"] != fp:
        log.warning("checkpoints in %s were made with other settings or data: starting afresh", state_dir)
        acc.wait_for_everyone()
        if main:
            for _, path in ckpts:
                shutil.rmtree(path)
            (state_dir / "metrics.jsonl").unlink(missing_ok=True)
        ckpts = []
    if ckpts:
        from safetensors.torch import load_file

        path = ckpts[-1][1]
        saved = json.loads((path / "state.json").read_text())
        if frozen:
            load_head(raw_model, path)
        else:
            raw_model.load_state_dict(load_file(path / "model.safetensors", device=str(acc.device)))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=acc.device, weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        if saved["world_size"] != world:
            log.warning("resuming a %d-process run with %d processes: batches differ from an uninterrupted run",
                        saved["world_size"], world)
        state.update(saved, world_size=world)
        log.info("resuming from %s (step %d of %d)", path, state["step"], total_steps)
    # best/ may be newer than the checkpoint (a kill between the two): it is the truth about the best
    # weights, when it was made with these settings and data.
    best_eval = best_dir / "eval.json"
    if best_eval.is_file() and (best := json.loads(best_eval.read_text()))["fingerprint"] == fp:
        state.update(best_score=best["score"], best_step=best["step"], best_metrics=best["metrics"])
    acc.wait_for_everyone()

    wandb_run = _open_wandb(settings, state_dir, fp) if main else None
    metrics = MetricsLog(state_dir / "metrics.jsonl", main, wandb_run)
    metrics.truncate_after(state["step"])
    if main and state["step"] == 0:
        metrics.write({"event": "start", "step": 0, "train_rows": len(train_rows), "validation_rows": len(val_rows),
                       "batches_per_epoch": len(batcher), "steps_per_epoch": steps_per_epoch,
                       "total_steps": total_steps, "world_size": world, "precision": mixed,
                       "class_weights": weights.tolist(),
                       "buckets": {int(k): int(len(v)) for k, v in batcher.buckets.items()}})

    def to_device(ids_list, labels):
        """(input_ids, attention_mask, labels) on the device, and the real token count (counted
        on the host: no device sync)."""
        input_ids, mask = collate(ids_list, pad_id, opt["pad_to"])
        tensors = [torch.from_numpy(x).to(acc.device, non_blocking=True) for x in (input_ids, mask, labels)]
        return (*tensors, int(mask.sum()))

    def evaluate() -> dict[str, Any]:
        model.eval()
        batches = eval_batches(np.array([len(x) for x in val_ids]), eval_tokens, eval_size, opt["pad_to"])
        idx_parts, prob_parts, loss_sum = [], [], 0.0
        with torch.no_grad(), acc.autocast():
            for b in batches[rank::world]:
                input_ids, mask, labels, _ = to_device([val_ids[i] for i in b], val_labels[b])
                logits = logits_of("validation", b, input_ids, mask)
                loss_sum += float(F.cross_entropy(logits, labels, weight=class_weights, reduction="sum"))
                idx_parts.append(b)
                prob_parts.append(torch.softmax(logits, -1)[:, 1].cpu().numpy())
        local = (np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64),
                 np.concatenate(prob_parts) if prob_parts else np.zeros(0, np.float32), loss_sum)
        from accelerate.utils import gather_object

        parts = gather_object([local]) if world > 1 else [local]
        order = np.concatenate([p[0] for p in parts])
        prob = np.empty(len(val_ids), dtype=np.float32)
        prob[order] = np.concatenate([p[1] for p in parts])
        result = classification_metrics(val_labels, prob)
        result["eval_loss"] = sum(p[2] for p in parts) / len(val_ids)
        langs = val_rows["lang"].to_numpy()
        result["f1_unsafe_by_language"] = {
            lang: round(classification_metrics(val_labels[langs == lang], prob[langs == lang])["f1_unsafe"], 4)
            for lang in pd.unique(langs)}
        model.train()
        return result

    def save_checkpoint(step: int) -> None:
        state["saved_step"] = step
        if main:
            def write(tmp: Path) -> None:
                save_weights(tmp)
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
                torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
                write_json(state, tmp / "state.json")

            write_dir(state_dir / f"checkpoint-{step}", write)
            for _, old in _checkpoints(state_dir)[:-opt["keep_checkpoints"]]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def after_eval(step: int, result: dict[str, Any]) -> None:
        state["last_eval_step"] = step
        score = float(step) if select == "last" else result[select]  # the selection score (optim.select)
        best_loss = (state["best_metrics"] or {}).get("eval_loss")
        if improves(score, result["eval_loss"], state["best_score"], best_loss, opt["min_delta"]):
            state.update(best_score=score, best_step=step, bad_evals=0, best_metrics=result)
            if main:
                def write(tmp: Path) -> None:
                    save_weights(tmp)
                    write_json({"step": step, "score": score, "select": select, "fingerprint": fp, "metrics": result}, tmp / "eval.json")

                write_dir(best_dir, write)
        else:
            state["bad_evals"] += 1
            if opt["patience"] and state["bad_evals"] >= opt["patience"]:
                state["stopped_early"] = True
        metrics.write({"event": "eval", "step": step, **result, "best_score": state["best_score"],
                       "best_step": state["best_step"]})
        log.info("step %d: validation %s %.4f, loss %.4f (best %.4f at step %d)", step, select, score,
                 result["eval_loss"], state["best_score"], state["best_step"])

    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    plans: dict[int, list] = {}
    window = {"loss": torch.zeros((), device=acc.device), "samples": 0, "tokens": 0, "padded": 0,
              "t": time.perf_counter()}
    model.train()
    while state["step"] < total_steps and not state["stopped_early"]:
        step = state["step"]
        epoch, k = divmod(step, steps_per_epoch)
        if epoch not in plans:
            plans = {epoch: shard_steps(batcher.epoch(epoch), world, opt["grad_accum"])}
        plan = plans[epoch][k]
        n_step = sum(len(b) for micro in plan for b in micro)
        torch.manual_seed(step_seed(seed, step, rank))
        t0 = time.perf_counter()
        for j, b in enumerate(plan[rank]):
            input_ids, mask, labels, tokens = to_device([train_ids[i] for i in b], train_labels[b])
            sync = contextlib.nullcontext() if j == len(plan[rank]) - 1 else acc.no_sync(model)
            with sync:
                logits = logits_of("train", b, input_ids, mask)
                loss = F.cross_entropy(logits, labels, weight=class_weights, reduction="sum")
                acc.backward(loss * (world / n_step))
            window["loss"] += loss.detach()
            window["tokens"] += tokens
            window["padded"] += mask.numel()
        grad_norm = acc.clip_grad_norm_(model.parameters(), opt["max_grad_norm"]) if opt["max_grad_norm"] > 0 else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] = step = step + 1
        state["samples_seen"] += n_step
        window["samples"] += n_step
        state["train_seconds"] += time.perf_counter() - t0

        if step % opt["log_every"] == 0 or step == total_steps:
            stats = torch.tensor([float(window["loss"]), window["tokens"], window["padded"]], device=acc.device)
            stats = acc.reduce(stats, "sum") if world > 1 else stats
            seconds = time.perf_counter() - window["t"]
            metrics.write({"event": "train", "step": step, "epoch": round(step / steps_per_epoch, 4),
                           "loss": float(stats[0]) / max(window["samples"], 1), "lr": scheduler.get_last_lr()[0],
                           "grad_norm": None if grad_norm is None else float(grad_norm),
                           "samples_seen": state["samples_seen"], "samples_per_s": window["samples"] / seconds,
                           "padding_share": 1 - float(stats[1]) / max(float(stats[2]), 1.0)})
            window.update(loss=torch.zeros((), device=acc.device), samples=0, tokens=0, padded=0, t=time.perf_counter())
        if step % opt["eval_every"] == 0:
            after_eval(step, evaluate())
        if step % opt["save_every"] == 0:
            save_checkpoint(step)
        if kill_at and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    step = state["step"]
    if state["last_eval_step"] != step:
        after_eval(step, evaluate())
    keep = settings.get("keep_state", False)
    if keep and state["saved_step"] != step:  # the final state, for inspection
        save_checkpoint(step)
    summary = {k: state[k] for k in ("step", "best_step", "best_score", "stopped_early", "samples_seen", "train_seconds")}
    summary["best_f1"] = (state.get("best_metrics") or {}).get("f1_unsafe")  # of the exported weights
    summary.update(select=select, seed_used=seed, total_steps=total_steps, steps_per_epoch=steps_per_epoch, world_size=world, precision=mixed,
                   best_metrics=state.get("best_metrics"), class_weights=weights.tolist(), fingerprint=fp,
                   train_rows=len(train_rows), validation_rows=len(val_rows),
                   samples_per_s=state["samples_seen"] / max(state["train_seconds"], 1e-9))
    if main:
        if frozen:  # best/ holds the head: the exported model is the whole classifier
            load_head(raw_model, best_dir)
            selected = json.loads((best_dir / "eval.json").read_text())

            def whole(tmp: Path) -> None:
                raw_model.save_pretrained(tmp)
                write_json(selected, tmp / "eval.json")

            write_dir(best_dir, whole)
        summary["features"] = feature_counts if frozen else None
        export_model(best_dir, out_dir, tokenizer, settings, summary, data_info or {},
                     state_dir / "metrics.jsonl")
        if top:  # how Guard reads cached features of this model (crest.guard.toplayer)
            write_json({**load_guard_file(out_dir), TOP_KEY: top}, out_dir / GUARD_FILE)
        if settings.get("calibrate"):
            summary["calibration"] = calibrate_exported(
                out_dir, val_rows, val_ids, features.get("validation") if cpu else None, settings, opt["max_length"], top,
                *((raw_model, tokenizer) if cpu and frozen else ()))
        if not keep:
            for path in [p for _, p in _checkpoints(state_dir)] + [best_dir]:
                shutil.rmtree(path, ignore_errors=True)
        if wandb_run is not None:
            wandb_run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float))})
            wandb_run.finish()
    acc.wait_for_everyone()
    acc.end_training()
    return summary
