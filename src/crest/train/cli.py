"""`crest train ...`: the fine-tuning stage's commands (called by workflow/rules/train.smk).

    crest train dataset --settings JSON --shards DIR [--anchors METHOD=TSV] --out data.parquet --info data.json
    crest train run --data data.parquet --info data.json --encoder DIR_OR_ID --settings JSON \\
        --state-dir STATE --out MODEL_DIR
    torchrun --standalone --nproc_per_node=N --no-python crest train run ...    (DDP on N GPUs)
    crest train features --encoder DIR_OR_ID --settings JSON --part I --parts N --out part.npz DATA.parquet...
    crest train arms --configfile config/config.yaml [--anchors kmeans=TSV]     (what each arm trains on)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from crest.cliargs import json_object


def _anchor_arg(text: str) -> tuple[str, Path]:
    method, sep, path = text.partition("=")
    if not sep or not method or not path:
        raise argparse.ArgumentTypeError(f"expected METHOD=PATH, got {text!r}")
    return method, Path(path)


def _dataset(args: argparse.Namespace) -> None:
    from crest.languages import load_languages
    from crest.paths import resolve
    from crest.train.dataset import build_arm_dataset

    info = build_arm_dataset(args.settings, args.shards, args.out, args.info, anchors=dict(args.anchors),
                             table=load_languages(resolve(args.languages)))
    print(json.dumps({k: info[k] for k in ("arm", "languages", "rows", "translator_is_random")}))


def _run(args: argparse.Namespace) -> None:
    from crest.train.trainer import train_model

    settings = dict(args.settings)
    if args.device:
        settings["device"] = args.device
    if args.threads:
        settings["threads"] = args.threads
    data_info = json.loads(args.info.read_text(encoding="utf-8")) if args.info else {}
    summary = train_model(args.data, args.encoder, settings, args.state_dir, args.out, data_info,
                          feature_files=args.features)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line (rank 0's)
        print(json.dumps({k: summary[k] for k in ("step", "best_step", "best_f1", "stopped_early", "samples_per_s")}))


def _features(args: argparse.Namespace) -> None:
    from crest.train.frozen import feature_texts, write_features

    opt = args.settings["optim"]
    n = write_features(args.encoder, feature_texts(args.data, args.part, args.parts), args.out,
                       max_length=opt["max_length"], pad_to=opt["pad_to"], batch_tokens=opt["batch_tokens"],
                       max_batch_size=opt["max_batch_size"], threads=args.threads,
                       top_layers=opt.get("unfreeze_top_layers", 0))
    print(json.dumps({"part": args.part, "parts": args.parts, "texts": n}))


def _arms(args: argparse.Namespace) -> None:
    from crest.config import load_config, run_dir
    from crest.languages import load_languages
    from crest.paths import resolve
    from crest.train.arms import anchor_methods, arm_family, arm_languages, read_anchors, tier_counts
    from crest.train.plan import arm_budget, arm_context, train_jobs

    config = load_config(args.configfile)
    table = load_languages(resolve(config["languages"]["table"]))
    ctx = arm_context(config, table)
    given = dict(args.anchors)
    for method in ctx.methods:  # the run's own anchors, once the cluster stage has written them
        path = given.get(method, run_dir(config) / "clusters" / method / "anchors.tsv")
        if Path(path).is_file():
            given[method] = path
    if given:
        ctx.anchors = {m: read_anchors(p) for m, p in given.items()}
    arms = config["train"]["arms"]
    jobs = train_jobs(config)
    print(f"evaluation languages (never trained on unless an arm opts in): {' '.join(sorted(ctx.evaluation)) or 'none'}")
    print(f"budget: {config['train'].get('budget') or 'none (each arm takes the rows train.data gives it)'}")
    print(f"{'arm':16s} {'family':14s} models  tiers h/m/l  languages")
    for arm, spec in arms.items():
        known = all(m in (ctx.anchors or {}) for m in anchor_methods(arm, arms, ctx.methods))
        codes = arm_languages(arm, arms, ctx) if known else None
        n = sum(j[0] == arm for j in jobs)
        notes = [k for k, on in (("labels shuffled", spec.get("shuffle_labels")),
                                 ("no budget", config["train"].get("budget") and arm_budget(config["train"], arm) is None))
                 if on]
        if spec.get("allow_eval_languages"):
            notes.append(f"trains on evaluation languages {' '.join(spec['allow_eval_languages'])} (seen for it)")
        if codes is None:
            target = spec["languages"].get("random") if isinstance(spec["languages"], dict) else None
            tiers, langs = "    -      ", (f"(drawn per tier like {target}, once clustered)" if target
                                            else "(the anchors, once clustered)")
        else:
            tiers, langs = "{:>4d}/{}/{}    ".format(*tier_counts(codes, table).values()), " ".join(codes)
        print(f"{arm:16s} {arm_family(arm, spec):14s} {n:4d}    {tiers} {langs}" + (f"  [{'; '.join(notes)}]" if notes else ""))


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="fine-tuning stage").add_subparsers(dest="train_command", required=True)
    p = train.add_parser("dataset", help="one arm's train/validation rows from the translated shards")
    p.add_argument("--settings", required=True, type=json_object, help="JSON: crest.train.plan.dataset_settings")
    p.add_argument("--shards", required=True, type=Path, help="results/{run}/translated/{corpus}")
    p.add_argument("--anchors", action="append", default=[], type=_anchor_arg, metavar="METHOD=TSV")
    p.add_argument("--languages", default="config/languages.tsv", help="the language table")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--info", required=True, type=Path)
    p.set_defaults(func=_dataset)

    p = train.add_parser("run", help="fine-tune one classifier (resumes from its newest checkpoint)")
    p.add_argument("--data", required=True, type=Path, help="an arm's data.parquet")
    p.add_argument("--info", type=Path, help="its data.json (provenance for the model card)")
    p.add_argument("--encoder", required=True, help="hub id or model directory")
    p.add_argument("--settings", required=True, type=json_object, help="JSON: crest.train.plan.job_settings")
    p.add_argument("--state-dir", required=True, type=Path, help="checkpoints and metrics.jsonl")
    p.add_argument("--out", required=True, type=Path, help="the exported model directory")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="overrides the settings' device")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (overrides the settings' threads)")
    p.add_argument("--features", action="append", default=[], type=Path, metavar="NPZ",
                   help="frozen-encoder recipe: shared head features (crest train features), read instead of encoding")
    p.set_defaults(func=_run)

    p = train.add_parser("features", help="frozen-encoder recipe: encode one part of the arms' texts once, for every arm")
    p.add_argument("--encoder", required=True, help="hub id or model directory")
    p.add_argument("--settings", required=True, type=json_object, help="JSON: a job's settings (its optim is used)")
    p.add_argument("--part", required=True, type=int)
    p.add_argument("--parts", required=True, type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, type=Path, help="the .npz to write")
    p.add_argument("data", nargs="+", type=Path, help="the arms' data.parquet files")
    p.set_defaults(func=_features)

    p = train.add_parser("arms", help="list a config's arms, their languages, tiers and model counts")
    p.add_argument("--configfile", required=True, type=Path)
    p.add_argument("--anchors", action="append", default=[], type=_anchor_arg, metavar="METHOD=TSV",
                   help="anchors to resolve the arms with (default: the run's clusters/METHOD/anchors.tsv if written)")
    p.set_defaults(func=_arms)
