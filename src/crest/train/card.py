"""The exported model directory: weights (safetensors only), tokenizer, resolved training config,
data provenance and a model card, written under a temporary name and renamed into place."""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crest import hub
from crest.io import write_json, write_text
from crest.models import BUILT_ENCODERS
from crest.paths import REPO_ROOT

PAPER = "CREST (arXiv 2512.02711)"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "accelerate": accelerate.__version__}


def write_dir(target: Path, write: Callable[[Path], Any]) -> None:
    """Fill a directory under a temporary name with `write(tmp)`, then rename it onto `target`: a
    killed job leaves the old directory or the new one, never half of one (`recover_dir` puts the
    old one back if the kill fell between the two renames)."""
    recover_dir(target)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        if target.exists():
            shutil.rmtree(old)
        else:
            old.rename(target)


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no second copy of the weights) where the file system allows, else a copy."""
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def export_model(weights_dir: Path, out_dir: Path, tokenizer, settings: dict[str, Any], summary: dict[str, Any],
                 data_info: dict[str, Any], metrics_path: Path) -> None:
    """Assemble `out_dir` from the selected weights (a save_pretrained dir) and the run's records."""
    provenance = {
        "arm": settings["arm"], "size": settings["size"], "seed": settings["seed"], "encoder": settings["encoder"],
        "encoder_hub": hub.provenance("model", settings["encoder"]),  # the revision fine-tuned from (crest.hub)
        "corpus": data_info.get("corpus", settings.get("corpus")), "languages": data_info.get("languages"),
        "rows": data_info.get("rows"), "rows_per_language": data_info.get("rows_per_language"),
        "sources": data_info.get("sources"), "shards": data_info.get("shards"), "anchors": data_info.get("anchors"),
        "dataset_sha256": data_info.get("dataset_sha256"),
        "translator_is_random": bool(data_info.get("translator_is_random", False)),
        "family": data_info.get("family"), "draw": data_info.get("draw"), "budget": data_info.get("budget"),
        "label_shuffle": bool(data_info.get("label_shuffle", False)),
        "eval_languages_trained": data_info.get("eval_languages_trained", []),
        "training": summary, "crest_commit": _git_commit(), "software": _versions(),
    }

    def write(tmp: Path) -> None:
        for path in weights_dir.iterdir():
            if path.name != "eval.json":
                _link_or_copy(path, tmp / path.name)
        tokenizer.save_pretrained(tmp)
        write_json(settings, tmp / "training_config.json")
        write_json(provenance, tmp / "provenance.json")
        if metrics_path.is_file():
            shutil.copy2(metrics_path, tmp / "metrics.jsonl")
        write_text(model_card(settings, summary, provenance), tmp / "README.md")
        pickled = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
        if pickled:
            raise RuntimeError(f"refusing to export pickled weights: {', '.join(pickled)}")

    write_dir(out_dir, write)


def encoder_name(spec: str) -> str:
    if spec in BUILT_ENCODERS:
        return f"`{spec}` ({BUILT_ENCODERS[spec]})"
    return f"`{spec}`"


def _revision_note(read: dict[str, Any]) -> str:
    """` at revision SHA` for an encoder read from the hub or a mirror; ` (unpinned)` when no lock pinned it."""
    if read.get("from") in ("hub", "mirror"):
        return f" at revision `{read['revision']}`" if read.get("revision") else " (revision unpinned)"
    return ""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _selection(select: str | None) -> str:
    """How the exported weights were picked (the trainer's `select`)."""
    return {"auroc": "the best validation AUROC",
            "last": "the last step (a null control is not selected on validation labels)",
            }.get(select or "f1_unsafe", "the best validation F1 (unsafe) at 0.5")


def model_card(settings: dict[str, Any], summary: dict[str, Any], provenance: dict[str, Any]) -> str:
    arm, size, seed = settings["arm"], settings["size"], settings["seed"]
    languages = provenance.get("languages") or []
    opt = settings["optim"]
    best = summary.get("best_metrics") or {}
    parts = [
        "---",
        f"language: [{', '.join(languages)}]",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        *([f"base_model: {settings['encoder']}"] if hub.is_hub_id(settings["encoder"]) else []),
        "tags: [crest, safety, guardrail, xlm-roberta]",
        "---",
        "",
        f"# crest guardrail classifier: arm `{arm}`, size `{size}`, seed {seed}",
        "",
    ]
    if provenance.get("translator_is_random"):
        parts += ["> **Not a usable guardrail.** Its non-source training text was machine-translated by a "
                  "random-weight translator (`translator_is_random: true`): noise. This model exists to exercise "
                  "the pipeline (the offline demo); its metrics say nothing about the method.", ""]
    if provenance.get("label_shuffle"):
        parts += ["> **Not a guardrail: a null control.** Its training labels were permuted at random "
                  "(`label_shuffle: true`); it should score at chance, and exists to show that the other arms' "
                  "results are not an artefact of the pipeline.", ""]
    parts += [
        "A binary prompt-safety classifier (label 1 = `unsafe`, 0 = `safe`) fine-tuned from "
        f"{encoder_name(settings['encoder'])}{_revision_note(provenance.get('encoder_hub') or {})} "
        f"on the `{arm}` arm of crest, a reproduction of {PAPER}."
        + (f" {settings['arm_description']}" if settings.get("arm_description") else ""),
        "",
        f"Training languages ({len(languages)}): {', '.join(f'`{c}`' for c in languages)}.",
        "",
        "## Intended use",
        "",
        "Research on cross-lingual safety guardrails: flag unsafe user prompts before they reach an LLM, "
        "in the training languages and, by cross-lingual transfer, in other XLM-R languages (measure that "
        "with crest's evaluation stage before relying on it). Scores are probabilities of `unsafe`; 0.5 is the "
        "default threshold, calibrate it for your application. Not a substitute for human review; the training "
        "data is machine-translated from mostly English safety datasets, so culture-specific harms and "
        "translation errors are under-represented.",
        "",
        "## Training data",
        "",
        f"Corpus `{provenance.get('corpus')}`; sources: "
        + ", ".join(f"{k} ({v})" for k, v in (provenance.get("sources") or {}).items()) + ".",
        "",
    ]
    per_lang = provenance.get("rows_per_language") or {}
    rows = []
    for lang in languages:
        split = per_lang.get(lang, {})
        train, val = split.get("train", {}), split.get("validation", {})
        rows.append([lang, train.get(0, train.get("0", 0)), train.get(1, train.get("1", 0)),
                     sum(val.values()) if val else 0])
    parts += [_table(["language", "train safe", "train unsafe", "validation"], rows), ""]
    parts += [
        "## Training",
        "",
        (("The encoder's last layer and the classification head, on the frozen lower layers' output computed "
          f"once per text (the CPU demo's recipe: every other layer is the pretrained one; last layer lr "
          f"{opt.get('top_layers_lr') or opt['lr']})" if opt.get("unfreeze_top_layers") else
          "Classification head only, on the frozen encoder's features computed once per text (the CPU demo's "
          "recipe: the encoder is the pretrained one, not fine-tuned)")
         if opt.get("freeze_encoder") else "Full fine-tuning")
        + f", AdamW lr {opt['lr']}, weight decay {opt['weight_decay']}, {opt['scheduler']} decay after "
        f"{opt['warmup_ratio']:.0%} warmup; token-budget batches of {opt['batch_tokens']} padded tokens "
        f"(at most {opt['max_batch_size']} texts, lengths bucketed to multiples of {opt['pad_to']}), "
        f"max length {opt['max_length']}, gradient accumulation {opt['grad_accum']}, imbalance: {opt['imbalance']}"
        + (", word embeddings frozen" if opt.get("freeze_embeddings") else "") + ". "
        f"{summary['step']} of {summary['total_steps']} steps on {summary['world_size']} process(es), "
        f"{'bf16 autocast' if summary['precision'] == 'bf16' else 'fp32'}, {summary['samples_seen']} samples seen"
        + (", stopped early" if summary.get("stopped_early") else "") + ". "
        f"Exported weights: step {summary['best_step']}, {_selection(summary.get('select'))}.",
        "",
        "## Validation metrics (exported weights)",
        "",
        _table(["F1 unsafe", "precision", "recall", "accuracy", "loss", "rows"],
               [[f"{best.get('f1_unsafe', float('nan')):.4f}", f"{best.get('precision_unsafe', float('nan')):.4f}",
                 f"{best.get('recall_unsafe', float('nan')):.4f}", f"{best.get('accuracy', float('nan')):.4f}",
                 f"{best.get('eval_loss', float('nan')):.4f}", best.get("n", "")]]),
        "",
    ]
    by_lang = best.get("f1_unsafe_by_language") or {}
    if by_lang:
        parts += [_table(["language", "F1 unsafe"], [[k, f"{v:.4f}"] for k, v in by_lang.items()]), ""]
    parts += [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "tok = AutoTokenizer.from_pretrained(MODEL_DIR)",
        "model = AutoModelForSequenceClassification.from_pretrained(MODEL_DIR)",
        "probs = model(**tok(texts, padding=True, truncation=True, return_tensors='pt')).logits.softmax(-1)[:, 1]",
        "```",
        "",
        "Files: `training_config.json` (resolved settings), `provenance.json` (languages, row counts, shard and "
        "dataset sha256, translator, software versions), `metrics.jsonl` (training and validation curves).",
        "",
    ]
    return "\n".join(parts)
